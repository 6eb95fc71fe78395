//! The `MySQL` settings: the API's pool, its deadlines, and the outbox path's group commit.
//! (`MIGRATE_ON_START`, listed under the same heading, is a field of [`crate::config::Settings`].)

use std::time::Duration;

use clap::Args;

use crate::config::values::{millis, mysql_url, number, Secret};

#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// MySQL 8 / MariaDB 10.6+, a user with `ALL` on its database (`CREATE TEMPORARY TABLES` included); TLS with `?ssl-mode=REQUIRED|VERIFY_CA|VERIFY_IDENTITY&ssl-ca=<pem>` (loopback without `ssl-*`: plain)
    // A `Secret`: the URL holds the password.
    #[arg(id = "DATABASE_URL", long = "database-url", env, hide_env_values = true,
          default_value = "mysql://firstcome:firstcome@127.0.0.1:3306/firstcome",
          value_parser = mysql_url)]
    pub url: Secret,
    /// The API's pool (1–10000)
    #[arg(id = "DB_MAX_CONNECTIONS", long = "db-max-connections", env,
          default_value_t = 64, value_parser = number::<u32>(1..=10_000))]
    pub max_connections: u32,
    /// Waiting longer for a pooled connection answers 503 SERVICE_BUSY (1–600000)
    // With Retry-After, instead of queueing without bound.
    #[arg(id = "DB_ACQUIRE_TIMEOUT_MS", long = "db-acquire-timeout-ms", env,
          default_value = "2000", value_parser = millis(1..=600_000))]
    pub acquire_timeout: Duration,
    /// Connecting, at startup and after a connection was dropped (100–600000)
    // Also bounds the readiness check.
    #[arg(id = "DB_CONNECT_TIMEOUT_MS", long = "db-connect-timeout-ms", env,
          default_value = "5000", value_parser = millis(100..=600_000))]
    pub connect_timeout: Duration,
    /// Deadline of every statement, BEGIN and COMMIT, on the client and the server (100–600000)
    // On the client the call fails (the connection is not reused unless it answers at once); on
    // the server it is `max_statement_time`/`max_execution_time` and `innodb_lock_wait_timeout`.
    #[arg(id = "DB_STATEMENT_TIMEOUT_MS", long = "db-statement-timeout-ms", env,
          default_value = "5000", value_parser = millis(100..=600_000))]
    pub statement_timeout: Duration,
    /// Buckets all open campaigns may hold together; a bucketed campaign past it is refused 400 (2–1048576)
    // Each bucket is a row, its gate's keys and, while its campaign is busy, the reconciler's and
    // the audit's reads (docs/design.md §21): the cap keeps an admin's mistake from growing them
    // without bound.
    #[arg(id = "CAMPAIGN_BUCKETS_MAX_TOTAL", long = "campaign-buckets-max-total", env,
          default_value_t = 16_384, value_parser = number::<u32>(2..=1_048_576))]
    pub buckets_max_total: u32,
    #[command(flatten)]
    pub group_commit: GroupCommitSettings,
}

/// Group commit of the outbox path (docs/design.md §6 step 3).
#[derive(Debug, Clone, Copy, Args)]
pub struct GroupCommitSettings {
    /// Most wins of one campaign per transaction; 1 = one transaction per win (1–2000)
    #[arg(id = "GROUP_COMMIT_MAX_BATCH", long = "group-commit-max-batch", env,
          default_value_t = 256, value_parser = number::<usize>(1..=2_000))]
    pub max_batch: usize,
    /// How long a busy campaign's next batch may wait for more wins (0–1000)
    // While a campaign's wins queue behind its running transaction; 0: the next batch closes as
    // soon as the running one commits. A win that finds no queue never waits.
    #[arg(id = "GROUP_COMMIT_WINDOW_MS", long = "group-commit-window-ms", env,
          default_value = "0", value_parser = millis(0..=1_000))]
    pub window: Duration,
    /// Most transactions a bucketed campaign commits at once on an instance, each over its own buckets (1–1024)
    // Lanes open as the load needs them (docs/design.md §23, `write::lanes`): one until a full
    // batch waits while every lane has one out, or every batch out is stalled (50 ms) while
    // other buckets' wins wait. One lane batches the most wins a transaction (the least CPU a
    // win); several commit on disjoint bucket rows side by side, for a campaign past one lane.
    #[arg(id = "GROUP_COMMIT_BUCKET_LANES", long = "group-commit-bucket-lanes", env,
          default_value_t = 1, value_parser = number::<u16>(1..=1_024))]
    pub bucket_lanes: u16,
    /// Most transactions an unbucketed campaign commits at once on an instance, all on its one row (1–64)
    // A campaign's row is held by a transaction from its guarded decrement to its COMMIT, and
    // a batch's participations go in before it (docs/design.md §23): a second lane inserts its
    // batch's participations while the first holds the row. Opens as bucket lanes do (a full
    // batch waiting while every lane has one out); each lane divides the batches, so one lane
    // (the least CPU a win) unless many cores wait on one campaign's row.
    #[arg(id = "GROUP_COMMIT_ROW_LANES", long = "group-commit-row-lanes", env,
          default_value_t = 1, value_parser = number::<u16>(1..=64))]
    pub row_lanes: u16,
    /// Each campaign's wins written by one live instance, the others handing theirs over (docs/design.md §23)
    // A win reserved on another instance travels through Redis (the writer's inbox, the
    // origin's replies): N instances write a campaign in the batches of one and never wait on
    // each other's row locks. false: every instance writes the wins it reserved.
    #[arg(id = "WRITER_PER_CAMPAIGN", long = "writer-per-campaign", env, default_value_t = true,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub writer_per_campaign: bool,
}
