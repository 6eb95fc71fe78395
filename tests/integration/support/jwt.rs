//! Tokens for `USER_AUTH=jwt` tests: an HS256 setup (`with_jwt`), tokens of any shape signed with
//! any key (`sign`), and a P-256 key pair made for the run with its JWK (`EcKey`).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use firstcome::config::{JwtAlgorithm, Secret, Settings, UserAuthMode};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::{
    rand::SystemRandom,
    signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING},
};
use serde_json::{json, Value};

pub const JWT_SECRET: &str = "integration-tests-jwt-secret-0123456789";
pub const ISSUER: &str = "https://id.example.test";
pub const AUDIENCE: &str = "firstcome";

/// `USER_AUTH=jwt` with HS256, an issuer and an audience.
pub fn with_jwt(mut s: Settings) -> Settings {
    s.user_auth.mode = UserAuthMode::Jwt;
    s.user_auth.jwt.algorithm = JwtAlgorithm::Hs256;
    s.user_auth.jwt.secret = Some(Secret::new(JWT_SECRET));
    s.user_auth.issuer = Some(ISSUER.into());
    s.user_auth.audience = Some(AUDIENCE.into());
    s
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Valid claims for `user`, for ten minutes.
pub fn claims(user: i64) -> Value {
    json!({"sub": user.to_string(), "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600})
}

/// `claims` signed with `key` under `alg`.
pub fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    encode(&Header::new(alg), claims, key).expect("signs")
}

/// A valid token of `user` for [`with_jwt`].
pub fn token(user: i64) -> String {
    hs256(JWT_SECRET.as_bytes(), &claims(user))
}

pub fn hs256(secret: &[u8], claims: &Value) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(secret), claims)
}

/// An unsigned token (`"alg": "none"`), which no configuration may accept.
pub fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

/// A P-256 key pair made for this run: its PKCS#8 document (to sign) and its public JWK.
pub struct EcKey {
    pkcs8: Vec<u8>,
    pub jwk: Value,
}

impl EcKey {
    pub fn generate(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generates");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("parses");
        // An uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Self {
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk,
        }
    }

    /// `claims` signed with this key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = self.jwk["kid"].as_str().map(str::to_string);
        encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).expect("signs")
    }
}
