//! Relay benchmark (a script, not a test). Prints a table.
//!
//! Each measure is taken for the real case first, a flash sale (one campaign, so every row
//! shares one key), and for load spread over BENCH_KEYS campaigns:
//! 1. Steady load: participations through the HTTP API at a fixed rate, relay running; lag =
//!    the outbox row's `created_at` (database clock, written inside the participation
//!    transaction, so the commit time to within a statement) → `published_at` (set after Kafka's
//!    ack): an upper bound of commit→ack.
//! 2. Drain: BENCH_ROWS pending rows written while no relay runs, then a relay started; rows/s
//!    from its start until nothing is pending. Each drain is followed by its limit measured in
//!    the same run: the same rows drained by MySQL alone with the relay's statements of the same
//!    shape, one after the other, no Kafka ([`raw_drain`]); the table gives the ratio, since
//!    absolute rates on this machine swing 2x from day to day. BENCH_RUNS rounds, interleaved.
//!
//! Run: `scripts/bench-relay.sh` (PROFILE=1 there adds MariaDB's per-statement times and CPU
//! per process). Environment: BENCH_ROWS (100000), BENCH_KEYS (100), BENCH_RUNS (3),
//! BENCH_RATE (participations/s, 1000), BENCH_SECONDS (10), BENCH_PHASES (`steady,drain`),
//! BENCH_VERBOSE (lag per half second), plus the service's own variables (the server of
//! DATABASE_URL gets a throw-away database `test_bench_<uuid>`; RELAY_* and KAFKA_* knobs
//! apply). The embedded broker keeps ~5 MiB a partition: a one-key drain of 100,000 rows
//! overflows it, which is why success is read from the acks recorded in MySQL.

mod bench_common;

use bench_common::{
    env, fixed_rate_joins, machine, percentile, query_i64s, spread, Scratch, TOKEN,
};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use firstcome::{
    config::Settings,
    events::{
        accepted::{AGGREGATE_PARTICIPATION, PARTICIPATION_ACCEPTED},
        headers,
    },
    outbox::{self, NewOutboxEvent, OutboxStatus},
    startup::Application,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tokio_util::sync::CancellationToken;

/// Outbox rows with `status`.
async fn count(db: &DatabaseConnection, status: OutboxStatus) -> anyhow::Result<i64> {
    let counts = query_i64s(
        db,
        &format!(
            "SELECT COUNT(*) FROM outbox_event WHERE status = '{}'",
            status.as_str()
        ),
    )
    .await?;
    Ok(counts.first().copied().unwrap_or(0))
}

/// Whether any row is still pending: one index probe (a `COUNT(*)` every 10 ms scanned the
/// table and took about a core of MariaDB from the relay it was measuring).
async fn pending_left(db: &DatabaseConnection) -> anyhow::Result<bool> {
    let first = query_i64s(
        db,
        "SELECT id FROM outbox_event FORCE INDEX (ix_outbox_status_lease) WHERE status = 'PENDING' LIMIT 1",
    )
    .await?;
    Ok(!first.is_empty())
}

async fn wait_drained(db: &DatabaseConnection, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while pending_left(db).await? {
        anyhow::ensure!(
            started.elapsed() < timeout,
            "not drained within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// A running application and how to stop it.
struct Running {
    port: u16,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(settings: &Settings, relay: bool) -> anyhow::Result<Running> {
    let mut settings = settings.clone();
    settings.relay.enabled = relay;
    let app = Application::build(settings).await?;
    let port = app.port();
    let stop = app.shutdown_token();
    let task = tokio::spawn(app.run_until_stopped());
    Ok(Running { port, stop, task })
}

impl Running {
    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await?
    }
}

struct Steady {
    offered: u64,
    accepted: u64,
    elapsed: Duration,
    /// Sorted lags in microseconds.
    lags: Vec<i64>,
    /// Sorted join answer times in microseconds: how much of the lag is the write path's.
    answers: Vec<i64>,
}

/// Empties the outbox, so every phase starts from the same table (with 100,000s of earlier rows
/// the second drain measured the buffer pool, not the relay: 14k vs 19k rows/s).
async fn fresh_outbox(db: &DatabaseConnection) -> anyhow::Result<()> {
    db.execute_unprepared("TRUNCATE TABLE outbox_event").await?;
    Ok(())
}

/// Participations at `rate` per second over `campaigns` campaigns (round-robin).
async fn steady_load(
    settings: &Settings,
    db: &DatabaseConnection,
    rate: u64,
    seconds: u64,
    campaigns: usize,
) -> anyhow::Result<Steady> {
    fresh_outbox(db).await?;
    let app = start(settings, true).await?;
    let client = Arc::new(reqwest::Client::new());
    let base = format!("http://127.0.0.1:{}", app.port);
    let mut ids = Vec::with_capacity(campaigns);
    for _ in 0..campaigns {
        let created: serde_json::Value = client
            .post(format!("{base}/api/v1/campaigns"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"name": "steady", "totalStock": 10_000_000}))
            .send()
            .await?
            .json()
            .await?;
        ids.push(
            created["id"]
                .as_i64()
                .ok_or_else(|| anyhow::anyhow!("no campaign id: {created}"))?,
        );
    }
    let watermark = query_i64s(db, "SELECT COALESCE(MAX(id), 0) FROM outbox_event")
        .await?
        .first()
        .copied()
        .unwrap_or(0);
    let load = fixed_rate_joins(&base, &ids, rate, seconds, 1).await;
    wait_drained(db, Duration::from_secs(120)).await?;
    let lags = query_i64s(
        db,
        &format!(
            "SELECT TIMESTAMPDIFF(MICROSECOND, created_at, published_at) FROM outbox_event \
             WHERE id > {watermark} AND status = 'PUBLISHED' ORDER BY 1"
        ),
    )
    .await?;
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        let buckets = db
            .query_all_raw(Statement::from_string(
                DbBackend::MySql,
                format!(
                    "SELECT CAST(FLOOR(TIMESTAMPDIFF(MICROSECOND, (SELECT MIN(created_at) FROM outbox_event), created_at) / 500000) AS SIGNED), \
                     COUNT(*), CAST(MAX(TIMESTAMPDIFF(MICROSECOND, created_at, published_at)) AS SIGNED) \
                     FROM outbox_event WHERE id > {watermark} GROUP BY 1 ORDER BY 1"
                ),
            ))
            .await?;
        eprintln!("half-second bucket, rows, max lag (µs)");
        for b in buckets {
            eprintln!(
                "{:?} {:?} {:?}",
                b.try_get_by_index::<Option<i64>>(0)?,
                b.try_get_by_index::<i64>(1)?,
                b.try_get_by_index::<Option<i64>>(2)?
            );
        }
    }
    app.stop().await?;
    Ok(Steady {
        offered: load.offered,
        accepted: load.accepted,
        elapsed: load.elapsed,
        lags,
        answers: load.latencies_us,
    })
}

/// Writes `rows` pending rows over `keys` keys, 1,000 rows per INSERT, through the service's
/// own outbox INSERT. The value is padded to about the size of a real event.
async fn write_pending(
    db: &DatabaseConnection,
    topic: &str,
    rows: usize,
    keys: usize,
) -> anyhow::Result<()> {
    let pad = "x".repeat(120);
    let mut written = 0;
    while written < rows {
        let chunk = (rows - written).min(1_000);
        let batch: Vec<NewOutboxEvent> = (written..written + chunk)
            .map(|n| {
                let event_id = uuid::Uuid::now_v7();
                let key = n % keys + 1;
                NewOutboxEvent {
                    event_id,
                    aggregate_type: AGGREGATE_PARTICIPATION.into(),
                    aggregate_id: n.to_string(),
                    event_type: PARTICIPATION_ACCEPTED.into(),
                    topic: topic.into(),
                    msg_key: key.to_string(),
                    payload: serde_json::json!({
                        "eventId": event_id,
                        "eventType": PARTICIPATION_ACCEPTED,
                        "campaignId": key,
                        "participationId": n,
                        "userId": n,
                        "quantity": 1,
                        "sequence": n,
                        "pad": pad,
                    })
                    .to_string(),
                    headers: headers::stored(None),
                    status: OutboxStatus::Pending,
                }
            })
            .collect();
        outbox::table::insert(db, &batch).await?;
        written += chunk;
    }
    Ok(())
}

/// An empty outbox, then `rows` pending rows over `keys` keys: where every drain starts.
async fn refill(
    settings: &Settings,
    db: &DatabaseConnection,
    rows: usize,
    keys: usize,
) -> anyhow::Result<()> {
    fresh_outbox(db).await?;
    write_pending(db, &settings.kafka.topic, rows, keys).await
}

async fn drain(
    settings: &Settings,
    db: &DatabaseConnection,
    rows: usize,
    keys: usize,
) -> anyhow::Result<Duration> {
    refill(settings, db, rows, keys).await?;
    let started = Instant::now();
    let app = start(settings, true).await?;
    wait_drained(db, Duration::from_secs(600)).await?;
    let took = started.elapsed();
    anyhow::ensure!(
        count(db, OutboxStatus::Published).await? as usize >= rows,
        "not every row was published"
    );
    app.stop().await?;
    Ok(took)
}

/// The limit a drain is measured against: the same rows drained by MySQL alone, with the relay's
/// own statements of the same shape one after the other on one connection (read 2,000 due rows
/// with their payloads in id order, mark them PUBLISHED), no Kafka. What the relay adds to that
/// is its price.
async fn raw_drain(
    settings: &Settings,
    db: &DatabaseConnection,
    rows: usize,
    keys: usize,
) -> anyhow::Result<Duration> {
    refill(settings, db, rows, keys).await?;
    let started = Instant::now();
    loop {
        let ids = query_i64s(
            db,
            "SELECT id FROM (SELECT id, msg_key, payload, headers FROM outbox_event \
             FORCE INDEX (ix_outbox_status_lease) WHERE status = 'PENDING' AND lease_until IS NULL \
             AND lease_owner IS NULL ORDER BY id LIMIT 2000) AS batch",
        )
        .await?;
        if ids.is_empty() {
            break;
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        db.execute_unprepared(&format!(
            "UPDATE outbox_event FORCE INDEX (PRIMARY) SET status = 'PUBLISHED', \
             published_at = UTC_TIMESTAMP(6), lease_owner = NULL, lease_until = NULL \
             WHERE status = 'PENDING' AND id IN ({list})"
        ))
        .await?;
    }
    Ok(started.elapsed())
}

/// One drain and its limit, in rows per second.
struct Drained {
    relay: f64,
    raw: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: usize = env("BENCH_ROWS", 100_000);
    let keys: usize = env("BENCH_KEYS", 100);
    let runs: usize = env("BENCH_RUNS", 3);
    let rate: u64 = env("BENCH_RATE", 1_000);
    let seconds: u64 = env("BENCH_SECONDS", 10);

    let (mut settings, scratch) = Scratch::settings().await?;
    settings.kafka.bootstrap_servers = None;

    // Migrates the fresh database.
    start(&settings, false).await?.stop().await?;
    let db = Database::connect(settings.database.url.expose()).await?;
    let phases = std::env::var("BENCH_PHASES").unwrap_or_else(|_| "steady,drain".into());
    let (mut steady_one, mut steady_many) = (None, None);
    let (mut drained_one, mut drained_many): (Vec<Drained>, Vec<Drained>) =
        (Vec::new(), Vec::new());
    if phases.contains("steady") {
        steady_one = Some(steady_load(&settings, &db, rate, seconds, 1).await?);
        steady_many = Some(steady_load(&settings, &db, rate, seconds, keys).await?);
    }
    if phases.contains("drain") {
        // Interleaved, so a slow spell of the machine lands on the relay and on its limit alike.
        for _ in 0..runs {
            for (n, into) in [(1, &mut drained_one), (keys, &mut drained_many)] {
                let relay = drain(&settings, &db, rows, n).await?;
                let raw = raw_drain(&settings, &db, rows, n).await?;
                into.push(Drained {
                    relay: rows as f64 / relay.as_secs_f64(),
                    raw: rows as f64 / raw.as_secs_f64(),
                });
            }
        }
    }

    drop(db);
    scratch.drop_database().await?;

    println!("| relay benchmark | value |");
    println!("|---|---|");
    println!(
        "| machine | {}; service, MariaDB, Redis and the embedded broker on it |",
        machine()
    );
    println!(
        "| relay | {} workers, batch {}, queue {}, {} partitions |",
        settings.relay.workers,
        settings.relay.batch_size,
        settings.relay.channel_capacity,
        settings.kafka.partitions
    );
    for (what, steady) in [
        ("1 campaign", &steady_one),
        (&*format!("{keys} campaigns"), &steady_many),
    ] {
        let Some(steady) = steady else { continue };
        let lags = &steady.lags;
        println!(
            "| steady, {what}: offered / accepted | {} at {rate}/s over {:.1} s / {} |",
            steady.offered,
            steady.elapsed.as_secs_f64(),
            steady.accepted
        );
        println!(
            "| steady, {what}: commit→published lag p50 / p95 / p99 / max | {:.1} / {:.1} / {:.1} / {:.1} ms |",
            percentile(lags, 0.50),
            percentile(lags, 0.95),
            percentile(lags, 0.99),
            percentile(lags, 1.0)
        );
        println!(
            "| steady, {what}: join answer time p50 / p99 (the write path's share of the lag) | {:.1} / {:.1} ms |",
            percentile(&steady.answers, 0.50),
            percentile(&steady.answers, 0.99),
        );
    }
    for (what, drained) in [
        ("1 key", &drained_one),
        (&*format!("{keys} keys"), &drained_many),
    ] {
        if drained.is_empty() {
            continue;
        }
        let relay: Vec<f64> = drained.iter().map(|d| d.relay).collect();
        let raw: Vec<f64> = drained.iter().map(|d| d.raw).collect();
        let ratio: Vec<f64> = drained.iter().map(|d| d.relay / d.raw).collect();
        let each = |v: &[f64], digits: usize| {
            v.iter()
                .map(|x| format!("{x:.digits$}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "| drain, {rows} rows of {what}: relay rows/s, {} runs (min / median / max; each) | {} ({}) |",
            drained.len(),
            spread(&relay, 0),
            each(&relay, 0)
        );
        println!(
            "| drain, {what}: MySQL alone, the relay's statements without Kafka (rows/s) | {} ({}) |",
            spread(&raw, 0),
            each(&raw, 0)
        );
        println!(
            "| drain, {what}: relay ÷ MySQL alone, same run | {} ({}) |",
            spread(&ratio, 2),
            each(&ratio, 2)
        );
    }
    Ok(())
}
