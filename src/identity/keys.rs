//! The public keys a token may be checked with: the usable keys of a JWKS document, the current
//! set from each source, and the choice of one key by the token's `kid`.
//!
//! Only keys that fit the pinned algorithm are kept (RSA keys for RS256, P-256 keys for ES256,
//! and neither when the key says it is for another algorithm or for encryption), so a key of the
//! document can never make another algorithm acceptable.

use std::sync::{Arc, RwLock};

use jsonwebtoken::{
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
    DecodingKey,
};

use crate::{config::JwtAlgorithm, identity::IdentityError};

/// One usable public key of a JWKS.
#[derive(Clone)]
pub struct PublicKey {
    kid: Option<String>,
    key: DecodingKey,
}

/// Why a JWKS document gives no key set.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("not a JWKS document (a JSON object with a `keys` array): {0}")]
    NotJwks(#[from] serde_json::Error),
    #[error("none of its {total} keys is a signing key for {algorithm}")]
    NoUsableKey {
        total: usize,
        algorithm: &'static str,
    },
}

/// The document's outline: each key is read on its own, so one key of a kind this crate does not
/// know (an `OKP` key, a new `alg`) does not make the whole set unreadable.
#[derive(serde::Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

/// The keys of the JWKS `document` that fit `algorithm`; an error when there is none.
pub fn parse(document: &[u8], algorithm: JwtAlgorithm) -> Result<Vec<PublicKey>, JwksError> {
    let Document { keys } = serde_json::from_slice(document)?;
    let total = keys.len();
    let usable: Vec<PublicKey> = keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter(|jwk| fits(jwk, algorithm))
        .filter_map(|jwk| {
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some(PublicKey {
                kid: jwk.common.key_id,
                key,
            })
        })
        .collect();
    if usable.is_empty() {
        return Err(JwksError::NoUsableKey {
            total,
            algorithm: algorithm.name(),
        });
    }
    Ok(usable)
}

/// Whether `jwk` is a signing key of `algorithm`'s family (and curve), not meant for another.
fn fits(jwk: &Jwk, algorithm: JwtAlgorithm) -> bool {
    let for_signing = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    let (alg, family_fits) = match (algorithm, &jwk.algorithm) {
        (JwtAlgorithm::Rs256, AlgorithmParameters::RSA(_)) => (KeyAlgorithm::RS256, true),
        (JwtAlgorithm::Es256, AlgorithmParameters::EllipticCurve(ec)) => {
            (KeyAlgorithm::ES256, ec.curve == EllipticCurve::P256)
        }
        _ => return false,
    };
    let alg_fits = jwk.common.key_algorithm.is_none_or(|named| named == alg);
    for_signing && family_fits && alg_fits
}

/// The keys in force, per source; replaced whole by a reload, read (never locked for long) by
/// each verification.
#[derive(Default)]
pub struct KeyStore {
    file: RwLock<Arc<Vec<PublicKey>>>,
    url: RwLock<Arc<Vec<PublicKey>>>,
}

/// Where a key set came from; each source replaces only its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    File,
    Url,
}

impl KeyStore {
    /// Puts `keys` in force for `source`.
    pub fn replace(&self, source: Source, keys: Vec<PublicKey>) {
        let slot = match source {
            Source::File => &self.file,
            Source::Url => &self.url,
        };
        *slot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
    }

    /// How many keys `source` has in force.
    pub fn count(&self, source: Source) -> usize {
        match source {
            Source::File => Self::current(&self.file).len(),
            Source::Url => Self::current(&self.url).len(),
        }
    }

    fn current(slot: &RwLock<Arc<Vec<PublicKey>>>) -> Arc<Vec<PublicKey>> {
        slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `check` with the key the token's `kid` names (the file's first, then the URL's). A
    /// token without a `kid` is checked only when exactly one key is in force: picking one of
    /// several would be a guess.
    pub fn with_key<R>(
        &self,
        kid: Option<&str>,
        check: impl FnOnce(&DecodingKey) -> R,
    ) -> Result<R, IdentityError> {
        let (file, url) = (Self::current(&self.file), Self::current(&self.url));
        let mut keys = file.iter().chain(url.iter());
        let key = match kid {
            Some(kid) => keys
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or_else(|| IdentityError::Invalid(format!("no key has the kid {kid:?}")))?,
            None => match (keys.next(), keys.next()) {
                (Some(only), None) => only,
                (None, _) => return Err(IdentityError::Invalid("no key is loaded".into())),
                (Some(_), Some(_)) => {
                    return Err(IdentityError::Invalid(
                        "no kid, and more than one key is loaded".into(),
                    ))
                }
            },
        };
        Ok(check(&key.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA: &str = r#"{"kty":"RSA","n":"sXch","e":"AQAB"}"#;
    const EC: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    fn parsed(keys: &[&str], algorithm: JwtAlgorithm) -> Result<usize, JwksError> {
        let document = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
        parse(document.as_bytes(), algorithm).map(|keys| keys.len())
    }

    #[test]
    fn only_keys_of_the_pinned_algorithm_are_kept() {
        assert_eq!(parsed(&[RSA, EC], JwtAlgorithm::Rs256).ok(), Some(1));
        assert_eq!(parsed(&[RSA, EC], JwtAlgorithm::Es256).ok(), Some(1));
        let secret = r#"{"kty":"oct","k":"c2VjcmV0"}"#;
        assert!(matches!(
            parsed(&[secret], JwtAlgorithm::Hs256),
            Err(JwksError::NoUsableKey { total: 1, .. })
        ));
        let rsa_for_ps256 = r#"{"kty":"RSA","alg":"PS256","n":"sXch","e":"AQAB"}"#;
        let rsa_for_encryption = r#"{"kty":"RSA","use":"enc","n":"sXch","e":"AQAB"}"#;
        assert!(parsed(&[rsa_for_ps256, rsa_for_encryption], JwtAlgorithm::Rs256).is_err());
        let p384 = EC.replace("P-256", "P-384");
        assert!(parsed(&[&p384], JwtAlgorithm::Es256).is_err());
    }

    #[test]
    fn a_key_of_an_unknown_kind_does_not_spoil_the_set() {
        let unknown = r#"{"kty":"XYZ","crv":"new"}"#;
        assert_eq!(parsed(&[unknown, RSA], JwtAlgorithm::Rs256).ok(), Some(1));
        assert!(matches!(
            parse(b"[]", JwtAlgorithm::Rs256),
            Err(JwksError::NotJwks(_))
        ));
        assert!(parse(b"{\"keys\":", JwtAlgorithm::Rs256).is_err());
    }

    #[test]
    fn a_token_without_kid_needs_exactly_one_key() {
        let store = KeyStore::default();
        assert!(store.with_key(None, |_| ()).is_err());
        let document = format!(r#"{{"keys":[{RSA}]}}"#);
        let one = parse(document.as_bytes(), JwtAlgorithm::Rs256).expect("one key");
        store.replace(Source::File, one.clone());
        assert!(store.with_key(None, |_| ()).is_ok());
        assert!(store.with_key(Some("k1"), |_| ()).is_err());
        store.replace(Source::Url, one);
        assert_eq!(store.count(Source::Url), 1);
        assert!(store.with_key(None, |_| ()).is_err());
    }
}
