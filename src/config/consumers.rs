//! The `Consumers` settings: which consumers run, their batches and offset commits, retries,
//! the Kafka group protocol and fetch pacing, their MySQL pool and the inbox's retention.

use std::{fmt, str::FromStr, time::Duration};

use clap::Args;

use crate::config::values::{consumers, group_protocol, hours, millis, number, GroupProtocol};

#[derive(Debug, Clone, Args)]
pub struct ConsumerSettings {
    /// Consumers to run (`stats`, `rewards`), comma-separated; empty = none
    // Run inside `serve`; `firstcome consume` runs the same list without the API. Spelled
    // `std::vec::Vec` so that clap takes the list as one value (see `values`).
    #[arg(id = "CONSUMERS", long = "consumers", env, default_value = "stats,rewards",
          value_parser = consumers)]
    pub enabled: std::vec::Vec<ConsumerName>,
    /// Most messages applied in one transaction (1–50000)
    // Only what is already waiting is batched; a lone message is applied at once.
    #[arg(id = "CONSUMER_BATCH_SIZE", long = "consumer-batch-size", env,
          default_value_t = 1_000, value_parser = number::<usize>(1..=50_000))]
    pub batch_size: usize,
    /// Offsets of applied messages are committed this often; 0 = every batch (0–86400000)
    // And always on a rebalance and at shutdown. A crash redelivers at most this much, which the
    // inbox then skips.
    #[arg(id = "CONSUMER_COMMIT_INTERVAL_MS", long = "consumer-commit-interval-ms", env,
          default_value = "500", value_parser = millis(0..=86_400_000))]
    pub commit_interval: Duration,
    /// First retry delay of a failed transaction; retried forever (1–3600000)
    // Exponential and jittered up to `backoff_cap`, forever: a partition waits for its database
    // rather than skipping a message.
    #[arg(id = "CONSUMER_RETRY_BACKOFF_BASE_MS", long = "consumer-retry-backoff-base-ms", env,
          default_value = "100", value_parser = millis(1..=3_600_000))]
    pub backoff_base: Duration,
    /// Longest retry delay (1–86400000, at least CONSUMER_RETRY_BACKOFF_BASE_MS)
    #[arg(id = "CONSUMER_RETRY_BACKOFF_CAP_MS", long = "consumer-retry-backoff-cap-ms", env,
          default_value = "10000", value_parser = millis(1..=86_400_000))]
    pub backoff_cap: Duration,
    /// `consumer` (KIP-848, Kafka 4.0+) or `classic`; unset: `consumer` with the embedded broker, `classic` otherwise
    #[arg(id = "CONSUMER_GROUP_PROTOCOL", long = "consumer-group-protocol", env,
          value_parser = group_protocol)]
    pub group_protocol: Option<GroupProtocol>,
    /// librdkafka's fetch.wait.max.ms; unset: 10 with the embedded broker, 100 otherwise (1–10000)
    // A real broker answers a fetch as soon as data arrives, so this only paces idle polling; the
    // embedded broker always waits it out, so it adds up to this much to every event's latency.
    #[arg(id = "CONSUMER_FETCH_WAIT_MS", long = "consumer-fetch-wait-ms", env,
          value_parser = millis(1..=10_000))]
    pub fetch_wait: Option<Duration>,
    /// The consumers' own MySQL pool (2–1000)
    #[arg(id = "CONSUMER_DB_MAX_CONNECTIONS", long = "consumer-db-max-connections", env,
          default_value_t = 4, value_parser = number::<u32>(2..=1_000))]
    pub db_max_connections: u32,
    /// Inbox rows older than this are deleted; keep it above the topic's retention (1–100000)
    // A redelivery older than it would be applied again.
    #[arg(id = "CONSUMER_INBOX_RETENTION_HOURS", long = "consumer-inbox-retention-hours", env,
          default_value = "168", value_parser = hours(1..=100_000))]
    pub inbox_retention: Duration,
}

/// The consumers this service ships; the names `CONSUMERS` accepts (`crate::consumer` runs
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumerName {
    /// Campaign statistics: `campaign_stats`, `campaign_daily_stats`.
    Stats,
    /// Points for winners: `reward_account`, `reward_grant`.
    Rewards,
}

impl ConsumerName {
    pub const ALL: [Self; 2] = [Self::Stats, Self::Rewards];

    /// Used in the group id (`firstcome-<name>`), the dead-letter topic (`<topic>.<name>.dlq`)
    /// and `consumer_inbox.consumer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stats => "stats",
            Self::Rewards => "rewards",
        }
    }

    pub fn group_id(self) -> String {
        format!("firstcome-{}", self.as_str())
    }
}

impl FromStr for ConsumerName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| format!("unknown consumer {s:?}; known: stats, rewards"))
    }
}

impl fmt::Display for ConsumerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
