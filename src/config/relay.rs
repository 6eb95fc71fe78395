//! The `Outbox relay` settings: workers and their queues, claims, retries and the dead-letter
//! topic, leases and shards, and the cleanup of published rows. The fields are in `--help`'s order.

use std::time::Duration;

use clap::{builder::BoolishValueParser, ArgAction, Args};

use crate::config::values::{age, hours, millis, number};

#[derive(Debug, Clone, Args)]
pub struct RelaySettings {
    /// Run the outbox relay (false: rows stay PENDING)
    // `false` runs the API only.
    #[arg(id = "RELAY_ENABLED", long = "relay-enabled", env, default_value_t = true,
          action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub enabled: bool,
    /// Publishing workers; a key always goes to the same one (1–256)
    #[arg(id = "RELAY_WORKERS", long = "relay-workers", env, default_value_t = 4,
          value_parser = number::<usize>(1..=256))]
    pub workers: usize,
    /// Queue capacity per worker (1–1000000)
    #[arg(id = "RELAY_CHANNEL_CAPACITY", long = "relay-channel-capacity", env,
          default_value_t = 4_096, value_parser = number::<usize>(1..=1_000_000))]
    pub channel_capacity: usize,
    /// Rows per claim (1–100000)
    #[arg(id = "RELAY_BATCH_SIZE", long = "relay-batch-size", env, default_value_t = 2_000,
          value_parser = number::<u32>(1..=100_000))]
    pub batch_size: u32,
    /// Attempts a broker's refusals may use before the DLQ; an outage uses none (1–1000)
    #[arg(id = "RELAY_MAX_ATTEMPTS", long = "relay-max-attempts", env, default_value_t = 12,
          value_parser = number::<u32>(1..=1_000))]
    pub max_attempts: u32,
    /// First retry delay, doubled per attempt with jitter (1–3600000)
    #[arg(id = "RELAY_BACKOFF_BASE_MS", long = "relay-backoff-base-ms", env,
          default_value = "500", value_parser = millis(1..=3_600_000))]
    pub backoff_base: Duration,
    /// Longest retry delay (1–86400000, at least RELAY_BACKOFF_BASE_MS)
    #[arg(id = "RELAY_BACKOFF_CAP_MS", long = "relay-backoff-cap-ms", env,
          default_value = "60000", value_parser = millis(1..=86_400_000))]
    pub backoff_cap: Duration,
    /// A row older than this that still fails goes to the DLQ: `90m`, `24h`, `2d` or seconds (1s–365d)
    // Whatever the error.
    #[arg(id = "RELAY_MAX_RETRY_AGE", long = "relay-max-retry-age", env, default_value = "24h",
          value_parser = age)]
    pub max_retry_age: Duration,
    /// Rows one worker may have sent and not settled; bounds memory through an outage (1–1000000)
    // Through a Kafka outage the relay then stops claiming until Kafka answers again.
    #[arg(id = "RELAY_MAX_IN_FLIGHT", long = "relay-max-in-flight", env,
          default_value_t = 10_000, value_parser = number::<usize>(1..=1_000_000))]
    pub max_in_flight: usize,
    /// The relay's own MySQL pool (2–1000)
    // Apart from the API's, so a hot campaign (every API connection waiting on its row lock)
    // cannot keep the relay from claiming and marking.
    #[arg(id = "RELAY_DB_MAX_CONNECTIONS", long = "relay-db-max-connections", env,
          default_value_t = 8, value_parser = number::<u32>(2..=1_000))]
    pub db_max_connections: u32,
    /// Relay shard leases, renewed every third; rows are not leased (100–3600000)
    // How long claimed rows (and a shard's leadership) belong to one relay.
    #[arg(id = "RELAY_LEASE_MS", long = "relay-lease-ms", env, default_value = "30000",
          value_parser = millis(100..=3_600_000))]
    pub lease: Duration,
    /// Polling for other instances' rows and retries coming due (10–60000)
    #[arg(id = "RELAY_POLL_INTERVAL_MS", long = "relay-poll-interval-ms", env,
          default_value = "250", value_parser = millis(10..=60_000))]
    pub poll_interval: Duration,
    /// Shortest time from one claim to the next that a commit wakes; 0 = none (0–1000)
    // Each claim costs MariaDB a fixed few hundred microseconds whatever it finds; under a
    // steady flow of commits this gathers them into fewer, larger claims (docs/design.md §7).
    // A full batch is still followed by the next claim at once.
    #[arg(id = "RELAY_CLAIM_INTERVAL_MS", long = "relay-claim-interval-ms", env,
          default_value = "20", value_parser = millis(0..=1_000))]
    pub claim_interval: Duration,
    /// Keys are split into this many shards, each led by one instance; the same on every instance (1–1024)
    #[arg(id = "RELAY_SHARDS", long = "relay-shards", env, default_value_t = 4,
          value_parser = number::<u32>(1..=1_024))]
    pub shards: u32,
    /// PUBLISHED rows are deleted after this; DEAD rows stay (0–100000)
    #[arg(id = "OUTBOX_RETENTION_HOURS", long = "outbox-retention-hours", env,
          default_value = "72", value_parser = hours(0..=100_000))]
    pub retention: Duration,
    /// Rows deleted per cleanup statement (1–100000)
    #[arg(id = "OUTBOX_CLEANUP_BATCH", long = "outbox-cleanup-batch", env,
          default_value_t = 1_000, value_parser = number::<u32>(1..=100_000))]
    pub cleanup_batch: u32,
}
