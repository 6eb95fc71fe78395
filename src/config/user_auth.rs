//! The `User identity` settings: whether a caller must prove who it is (`USER_AUTH`), and how its
//! JWT is verified (issue 26; the verifier is [`crate::identity`]).
//!
//! The algorithm is pinned here, never read from a token: a token whose header names another one
//! is refused, which is what stops `alg: none` and an HS256 token signed with an RS256 setup's
//! public key.
//!
//! `USER_AUTH` unset is not `none`: it behaves as `none`, but protected mode
//! ([`crate::config::Settings::check_protected_mode`], docs/design.md §17) refuses it on an address other
//! hosts can reach, where `none` must be said out loud.

use std::{path::PathBuf, time::Duration};

use clap::Args;

use crate::config::{
    invalid,
    values::{claim_name, jwks_url, jwt_algorithm, jwt_secret, millis, seconds, user_auth_mode},
    ConfigError, Secret,
};

/// `USER_AUTH`: who a join, confirm, cancel, queue or rewards call acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAuthMode {
    /// Not set: as [`Self::None`], and allowed by protected mode on a loopback `HTTP_ADDR` only.
    Unset,
    /// The `userId` of the path or body is trusted (a gateway in front already authenticated).
    None,
    /// Each call carries `Authorization: Bearer <JWT>`, verified here.
    Jwt,
}

impl UserAuthMode {
    /// Whether user calls carry a token that is verified (`jwt`); `none` and unset trust the
    /// `userId` of the request.
    pub fn verifies(self) -> bool {
        self == Self::Jwt
    }

    /// As written in `USER_AUTH`; unset is `none`, which is how it behaves.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unset | Self::None => "none",
            Self::Jwt => "jwt",
        }
    }
}

/// `JWT_ALGORITHM`: the one algorithm a token may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with `JWT_SECRET` (a service on its own, `firstcome token`).
    Hs256,
    /// RSA PKCS#1 v1.5 SHA-256, public keys from a JWKS.
    Rs256,
    /// ECDSA P-256 SHA-256, public keys from a JWKS.
    Es256,
}

impl JwtAlgorithm {
    /// As written in `JWT_ALGORITHM` and in a JWT header.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }
}

/// `JWT_ALGORITHM` and `JWT_SECRET`, declared once: `serve` verifies tokens with them and
/// `firstcome token` signs with them (it words their help for itself:
/// [`crate::config::token_args::TokenArgs`]), so a token minted beside a running service
/// verifies there. The help here is `serve`'s, the one docs/configuration.md's table shows.
#[derive(Debug, Clone, Args)]
pub struct JwtKey {
    /// The one algorithm a token may use (never read from the token): HS256, RS256 or ES256
    #[arg(id = "JWT_ALGORITHM", long = "jwt-algorithm", env, default_value = "HS256",
          value_parser = jwt_algorithm())]
    pub algorithm: JwtAlgorithm,
    /// HS256 key, 32 bytes or more (also what `firstcome token` signs with)
    #[arg(id = "JWT_SECRET", long = "jwt-secret", env, hide_env_values = true,
          default_value = "", hide_default_value = true, value_parser = jwt_secret)]
    pub secret: std::option::Option<Secret>,
}

#[derive(Debug, Clone, Args)]
pub struct UserAuthSettings {
    /// `none`: the userId of the request is trusted (a gateway in front authenticates users); `jwt`: user calls need a verified Bearer JWT. Unset: as `none`, and only on a loopback HTTP_ADDR (protected mode)
    // Unset is told apart from `none` (`UserAuthMode::Unset`): see `Settings::check_protected_mode`.
    #[arg(id = "USER_AUTH", long = "user-auth", env, default_value = "",
          hide_default_value = true, value_parser = user_auth_mode())]
    pub mode: UserAuthMode,
    /// `JWT_ALGORITHM` and `JWT_SECRET`.
    #[command(flatten)]
    pub jwt: JwtKey,
    /// JWKS file of the RS256/ES256 public keys; re-read when it changes
    #[arg(id = "JWT_JWKS_FILE", long = "jwt-jwks-file", env)]
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL of the RS256/ES256 public keys, fetched in the background (never on a request); https unless its host is loopback; redirects are not followed
    #[arg(id = "JWT_JWKS_URL", long = "jwt-jwks-url", env, value_parser = jwks_url)]
    pub jwks_url: Option<url::Url>,
    /// How often JWT_JWKS_URL is fetched (1000–86400000)
    #[arg(id = "JWT_JWKS_REFRESH_MS", long = "jwt-jwks-refresh-ms", env,
          default_value = "60000", value_parser = millis(1_000..=86_400_000))]
    pub jwks_refresh: Duration,
    /// Longest wait for one fetch of JWT_JWKS_URL (100–60000)
    #[arg(id = "JWT_JWKS_TIMEOUT_MS", long = "jwt-jwks-timeout-ms", env,
          default_value = "2000", value_parser = millis(100..=60_000))]
    pub jwks_timeout: Duration,
    /// Required `iss` of a token; unset: not checked
    #[arg(id = "JWT_ISSUER", long = "jwt-issuer", env)]
    pub issuer: Option<String>,
    /// Required `aud` of a token: this service's name at the identity provider. Required with a JWKS (JWT_JWKS_FILE, JWT_JWKS_URL); unset with HS256: not checked
    #[arg(id = "JWT_AUDIENCE", long = "jwt-audience", env)]
    pub audience: Option<String>,
    /// Claim holding the user id: a JSON integer or a decimal string, 1 or more
    #[arg(id = "JWT_USER_CLAIM", long = "jwt-user-claim", env, default_value = "sub",
          value_parser = claim_name)]
    pub user_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (0–300)
    #[arg(id = "JWT_LEEWAY_SECONDS", long = "jwt-leeway-seconds", env, default_value = "30",
          value_parser = seconds(0..=300))]
    pub leeway: Duration,
}

impl UserAuthSettings {
    /// The checks between the `JWT_*` values; with `USER_AUTH=none` (or unset) they are not used,
    /// so not checked either (a shared environment file may carry them for other instances).
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !self.mode.verifies() {
            return Ok(());
        }
        let algorithm = self.jwt.algorithm.name();
        match self.jwt.algorithm {
            JwtAlgorithm::Hs256 if self.jwt.secret.is_none() => Err(invalid(
                "JWT_SECRET",
                "",
                "must be set with USER_AUTH=jwt and JWT_ALGORITHM=HS256",
            )),
            JwtAlgorithm::Hs256 if self.jwks_file.is_some() || self.jwks_url.is_some() => {
                Err(invalid(
                    self.jwks_variable(),
                    "",
                    "must not be set with JWT_ALGORITHM=HS256 (its key is JWT_SECRET); \
                     set JWT_ALGORITHM=RS256 or ES256 to use a JWKS",
                ))
            }
            JwtAlgorithm::Hs256 => Ok(()),
            // One key source per setup: a secret beside a JWKS would leave it unclear which
            // tokens are meant to be accepted.
            JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 if self.jwt.secret.is_some() => Err(invalid(
                "JWT_SECRET",
                "<redacted>",
                &format!(
                    "must not be set with JWT_ALGORITHM={algorithm} (its keys come from \
                     JWT_JWKS_FILE or JWT_JWKS_URL)"
                ),
            )),
            JwtAlgorithm::Rs256 | JwtAlgorithm::Es256
                if self.jwks_file.is_none() && self.jwks_url.is_none() =>
            {
                Err(invalid(
                    "JWT_JWKS_FILE",
                    "",
                    &format!(
                        "JWT_JWKS_FILE or JWT_JWKS_URL must be set with USER_AUTH=jwt and \
                         JWT_ALGORITHM={algorithm}"
                    ),
                ))
            }
            // An identity provider signs tokens for every application it serves with the same
            // keys: without an audience, a token it issued for another one would act here.
            JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 if self.audience.is_none() => Err(invalid(
                "JWT_AUDIENCE",
                "",
                &format!(
                    "must be set with {} (this service's name at the identity provider): \
                     its keys also sign the tokens of other applications",
                    self.jwks_variable()
                ),
            )),
            JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => Ok(()),
        }
    }

    /// The JWKS variable that is set (the file's when both are).
    fn jwks_variable(&self) -> &'static str {
        if self.jwks_file.is_some() {
            "JWT_JWKS_FILE"
        } else {
            "JWT_JWKS_URL"
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn error(pairs: &[(&str, &str)]) -> String {
        Settings::from_pairs(pairs).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_no_verification() {
        let s = Settings::from_pairs(&[]).expect("defaults are valid");
        let a = s.user_auth;
        // Unset behaves as `none`, but is told apart from it (protected mode).
        assert_eq!(a.mode, UserAuthMode::Unset);
        assert!(!a.mode.verifies());
        assert_eq!(a.mode.name(), "none");
        assert_eq!(a.jwt.algorithm, JwtAlgorithm::Hs256);
        assert!(a.jwt.secret.is_none() && a.jwks_file.is_none() && a.jwks_url.is_none());
        assert_eq!(a.jwks_refresh, Duration::from_secs(60));
        assert_eq!(a.jwks_timeout, Duration::from_secs(2));
        assert_eq!(a.user_claim, "sub");
        assert_eq!(a.leeway, Duration::from_secs(30));
    }

    #[test]
    fn jwt_with_hs256_needs_a_long_enough_secret() {
        let err = error(&[("USER_AUTH", "jwt")]);
        assert!(err.starts_with("JWT_SECRET="), "{err}");
        let err = error(&[("USER_AUTH", "jwt"), ("JWT_SECRET", "hunter2-short")]);
        assert!(err.starts_with("JWT_SECRET="), "{err}");
        assert!(err.contains("32 bytes"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let s =
            Settings::from_pairs(&[("USER_AUTH", "jwt"), ("JWT_SECRET", SECRET)]).expect("valid");
        assert_eq!(s.user_auth.mode, UserAuthMode::Jwt);
        assert!(!format!("{s:?}").contains(SECRET));
        // A JWKS beside an HS256 setup would be ignored: refused rather than left to surprise.
        let err = error(&[
            ("USER_AUTH", "jwt"),
            ("JWT_SECRET", SECRET),
            ("JWT_JWKS_URL", "https://idp.example/jwks.json"),
        ]);
        assert!(err.starts_with("JWT_JWKS_URL="), "{err}");
    }

    #[test]
    fn jwt_with_a_public_key_algorithm_needs_a_jwks_and_no_secret() {
        for alg in ["RS256", "ES256"] {
            let err = error(&[("USER_AUTH", "jwt"), ("JWT_ALGORITHM", alg)]);
            assert!(err.starts_with("JWT_JWKS_FILE="), "{err}");
            assert!(err.contains("JWT_JWKS_URL"), "{err}");
            let err = error(&[
                ("USER_AUTH", "jwt"),
                ("JWT_ALGORITHM", alg),
                ("JWT_JWKS_FILE", "/etc/jwks.json"),
                ("JWT_SECRET", SECRET),
            ]);
            assert!(err.starts_with("JWT_SECRET="), "{err}");
            assert!(!err.contains(SECRET), "{err}");
            for source in [
                ("JWT_JWKS_FILE", "/etc/jwks.json"),
                ("JWT_JWKS_URL", "https://idp.example/jwks.json"),
            ] {
                let audience = ("JWT_AUDIENCE", "firstcome");
                Settings::from_pairs(&[
                    ("USER_AUTH", "jwt"),
                    ("JWT_ALGORITHM", alg),
                    source,
                    audience,
                ])
                .expect("valid");
            }
        }
    }

    #[test]
    fn a_jwks_needs_an_audience() {
        for source in [
            ("JWT_JWKS_FILE", "/etc/jwks.json"),
            ("JWT_JWKS_URL", "https://idp.example/jwks.json"),
        ] {
            for alg in ["RS256", "ES256"] {
                let err = error(&[("USER_AUTH", "jwt"), ("JWT_ALGORITHM", alg), source]);
                assert!(err.starts_with("JWT_AUDIENCE="), "{err}");
                assert!(err.contains(source.0), "{err}");
            }
        }
        // HS256's key is this service's own: its audience stays optional.
        let s =
            Settings::from_pairs(&[("USER_AUTH", "jwt"), ("JWT_SECRET", SECRET)]).expect("valid");
        assert!(s.user_auth.audience.is_none());
    }

    #[test]
    fn a_jwks_url_is_https_unless_its_host_is_loopback() {
        for url in [
            "http://idp.example/jwks.json",
            "http://10.0.0.7/jwks.json",
            "http://[2001:db8::1]/jwks.json",
            "http://localhost.idp.example/jwks.json",
            "ftp://idp.example/jwks.json",
        ] {
            let err = error(&[("JWT_JWKS_URL", url)]);
            assert!(err.starts_with("JWT_JWKS_URL="), "{url}: {err}");
            assert!(err.contains("https://"), "{url}: {err}");
        }
        for url in [
            "https://idp.example/jwks.json",
            "https://10.0.0.7:8443/jwks.json",
            "http://localhost:8080/jwks.json",
            "http://LOCALHOST/jwks.json",
            "http://127.0.0.1:9000/jwks.json",
            "http://127.8.9.10/jwks.json",
            "http://[::1]:9000/jwks.json",
        ] {
            let s = Settings::from_pairs(&[("JWT_JWKS_URL", url)]).expect(url);
            assert!(s.user_auth.jwks_url.is_some());
        }
    }

    #[test]
    fn with_user_auth_none_the_jwt_variables_are_ignored() {
        let s = Settings::from_pairs(&[
            ("JWT_ALGORITHM", "RS256"),
            ("JWT_SECRET", SECRET),
            ("JWT_ISSUER", "https://idp.example"),
        ])
        .expect("valid");
        assert_eq!(s.user_auth.mode, UserAuthMode::Unset);
        let s = Settings::from_pairs(&[("USER_AUTH", "none"), ("JWT_ALGORITHM", "RS256")])
            .expect("valid");
        assert_eq!(s.user_auth.mode, UserAuthMode::None);
        assert_eq!(s.user_auth.mode.name(), "none");
    }

    #[test]
    fn each_value_is_checked_alone() {
        for (var, bad) in [
            ("USER_AUTH", "oauth"),
            ("JWT_ALGORITHM", "none"),
            ("JWT_ALGORITHM", "HS512"),
            ("JWT_JWKS_URL", "file:///etc/jwks.json"),
            ("JWT_JWKS_URL", "idp.example/jwks"),
            ("JWT_JWKS_REFRESH_MS", "999"),
            ("JWT_JWKS_TIMEOUT_MS", "60001"),
            ("JWT_USER_CLAIM", " "),
            ("JWT_LEEWAY_SECONDS", "301"),
            ("JWT_LEEWAY_SECONDS", "-1"),
        ] {
            let err = error(&[(var, bad)]);
            assert!(err.starts_with(&format!("{var}=")), "{var}={bad}: {err}");
        }
        let s = Settings::from_pairs(&[
            ("JWT_ALGORITHM", "ES256"),
            ("JWT_LEEWAY_SECONDS", "0"),
            ("JWT_USER_CLAIM", "uid"),
        ])
        .expect("valid");
        assert_eq!(s.user_auth.jwt.algorithm, JwtAlgorithm::Es256);
        assert_eq!(s.user_auth.leeway, Duration::ZERO);
        assert_eq!(s.user_auth.user_claim, "uid");
    }
}
