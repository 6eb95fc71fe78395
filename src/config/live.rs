//! The `Live view` settings: how often the live stream's snapshot of a watched campaign is taken
//! (once per instance and campaign, shared by every watcher) and how many watchers one instance
//! serves, in all and per client.
//!
//! Why a cap per client below the one in all: without it, one client opening streams in a loop
//! takes every seat, and the operators' console is refused with everyone else. Eight is more
//! than a browser opens to one host over HTTP/1.1 (six), so a person with a few tabs never meets
//! it, and far below the total, so no one address holds more than a sliver of it. The client is
//! the address `http::client_ip` resolves (IPv6 by its /64): a deployment whose watchers share
//! one address (a NAT, or a proxy that `TRUSTED_PROXY_HEADER` does not name) raises it.

use std::time::Duration;

use clap::Args;

use crate::config::values::{millis, number};

#[derive(Debug, Clone, Args)]
pub struct LiveSettings {
    /// How often a watched campaign's snapshot is taken and sent to its watchers on /api/v1/campaigns/{id}/live (10–60000)
    // One snapshot per instance and campaign per interval, whatever the number of watchers.
    #[arg(id = "LIVE_INTERVAL_MS", long = "live-interval-ms", env,
          default_value = "1000", value_parser = millis(10..=60_000))]
    pub interval: Duration,
    /// Live-stream watchers one instance serves at once; past it a new watcher gets 503 SERVICE_BUSY, unless it comes with an admin token (1–100000)
    // An admin's stream is let in past the total: a crowd from many addresses must not lock the
    // operators' console out. It still takes a seat, and counts against its client's cap.
    #[arg(id = "LIVE_MAX_WATCHERS", long = "live-max-watchers", env,
          default_value = "10000", value_parser = number::<u32>(1..=100_000))]
    pub max_watchers: u32,
    /// Live-stream watchers one client IP (IPv6: its /64) holds at once on one instance; past it a new one gets 429 RATE_LIMITED (1–100000)
    // Eight: above the six connections a browser opens to one host, far below the total (see the
    // module's documentation). Above LIVE_MAX_WATCHERS it changes nothing.
    #[arg(id = "LIVE_MAX_WATCHERS_PER_CLIENT", long = "live-max-watchers-per-client", env,
          default_value = "8", value_parser = number::<u32>(1..=100_000))]
    pub max_watchers_per_client: u32,
}
