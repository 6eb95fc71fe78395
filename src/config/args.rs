//! Every setting of `firstcome serve` (and `consume`, `migrate`) as a clap argument read from its
//! environment variable (docs/design.md §8): `firstcome serve --help` lists each one with its default,
//! its range and its variable, and the README's configuration table is generated from the same
//! definitions (`config::reference`). Each also works as a flag (`--relay-workers 8`), which
//! wins over the environment.
//!
//! The values here are what was written; [`ServeArgs::into_settings`] turns them into the typed
//! [`Settings`] the service runs with, and checks what one argument cannot check alone.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{builder::BoolishValueParser, ArgAction, Args};

use super::{
    invalid, kafka_properties::KafkaProperties, ConfigError, ConsumerSettings, DatabaseSettings,
    GroupCommitSettings, GroupProtocol, HttpSettings, KafkaSettings, LogFormat, MetricsSettings,
    RedisSettings, RedisTls, RelaySettings, Secret, Settings, DEFAULT_TOPIC,
};
use crate::consumer::ConsumerName;

/// All settings; each group is one heading of `--help`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten, next_help_heading = "HTTP")]
    pub http: HttpArgs,
    #[command(flatten, next_help_heading = "MySQL")]
    pub database: DatabaseArgs,
    #[command(flatten, next_help_heading = "Redis")]
    pub redis: RedisArgs,
    #[command(flatten, next_help_heading = "Kafka")]
    pub kafka: KafkaArgs,
    #[command(flatten, next_help_heading = "Outbox relay")]
    pub relay: RelayArgs,
    #[command(flatten, next_help_heading = "Consumers")]
    pub consumers: ConsumerArgs,
    #[command(flatten, next_help_heading = "Operations")]
    pub ops: OpsArgs,
}

#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address the HTTP API listens on (port 0 picks a free port)
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Largest request body; larger ones get 413 PAYLOAD_TOO_LARGE (256–16777216)
    #[arg(long, env = "HTTP_BODY_LIMIT_BYTES", default_value_t = 16_384,
          value_parser = clap::value_parser!(u32).range(256..=16_777_216))]
    pub http_body_limit_bytes: u32,
    /// A request still running after this gets 503 (100–600000)
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub http_request_timeout_ms: u64,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// MySQL 8 / MariaDB 10.6+; TLS with `?ssl-mode=REQUIRED|VERIFY_CA|VERIFY_IDENTITY&ssl-ca=<pem>`
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "mysql://firstcome:firstcome@127.0.0.1:3306/firstcome"
    )]
    pub database_url: String,
    /// The API's pool (1–10000)
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub db_max_connections: u32,
    /// Waiting longer for a pooled connection answers 503 SERVICE_BUSY (1–600000)
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub db_acquire_timeout_ms: u64,
    /// Connecting, at startup and after a connection was dropped (100–600000)
    #[arg(long, env = "DB_CONNECT_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub db_connect_timeout_ms: u64,
    /// Deadline of every statement, BEGIN and COMMIT, on the client and the server (100–600000)
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub db_statement_timeout_ms: u64,
    /// Most wins of one campaign per transaction; 1 = one transaction per win (1–2000)
    #[arg(long, env = "GROUP_COMMIT_MAX_BATCH", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=2_000))]
    pub group_commit_max_batch: u32,
    /// How long a busy campaign's next batch may wait for more wins (0–1000)
    #[arg(long, env = "GROUP_COMMIT_WINDOW_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1_000))]
    pub group_commit_window_ms: u64,
    /// `serve` applies pending migrations first (turn off when several instances start at once)
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// The gate's Redis: `redis://` or `rediss://` (TLS); with REDIS_CLUSTER, seed nodes separated by commas
    #[arg(
        long,
        env = "REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// REDIS_URL is a Redis Cluster (its nodes follow MOVED/ASK; a campaign's keys share one slot)
    #[arg(long, env = "REDIS_CLUSTER", default_value_t = false, action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub redis_cluster: bool,
    /// PEM file of the CA that signed the Redis server's certificate (unset: the system's roots)
    #[arg(long, env = "REDIS_TLS_CA_FILE")]
    pub redis_tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, for a Redis that requires one (with REDIS_TLS_KEY_FILE)
    #[arg(long, env = "REDIS_TLS_CERT_FILE")]
    pub redis_tls_cert_file: Option<PathBuf>,
    /// PEM private key of REDIS_TLS_CERT_FILE
    #[arg(long, env = "REDIS_TLS_KEY_FILE")]
    pub redis_tls_key_file: Option<PathBuf>,
    /// Put in front of every key (no braces)
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "firstcome:")]
    pub redis_key_prefix: String,
    /// Deadline of every Redis call (10–60000)
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub redis_timeout_ms: u64,
    /// After seeing a campaign sold out, answer SOLD_OUT without Redis this long; 0 = off (0–10000)
    #[arg(long, env = "SOLD_OUT_MEMO_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub sold_out_memo_ms: u64,
    /// A reservation open this long was left by a crashed instance and is given back (1000–86400000)
    #[arg(long, env = "RESERVATION_TIMEOUT_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1_000..=86_400_000))]
    pub reservation_timeout_ms: u64,
}

#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka brokers; unset starts the embedded broker (librdkafka's mock cluster, for trying the service)
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub kafka_bootstrap_servers: Option<String>,
    /// Extra librdkafka settings for every client, `key=value` pairs separated by commas (`\,` for a comma in a value), e.g. TLS/SASL
    #[arg(long, env = "KAFKA_PROPERTIES", hide_env_values = true)]
    pub kafka_properties: Option<String>,
    /// The events' topic; dead letters go to `<topic>.dlq` and `<topic>.<consumer>.dlq`
    #[arg(long, env = "KAFKA_TOPIC", default_value = DEFAULT_TOPIC)]
    pub kafka_topic: String,
    /// Partitions of the topics created on the embedded broker (1–1024)
    #[arg(long, env = "KAFKA_PARTITIONS", default_value_t = 8,
          value_parser = clap::value_parser!(i32).range(1..=1_024))]
    pub kafka_partitions: i32,
    /// Delivery deadline of the sync path and the DLQ; the relay purges a producer whose oldest row waited this long (1000–3600000)
    #[arg(long, env = "KAFKA_MESSAGE_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1_000..=3_600_000))]
    pub kafka_message_timeout_ms: u64,
    /// Largest message the relay sends; larger rows are dead-lettered (1000–100000000)
    #[arg(long, env = "KAFKA_MESSAGE_MAX_BYTES", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u32).range(1_000..=100_000_000))]
    pub kafka_message_max_bytes: u32,
}

#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// Run the outbox relay (false: rows stay PENDING)
    #[arg(long, env = "RELAY_ENABLED", default_value_t = true, action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub relay_enabled: bool,
    /// Publishing workers; a key always goes to the same one (1–256)
    #[arg(long, env = "RELAY_WORKERS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub relay_workers: u32,
    /// Queue capacity per worker (1–1000000)
    #[arg(long, env = "RELAY_CHANNEL_CAPACITY", default_value_t = 4_096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub relay_channel_capacity: u32,
    /// Rows per claim (1–100000)
    #[arg(long, env = "RELAY_BATCH_SIZE", default_value_t = 2_000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub relay_batch_size: u32,
    /// Attempts a broker's refusals may use before the DLQ; an outage uses none (1–1000)
    #[arg(long, env = "RELAY_MAX_ATTEMPTS", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub relay_max_attempts: u32,
    /// First retry delay, doubled per attempt with jitter (1–3600000)
    #[arg(long, env = "RELAY_BACKOFF_BASE_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub relay_backoff_base_ms: u64,
    /// Longest retry delay (1–86400000, at least RELAY_BACKOFF_BASE_MS)
    #[arg(long, env = "RELAY_BACKOFF_CAP_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub relay_backoff_cap_ms: u64,
    /// A row older than this that still fails goes to the DLQ: `90m`, `24h`, `2d` or seconds (1s–365d)
    #[arg(long, env = "RELAY_MAX_RETRY_AGE", default_value = "24h", value_parser = parse_age)]
    pub relay_max_retry_age: Duration,
    /// Rows one worker may have sent and not settled; bounds memory through an outage (1–1000000)
    #[arg(long, env = "RELAY_MAX_IN_FLIGHT", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub relay_max_in_flight: u32,
    /// The relay's own MySQL pool (2–1000)
    #[arg(long, env = "RELAY_DB_MAX_CONNECTIONS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(2..=1_000))]
    pub relay_db_max_connections: u32,
    /// Shard and row leases, renewed every third (100–3600000)
    #[arg(long, env = "RELAY_LEASE_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub relay_lease_ms: u64,
    /// Polling for other instances' rows and retries coming due (10–60000)
    #[arg(long, env = "RELAY_POLL_INTERVAL_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub relay_poll_interval_ms: u64,
    /// Keys are split into this many shards, each led by one instance; the same on every instance (1–1024)
    #[arg(long, env = "RELAY_SHARDS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=1_024))]
    pub relay_shards: u32,
    /// PUBLISHED rows are deleted after this; DEAD rows stay (0–100000)
    #[arg(long, env = "OUTBOX_RETENTION_HOURS", default_value_t = 72,
          value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub outbox_retention_hours: u64,
    /// Rows deleted per cleanup statement (1–100000)
    #[arg(long, env = "OUTBOX_CLEANUP_BATCH", default_value_t = 1_000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub outbox_cleanup_batch: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ConsumerArgs {
    /// Consumers to run (`stats`, `rewards`), comma-separated; empty = none
    #[arg(long, env = "CONSUMERS", default_value = "stats,rewards", value_parser = parse_consumers)]
    pub consumers: ConsumerList,
    /// Most messages applied in one transaction (1–50000)
    #[arg(long, env = "CONSUMER_BATCH_SIZE", default_value_t = 1_000,
          value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub consumer_batch_size: u32,
    /// Offsets of applied messages are committed this often; 0 = every batch (0–86400000)
    #[arg(long, env = "CONSUMER_COMMIT_INTERVAL_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub consumer_commit_interval_ms: u64,
    /// First retry delay of a failed transaction; retried forever (1–3600000)
    #[arg(long, env = "CONSUMER_RETRY_BACKOFF_BASE_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub consumer_retry_backoff_base_ms: u64,
    /// Longest retry delay (1–86400000, at least CONSUMER_RETRY_BACKOFF_BASE_MS)
    #[arg(long, env = "CONSUMER_RETRY_BACKOFF_CAP_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub consumer_retry_backoff_cap_ms: u64,
    /// `consumer` (KIP-848, Kafka 4.0+) or `classic`; unset: `consumer` with the embedded broker, `classic` otherwise
    #[arg(long, env = "CONSUMER_GROUP_PROTOCOL", value_parser = parse_group_protocol)]
    pub consumer_group_protocol: Option<GroupProtocol>,
    /// librdkafka's fetch.wait.max.ms; unset: 10 with the embedded broker, 100 otherwise (1–10000)
    #[arg(long, env = "CONSUMER_FETCH_WAIT_MS",
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub consumer_fetch_wait_ms: Option<u64>,
    /// The consumers' own MySQL pool (2–1000)
    #[arg(long, env = "CONSUMER_DB_MAX_CONNECTIONS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(2..=1_000))]
    pub consumer_db_max_connections: u32,
    /// Inbox rows older than this are deleted; keep it above the topic's retention (1–100000)
    #[arg(long, env = "CONSUMER_INBOX_RETENTION_HOURS", default_value_t = 168,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub consumer_inbox_retention_hours: u64,
}

#[derive(Debug, Clone, Args)]
pub struct OpsArgs {
    /// Bearer token of the admin API, 16+ characters; unset: generated and logged once
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Log filter (tracing's EnvFilter); unset: `info`, with sqlx and sea_orm at `warn`
    #[arg(long, env = "RUST_LOG")]
    pub rust_log: Option<String>,
    /// `pretty` for people, `json` for log shippers
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty", value_parser = ["pretty", "json"])]
    pub log_format: String,
    /// OTLP/HTTP collector base URL for spans (e.g. http://localhost:4318); unset: no export. OTEL_EXPORTER_OTLP_HEADERS and OTEL_BSP_* are honoured
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// How often the outbox gauges of /metrics are read from MySQL (100–600000)
    #[arg(long, env = "METRICS_OUTBOX_REFRESH_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub metrics_outbox_refresh_ms: u64,
    /// How long SIGTERM waits for in-flight work before giving up (100–600000)
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub shutdown_timeout_ms: u64,
}

/// `CONSUMERS`, parsed: the names in order, without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerList(pub Vec<ConsumerName>);

fn parse_consumers(text: &str) -> Result<ConsumerList, String> {
    let mut names = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let name: ConsumerName = part.parse()?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(ConsumerList(names))
}

fn parse_group_protocol(text: &str) -> Result<GroupProtocol, String> {
    text.trim().parse()
}

/// A duration written as a number with a unit (`90s`, `30m`, `24h`, `7d`) or as plain seconds;
/// between one second and a year.
fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err("expected a number with s, m, h or d (e.g. 24h)".into()),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|s| (1..=365 * 86_400).contains(s))
        .map(Duration::from_secs)
        .ok_or_else(|| "must be between 1s and 365d (e.g. 24h)".into())
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

impl ServeArgs {
    /// The typed settings, after the checks that involve more than one value or the content of
    /// a URL; a failure names the variable.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let Self {
            http,
            database: db,
            redis,
            kafka,
            relay,
            consumers: c,
            ops,
        } = self;
        if !db.database_url.starts_with("mysql://") {
            return Err(invalid(
                "DATABASE_URL",
                "<redacted>",
                "must start with mysql://",
            ));
        }
        super::redis_urls(&redis.redis_url, redis.redis_cluster)?;
        if redis.redis_key_prefix.contains(['{', '}']) {
            return Err(invalid(
                "REDIS_KEY_PREFIX",
                &redis.redis_key_prefix,
                "must not contain { or }",
            ));
        }
        let tls = RedisTls {
            ca_file: redis.redis_tls_ca_file,
            cert_file: redis.redis_tls_cert_file,
            key_file: redis.redis_tls_key_file,
        };
        tls.check()?;
        let admin_token = ops.admin_token.filter(|t| !t.is_empty()).map(Secret::new);
        if admin_token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            return Err(invalid(
                "ADMIN_TOKEN",
                "<redacted>",
                "must be at least 16 characters",
            ));
        }
        super::check_topic(&kafka.kafka_topic)?;
        if let Some(filter) = &ops.rust_log {
            tracing_subscriber::EnvFilter::try_new(filter)
                .map_err(|e| invalid("RUST_LOG", filter, &e.to_string()))?;
        }
        let settings = Settings {
            http: HttpSettings {
                addr: http.http_addr,
                body_limit: http.http_body_limit_bytes as usize,
                request_timeout: ms(http.http_request_timeout_ms),
            },
            database: DatabaseSettings {
                url: Secret::new(db.database_url),
                max_connections: db.db_max_connections,
                acquire_timeout: ms(db.db_acquire_timeout_ms),
                connect_timeout: ms(db.db_connect_timeout_ms),
                statement_timeout: ms(db.db_statement_timeout_ms),
                group_commit: GroupCommitSettings {
                    max_batch: db.group_commit_max_batch as usize,
                    window: ms(db.group_commit_window_ms),
                },
            },
            redis: RedisSettings {
                url: Secret::new(redis.redis_url),
                cluster: redis.redis_cluster,
                tls,
                key_prefix: redis.redis_key_prefix,
                timeout: ms(redis.redis_timeout_ms),
                sold_out_memo: ms(redis.sold_out_memo_ms),
                reservation_timeout: ms(redis.reservation_timeout_ms),
            },
            kafka: KafkaSettings {
                bootstrap_servers: kafka
                    .kafka_bootstrap_servers
                    .filter(|s| !s.trim().is_empty()),
                properties: KafkaProperties::parse(
                    kafka.kafka_properties.as_deref().unwrap_or(""),
                )?,
                topic: kafka.kafka_topic,
                partitions: kafka.kafka_partitions,
                message_timeout: ms(kafka.kafka_message_timeout_ms),
                message_max_bytes: kafka.kafka_message_max_bytes as usize,
            },
            relay: RelaySettings {
                enabled: relay.relay_enabled,
                workers: relay.relay_workers as usize,
                channel_capacity: relay.relay_channel_capacity as usize,
                batch_size: relay.relay_batch_size,
                max_attempts: relay.relay_max_attempts,
                backoff_base: ms(relay.relay_backoff_base_ms),
                backoff_cap: ms(relay.relay_backoff_cap_ms),
                lease: ms(relay.relay_lease_ms),
                poll_interval: ms(relay.relay_poll_interval_ms),
                shards: relay.relay_shards,
                retention: Duration::from_secs(3_600 * relay.outbox_retention_hours),
                cleanup_batch: relay.outbox_cleanup_batch,
                max_in_flight: relay.relay_max_in_flight as usize,
                db_max_connections: relay.relay_db_max_connections,
                max_retry_age: relay.relay_max_retry_age,
            },
            consumers: ConsumerSettings {
                enabled: c.consumers.0,
                batch_size: c.consumer_batch_size as usize,
                commit_interval: ms(c.consumer_commit_interval_ms),
                backoff_base: ms(c.consumer_retry_backoff_base_ms),
                backoff_cap: ms(c.consumer_retry_backoff_cap_ms),
                group_protocol: c.consumer_group_protocol,
                fetch_wait: c.consumer_fetch_wait_ms.map(ms),
                db_max_connections: c.consumer_db_max_connections,
                inbox_retention: Duration::from_secs(3_600 * c.consumer_inbox_retention_hours),
            },
            metrics: MetricsSettings {
                outbox_refresh: ms(ops.metrics_outbox_refresh_ms),
            },
            admin_token,
            log_format: ops
                .log_format
                .parse::<LogFormat>()
                .map_err(|reason| invalid("LOG_FORMAT", &ops.log_format, &reason))?,
            shutdown_timeout: ms(ops.shutdown_timeout_ms),
            migrate_on_start: db.migrate_on_start,
            otlp_endpoint: super::otlp_endpoint(ops.otel_exporter_otlp_endpoint.as_deref())?,
        };
        settings.check()?;
        Ok(settings)
    }
}
