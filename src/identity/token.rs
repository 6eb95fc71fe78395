//! `firstcome token`: an HS256 token for a user, signed with `JWT_SECRET`, to try the service
//! with `USER_AUTH=jwt` and to give the k6 flash sale its users' tokens.

use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::{encode, get_current_timestamp, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::config::Secret;

/// The claims `mint` writes itself; the user id cannot go in one of them.
const REGISTERED: &[&str] = &["exp", "iat", "nbf", "iss", "aud"];

/// A token naming `user` in `claim` (as a decimal string: `sub` is a string by RFC 7519, and the
/// verifier takes either form), valid from now for `ttl`, with `iss` and `aud` when given.
pub fn mint(
    secret: &Secret,
    user: i64,
    ttl: Duration,
    issuer: Option<&str>,
    audience: Option<&str>,
    claim: &str,
) -> anyhow::Result<String> {
    anyhow::ensure!(user >= 1, "the user id must be in 1..=i64::MAX, not {user}");
    anyhow::ensure!(
        !REGISTERED.contains(&claim),
        "the user claim cannot be {claim:?}: the token sets that claim itself"
    );
    let now = get_current_timestamp();
    let mut claims = Map::new();
    claims.insert(claim.to_string(), Value::String(user.to_string()));
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(ttl.as_secs()).into());
    if let Some(issuer) = issuer {
        claims.insert("iss".into(), issuer.into());
    }
    if let Some(audience) = audience {
        claims.insert("aud".into(), audience.into());
    }
    let key = EncodingKey::from_secret(secret.expose().as_bytes());
    encode(&Header::default(), &claims, &key).context("could not sign the token")
}
