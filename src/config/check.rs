//! The checks that one variable cannot make alone (each variable's own range and form are checked
//! by its value parser): Redis's URLs against `REDIS_CLUSTER` and its TLS files, the key source
//! `USER_AUTH=jwt` needs for its algorithm, the admin tokens, and the durations that must be ordered.

use super::{invalid, ConfigError, Settings};

impl Settings {
    /// The checks between values; a failure names the variable to change.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        self.redis.check()?;
        self.check_admin_tokens()?;
        self.user_auth.check()?;
        self.rate_limits.check()?;
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
