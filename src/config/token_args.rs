//! What `firstcome token` is given: the user and the lifetime as flags, the signing settings
//! from the same variables (and parsers) as `serve`'s, so a token minted beside a running
//! service verifies there.

use std::time::Duration;

use clap::{builder::RangedI64ValueParser, Args};

use crate::config::{
    invalid,
    user_auth::{JwtAlgorithm, JwtKey},
    values::{claim_name, token_ttl},
    ConfigError, Secret,
};

/// `firstcome token`'s help for the two settings it shares with `serve` (declared in
/// [`JwtKey`]): it only signs, and only HS256.
const ALGORITHM_HELP: &str = "Must be HS256: the token is signed with JWT_SECRET";
const SECRET_HELP: &str = "The HS256 key, 32 bytes or more";

#[derive(Debug, Clone, Args)]
#[command(mut_arg("JWT_ALGORITHM", |a| a.help(ALGORITHM_HELP)),
          mut_arg("JWT_SECRET", |a| a.help(SECRET_HELP)))]
pub struct TokenArgs {
    /// The user id the token names (1–9223372036854775807)
    #[arg(long, allow_negative_numbers = true,
          value_parser = RangedI64ValueParser::<i64>::new().range(1..))]
    pub user: i64,
    /// Tokens for this many users, --user and the ones after it, one per line (1–1000000; for k6)
    #[arg(long, default_value_t = 1,
          value_parser = RangedI64ValueParser::<i64>::new().range(1..=1_000_000))]
    pub count: i64,
    /// How long the token is valid: 30s, 15m, 1h, 7d (1s–366d)
    #[arg(long, default_value = "1h", value_parser = token_ttl)]
    pub ttl: Duration,
    /// `JWT_ALGORITHM` and `JWT_SECRET`, as `serve` reads them.
    #[command(flatten)]
    pub jwt: JwtKey,
    /// `iss` of the token; unset: none
    #[arg(id = "JWT_ISSUER", long = "jwt-issuer", env)]
    pub issuer: Option<String>,
    /// `aud` of the token; unset: none
    #[arg(id = "JWT_AUDIENCE", long = "jwt-audience", env)]
    pub audience: Option<String>,
    /// Claim the user id goes in
    #[arg(id = "JWT_USER_CLAIM", long = "jwt-user-claim", env, default_value = "sub",
          value_parser = claim_name)]
    pub user_claim: String,
}

impl TokenArgs {
    /// The users to sign for: `--user` and the `--count − 1` after it, all within i64.
    pub fn users(&self) -> Result<std::ops::RangeInclusive<i64>, ConfigError> {
        let last = self.user.checked_add(self.count - 1).ok_or_else(|| {
            ConfigError::Other(format!(
                "--user {} --count {} goes past the largest user id",
                self.user, self.count
            ))
        })?;
        Ok(self.user..=last)
    }

    /// The key to sign with: `JWT_SECRET`, with `JWT_ALGORITHM` HS256 (a token the service
    /// would refuse is not worth printing).
    pub fn secret(&self) -> Result<&Secret, ConfigError> {
        if self.jwt.algorithm != JwtAlgorithm::Hs256 {
            return Err(invalid(
                "JWT_ALGORITHM",
                self.jwt.algorithm.name(),
                "`firstcome token` signs HS256 tokens only (with JWT_SECRET)",
            ));
        }
        self.jwt.secret.as_ref().ok_or_else(|| {
            ConfigError::Other(
                "JWT_SECRET is not set: `firstcome token` signs with it (32 bytes or more)".into(),
            )
        })
    }
}
