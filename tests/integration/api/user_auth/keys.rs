//! Public-key setups: the algorithm-confusion attack on RS256 (an HS256 token whose secret is the
//! public key), a JWKS file rotated while the service runs, and a JWKS URL that never answers.

use std::{path::PathBuf, time::Duration};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use firstcome::config::{JwtAlgorithm, Settings, UserAuthMode};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use crate::{
    jwt::{claims, hs256, EcKey},
    spawn::{spawn_app_with, test_settings, TestApp},
    wait::wait_until,
};

const RSA_DER: &[u8] = include_bytes!("../../../../src/identity/testdata/rsa2048.der");
const RSA_PUBLIC_PEM: &[u8] = include_bytes!("../../../../src/identity/testdata/rsa2048.pub.pem");

/// A JWKS file of this test's own, removed on drop.
struct JwksFile(PathBuf);

impl JwksFile {
    fn new(keys: &[&Value]) -> Self {
        let path = std::env::temp_dir().join(format!("jwks-{}.json", uuid::Uuid::now_v7()));
        let file = Self(path);
        file.write(keys);
        file
    }
    /// Replaces the document the way a deployment does: a new file renamed over the old one.
    fn write(&self, keys: &[&Value]) {
        let next = self.0.with_extension("next");
        std::fs::write(&next, json!({"keys": keys}).to_string()).expect("write the JWKS");
        std::fs::rename(&next, &self.0).expect("rename the JWKS");
    }
}

impl Drop for JwksFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn with_jwks(mut s: Settings, algorithm: JwtAlgorithm, file: Option<&JwksFile>) -> Settings {
    s.user_auth.mode = UserAuthMode::Jwt;
    s.user_auth.jwt.algorithm = algorithm;
    s.user_auth.issuer = Some(crate::jwt::ISSUER.into());
    s.user_auth.audience = Some(crate::jwt::AUDIENCE.into());
    s.user_auth.jwks_file = file.map(|f| f.0.clone());
    s
}

/// GET the user's rewards with `token`; the status.
async fn rewards(app: &TestApp, user: i64, token: &str) -> u16 {
    let req = app
        .client
        .get(app.url(&format!("/api/v1/users/{user}/rewards")))
        .bearer_auth(token);
    app.send(req).await.status
}

#[tokio::test]
async fn an_rs256_setup_refuses_hs256_signed_with_its_public_key() {
    let pair = ring::signature::RsaKeyPair::from_der(RSA_DER).expect("the fixture");
    let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(
        ring::signature::KeyPair::public_key(&pair),
    );
    let jwk = json!({"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e)});
    let file = JwksFile::new(&[&jwk]);
    let app = spawn_app_with(with_jwks(
        test_settings().await,
        JwtAlgorithm::Rs256,
        Some(&file),
    ))
    .await;

    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let valid = jsonwebtoken::encode(&header, &claims(7), &EncodingKey::from_rsa_der(RSA_DER))
        .expect("signs");
    assert_eq!(rewards(&app, 7, &valid).await, 200, "a real RS256 token");
    let confused = [
        hs256(RSA_PUBLIC_PEM, &claims(7)),
        hs256(jwk.to_string().as_bytes(), &claims(7)),
        hs256(&public.n, &claims(7)),
    ];
    for token in confused {
        assert_eq!(
            rewards(&app, 7, &token).await,
            401,
            "HS256 with the public key"
        );
    }
    let es = EcKey::generate("rsa-1");
    assert_eq!(
        rewards(&app, 7, &es.sign(&claims(7))).await,
        401,
        "another algorithm"
    );
}

#[tokio::test]
async fn a_key_added_to_the_jwks_file_is_used_without_a_restart() {
    let old = EcKey::generate("2026-a");
    let new = EcKey::generate("2026-b");
    let file = JwksFile::new(&[&old.jwk]);
    let app = spawn_app_with(with_jwks(
        test_settings().await,
        JwtAlgorithm::Es256,
        Some(&file),
    ))
    .await;
    assert_eq!(rewards(&app, 8, &old.sign(&claims(8))).await, 200);
    let next = new.sign(&claims(8));
    assert_eq!(rewards(&app, 8, &next).await, 401, "not yet published");

    file.write(&[&old.jwk, &new.jwk]);
    wait_until(
        "the new key to be used",
        Duration::from_secs(15),
        || async { rewards(&app, 8, &next).await == 200 },
    )
    .await;
    assert_eq!(
        rewards(&app, 8, &old.sign(&claims(8))).await,
        200,
        "both in force"
    );

    file.write(&[&new.jwk]);
    wait_until(
        "the old key to be withdrawn",
        Duration::from_secs(15),
        || async { rewards(&app, 8, &old.sign(&claims(8))).await == 401 },
    )
    .await;
    assert_eq!(rewards(&app, 8, &next).await, 200);
}

#[tokio::test]
async fn a_jwks_url_that_never_answers_holds_no_request() {
    // Accepts connections and never answers them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut settings = with_jwks(test_settings().await, JwtAlgorithm::Es256, None);
    settings.user_auth.jwks_url = Some(url.parse().expect("url"));
    settings.user_auth.jwks_timeout = Duration::from_millis(300);
    let app = spawn_app_with(settings).await;

    // No key yet: refused at once, never waiting on the identity provider.
    let key = EcKey::generate("k");
    let req = app
        .client
        .get(app.url("/api/v1/users/9/rewards"))
        .bearer_auth(key.sign(&claims(9)))
        .timeout(Duration::from_secs(5));
    let reply = app.send(req).await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "UNAUTHENTICATED"),
        "{reply:?}"
    );
    let join = app
        .client
        .post(app.url("/api/v1/campaigns/1/participations"))
        .json(&json!({"userId": 9}))
        .bearer_auth(key.sign(&claims(9)))
        .timeout(Duration::from_secs(5));
    assert_eq!(app.send(join).await.status, 401);
    hold.abort();
}
