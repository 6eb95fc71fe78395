//! Typed configuration read from the environment (docs/design.md §8).
//!
//! Every variable has a documented local default, so `firstcome` runs on a developer machine with
//! none set. A value that does not parse or is out of range is a startup error that names the
//! variable; secrets (the database password, the admin token, Kafka's properties) never appear
//! in `Debug` output or in errors.
//!
//! # Layout
//! - this file: the typed [`Settings`] the service runs with, and the checks they share;
//! - [`args`]: every variable as a clap argument (what `firstcome serve --help` lists);
//! - [`cli`]: reading them: the process environment (and flags), or pairs in tests; clap's
//!   errors turned into [`ConfigError`]s that name the variable;
//! - [`kafka_properties`]: `KAFKA_PROPERTIES`, extra librdkafka settings;
//! - [`reference`]: the README's configuration table, generated from [`args`].

pub mod args;
pub mod cli;
pub mod kafka_properties;
pub mod reference;

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

pub use kafka_properties::KafkaProperties;

use crate::consumer::ConsumerName;

/// `KAFKA_TOPIC` when unset; also the topic `firstcome asyncapi` documents.
pub const DEFAULT_TOPIC: &str = "campaign.participation.v1";

/// A configuration problem, reported at startup with the variable's name.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: String,
        value: String,
        reason: String,
    },
    /// `Settings::from_pairs` was given a variable that does not exist.
    #[error("{0} is not a configuration variable")]
    Unknown(String),
    /// Anything else clap refused (an unknown flag, say), in its words.
    #[error("{0}")]
    Other(String),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            _ => Err("expected `pretty` or `json`".into()),
        }
    }
}

/// A secret string: shown as `***` in logs and `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub kafka: KafkaSettings,
    pub relay: RelaySettings,
    pub consumers: ConsumerSettings,
    pub metrics: MetricsSettings,
    /// `ADMIN_TOKEN`; `None` means "generate one at startup and log it once".
    pub admin_token: Option<Secret>,
    pub log_format: LogFormat,
    /// `SHUTDOWN_TIMEOUT_MS`: how long SIGTERM waits for in-flight work before giving up.
    pub shutdown_timeout: Duration,
    /// `MIGRATE_ON_START`: `serve` applies pending migrations first (default true; turn it off
    /// when several instances start at once and run `firstcome migrate` as a release step).
    pub migrate_on_start: bool,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the OTLP/HTTP collector's base URL (spans are POSTed to
    /// `<endpoint>/v1/traces`); `None` exports nothing (`traceparent` is still propagated).
    pub otlp_endpoint: Option<url::Url>,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `HTTP_ADDR`; port 0 picks a free port (tests).
    pub addr: SocketAddr,
    /// `HTTP_BODY_LIMIT_BYTES`: larger request bodies get 413 PAYLOAD_TOO_LARGE.
    pub body_limit: usize,
    /// `HTTP_REQUEST_TIMEOUT_MS`: a request still running after this gets 503.
    pub request_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL` (contains the password, hence `Secret`).
    pub url: Secret,
    /// `DB_MAX_CONNECTIONS`
    pub max_connections: u32,
    /// `DB_ACQUIRE_TIMEOUT_MS`: waiting longer than this for a pooled connection answers
    /// 503 SERVICE_BUSY with Retry-After instead of queueing without bound.
    pub acquire_timeout: Duration,
    /// `DB_CONNECT_TIMEOUT_MS`: connecting at startup (and readiness checks).
    pub connect_timeout: Duration,
    /// `DB_STATEMENT_TIMEOUT_MS`: deadline of every statement, `BEGIN` and `COMMIT`, on the
    /// client (the call fails, the connection is not reused unless it answers at once) and on the
    /// server (`max_statement_time`/`max_execution_time`, `innodb_lock_wait_timeout`).
    pub statement_timeout: Duration,
    pub group_commit: GroupCommitSettings,
}

/// Group commit of the outbox path (docs/design.md §6 step 5).
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitSettings {
    /// `GROUP_COMMIT_MAX_BATCH`: most wins of one campaign committed in one transaction
    /// (1 = one transaction per win).
    pub max_batch: usize,
    /// `GROUP_COMMIT_WINDOW_MS`: while a campaign's wins queue behind its running transaction,
    /// how long the next batch may wait for more before it closes (0 = it closes as soon as the
    /// running one commits). A win that finds no queue never waits.
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `REDIS_URL`: one URL, or with `cluster` the seed nodes separated by commas.
    pub url: Secret,
    /// `REDIS_CLUSTER`: the URL lists nodes of a Redis Cluster.
    pub cluster: bool,
    /// `REDIS_TLS_*`: a private CA and a client certificate for `rediss://`.
    pub tls: RedisTls,
    /// `REDIS_KEY_PREFIX`: put in front of every key (tests use one per test). No braces: the
    /// hash tag `{c:<id>}` that follows must be the first one in the key.
    pub key_prefix: String,
    /// `REDIS_TIMEOUT_MS`: a Redis call slower than this fails as DEPENDENCY_UNAVAILABLE.
    pub timeout: Duration,
    /// `SOLD_OUT_MEMO_MS`: how long an instance answers SOLD_OUT for a campaign it saw with no
    /// stock, without asking Redis (0 = always ask). Stock released later is seen this late.
    pub sold_out_memo: Duration,
    /// `RESERVATION_TIMEOUT_MS`: a gate reservation still open this long after it was made was
    /// left by a crashed instance; the reconciler gives it back (unless MySQL has the win).
    pub reservation_timeout: Duration,
}

/// PEM files for Redis over TLS; all optional (`rediss://` alone trusts the system's roots).
#[derive(Debug, Clone, Default)]
pub struct RedisTls {
    /// `REDIS_TLS_CA_FILE`
    pub ca_file: Option<PathBuf>,
    /// `REDIS_TLS_CERT_FILE` (with `key_file`): a client certificate, for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// `REDIS_TLS_KEY_FILE`
    pub key_file: Option<PathBuf>,
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

#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `KAFKA_BOOTSTRAP_SERVERS`; `None` starts the embedded broker.
    pub bootstrap_servers: Option<String>,
    /// `KAFKA_PROPERTIES`: extra librdkafka settings given to every client the service creates.
    pub properties: KafkaProperties,
    /// `KAFKA_TOPIC`; the relay's dead-letter topic is this plus `.dlq`, a consumer's this plus
    /// `.<consumer>.dlq`.
    pub topic: String,
    /// `KAFKA_PARTITIONS`: partitions of the topics created on the embedded broker.
    pub partitions: i32,
    /// `KAFKA_MESSAGE_TIMEOUT_MS`: delivery deadline of one produce on the sync path and to the
    /// dead-letter topic. The relay's own produces have none: a message that timed out while a
    /// younger one of its key got through would break per-key order, so the relay waits for
    /// Kafka instead (bounded by `RELAY_MAX_IN_FLIGHT`) and reports the outage.
    pub message_timeout: Duration,
    /// `KAFKA_MESSAGE_MAX_BYTES`: largest message the main producer sends; larger rows are
    /// dead-lettered (the broker's own limit must be at least this).
    pub message_max_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// `RELAY_ENABLED`: `false` runs the API only (outbox rows stay PENDING).
    pub enabled: bool,
    /// `RELAY_WORKERS`
    pub workers: usize,
    /// `RELAY_CHANNEL_CAPACITY`: bound of each worker's queue.
    pub channel_capacity: usize,
    /// `RELAY_BATCH_SIZE`: rows claimed per claim query.
    pub batch_size: u32,
    /// `RELAY_MAX_ATTEMPTS`: failed produces before a row goes to the dead-letter topic.
    pub max_attempts: u32,
    /// `RELAY_BACKOFF_BASE_MS`
    pub backoff_base: Duration,
    /// `RELAY_BACKOFF_CAP_MS`
    pub backoff_cap: Duration,
    /// `RELAY_LEASE_MS`: how long claimed rows (and a shard's leadership) belong to one relay.
    pub lease: Duration,
    /// `RELAY_POLL_INTERVAL_MS`: polling for rows from other instances and retries coming due.
    pub poll_interval: Duration,
    /// `RELAY_SHARDS`: keys are split into this many shards, each with one active relay.
    pub shards: u32,
    /// `OUTBOX_RETENTION_HOURS`: PUBLISHED rows older than this are deleted.
    pub retention: Duration,
    /// `OUTBOX_CLEANUP_BATCH`: rows deleted per cleanup statement.
    pub cleanup_batch: u32,
    /// `RELAY_MAX_IN_FLIGHT`: rows one worker may have sent and not yet settled. Bounds memory
    /// through a Kafka outage (the relay then stops claiming until Kafka answers again).
    pub max_in_flight: usize,
    /// `RELAY_DB_MAX_CONNECTIONS`: the relay's own MySQL pool. Apart from the API's, so a hot
    /// campaign (every API connection waiting on its row lock) cannot keep the relay from
    /// claiming and marking.
    pub db_max_connections: u32,
    /// `RELAY_MAX_RETRY_AGE` (`24h`, `90m`, `3600s`, `2d`, or seconds): a row older than this
    /// that still fails goes to the dead-letter topic, whatever the error.
    pub max_retry_age: Duration,
}

/// The group protocol of the consumers' Kafka groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// The classic rebalance protocol (every Kafka version).
    Classic,
    /// KIP-848 (`group.protocol=consumer`, Kafka 4.0+): members join without a group-wide pause.
    Consumer,
}

impl FromStr for GroupProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classic" => Ok(Self::Classic),
            "consumer" => Ok(Self::Consumer),
            _ => Err("expected `classic` or `consumer`".into()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// `CONSUMERS`: comma list of `stats`, `rewards` run inside `serve` (default both; empty:
    /// none). `firstcome consume` runs the same list without the API.
    pub enabled: Vec<ConsumerName>,
    /// `CONSUMER_BATCH_SIZE`: most messages applied in one transaction (only what is already
    /// waiting is batched; a lone message is applied at once).
    pub batch_size: usize,
    /// `CONSUMER_COMMIT_INTERVAL_MS`: offsets of applied messages are committed to Kafka at most
    /// this often (0: after every batch), and always on a rebalance and at shutdown. A crash
    /// redelivers at most this much, which the inbox then skips.
    pub commit_interval: Duration,
    /// `CONSUMER_RETRY_BACKOFF_BASE_MS` / `CONSUMER_RETRY_BACKOFF_CAP_MS`: a batch whose
    /// transaction fails is retried after these (exponential, jittered), forever: a partition
    /// waits for its database rather than skipping a message.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// `CONSUMER_GROUP_PROTOCOL` (`classic` | `consumer`); unset: `consumer` with the embedded
    /// broker, `classic` with an external Kafka (KIP-848 needs Kafka 4.0+).
    pub group_protocol: Option<GroupProtocol>,
    /// `CONSUMER_FETCH_WAIT_MS`: librdkafka's `fetch.wait.max.ms`. A real broker answers a fetch
    /// as soon as data arrives, so this only paces idle polling; the embedded broker always
    /// waits it out, so it adds up to this much to every event's latency. Unset: 10 ms with the
    /// embedded broker, 100 ms with an external Kafka.
    pub fetch_wait: Option<Duration>,
    /// `CONSUMER_DB_MAX_CONNECTIONS`: the consumers' own MySQL pool.
    pub db_max_connections: u32,
    /// `CONSUMER_INBOX_RETENTION_HOURS`: inbox rows older than this are deleted; a redelivery
    /// older than it would be applied again, so keep it above Kafka's retention of the topic.
    pub inbox_retention: Duration,
}

#[derive(Debug, Clone)]
pub struct MetricsSettings {
    /// `METRICS_OUTBOX_REFRESH_MS`: how often the outbox gauges of `/metrics` are read from MySQL
    /// (one indexed query; scrapes never query).
    pub outbox_refresh: Duration,
}

/// The error for `var`, whose value is `value` (write `<redacted>` for a secret).
pub(crate) fn invalid(var: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        var: var.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
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

/// `KAFKA_TOPIC`: what Kafka accepts as a topic name.
fn check_topic(topic: &str) -> Result<(), ConfigError> {
    let ok = !topic.is_empty()
        && topic.len() <= 240
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "KAFKA_TOPIC",
            topic,
            "must be 1-240 characters of [a-zA-Z0-9._-]",
        ))
    }
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT`: an `http` or `https` URL with a host and no credentials
/// (those go in `OTEL_EXPORTER_OTLP_HEADERS`, which is never logged), query or fragment.
fn otlp_endpoint(text: Option<&str>) -> Result<Option<url::Url>, ConfigError> {
    const VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let url = url::Url::parse(text.trim()).map_err(|e| {
        invalid(
            VAR,
            text,
            &format!("not a URL ({e}); e.g. http://localhost:4318"),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            VAR,
            "<redacted>",
            "must not contain credentials; put them in OTEL_EXPORTER_OTLP_HEADERS",
        ));
    }
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(invalid(
            VAR,
            text,
            "must be an http:// or https:// URL with a host (OTLP/HTTP, e.g. http://localhost:4318)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(VAR, text, "must not have a query or a fragment"));
    }
    Ok(Some(url))
}

impl Settings {
    /// Reads the process environment (the flags of the command line are not looked at; the
    /// binary reads both through [`cli`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        cli::from_env()
    }

    /// Reads `pairs` of variable and value, and nothing from the process environment (tests).
    /// An empty value counts as unset, except for `CONSUMERS` (empty: none).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Self, ConfigError> {
        cli::from_pairs(pairs)
    }

    /// The checks between values.
    fn check(&self) -> Result<(), ConfigError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_environment() {
        let s = Settings::from_pairs(&[]).expect("defaults are valid");
        assert_eq!(s.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.kafka.topic, "campaign.participation.v1");
        assert!(s.admin_token.is_none());
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let err = Settings::from_pairs(&[("RELAY_WORKERS", "zero")]).unwrap_err();
        assert!(err.to_string().starts_with("RELAY_WORKERS="), "{err}");
        let err = Settings::from_pairs(&[("RELAY_WORKERS", "0")]).unwrap_err();
        assert!(err.to_string().contains("1..=256"), "{err}");
        let err = Settings::from_pairs(&[("REDIS_KEY_PREFIX", "a{b")]).unwrap_err();
        assert!(err.to_string().starts_with("REDIS_KEY_PREFIX="), "{err}");
        let err = Settings::from_pairs(&[("LOG_FORMAT", "xml")]).unwrap_err();
        assert!(err.to_string().starts_with("LOG_FORMAT="), "{err}");
        let err = Settings::from_pairs(&[("RELAY_MAX_RETRY_AGE", "1w")]).unwrap_err();
        assert!(err.to_string().starts_with("RELAY_MAX_RETRY_AGE="), "{err}");
        let err = Settings::from_pairs(&[("RELAY_MAX_RETRY_AGE", "0h")]).unwrap_err();
        assert!(err.to_string().starts_with("RELAY_MAX_RETRY_AGE="), "{err}");
        let s = Settings::from_pairs(&[("RELAY_MAX_RETRY_AGE", "90m")]).expect("valid");
        assert_eq!(s.relay.max_retry_age, Duration::from_secs(5_400));
        let s = Settings::from_pairs(&[("RELAY_MAX_RETRY_AGE", "120")]).expect("valid");
        assert_eq!(s.relay.max_retry_age, Duration::from_secs(120));
    }

    #[test]
    fn consumers_are_a_feature_flag_each() {
        let all = Settings::from_pairs(&[]).expect("valid");
        assert_eq!(all.consumers.enabled, ConsumerName::ALL.to_vec());
        let none = Settings::from_pairs(&[("CONSUMERS", "")]).expect("valid");
        assert!(none.consumers.enabled.is_empty());
        let one = Settings::from_pairs(&[("CONSUMERS", " rewards ,")]).expect("valid");
        assert_eq!(one.consumers.enabled, vec![ConsumerName::Rewards]);
        let err = Settings::from_pairs(&[("CONSUMERS", "stats,billing")]).unwrap_err();
        assert!(err.to_string().starts_with("CONSUMERS="), "{err}");
        assert!(err.to_string().contains("billing"), "{err}");
        let err = Settings::from_pairs(&[("CONSUMER_GROUP_PROTOCOL", "eager")]).unwrap_err();
        assert!(
            err.to_string().starts_with("CONSUMER_GROUP_PROTOCOL="),
            "{err}"
        );
    }

    #[test]
    fn the_otlp_endpoint_is_an_http_url() {
        assert!(Settings::from_pairs(&[])
            .expect("valid")
            .otlp_endpoint
            .is_none());
        let s = Settings::from_pairs(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318")])
            .expect("valid");
        assert_eq!(
            s.otlp_endpoint.map(|u| u.to_string()).as_deref(),
            Some("http://otel:4318/")
        );
        for bad in [
            "otel:4318",
            "localhost",
            "grpc://otel:4317",
            "http://",
            "http://otel:4318/?x=1",
        ] {
            let err = Settings::from_pairs(&[("OTEL_EXPORTER_OTLP_ENDPOINT", bad)]).unwrap_err();
            assert!(
                err.to_string().starts_with("OTEL_EXPORTER_OTLP_ENDPOINT="),
                "{bad}: {err}"
            );
        }
        let err =
            Settings::from_pairs(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://u:hunter2@otel")])
                .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = Settings::from_pairs(&[
            ("DATABASE_URL", "mysql://u:hunter2hunter2@h/db"),
            ("ADMIN_TOKEN", "0123456789abcdef-secret"),
        ])
        .expect("valid");
        let dump = format!("{s:?}");
        assert!(!dump.contains("hunter2"), "{dump}");
        assert!(!dump.contains("secret"), "{dump}");
        let err =
            Settings::from_pairs(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }
}
