//! Admin authentication: `Authorization: Bearer <token>`, one of the named admin tokens
//! (`ADMIN_TOKENS`, and `ADMIN_TOKEN` as the one named `admin`). The presented token is compared
//! with every configured one in constant time, without stopping at a match, so neither the
//! comparison nor the number of comparisons tells how much of a guess was right. The name of the
//! token that matched is what the service records: the log line of each admin call, a redrive's
//! answer, a refund's log line.

use std::sync::Arc;

use poem_openapi::{auth::Bearer, SecurityScheme};
use rand::Rng;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::error::ApiError;
use crate::config::{NamedToken, Secret, Settings};

/// An admin bearer token (`ADMIN_TOKENS` / `ADMIN_TOKEN`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct AdminAuth(Bearer);

/// The name of the admin token a call came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminName(pub Arc<str>);

impl std::fmt::Display for AdminName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The configured admin tokens. Cheap to clone.
#[derive(Clone)]
pub struct AdminTokens {
    tokens: Arc<[(AdminName, Secret)]>,
}

impl AdminTokens {
    /// `ADMIN_TOKENS` and `ADMIN_TOKEN` (named `admin`); with neither, one token named `admin`
    /// generated for this run and logged once.
    pub fn from_settings(settings: &Settings) -> Self {
        let mut tokens: Vec<NamedToken> = settings.admin_tokens.clone();
        if let Some(single) = &settings.admin_token {
            tokens.push(NamedToken {
                name: "admin".into(),
                token: single.clone(),
            });
        }
        if tokens.is_empty() {
            let token: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect();
            tracing::warn!(admin_token = %token,
                "Neither ADMIN_TOKEN nor ADMIN_TOKENS is set; generated one, named admin, for this run.");
            tokens.push(NamedToken {
                name: "admin".into(),
                token: Secret::new(token),
            });
        }
        Self::new(tokens)
    }

    pub fn new(tokens: Vec<NamedToken>) -> Self {
        Self {
            tokens: tokens
                .into_iter()
                .map(|t| (AdminName(t.name.into()), t.token))
                .collect(),
        }
    }

    /// The name of the token `presented` is, if any: every token is compared, in constant time.
    pub fn identify(&self, presented: &str) -> Option<AdminName> {
        let mut found = Choice::from(0);
        let mut index = 0u32;
        for (i, (_, token)) in self.tokens.iter().enumerate() {
            // ct_eq on slices of different lengths is false without comparing contents; the
            // length of a configured token is not a secret worth protecting.
            let equal = presented.as_bytes().ct_eq(token.expose().as_bytes());
            index.conditional_assign(&(i as u32), equal);
            found |= equal;
        }
        bool::from(found).then(|| self.tokens[index as usize].0.clone())
    }

    /// The admin named by an `Authorization` header's bearer token, if it is one.
    pub fn in_header(&self, req: &poem::Request) -> Option<AdminName> {
        bearer(req).and_then(|token| self.identify(token))
    }
}

/// The bearer token of the `Authorization` header, if it has one.
pub fn bearer(req: &poem::Request) -> Option<&str> {
    req.headers()
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

impl AdminAuth {
    /// The name of the admin token presented; 401 when it is none of them. The call's log line
    /// names the admin.
    pub fn check(&self, tokens: &AdminTokens) -> Result<AdminName, ApiError> {
        let admin = tokens
            .identify(&self.0.token)
            .ok_or_else(ApiError::unauthorized)?;
        tracing::info!(admin = %admin, "Admin call.");
        Ok(admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> AdminTokens {
        AdminTokens::new(vec![
            NamedToken {
                name: "alice".into(),
                token: Secret::new("alice-token-0123456789"),
            },
            NamedToken {
                name: "bob".into(),
                token: Secret::new("bob-token-0123456789"),
            },
        ])
    }

    #[test]
    fn each_token_is_known_by_its_name() {
        let t = tokens();
        assert_eq!(
            t.identify("alice-token-0123456789").unwrap().0.as_ref(),
            "alice"
        );
        assert_eq!(
            t.identify("bob-token-0123456789").unwrap().0.as_ref(),
            "bob"
        );
    }

    #[test]
    fn a_wrong_prefix_or_extension_is_no_token() {
        let t = tokens();
        for guess in [
            "",
            "alice-token-012345678",
            "alice-token-01234567890",
            "bob",
        ] {
            assert!(t.identify(guess).is_none(), "{guess}");
        }
    }
}
