//! RS256 and ES256 with a JWKS: the keys of a file and of a URL, the `kid`, the pinned algorithm
//! against a public key used as an HMAC secret, rotation without a restart, the audience that
//! tells this service's tokens from other applications', a URL's redirect that is not followed.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{
    config::JwtAlgorithm,
    identity::{jwks::JwksUrl, keys::KeyStore, tests::*},
};

/// This service's name at the identity provider: a JWKS setup must have one.
const AUDIENCE: &str = "firstcome";

// `verifier` and `claims` of this file shadow the module's: a JWKS setup with its audience, and
// tokens issued for it.

/// [`crate::identity::tests::verifier`] with `JWT_AUDIENCE`, which a JWKS requires.
async fn verifier(pairs: &[(&str, &str)]) -> anyhow::Result<UserVerifier> {
    let mut all = vec![("JWT_AUDIENCE", AUDIENCE)];
    all.extend_from_slice(pairs);
    crate::identity::tests::verifier(&all).await
}

/// [`crate::identity::tests::claims`] of a token issued for this service.
fn claims(user: Value) -> Value {
    with(crate::identity::tests::claims(user), "aud", json!(AUDIENCE))
}

#[tokio::test]
async fn es256_and_rs256_tokens_verify_with_the_keys_of_a_jwks_file() {
    let ec = EcKey::generate(Some("ec1"));
    let rsa = rsa_jwk("rsa1");
    let file = JwksFile::new(&[&ec.jwk, &rsa]);
    let es = verifier(&[("JWT_ALGORITHM", "ES256"), ("JWT_JWKS_FILE", file.path())])
        .await
        .expect("starts");
    let rs = verifier(&[("JWT_ALGORITHM", "RS256"), ("JWT_JWKS_FILE", file.path())])
        .await
        .expect("starts");
    let es_token = ec.sign(Some("ec1"), &claims(json!("42")));
    let rs_token = rs256(Some("rsa1"), &claims(json!(43)));
    assert_eq!(es.verify(Some(&bearer(&es_token))).ok(), Some(42));
    assert_eq!(rs.verify(Some(&bearer(&rs_token))).ok(), Some(43));
    // Each setup takes its own algorithm only, whatever keys the file holds.
    assert!(is_invalid(es.verify(Some(&bearer(&rs_token)))));
    assert!(is_invalid(rs.verify(Some(&bearer(&es_token)))));
    // The time claims are checked as with HS256.
    let expired = rs256(
        Some("rsa1"),
        &with(claims(json!(43)), "exp", now_plus(-120)),
    );
    assert!(is_invalid(rs.verify(Some(&bearer(&expired)))));
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused_by_an_rs256_setup() {
    let rsa = rsa_jwk("rsa1");
    let file = JwksFile::new(&[&rsa]);
    let rs = verifier(&[("JWT_ALGORITHM", "RS256"), ("JWT_JWKS_FILE", file.path())])
        .await
        .expect("starts");
    let n = URL_SAFE_NO_PAD
        .decode(rsa["n"].as_str().expect("n"))
        .expect("base64url");
    let jwk = rsa.to_string();
    let public_forms: [&[u8]; 3] = [RSA_PUBLIC_PEM, &n, jwk.as_bytes()];
    for secret in public_forms {
        for kid in [None, Some("rsa1")] {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = kid.map(str::to_string);
            let key = EncodingKey::from_secret(secret);
            let token = encode(&header, &claims(json!(42)), &key).expect("signs");
            assert!(is_invalid(rs.verify(Some(&bearer(&token)))), "{kid:?}");
        }
    }
    // And the same for `alg: none` with the key's kid.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"rsa1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(json!(42)).to_string());
    assert!(is_invalid(
        rs.verify(Some(&bearer(&format!("{header}.{payload}."))))
    ));
}

#[tokio::test]
async fn the_kid_picks_the_key() {
    let (one, two) = (EcKey::generate(Some("k1")), EcKey::generate(Some("k2")));
    let file = JwksFile::new(&[&one.jwk, &two.jwk]);
    let v = verifier(&[("JWT_ALGORITHM", "ES256"), ("JWT_JWKS_FILE", file.path())])
        .await
        .expect("starts");
    let verify = |token: String| v.verify(Some(&bearer(&token)));
    assert_eq!(
        verify(one.sign(Some("k1"), &claims(json!(1)))).ok(),
        Some(1)
    );
    assert_eq!(
        verify(two.sign(Some("k2"), &claims(json!(2)))).ok(),
        Some(2)
    );
    // Signed by k2 but naming k1; an unknown kid; no kid with two keys to choose from.
    assert!(is_invalid(verify(two.sign(Some("k1"), &claims(json!(2))))));
    assert!(is_invalid(verify(two.sign(Some("k3"), &claims(json!(2))))));
    assert!(is_invalid(verify(two.sign(None, &claims(json!(2))))));
    // With exactly one key of the family, a token without kid uses it.
    let only = EcKey::generate(None);
    let single = JwksFile::new(&[&only.jwk, &rsa_jwk("rsa1")]);
    let v = verifier(&[("JWT_ALGORITHM", "ES256"), ("JWT_JWKS_FILE", single.path())])
        .await
        .expect("starts");
    let token = only.sign(None, &claims(json!(5)));
    assert_eq!(v.verify(Some(&bearer(&token))).ok(), Some(5));
}

#[tokio::test]
async fn a_rotated_file_is_used_after_its_reload() {
    let (old, new) = (EcKey::generate(Some("old")), EcKey::generate(Some("new")));
    let file = JwksFile::new(&[&old.jwk]);
    let v = verifier(&[("JWT_ALGORITHM", "ES256"), ("JWT_JWKS_FILE", file.path())])
        .await
        .expect("starts");
    let old_token = old.sign(Some("old"), &claims(json!(1)));
    let new_token = new.sign(Some("new"), &claims(json!(2)));
    assert!(is_invalid(v.verify(Some(&bearer(&new_token)))));
    file.write(&[&new.jwk]);
    assert_eq!(v.reload_file().expect("reloads"), 1);
    assert_eq!(v.verify(Some(&bearer(&new_token))).ok(), Some(2));
    assert!(is_invalid(v.verify(Some(&bearer(&old_token)))));
    // A broken rewrite keeps the keys in force.
    std::fs::write(&file.0, "{\"keys\": [").expect("writes");
    assert!(v.reload_file().is_err());
    assert_eq!(v.verify(Some(&bearer(&new_token))).ok(), Some(2));
}

#[tokio::test]
async fn a_jwks_file_without_a_usable_key_refuses_the_start() {
    let file = JwksFile::new(&[&rsa_jwk("rsa1")]);
    let err = verifier(&[("JWT_ALGORITHM", "ES256"), ("JWT_JWKS_FILE", file.path())])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("JWT_JWKS_FILE"), "{err:#}");
    std::fs::write(&file.0, "not json").expect("writes");
    assert!(
        verifier(&[("JWT_ALGORITHM", "RS256"), ("JWT_JWKS_FILE", file.path())])
            .await
            .is_err()
    );
    let missing = "/nonexistent/firstcome/jwks.json";
    assert!(
        verifier(&[("JWT_ALGORITHM", "RS256"), ("JWT_JWKS_FILE", missing)])
            .await
            .is_err()
    );
}

/// Serves `body` as the answer to every request on a local port.
async fn serve_once(body: String) -> String {
    serve("200 OK", "content-type: application/json\r\n", body, None).await
}

/// Answers every request on a local port with `status`, `headers` (each line ending in CRLF)
/// and `body`, counting the requests in `requests`; the URL of `/jwks.json` there.
async fn serve(
    status: &'static str,
    headers: &'static str,
    body: String,
    requests: Option<Arc<AtomicUsize>>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("has an address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            // Read the request first: closing on an unread one would reset the connection.
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            if let Some(requests) = &requests {
                requests.fetch_add(1, Ordering::SeqCst);
            }
            let response = format!(
                "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n\
                 {body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    format!("http://{addr}/jwks.json")
}

#[tokio::test]
async fn the_keys_of_a_jwks_url_are_fetched_at_start() {
    let ec = EcKey::generate(Some("u1"));
    let url = serve_once(json!({ "keys": [ec.jwk] }).to_string()).await;
    let v = verifier(&[("JWT_ALGORITHM", "ES256"), ("JWT_JWKS_URL", &url)])
        .await
        .expect("starts");
    let token = ec.sign(Some("u1"), &claims(json!(9)));
    assert_eq!(v.verify(Some(&bearer(&token))).ok(), Some(9));
}

#[tokio::test]
async fn a_jwks_url_that_hangs_delays_the_start_only_by_its_timeout() {
    // Connections are accepted by the kernel and never answered.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let url = format!(
        "http://{}/jwks.json",
        listener.local_addr().expect("address")
    );
    let started = Instant::now();
    let v = verifier(&[
        ("JWT_ALGORITHM", "ES256"),
        ("JWT_JWKS_URL", &url),
        ("JWT_JWKS_TIMEOUT_MS", "200"),
    ])
    .await
    .expect("starts without keys");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let token = EcKey::generate(Some("u1")).sign(Some("u1"), &claims(json!(9)));
    assert!(is_invalid(v.verify(Some(&bearer(&token)))));
    drop(listener);
}

#[tokio::test]
async fn a_token_for_another_application_of_the_same_provider_is_refused() {
    // The provider signs every application's tokens with the same keys: only `aud` differs.
    let ec = EcKey::generate(Some("idp"));
    let file = JwksFile::new(&[&ec.jwk]);
    let url = serve_once(json!({ "keys": [ec.jwk] }).to_string()).await;
    for source in [
        ("JWT_JWKS_FILE", file.path()),
        ("JWT_JWKS_URL", url.as_str()),
    ] {
        let v = verifier(&[("JWT_ALGORITHM", "ES256"), source])
            .await
            .expect("starts");
        let verify = |claims: Value| v.verify(Some(&bearer(&ec.sign(Some("idp"), &claims))));
        assert_eq!(verify(claims(json!(7))).ok(), Some(7), "{source:?}");
        assert_eq!(
            verify(with(claims(json!(7)), "aud", json!(["billing", AUDIENCE]))).ok(),
            Some(7),
            "{source:?}: one of its audiences is enough"
        );
        for aud in [json!("billing"), json!(["billing", "crm"]), Value::Null] {
            let token = with(claims(json!(7)), "aud", aud.clone());
            assert!(is_invalid(verify(token)), "{source:?}: aud={aud}");
        }
    }
}

#[tokio::test]
async fn a_jwks_setup_without_an_audience_does_not_start() {
    let ec = EcKey::generate(Some("idp"));
    let file = JwksFile::new(&[&ec.jwk]);
    let pairs = [
        ("USER_AUTH", "jwt"),
        ("JWT_ALGORITHM", "ES256"),
        ("JWT_JWKS_FILE", file.path()),
    ];
    let err = Settings::from_pairs(&pairs).unwrap_err().to_string();
    assert!(err.starts_with("JWT_AUDIENCE="), "{err}");
    // Settings put together by hand (as tests and embedders do) skip that check: the verifier
    // refuses too.
    let mut settings = Settings::from_pairs(&[]).expect("valid");
    settings.user_auth.mode = crate::config::UserAuthMode::Jwt;
    settings.user_auth.jwt.algorithm = JwtAlgorithm::Es256;
    settings.user_auth.jwks_file = Some(file.0.clone());
    let err = UserVerifier::start(
        &settings.user_auth,
        CancellationToken::new(),
        &TaskTracker::new(),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("JWT_AUDIENCE"), "{err:#}");
}

#[tokio::test]
async fn a_redirect_of_the_jwks_url_is_not_followed() {
    // Where the redirect leads: a JWKS with the key that signs the token.
    let ec = EcKey::generate(Some("swapped"));
    let followed = Arc::new(AtomicUsize::new(0));
    let target = serve(
        "200 OK",
        "content-type: application/json\r\n",
        json!({ "keys": [ec.jwk] }).to_string(),
        Some(followed.clone()),
    )
    .await;
    let location: &'static str = format!("location: {target}\r\n").leak();
    let asked = Arc::new(AtomicUsize::new(0));
    let url = serve("302 Found", location, String::new(), Some(asked.clone())).await;

    // The start only warns (the provider may come up later)...
    let v = verifier(&[("JWT_ALGORITHM", "ES256"), ("JWT_JWKS_URL", &url)])
        .await
        .expect("starts without keys");
    let token = ec.sign(Some("swapped"), &claims(json!(9)));
    assert!(is_invalid(v.verify(Some(&bearer(&token)))));
    assert!(asked.load(Ordering::SeqCst) >= 1, "the URL was fetched");
    assert_eq!(
        followed.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );

    // ...and the fetch fails, saying why.
    let source = JwksUrl::new(
        url.parse().expect("a URL"),
        JwtAlgorithm::Es256,
        Duration::from_secs(2),
        Arc::new(KeyStore::default()),
    )
    .expect("a client");
    let err = format!("{:#}", source.refresh().await.unwrap_err());
    assert!(err.contains("302") && err.contains("not followed"), "{err}");
    assert_eq!(followed.load(Ordering::SeqCst), 0);
}
