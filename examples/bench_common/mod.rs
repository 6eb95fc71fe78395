//! What the benchmark scripts share: reading knobs, a throw-away database, percentiles, the
//! machine's description, and an HTTP load at a fixed rate.

#![allow(dead_code)] // each benchmark uses part of it

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use firstcome::config::{Secret, Settings};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

pub const TOKEN: &str = "bench-admin-token-0123456789";

/// A benchmark knob from the environment.
pub fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The first column of every row, NULL as 0.
pub async fn query_i64s(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<i64>> {
    let rows = db
        .query_all_raw(Statement::from_string(DbBackend::MySql, sql))
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get_by_index::<Option<i64>>(0))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

pub async fn query_i64(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(query_i64s(db, sql).await?.first().copied().unwrap_or(0))
}

/// A throw-away database `test_bench_<uuid>` on the server of `DATABASE_URL`, dropped by
/// [`Scratch::drop_database`].
pub struct Scratch {
    admin: DatabaseConnection,
    name: String,
}

impl Scratch {
    /// Settings for a benchmark: the scratch database, port 0, a fresh Redis key prefix, the
    /// embedded broker unless `KAFKA_BOOTSTRAP_SERVERS` is set.
    pub async fn settings() -> anyhow::Result<(Settings, Scratch)> {
        let mut settings = Settings::from_env()?;
        let url = settings.database.url.expose().to_string();
        let (server, _) = url
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("DATABASE_URL has no database part"))?;
        let name = format!("test_bench_{}", uuid::Uuid::now_v7().simple());
        let admin = Database::connect(server).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE `{name}`"))
            .await?;
        settings.database.url = Secret::new(format!("{server}/{name}"));
        settings.http.addr = "127.0.0.1:0".parse()?;
        // The load comes from one address standing for thousands of users, as in every other
        // benchmark: the door's per-client cap would answer its connections past 256 with
        // SERVICE_BUSY whenever answers slow down (unless HTTP_MAX_CONNECTIONS_PER_CLIENT says).
        if std::env::var_os("HTTP_MAX_CONNECTIONS_PER_CLIENT").is_none() {
            settings.http.max_connections_per_client = 1_000_000;
        }
        settings.redis.key_prefix = format!("bench:{}:", uuid::Uuid::now_v7().simple());
        settings.admin_token = Some(Secret::new(TOKEN));
        Ok((settings, Scratch { admin, name }))
    }

    pub async fn drop_database(self) -> anyhow::Result<()> {
        self.admin
            .execute_unprepared(&format!("DROP DATABASE `{}`", self.name))
            .await?;
        Ok(())
    }
}

/// The `p` quantile of sorted microseconds, in milliseconds.
pub fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1_000.0
}

/// "min / median / max" of several runs.
pub fn spread(values: &[f64], digits: usize) -> String {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => "-".into(),
        n => format!(
            "{:.d$} / {:.d$} / {:.d$}",
            v[0],
            v[n / 2],
            v[n - 1],
            d = digits
        ),
    }
}

/// "N cores, <cpu model>".
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// What a fixed-rate load got back.
pub struct Load {
    pub offered: u64,
    pub accepted: u64,
    pub elapsed: Duration,
    /// Each request's time to its answer, sorted (µs).
    pub latencies_us: Vec<i64>,
}

/// `rate` joins per second for `seconds` through the HTTP API, round-robin over `campaigns`,
/// every user distinct (user ids from `first_user`).
pub async fn fixed_rate_joins(
    base: &str,
    campaigns: &[i64],
    rate: u64,
    seconds: u64,
    first_user: u64,
) -> Load {
    let client = Arc::new(reqwest::Client::new());
    let offered = rate * seconds;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let mut requests = tokio::task::JoinSet::new();
    let started = Instant::now();
    for n in 0..offered {
        tick.tick().await;
        let client = client.clone();
        let campaign = campaigns[n as usize % campaigns.len()];
        let url = format!("{base}/api/v1/campaigns/{campaign}/participations");
        let user = first_user + n;
        requests.spawn(async move {
            let at = Instant::now();
            let sent = client
                .post(url)
                .json(&serde_json::json!({"userId": user}))
                .send()
                .await;
            (sent.map(|r| r.status().as_u16()), at.elapsed())
        });
    }
    let mut accepted = 0;
    let mut other = std::collections::BTreeMap::new();
    let mut latencies_us = Vec::with_capacity(offered as usize);
    while let Some(done) = requests.join_next().await {
        if let Ok((_, took)) = &done {
            latencies_us.push(took.as_micros() as i64);
        }
        match done.map(|(status, _)| status) {
            Ok(Ok(201)) => accepted += 1,
            Ok(Ok(status)) => *other.entry(status.to_string()).or_insert(0) += 1,
            _ => *other.entry("no answer".to_string()).or_insert(0) += 1,
        }
    }
    if !other.is_empty() {
        eprintln!("fixed-rate load: answers other than 201: {other:?}");
    }
    latencies_us.sort_unstable();
    Load {
        offered,
        accepted,
        elapsed: started.elapsed(),
        latencies_us,
    }
}
