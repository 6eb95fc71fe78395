//! The checks that one variable cannot make alone (each variable's own range and form are checked
//! by its value parser): Redis's URLs against `REDIS_CLUSTER` and its TLS files, the key source
//! `USER_AUTH=jwt` needs for its algorithm, the admin tokens, and the durations that must be ordered.
//! Protected mode (`serve` only) is a check of its own: [`Settings::check_protected_mode`].

use crate::config::{invalid, user_auth::UserAuthMode, ConfigError, Settings};

impl Settings {
    /// The checks between values; a failure names the variable to change.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        self.redis.check()?;
        self.check_admin_tokens()?;
        self.user_auth.check()?;
        self.rate_limits.check()?;
        self.http.check()?;
        self.bot_check.check()?;
        // A reservation must outlive any request that could still commit it.
        if self.redis.reservation_timeout <= self.http.request_timeout {
            return Err(invalid(
                "RESERVATION_TIMEOUT_MS",
                &self.redis.reservation_timeout.as_millis().to_string(),
                "must be longer than HTTP_REQUEST_TIMEOUT_MS",
            ));
        }
        if self.consumers.backoff_cap < self.consumers.backoff_base {
            return Err(invalid(
                "CONSUMER_RETRY_BACKOFF_CAP_MS",
                &self.consumers.backoff_cap.as_millis().to_string(),
                "must not be below CONSUMER_RETRY_BACKOFF_BASE_MS",
            ));
        }
        if self.relay.backoff_cap < self.relay.backoff_base {
            return Err(invalid(
                "RELAY_BACKOFF_CAP_MS",
                &self.relay.backoff_cap.as_millis().to_string(),
                "must not be below RELAY_BACKOFF_BASE_MS",
            ));
        }
        Ok(())
    }

    /// Protected mode (docs/design.md §17, Redis's answer to the same problem), for `serve` only
    /// (`migrate` listens on nothing; `consume` serves only `/metrics` and `/health/*`, behind
    /// the same door, where an exposed address needs the admin token for `/metrics` and the
    /// readiness details): on an `HTTP_ADDR` other hosts can reach, the
    /// defaults meant for a laptop would publish an API where anyone acts for any user. There
    /// `USER_AUTH` must be said (`jwt`, or `none` when a gateway in front authenticates users)
    /// and `ADMISSION_SECRET` set (a generated one differs on every instance and every restart).
    /// A loopback address keeps the defaults (`scripts/run.sh`).
    pub fn check_protected_mode(&self) -> Result<(), ConfigError> {
        if !self.listens_beyond_loopback() {
            return Ok(());
        }
        let addr = self.http.addr;
        if self.user_auth.mode == UserAuthMode::Unset {
            return Err(ConfigError::Other(format!(
                "USER_AUTH is unset and HTTP_ADDR={addr} is not loopback: set USER_AUTH=jwt \
                 (with JWT_*) or USER_AUTH=none if a gateway in front authenticates users"
            )));
        }
        if self.waiting_room.secret.is_none() {
            return Err(ConfigError::Other(format!(
                "ADMISSION_SECRET is unset and HTTP_ADDR={addr} is not loopback: set \
                 ADMISSION_SECRET to 32+ random bytes, the same on every instance (e.g. \
                 ADMISSION_SECRET=$(openssl rand -hex 32))"
            )));
        }
        Ok(())
    }

    /// What protected mode lets through but an operator must not forget: `USER_AUTH=none` on an
    /// address other hosts can reach. Logged at every start of `serve`, not only the first.
    pub fn warn_if_identity_is_off(&self) {
        if self.listens_beyond_loopback() && !self.user_auth.mode.verifies() {
            tracing::warn!(
                http_addr = %self.http.addr,
                "USER_AUTH=none on an address other hosts can reach: user identity is off. Any \
                 caller can join, confirm, cancel, queue and read rewards for any userId; only \
                 safe behind a gateway that authenticates users and sets the userId itself."
            );
        }
    }

    /// Whether `HTTP_ADDR` can be reached from other hosts: anything but 127.0.0.0/8 and ::1
    /// (0.0.0.0 and :: are every interface).
    /// Whether `POST …/participations/sync` is served: `SYNC_PATH_ENABLED`, or unset only on a
    /// loopback `HTTP_ADDR`.
    pub fn sync_path_enabled(&self) -> bool {
        self.http
            .sync_path
            .unwrap_or_else(|| !self.listens_beyond_loopback())
    }

    pub fn listens_beyond_loopback(&self) -> bool {
        !self.http.addr.ip().to_canonical().is_loopback()
    }

    /// `ADMIN_TOKEN` is the token named `admin`: no other may have that name or that token.
    fn check_admin_tokens(&self) -> Result<(), ConfigError> {
        let Some(single) = &self.admin_token else {
            return Ok(());
        };
        for named in &self.admin_tokens {
            if named.name == "admin" {
                return Err(invalid(
                    "ADMIN_TOKENS",
                    "<redacted>",
                    "names a token `admin`, which ADMIN_TOKEN already is",
                ));
            }
            if named.token.expose() == single.expose() {
                return Err(invalid(
                    "ADMIN_TOKENS",
                    "<redacted>",
                    &format!("the token of {} is ADMIN_TOKEN's", named.name),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// What protected mode says of `pairs`: `Ok`, or its message.
    fn protected(pairs: &[(&str, &str)]) -> Result<(), String> {
        Settings::from_pairs(pairs)
            .expect("each value is valid")
            .check_protected_mode()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_non_loopback_address_needs_user_auth_said_out_loud() {
        for addr in [
            "0.0.0.0:8080",
            "[::]:8080",
            "192.0.2.7:8080",
            "[2001:db8::7]:80",
        ] {
            let err = protected(&[("HTTP_ADDR", addr)]).unwrap_err();
            assert!(err.starts_with("USER_AUTH is unset"), "{addr}: {err}");
            assert!(err.contains(&format!("HTTP_ADDR={addr}")), "{err}");
            assert!(
                err.contains("set USER_AUTH=jwt") && err.contains("USER_AUTH=none"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_non_loopback_address_needs_an_admission_secret() {
        for user_auth in [
            vec![("USER_AUTH", "none")],
            vec![("USER_AUTH", "jwt"), ("JWT_SECRET", SECRET)],
        ] {
            let mut pairs = vec![("HTTP_ADDR", "0.0.0.0:8080")];
            pairs.extend(user_auth);
            let err = protected(&pairs).unwrap_err();
            assert!(err.starts_with("ADMISSION_SECRET is unset"), "{err}");
            assert!(err.contains("HTTP_ADDR=0.0.0.0:8080"), "{err}");
            pairs.push(("ADMISSION_SECRET", SECRET));
            protected(&pairs).expect("both said");
        }
        protected(&[
            ("HTTP_ADDR", "[::]:8080"),
            ("USER_AUTH", "none"),
            ("ADMISSION_SECRET", SECRET),
        ])
        .expect("both said");
    }

    #[test]
    fn the_sync_path_is_served_on_loopback_unless_said_otherwise() {
        let served = |pairs: &[(&str, &str)]| {
            Settings::from_pairs(pairs)
                .expect("each value is valid")
                .sync_path_enabled()
        };
        assert!(served(&[("HTTP_ADDR", "127.0.0.1:8080")]));
        assert!(served(&[("HTTP_ADDR", "[::1]:8080")]));
        assert!(!served(&[("HTTP_ADDR", "0.0.0.0:8080")]));
        assert!(!served(&[("HTTP_ADDR", "[2001:db8::7]:80")]));
        assert!(served(&[
            ("HTTP_ADDR", "0.0.0.0:8080"),
            ("SYNC_PATH_ENABLED", "true")
        ]));
        assert!(!served(&[
            ("HTTP_ADDR", "127.0.0.1:8080"),
            ("SYNC_PATH_ENABLED", "false")
        ]));
    }

    #[test]
    fn loopback_keeps_the_defaults() {
        for addr in [
            "127.0.0.1:8080",
            "127.1.2.3:0",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:8080",
        ] {
            protected(&[("HTTP_ADDR", addr)]).unwrap_or_else(|e| panic!("{addr}: {e}"));
            let s = Settings::from_pairs(&[("HTTP_ADDR", addr)]).expect("valid");
            assert!(!s.listens_beyond_loopback(), "{addr}");
        }
        protected(&[]).expect("the default address is loopback");
    }

    #[test]
    fn consume_and_migrate_are_not_held_to_it() {
        // They read the same settings (`into_settings`), but neither takes a user's call: only
        // `serve` calls `check_protected_mode`, and the checks every command runs let this
        // through (`consume`'s port is guarded by the door and the admin token instead).
        Settings::from_pairs(&[("HTTP_ADDR", "0.0.0.0:8080")]).expect("valid");
    }
}
