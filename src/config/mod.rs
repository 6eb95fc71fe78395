//! Typed configuration read from the environment (docs/design.md §8).
//!
//! Every variable has a documented local default, so `firstcome` runs on a developer machine with
//! none set. A value that does not parse or is out of range is a startup error that names the
//! variable; secrets (the database password, the admin token, `JWT_SECRET`, Kafka's properties)
//! never appear in `Debug` output or in errors.
//!
//! Each variable is declared once, as a field of [`Settings`] or of one of its groups: the doc
//! comment is its `--help` text (and docs/configuration.md's), the `#[arg(...)]` its variable and
//! flag (`id` is the variable, `env` reads it, `long` is the flag), its default and its typed value
//! parser (ranges included, see [`values`]). The field's type is what the service runs with.
//! A `//` comment under the help says more for the reader of the code.
//!
//! # Layout
//! - this file: [`Settings`], the `Operations` variables, and [`ConfigError`];
//! - one file per `--help` heading: [`http`], [`database`], [`redis`], [`kafka`], [`relay`],
//!   [`consumers`], [`user_auth`], [`waiting_room`], [`rate_limit`] (with [`cidr`]), [`live`],
//!   [`cors`];
//! - [`values`]: the value types ([`Secret`], [`LogFormat`], [`GroupProtocol`]) and parsers;
//! - [`check`]: the checks that involve more than one variable;
//! - [`args`]: [`args::ServeArgs`], what `serve`, `consume` and `migrate` were given, checked
//!   into [`Settings`]; [`token_args`]: what `firstcome token` was given;
//! - [`cli`]: reading them: the process environment (and flags), or pairs in tests; clap's
//!   errors turned into [`ConfigError`]s that name the variable;
//! - [`kafka_properties`]: `KAFKA_PROPERTIES`, extra librdkafka settings;
//! - [`reference`]: docs/configuration.md's table, generated from the declarations.

pub mod admin_tokens;
pub mod args;
pub mod bot_check;
mod check;
pub mod cidr;
pub mod cli;
pub mod consumers;
pub mod cors;
pub mod database;
pub mod http;
pub mod jwt_shape;
pub mod kafka;
pub mod kafka_properties;
pub mod live;
pub mod rate_limit;
pub mod redis;
pub mod reference;
pub mod relay;
pub mod token_args;
pub mod user_auth;
pub mod values;
pub mod waiting_room;

use std::time::Duration;

use clap::{builder::BoolishValueParser, ArgAction, Args};

pub use admin_tokens::NamedToken;
pub use bot_check::{BotCheckMode, BotCheckSettings};
pub use consumers::ConsumerSettings;
pub use cors::CorsSettings;
pub use database::{DatabaseSettings, GroupCommitSettings};
pub use http::HttpSettings;
pub use kafka::KafkaSettings;
pub use kafka_properties::KafkaProperties;
pub use live::LiveSettings;
pub use rate_limit::RateLimitSettings;
pub use redis::{RedisSettings, RedisTls};
pub use relay::RelaySettings;
pub use user_auth::{JwtAlgorithm, UserAuthMode, UserAuthSettings};
pub use values::{GroupProtocol, LogFormat, Secret};
pub use waiting_room::WaitingRoomSettings;

use admin_tokens::{admin_token, admin_tokens};
use values::{log_filter, log_format, millis, number, otlp_endpoint};

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

/// Every setting; the fields are in `--help`'s order, each group under its heading. Values read
/// by clap are only checked one by one: [`args::ServeArgs::into_settings`] (and [`cli`]) add the
/// checks between them.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten, next_help_heading = "HTTP")]
    pub http: HttpSettings,
    #[command(flatten, next_help_heading = "MySQL")]
    pub database: DatabaseSettings,
    /// `serve` applies pending migrations first (turn off when several instances start at once)
    // ...and run `firstcome migrate` as a release step.
    #[arg(id = "MIGRATE_ON_START", long = "migrate-on-start", env, default_value_t = true,
          action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub migrate_on_start: bool,
    #[command(flatten, next_help_heading = "Redis")]
    pub redis: RedisSettings,
    #[command(flatten, next_help_heading = "Kafka")]
    pub kafka: KafkaSettings,
    #[command(flatten, next_help_heading = "Outbox relay")]
    pub relay: RelaySettings,
    #[command(flatten, next_help_heading = "Consumers")]
    pub consumers: ConsumerSettings,
    #[command(flatten, next_help_heading = "User identity")]
    pub user_auth: UserAuthSettings,
    #[command(flatten, next_help_heading = "Waiting room")]
    pub waiting_room: WaitingRoomSettings,
    #[command(flatten, next_help_heading = "Bot check")]
    pub bot_check: BotCheckSettings,
    #[command(flatten, next_help_heading = "Rate limits")]
    pub rate_limits: RateLimitSettings,
    #[command(flatten, next_help_heading = "Live view")]
    pub live: LiveSettings,
    #[command(flatten, next_help_heading = "Browsers")]
    pub cors: CorsSettings,
    /// Bearer token of the admin API: 24+ characters, 12+ distinct, no repetition, straight run, documentation example, JWT shape or guessable words (e.g. `openssl rand -hex 32`); unset: generated and printed once to stderr
    // `None` means "generate one at startup and log it once".
    #[arg(id = "ADMIN_TOKEN", long = "admin-token", env, hide_env_values = true,
          help_heading = "Operations", default_value = "", hide_default_value = true,
          value_parser = admin_token)]
    pub admin_token: std::option::Option<Secret>,
    /// Named admin tokens, `name:token,…` (names [a-z0-9_.-], tokens as ADMIN_TOKEN's); each call records the name of the token it came with. ADMIN_TOKEN, if set too, is one more, named `admin`
    #[arg(id = "ADMIN_TOKENS", long = "admin-tokens", env, hide_env_values = true,
          help_heading = "Operations", default_value = "", hide_default_value = true,
          value_parser = admin_tokens)]
    pub admin_tokens: std::vec::Vec<NamedToken>,
    /// Log filter (tracing's EnvFilter); unset: `info`, with sqlx and sea_orm at `warn`
    // Only checked here: `telemetry` reads the filter from the environment itself.
    #[arg(id = "RUST_LOG", long = "rust-log", env, help_heading = "Operations",
          value_parser = log_filter)]
    pub rust_log: Option<String>,
    /// `pretty` for people, `json` for log shippers
    #[arg(id = "LOG_FORMAT", long = "log-format", env, help_heading = "Operations",
          default_value = "pretty", value_parser = log_format())]
    pub log_format: LogFormat,
    /// OTLP/HTTP collector base URL for spans (e.g. http://localhost:4318); unset: no export. OTEL_EXPORTER_OTLP_HEADERS and OTEL_BSP_* are honoured
    // Spans are POSTed to `<endpoint>/v1/traces`; `None` exports nothing (`traceparent` is still
    // propagated).
    #[arg(id = "OTEL_EXPORTER_OTLP_ENDPOINT", long = "otel-exporter-otlp-endpoint", env,
          help_heading = "Operations", default_value = "", hide_default_value = true,
          value_parser = otlp_endpoint)]
    pub otlp_endpoint: std::option::Option<url::Url>,
    #[command(flatten, next_help_heading = "Operations")]
    pub admin_door: AdminDoorSettings,
    #[command(flatten, next_help_heading = "Operations")]
    pub metrics: MetricsSettings,
    /// How long SIGTERM waits for in-flight work before giving up (100–600000)
    #[arg(id = "SHUTDOWN_TIMEOUT_MS", long = "shutdown-timeout-ms", env, default_value = "20000",
          value_parser = millis(100..=600_000))]
    pub shutdown_timeout: Duration,
}

/// The limit on guessing admin tokens (docs/design.md §17), per client IP and instance.
#[derive(Debug, Clone, Args)]
pub struct AdminDoorSettings {
    /// Failed admin attempts a client IP may make in a row before it is answered 429 without its token being compared (1–10000)
    #[arg(id = "ADMIN_FAILED_ATTEMPTS_BURST", long = "admin-failed-attempts-burst", env,
          default_value_t = 10, value_parser = number::<u32>(1..=10_000))]
    pub burst: u32,
    /// Failed admin attempts given back to a client IP per minute (1–60000)
    #[arg(id = "ADMIN_FAILED_ATTEMPTS_PER_MINUTE", long = "admin-failed-attempts-per-minute", env,
          default_value_t = 6, value_parser = number::<u32>(1..=60_000))]
    pub per_minute: u32,
    /// Client addresses the admin door keeps a bucket of failed attempts for; past it the oldest is forgotten (1000–10000000)
    #[arg(id = "ADMIN_DOOR_MAX_CLIENTS", long = "admin-door-max-clients", env,
          default_value_t = 100_000, value_parser = number::<usize>(1_000..=10_000_000))]
    pub max_clients: usize,
}

#[derive(Debug, Clone, Args)]
pub struct MetricsSettings {
    /// How often the outbox gauges of /metrics are read from MySQL (100–600000)
    // One indexed query; scrapes never query.
    #[arg(id = "METRICS_OUTBOX_REFRESH_MS", long = "metrics-outbox-refresh-ms", env,
          default_value = "5000", value_parser = millis(100..=600_000))]
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::consumers::ConsumerName;

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
    fn blank_optional_values_are_unset() {
        let s = Settings::from_pairs(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "  "),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", " "),
        ])
        .expect("valid");
        assert!(s.kafka.bootstrap_servers.is_none());
        assert!(s.otlp_endpoint.is_none());
        assert!(s.admin_token.is_none());
        assert!(s.kafka.properties.is_empty());
        let s = Settings::from_pairs(&[("KAFKA_BOOTSTRAP_SERVERS", " k:9092")]).expect("valid");
        assert_eq!(s.kafka.bootstrap_servers.as_deref(), Some(" k:9092"));
        let err = Settings::from_pairs(&[("ADMIN_TOKEN", " ")]).unwrap_err();
        assert!(err.to_string().starts_with("ADMIN_TOKEN="), "{err}");
        let err = Settings::from_pairs(&[("RELAY_WORKERS", "-1")]).unwrap_err();
        assert!(err.to_string().contains("-1 is not in 1..=256"), "{err}");
    }

    #[test]
    fn named_admin_tokens_are_checked_one_by_one_and_against_admin_token() {
        let s = Settings::from_pairs(&[(
            "ADMIN_TOKENS",
            "alice:aL-K7w2Xq9-Vm4Rt8Hn3Jc6Bp1Fd5, bob:bB-K7w2Xq9-Pz3Lk8Wr1Tn6Gv4Jm2",
        )])
        .expect("valid");
        let names: Vec<&str> = s.admin_tokens.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        for (value, says) in [
            ("alice", "name:token"),
            ("alice:short", "at least 24 characters"),
            ("Alice:aL-K7w2Xq9-Vm4Rt8Hn3Jc6Bp1Fd5", "[a-z0-9_.-]"),
            (
                "a:aL-K7w2Xq9-Vm4Rt8Hn3Jc6Bp1Fd5,a:bB-K7w2Xq9-Pz3Lk8Wr1Tn6Gv4Jm2",
                "given twice",
            ),
            (
                "a:sM-K7w2Xq9-Qh5Nc2Yd8Rf3Vb7Lt4,b:sM-K7w2Xq9-Qh5Nc2Yd8Rf3Vb7Lt4",
                "also another",
            ),
        ] {
            let err = Settings::from_pairs(&[("ADMIN_TOKENS", value)]).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("ADMIN_TOKENS="), "{text}");
            assert!(text.contains(says), "{value}: {text}");
            assert!(!text.contains("K7w2Xq9"), "a token is never echoed: {text}");
        }
        for tokens in [
            "admin:oT-K7w2Xq9-Wn6Jp1Hz4Cs9Mg3Dk8",
            "ops:sG-K7w2Xq9-Rb2Ty7Lq5Fx8Nv1Hc6",
        ] {
            let err = Settings::from_pairs(&[
                ("ADMIN_TOKEN", "sG-K7w2Xq9-Rb2Ty7Lq5Fx8Nv1Hc6"),
                ("ADMIN_TOKENS", tokens),
            ])
            .unwrap_err();
            assert!(err.to_string().starts_with("ADMIN_TOKENS="), "{err}");
        }
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
            ("ADMIN_TOKEN", "Qz7Lk2Vp9Xr4-open-sesame-8Wm1Hc6"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef-opensesame"),
        ])
        .expect("valid");
        let dump = format!("{s:?}");
        assert!(!dump.contains("hunter2"), "{dump}");
        assert!(!dump.contains("sesame"), "{dump}");
        let err =
            Settings::from_pairs(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }
}
