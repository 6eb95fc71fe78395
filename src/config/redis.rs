//! The `Redis` settings of the gate: where it is (one node or a cluster, TLS), the key prefix,
//! deadlines, and the checks that involve more than one of them.

use std::{path::PathBuf, time::Duration};

use clap::{builder::BoolishValueParser, ArgAction, Args};

use crate::config::{
    invalid,
    values::{key_prefix, millis, number, secret, Secret},
    ConfigError,
};

#[derive(Debug, Clone, Args)]
pub struct RedisSettings {
    /// The gate's Redis (7.0 or later: the writers' mailboxes use `BLMPOP`): `redis://` or `rediss://` (TLS); with REDIS_CLUSTER, seed nodes separated by commas
    // Checked with `cluster` in [`RedisSettings::check`]; a `Secret`: it may hold a password.
    #[arg(id = "REDIS_URL", long = "redis-url", env, hide_env_values = true,
          default_value = "redis://127.0.0.1:6379", value_parser = secret)]
    pub url: Secret,
    /// REDIS_URL is a Redis Cluster (its nodes follow MOVED/ASK; a campaign's keys share one slot)
    #[arg(id = "REDIS_CLUSTER", long = "redis-cluster", env, default_value_t = false,
          action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub cluster: bool,
    /// `REDIS_TLS_*`: a private CA and a client certificate for `rediss://`.
    #[command(flatten)]
    pub tls: RedisTls,
    /// Put in front of every key (no braces)
    // Tests use one per test. No braces: the hash tag `{c:<id>}` that follows must be the first
    // one in the key.
    #[arg(id = "REDIS_KEY_PREFIX", long = "redis-key-prefix", env, default_value = "firstcome:",
          value_parser = key_prefix)]
    pub key_prefix: String,
    /// Deadline of every Redis call (10–60000)
    // A slower call fails as DEPENDENCY_UNAVAILABLE.
    #[arg(id = "REDIS_TIMEOUT_MS", long = "redis-timeout-ms", env, default_value = "1000",
          value_parser = millis(10..=60_000))]
    pub timeout: Duration,
    /// After seeing a campaign sold out, answer SOLD_OUT without Redis this long; 0 = off (0–10000)
    // Stock released later is seen this late.
    #[arg(id = "SOLD_OUT_MEMO_MS", long = "sold-out-memo-ms", env, default_value = "100",
          value_parser = millis(0..=10_000))]
    pub sold_out_memo: Duration,
    /// A reservation open this long was left by a crashed or stopped instance and is given back; must be longer than HTTP_REQUEST_TIMEOUT_MS (1000–86400000)
    // The reconciler gives it back unless MySQL has the win. It bounds how long a crashed
    // instance withholds units (docs/design.md §18.1); a commit in doubt no longer waits for it
    // (write::in_doubt), so it only needs to outlive a request's commit window.
    #[arg(id = "RESERVATION_TIMEOUT_MS", long = "reservation-timeout-ms", env,
          default_value = "15000", value_parser = millis(1_000..=86_400_000))]
    pub reservation_timeout: Duration,
    /// Most joins of one campaign (or bucket) reserved in one Redis call; 1 = a call each (1–256)
    // Joins that arrive while their slot's call is in flight go in its next one, decided in
    // arrival order as one by one (gate::batch; docs/design.md §10 "Serial sections").
    #[arg(id = "REDIS_RESERVE_BATCH_MAX", long = "redis-reserve-batch-max", env,
          default_value_t = 64, value_parser = number::<usize>(1..=256))]
    pub reserve_batch_max: usize,
}

/// PEM files for Redis over TLS; all optional (`rediss://` alone trusts the system's roots).
#[derive(Debug, Clone, Default, Args)]
pub struct RedisTls {
    /// PEM file of the CA that signed the Redis server's certificate (unset: the system's roots)
    #[arg(id = "REDIS_TLS_CA_FILE", long = "redis-tls-ca-file", env)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for a Redis that requires one (with REDIS_TLS_KEY_FILE)
    #[arg(id = "REDIS_TLS_CERT_FILE", long = "redis-tls-cert-file", env)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of REDIS_TLS_CERT_FILE
    #[arg(id = "REDIS_TLS_KEY_FILE", long = "redis-tls-key-file", env)]
    pub key_file: Option<PathBuf>,
}

impl RedisSettings {
    /// `REDIS_URL` against `REDIS_CLUSTER`, and the TLS files.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        redis_urls(self.url.expose(), self.cluster)?;
        self.tls.check()
    }
}

impl RedisTls {
    /// A certificate needs its key and the other way round; every named file must be readable.
    fn check(&self) -> Result<(), ConfigError> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(invalid(
                if self.cert_file.is_some() {
                    "REDIS_TLS_KEY_FILE"
                } else {
                    "REDIS_TLS_CERT_FILE"
                },
                "",
                "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together",
            ));
        }
        for (var, file) in [
            ("REDIS_TLS_CA_FILE", &self.ca_file),
            ("REDIS_TLS_CERT_FILE", &self.cert_file),
            ("REDIS_TLS_KEY_FILE", &self.key_file),
        ] {
            if let Some(path) = file {
                std::fs::metadata(path).map_err(|e| {
                    invalid(
                        var,
                        &path.display().to_string(),
                        &format!("cannot be read: {e}"),
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// `REDIS_URL`: a `redis://` or `rediss://` URL; with `cluster`, one or more separated by commas,
/// all of the same scheme. The value is never echoed (it may hold a password).
fn redis_urls(text: &str, cluster: bool) -> Result<(), ConfigError> {
    let urls: Vec<&str> = text.split(',').map(str::trim).collect();
    if urls.len() > 1 && !cluster {
        return Err(invalid(
            "REDIS_URL",
            "<redacted>",
            "lists several URLs; set REDIS_CLUSTER=true for a Redis Cluster",
        ));
    }
    for url in &urls {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(invalid(
                "REDIS_URL",
                "<redacted>",
                "must start with redis:// or rediss://",
            ));
        }
        if let Err(e) = redis::IntoConnectionInfo::into_connection_info(*url) {
            return Err(invalid("REDIS_URL", "<redacted>", &e.to_string()));
        }
    }
    if urls.iter().any(|u| u.starts_with("rediss://"))
        != urls.iter().all(|u| u.starts_with("rediss://"))
    {
        return Err(invalid(
            "REDIS_URL",
            "<redacted>",
            "mixes redis:// and rediss:// nodes",
        ));
    }
    Ok(())
}
