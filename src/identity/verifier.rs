//! [`UserVerifier`]: the user id an `Authorization: Bearer <JWT>` header proves.
//!
//! What is checked, and why:
//! - the header's algorithm must be `JWT_ALGORITHM` (jsonwebtoken's `Validation::new` with the
//!   pinned one): `alg: none` and an HS256 token "signed" with an RS256 setup's public key fail;
//! - `exp` is required, `exp` and `nbf` are checked with `JWT_LEEWAY_SECONDS` of clock skew;
//! - `iss` and `aud` when configured, then required too. A JWKS setup must configure its audience
//!   (`JWT_AUDIENCE`): an identity provider signs the tokens of all its applications with the
//!   same keys, and only `aud` tells a token for this service from one for another. With HS256
//!   the key is this service's own, and an unconfigured audience is not checked at all (a
//!   gateway's token with an `aud` still passes);
//! - the user id is `JWT_USER_CLAIM`, a JSON integer or a decimal string in 1..=i64::MAX;
//! - a token over 8 KiB is refused before any parsing (a 64 KiB header costs nothing).

use std::sync::Arc;

use anyhow::Context;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    config::{JwtAlgorithm, UserAuthSettings},
    identity::{
        jwks::{JwksFile, JwksUrl},
        keys::KeyStore,
        IdentityError,
    },
    shutdown::running,
};

pub use crate::config::jwt_shape::MAX_TOKEN_BYTES;

/// Checks user tokens; cheap to clone (one `Arc`), shared by every handler.
#[derive(Clone)]
pub struct UserVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Keys,
    validation: Validation,
    user_claim: String,
    /// `JWT_JWKS_FILE`, kept so that tests can reload it without waiting for the poll.
    #[cfg_attr(not(test), allow(dead_code))]
    file: Option<Arc<JwksFile>>,
}

enum Keys {
    Secret(DecodingKey),
    Jwks(Arc<KeyStore>),
}

impl std::fmt::Debug for UserVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserVerifier")
            .field("algorithm", &self.inner.validation.algorithms)
            .field("user_claim", &self.inner.user_claim)
            .finish_non_exhaustive()
    }
}

impl UserVerifier {
    /// `None` when `USER_AUTH=none` (or unset). Loads `JWT_JWKS_FILE` (an unreadable file or one without a
    /// usable key refuses the start: that is a deployment mistake) and fetches `JWT_JWKS_URL`
    /// once (a failure only warns: the identity provider may come up after this service), then
    /// keeps both current on `tasks` until `stop`.
    pub async fn start(
        settings: &UserAuthSettings,
        stop: CancellationToken,
        tasks: &TaskTracker,
    ) -> anyhow::Result<Option<UserVerifier>> {
        if !settings.mode.verifies() {
            return Ok(None);
        }
        let algorithm = settings.jwt.algorithm;
        if algorithm == JwtAlgorithm::Hs256 {
            let secret = settings
                .jwt
                .secret
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("USER_AUTH=jwt with HS256 needs JWT_SECRET"))?;
            let keys = Keys::Secret(DecodingKey::from_secret(secret.expose().as_bytes()));
            return Ok(Some(Self::new(settings, keys, None)));
        }
        // The settings' check refuses this too; settings built by hand (tests) come here as well.
        anyhow::ensure!(
            settings.audience.is_some(),
            "JWT_AUDIENCE must be set with a JWKS: its keys also sign other applications' tokens"
        );
        let store = Arc::new(KeyStore::default());
        let file = match &settings.jwks_file {
            Some(path) => {
                let file = Arc::new(JwksFile::new(path.clone(), algorithm, store.clone()));
                let keys = file.reload().context("JWT_JWKS_FILE")?;
                tracing::info!(keys, path = %path.display(), "JWKS file loaded.");
                let watch = file.clone().watch(stop.clone());
                tasks.spawn(running::track(
                    "jwks file",
                    watch.instrument(tracing::info_span!("jwks_file")),
                ));
                Some(file)
            }
            None => None,
        };
        if let Some(url) = &settings.jwks_url {
            let source = Arc::new(JwksUrl::new(
                url.clone(),
                algorithm,
                settings.jwks_timeout,
                store.clone(),
            )?);
            match source.refresh().await {
                Ok(keys) => tracing::info!(keys, %url, "JWKS fetched."),
                Err(e) => tracing::warn!(error = format!("{e:#}"), %url,
                    "JWKS fetch failed at start; tokens are refused until a fetch succeeds."),
            }
            let refresh = source.run(settings.jwks_refresh, stop);
            tasks.spawn(running::track(
                "jwks refresh",
                refresh.instrument(tracing::info_span!("jwks_refresh")),
            ));
        }
        Ok(Some(Self::new(settings, Keys::Jwks(store), file)))
    }

    fn new(settings: &UserAuthSettings, keys: Keys, file: Option<Arc<JwksFile>>) -> Self {
        let mut validation = Validation::new(match settings.jwt.algorithm {
            JwtAlgorithm::Hs256 => Algorithm::HS256,
            JwtAlgorithm::Rs256 => Algorithm::RS256,
            JwtAlgorithm::Es256 => Algorithm::ES256,
        });
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = settings.leeway.as_secs();
        // jsonwebtoken only compares `iss` and `aud` when the token has them: a configured one
        // must also be required, or a token without it would pass.
        let mut required = vec!["exp"];
        if let Some(issuer) = &settings.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // HS256 only (`start` refuses a JWKS without an audience): the key is ours alone.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Self {
            inner: Arc::new(Inner {
                keys,
                validation,
                user_claim: settings.user_claim.clone(),
                file,
            }),
        }
    }

    /// The user id `authorization` (the raw `Authorization` header, if any) proves. Synchronous
    /// and without I/O: the keys in force are only read.
    pub fn verify(&self, authorization: Option<&str>) -> Result<i64, IdentityError> {
        let token = bearer(authorization.ok_or(IdentityError::Missing)?)?;
        let inner = &*self.inner;
        let decoded = match &inner.keys {
            Keys::Secret(key) => decode::<Map<String, Value>>(token, key, &inner.validation),
            Keys::Jwks(store) => {
                let header = decode_header(token).map_err(invalid)?;
                store.with_key(header.kid.as_deref(), |key| {
                    decode::<Map<String, Value>>(token, key, &inner.validation)
                })?
            }
        };
        user_id(&decoded.map_err(invalid)?.claims, &inner.user_claim)
    }

    /// Re-reads `JWT_JWKS_FILE` now (what the poll does when the file changes).
    #[cfg(test)]
    pub(super) fn reload_file(&self) -> anyhow::Result<usize> {
        self.inner
            .file
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no JWT_JWKS_FILE"))?
            .reload()
    }
}

fn invalid(e: jsonwebtoken::errors::Error) -> IdentityError {
    IdentityError::Invalid(e.to_string())
}

/// The token of a `Bearer` header (the scheme's case does not matter, RFC 7235 §2.1).
fn bearer(header: &str) -> Result<&str, IdentityError> {
    let (scheme, token) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| IdentityError::Invalid("not a Bearer header".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(IdentityError::Invalid("not a Bearer header".into()));
    }
    let token = token.trim();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(IdentityError::Invalid(format!(
            "the token is over {MAX_TOKEN_BYTES} bytes"
        )));
    }
    if token.is_empty() {
        return Err(IdentityError::Invalid("an empty Bearer token".into()));
    }
    Ok(token)
}

/// The user id of `claim`: a JSON integer, or a decimal string without sign or leading zero
/// (one spelling per user), in 1..=i64::MAX.
fn user_id(claims: &Map<String, Value>, claim: &str) -> Result<i64, IdentityError> {
    let id = match claims.get(claim) {
        None => return Err(IdentityError::Invalid(format!("no {claim:?} claim"))),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s))
            if !s.starts_with('0') && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<i64>().ok()
        }
        Some(_) => None,
    };
    id.filter(|id| *id >= 1).ok_or_else(|| {
        IdentityError::Invalid(format!(
            "the {claim:?} claim is not a user id (1..=i64::MAX)"
        ))
    })
}
