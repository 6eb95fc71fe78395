//! `firstcome-proof run`'s options, and reading the two it needs before anything starts: which
//! service binary, and where MySQL is.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::nemesis;

/// `firstcome-proof run` options.
#[derive(Debug, Clone, Args)]
pub struct RunOptions {
    /// The `firstcome` binary; default: the one beside this binary (same target directory and
    /// profile as cargo built them).
    #[arg(long)]
    pub service_bin: Option<PathBuf>,
    /// MySQL server, without a database (the run creates `test_proof_<uuid>`).
    #[arg(long, env = "TEST_DATABASE_URL")]
    pub database_url: String,
    /// The `redis-server` binary; the run starts its own server.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: String,
    /// Where history.jsonl, final.json, report.json and the instances' logs go; default
    /// target/proof/<seed>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seconds of workload and faults.
    #[arg(long, default_value_t = 75)]
    pub duration: u64,
    /// Seed of the clients and the nemesis; default: from the clock (printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Logical clients of the sale (one operation at a time each).
    #[arg(long, default_value_t = 12)]
    pub processes: usize,
    /// Campaigns joined directly (`admission: OPEN`); every other one has a `perUserLimit` of 1,
    /// the rest `--max-quantity`.
    #[arg(long, default_value_t = 3)]
    pub campaigns: usize,
    /// Bucketed campaigns (`buckets: --buckets`, design §21), joined directly like
    /// `--campaigns`, on top of them, with the same `--stock`: a small stock over many buckets
    /// runs each one dry, so joins refill from the pool and steal from siblings all the time.
    /// The first has `--max-quantity` as its `perUserLimit`, the next 1, and so on.
    #[arg(long, default_value_t = 1)]
    pub bucketed_campaigns: usize,
    /// The bucketed campaigns' `buckets`.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(i64).range(1..=1024))]
    pub buckets: i64,
    /// Campaigns with a waiting room (`admission: QUEUE`), on top of `--campaigns`.
    #[arg(long, default_value_t = 1)]
    pub queued_campaigns: usize,
    /// Campaigns with a waiting room and `--buckets` buckets (design §21: one queue for the
    /// campaign, each admission checked in its holder's home bucket), after the queued ones.
    #[arg(long, default_value_t = 1)]
    pub bucketed_queued_campaigns: usize,
    /// Groups of campaigns under one per-user limit (design §22), each of `--group-campaigns`
    /// open campaigns with `--group-stock` units and a `perUserLimit` of `--group-limit` (the
    /// first without a confirmation window, the rest with `--confirm-within`). Their users join
    /// them singly and buy carts of 2–3 of them (`--cart-share` of the joins).
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// Groups as `--groups` but with `--group-buckets` buckets (§21 applied to the group), after
    /// them.
    #[arg(long, default_value_t = 1)]
    pub bucketed_groups: usize,
    /// The bucketed groups' `buckets`.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i64).range(1..=1024))]
    pub group_buckets: i64,
    /// Campaigns of each group.
    #[arg(long, default_value_t = 3)]
    pub group_campaigns: usize,
    /// Each group's `perUserLimit`: units one user may win across its campaigns.
    #[arg(long, default_value_t = 2)]
    pub group_limit: i64,
    /// Initial stock of each grouped campaign: small, so they sell out during the run.
    #[arg(long, default_value_t = 8)]
    pub group_stock: i64,
    /// Share of the joins that are carts, when the run has groups.
    #[arg(long, default_value_t = 0.25)]
    pub cart_share: f64,
    /// The grouped campaigns' users are drawn from 1..=group-users (fewer than `--users`, so
    /// that users come back to a group and reach its limit).
    #[arg(long, default_value_t = 1_000)]
    pub group_users: i64,
    /// Users of the waiting room (queue, poll, join with the token), one at a time each.
    #[arg(long, default_value_t = 6)]
    pub queue_processes: usize,
    /// The queued campaigns' `admissionRatePerSecond`: low, so a queue forms.
    #[arg(long, default_value_t = 2)]
    pub admission_rate: i64,
    /// The queued campaigns' `offerSeconds` (a waitlist, design §22): a ticket told the campaign
    /// is sold out is WAITLISTED, and a unit that comes back is offered to the next in order for
    /// this long; 0: the queued campaigns keep no waitlist.
    #[arg(long, default_value_t = 5)]
    pub offer_seconds: i64,
    /// How often a waiting user polls, ms (the contract: about once a second).
    #[arg(long, default_value_t = 1_000)]
    pub poll_ms: u64,
    /// How long a waiting user waits for an admission before leaving, s.
    #[arg(long, default_value_t = 20)]
    pub queue_patience: u64,
    /// Initial stock of each campaign.
    #[arg(long, default_value_t = 40)]
    pub stock: i64,
    /// Users are drawn from 1..=users.
    #[arg(long, default_value_t = 2_000)]
    pub users: i64,
    /// The campaigns' `confirmWithinSeconds` (holds left unconfirmed expire after it).
    #[arg(long, default_value_t = 3)]
    pub confirm_within: i64,
    /// The larger `perUserLimit` of the campaigns: joins ask 1, or up to their campaign's limit.
    #[arg(long, default_value_t = 3)]
    pub max_quantity: i64,
    /// Share of joins that ask more than their campaign's limit (refused as invalid).
    #[arg(long, default_value_t = 0.03)]
    pub over_limit_share: f64,
    #[arg(long, default_value_t = 5)]
    pub reward_points: i64,
    /// Operation weights, `join=700,confirm=140,cancel=50,refund=40,stock=40,pause=8,resume=20,close=2`.
    #[arg(long, default_value = "")]
    pub mix: String,
    /// Share of joins with an Idempotency-Key (retried with it after a timeout).
    #[arg(long, default_value_t = 0.3)]
    pub idempotency_share: f64,
    /// Client timeout per request, ms: shorter than the service's deadline, so some end `info`
    /// (the failover's burst waits for the deadline itself).
    #[arg(long, default_value_t = 1_500)]
    pub timeout_ms: u64,
    /// Mean pause between a client's operations, ms (a rate limit per client).
    #[arg(long, default_value_t = 20)]
    pub think_ms: u64,
    /// Fault kinds, comma-separated; empty for none. Default: every kind.
    #[arg(long, value_delimiter = ',', default_values_t = nemesis::KINDS.map(String::from))]
    pub faults: Vec<String>,
    /// Partitions of the topics on the broker.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    #[arg(long, default_value = "campaign.participation.v1")]
    pub topic: String,
    /// The short timeouts of earlier runs (2 s requests, 3 s reservations, …) instead of the
    /// service's production defaults (see `harness::timeouts`).
    #[arg(long)]
    pub fast_timeouts: bool,
    /// With `--fast-timeouts`: the instances' SOLD_OUT_MEMO_MS (at production defaults the
    /// service's own), passed to the checker as its relaxation.
    #[arg(long, default_value_t = 100)]
    pub sold_out_memo_ms: u64,
    /// The instances' `GROUP_COMMIT_BUCKET_LANES`: transactions a bucketed campaign commits at
    /// once on an instance (the service's default is 1; the proof runs several).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub bucket_lanes: u32,
    /// The burst campaign (design §21, "first come, first served to the last unit"): distinct
    /// users joining one bucketed campaign at once, from the start of the run; 0: none.
    #[arg(long, default_value_t = 5_000)]
    pub burst_users: i64,
    /// The burst campaign's stock: fewer units than users, so it sells out.
    #[arg(long, default_value_t = 1_000)]
    pub burst_stock: i64,
    /// The burst campaign's `buckets`.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(i64).range(1..=1024))]
    pub burst_buckets: i64,
    /// Joins of the burst in flight at once, spread over both instances.
    #[arg(long, default_value_t = 128)]
    pub burst_concurrency: usize,
    /// The instances' CONSUMER_GROUP_PROTOCOL (`consumer`: the mock broker's fast path).
    #[arg(long, default_value = "consumer")]
    pub group_protocol: String,
    /// A bug to plant in the instances (`FIRSTCOME_PLANTED_BUG`, e.g. `return-twice`): the run
    /// must then find anomalies. Needs a service built with the `test-hooks` feature.
    #[arg(long)]
    pub planted_bug: Option<String>,
    /// How long settling may take, s.
    #[arg(long, default_value_t = 90)]
    pub settle_timeout: u64,
    /// Keep the run's database.
    #[arg(long)]
    pub keep_db: bool,
    /// Checker: how far back an unjustified refusal's explanation looks, ms.
    #[arg(long, default_value_t = 2_000)]
    pub lookback_ms: u64,
    /// Checker: how far an expiry may precede, or a confirmation follow, a deadline, ms.
    #[arg(long, default_value_t = 100)]
    pub deadline_tolerance_ms: i64,
    /// Checker: how long after a pause or close a win may still commit, ms.
    #[arg(long, default_value_t = 1_000)]
    pub control_grace_ms: i64,
    /// Checker: anomalies spelled out per kind.
    #[arg(long, default_value_t = 20)]
    pub details: usize,
}

pub(super) fn service_binary(opts: &RunOptions) -> anyhow::Result<PathBuf> {
    let path = match &opts.service_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary's directory")?
            .join("firstcome"),
    };
    anyhow::ensure!(
        path.is_file(),
        "no service binary at {} (build it: cargo build --bin firstcome, or pass --service-bin)",
        path.display()
    );
    Ok(path)
}

/// `mysql://user:pass@host:port[/db][?…]` → (`mysql://user:pass@host:port`, `host:port`).
pub(super) fn split_mysql_url(url: &str) -> anyhow::Result<(String, String)> {
    let (scheme, rest) = url
        .split_once("://")
        .context("TEST_DATABASE_URL is not a URL")?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    anyhow::ensure!(
        host_port.contains(':'),
        "TEST_DATABASE_URL needs an explicit port"
    );
    Ok((format!("{scheme}://{authority}"), host_port.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mysql_url_splits_into_the_server_and_its_address() {
        let (server, addr) = split_mysql_url("mysql://u:p@127.0.0.1:23306").unwrap();
        assert_eq!(
            (server.as_str(), addr.as_str()),
            ("mysql://u:p@127.0.0.1:23306", "127.0.0.1:23306")
        );
        let (server, addr) =
            split_mysql_url("mysql://u:p@db:3306/other?ssl-mode=disabled").unwrap();
        assert_eq!(
            (server.as_str(), addr.as_str()),
            ("mysql://u:p@db:3306", "db:3306")
        );
        assert!(split_mysql_url("mysql://u:p@db").is_err());
    }

    #[test]
    fn a_mix_names_weights_and_keeps_the_rest() {
        use crate::mix::Mix;
        let mix: Mix = "join=10,close=0".parse().unwrap();
        assert_eq!(
            (mix.join, mix.close, mix.confirm),
            (10, 0, Mix::default().confirm)
        );
        assert!("jump=3".parse::<Mix>().is_err());
        assert!("join".parse::<Mix>().is_err());
    }
}
