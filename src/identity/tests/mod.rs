//! The verifier against real tokens: signed here with jsonwebtoken and ring (ES256 keys made per
//! run, the RS256 key a committed test-only fixture), checked through [`UserVerifier::start`]
//! with the settings a deployment would give.

mod hs256;
mod jwks;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
use ring::{
    rand::SystemRandom,
    signature::{EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING},
};
use serde_json::{json, Value};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::Settings,
    identity::{IdentityError, UserVerifier},
};

pub(super) const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
pub(super) const RSA_DER: &[u8] = include_bytes!("../testdata/rsa2048.der");
pub(super) const RSA_PUBLIC_PEM: &[u8] = include_bytes!("../testdata/rsa2048.pub.pem");

/// A verifier for `pairs` (with `USER_AUTH=jwt`), started as `serve` starts it.
pub(super) async fn verifier(pairs: &[(&str, &str)]) -> anyhow::Result<UserVerifier> {
    let mut all = vec![("USER_AUTH", "jwt")];
    all.extend_from_slice(pairs);
    let settings = Settings::from_pairs(&all)?;
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let verifier = UserVerifier::start(&settings.user_auth, stop.clone(), &tasks).await;
    // The background loops are not under test here.
    stop.cancel();
    verifier?.ok_or_else(|| anyhow::anyhow!("USER_AUTH=jwt gave no verifier"))
}

/// Claims for `user` (in `sub`) valid from now for an hour.
pub(super) fn claims(user: Value) -> Value {
    let now = get_current_timestamp();
    json!({ "sub": user, "iat": now, "exp": now + 3_600 })
}

/// `claims` with `key` set to `value` (`Value::Null` removes it).
pub(super) fn with(mut claims: Value, key: &str, value: Value) -> Value {
    let map = claims.as_object_mut().expect("claims are an object");
    if value.is_null() {
        map.remove(key);
    } else {
        map.insert(key.to_string(), value);
    }
    claims
}

pub(super) fn now_plus(seconds: i64) -> Value {
    json!(get_current_timestamp() as i64 + seconds)
}

pub(super) fn hs256(secret: &[u8], claims: &Value) -> String {
    let header = Header::new(Algorithm::HS256);
    encode(&header, claims, &EncodingKey::from_secret(secret)).expect("signs")
}

pub(super) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub(super) fn is_invalid(result: Result<i64, IdentityError>) -> bool {
    matches!(result, Err(IdentityError::Invalid(_)))
}

/// A P-256 key pair made for this run: its PKCS#8 document (to sign) and its JWK.
pub(super) struct EcKey {
    pkcs8: Vec<u8>,
    pub jwk: Value,
}

impl EcKey {
    pub fn generate(kid: Option<&str>) -> Self {
        let rng = SystemRandom::new();
        let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generates");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("parses");
        // An uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref();
        let mut jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        Self {
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk,
        }
    }

    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_string);
        encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).expect("signs")
    }
}

/// The JWK of the RSA fixture.
pub(super) fn rsa_jwk(kid: &str) -> Value {
    let pair = RsaKeyPair::from_der(RSA_DER).expect("the fixture is a PKCS#1 RSA key");
    let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
    json!({
        "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(&public.n),
        "e": URL_SAFE_NO_PAD.encode(&public.e),
    })
}

pub(super) fn rs256(kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, &EncodingKey::from_rsa_der(RSA_DER)).expect("signs")
}

/// A JWKS file of its own for one test, removed on drop.
pub(super) struct JwksFile(pub PathBuf);

impl JwksFile {
    pub fn new(keys: &[&Value]) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "firstcome-jwks-{}-{}.json",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let file = Self(std::env::temp_dir().join(name));
        file.write(keys);
        file
    }

    pub fn write(&self, keys: &[&Value]) {
        let document = json!({ "keys": keys });
        std::fs::write(&self.0, document.to_string()).expect("writes the JWKS");
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for JwksFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
