//! The `Live view` settings: how often the live stream's snapshot of a watched campaign is taken
//! (once per instance and campaign, shared by every watcher) and how many watchers one instance
//! serves.

use std::time::Duration;

use clap::Args;

use super::values::{millis, number};

#[derive(Debug, Clone, Args)]
pub struct LiveSettings {
    /// How often a watched campaign's snapshot is taken and sent to its watchers on /api/v1/campaigns/{id}/live (10–60000)
    // One snapshot per instance and campaign per interval, whatever the number of watchers.
    #[arg(id = "LIVE_INTERVAL_MS", long = "live-interval-ms", env,
          default_value = "1000", value_parser = millis(10..=60_000))]
    pub interval: Duration,
    /// Live-stream watchers one instance serves at once; past it a new watcher gets 503 SERVICE_BUSY (1–100000)
    #[arg(id = "LIVE_MAX_WATCHERS", long = "live-max-watchers", env,
          default_value = "10000", value_parser = number::<u32>(1..=100_000))]
    pub max_watchers: u32,
}
