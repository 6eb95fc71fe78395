//! Relay benchmark (a script, not a test): drains pending outbox rows to the embedded broker and
//! measures the commit→ack lag under a steady participation load. Prints a table.
//!
//! Run: `scripts/bench-relay.sh` (or `cargo run --release --example relay_bench`).
//! Environment: BENCH_ROWS (100000), BENCH_KEYS (100), BENCH_RATE (participations/s, 1000),
//! BENCH_SECONDS (10), plus the service's own variables (DATABASE_URL's server is used for a
//! throw-away database `test_bench_<uuid>`; RELAY_* and KAFKA_* knobs apply).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use firstcome::{config::Settings, startup::Application};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::MySql, sql))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    Ok(row.try_get_by_index::<Option<i64>>(0)?.unwrap_or(0))
}

async fn wait_drained(db: &DatabaseConnection, timeout: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while scalar(
        db,
        "SELECT COUNT(*) FROM outbox_event WHERE status = 'PENDING'",
    )
    .await?
        > 0
    {
        anyhow::ensure!(
            started.elapsed() < timeout,
            "not drained within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: usize = env("BENCH_ROWS", 100_000);
    let keys: usize = env("BENCH_KEYS", 100);
    let rate: u64 = env("BENCH_RATE", 1_000);
    let seconds: u64 = env("BENCH_SECONDS", 10);

    let mut settings = Settings::from_env()?;
    let server = settings
        .database
        .url
        .expose()
        .rsplit_once('/')
        .map(|(server, _)| server.to_string())
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL has no database part"))?;
    let name = format!("test_bench_{}", uuid::Uuid::now_v7().simple());
    let admin = Database::connect(server.as_str()).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE `{name}`"))
        .await?;
    settings.database.url = firstcome::config::Secret::new(format!("{server}/{name}"));
    settings.http.addr = "127.0.0.1:0".parse()?;
    settings.redis.key_prefix = format!("bench:{}:", uuid::Uuid::now_v7().simple());
    settings.admin_token = Some(firstcome::config::Secret::new(
        "bench-admin-token-0123456789",
    ));
    settings.kafka.bootstrap_servers = None;

    // Phase 1: pending rows written without a relay, then a relay started to drain them.
    let mut writer_settings = settings.clone();
    writer_settings.relay.enabled = false;
    let writer = Application::build(writer_settings).await?;
    drop(writer);
    let db = Database::connect(settings.database.url.expose()).await?;
    let payload_pad = "x".repeat(120);
    let mut id = 0usize;
    while id < rows {
        let chunk = (rows - id).min(1_000);
        let mut sql = String::from(
            "INSERT INTO outbox_event (event_id, aggregate_type, aggregate_id, event_type, topic, msg_key, payload, \
             headers, status, attempts, available_at, created_at) VALUES ",
        );
        for i in 0..chunk {
            let n = id + i;
            let event_id = uuid::Uuid::now_v7();
            let key = n % keys + 1;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('{event_id}','participation','{n}','ParticipationAccepted','{topic}','{key}',\
                 '{{\"eventId\":\"{event_id}\",\"eventType\":\"ParticipationAccepted\",\"campaignId\":{key},\
                 \"participationId\":{n},\"userId\":{n},\"quantity\":1,\"sequence\":{n},\"pad\":\"{payload_pad}\"}}',\
                 '{{\"event_id\":\"{event_id}\",\"event_type\":\"ParticipationAccepted\",\"content-type\":\"application/json\"}}',\
                 'PENDING',0,UTC_TIMESTAMP(6),UTC_TIMESTAMP(6))",
                topic = settings.kafka.topic
            ));
        }
        db.execute_unprepared(&sql).await?;
        id += chunk;
    }

    let mut relay_settings = settings.clone();
    relay_settings.relay.enabled = true;
    let started = Instant::now();
    let app = Application::build(relay_settings).await?;
    let port = app.port();
    let stop = app.shutdown_token();
    let server_task = tokio::spawn(app.run_until_stopped());
    wait_drained(&db, Duration::from_secs(600)).await?;
    let drain = started.elapsed();
    let published = scalar(
        &db,
        "SELECT COUNT(*) FROM outbox_event WHERE status = 'PUBLISHED'",
    )
    .await?;
    anyhow::ensure!(
        published as usize == rows,
        "published {published} of {rows}"
    );

    // Phase 2: a steady participation load through the HTTP API; lag = commit → row marked
    // PUBLISHED after Kafka's ack (an upper bound of commit→ack).
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let created: serde_json::Value = client
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth("bench-admin-token-0123456789")
        .json(&serde_json::json!({"name": "steady", "totalStock": 10_000_000}))
        .send()
        .await?
        .json()
        .await?;
    let campaign = created["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no campaign id: {created}"))?;
    let total = rate * seconds;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let client = Arc::new(client);
    let mut requests = tokio::task::JoinSet::new();
    let load_started = Instant::now();
    for user in 1..=total {
        tick.tick().await;
        let client = client.clone();
        let url = format!("{base}/api/v1/campaigns/{campaign}/participations");
        requests.spawn(async move {
            client
                .post(url)
                .json(&serde_json::json!({"userId": user}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
    }
    let mut accepted = 0u64;
    while let Some(done) = requests.join_next().await {
        if matches!(done, Ok(Ok(201))) {
            accepted += 1;
        }
    }
    let offered = load_started.elapsed();
    wait_drained(&db, Duration::from_secs(120)).await?;
    let lags = db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!(
                "SELECT TIMESTAMPDIFF(MICROSECOND, created_at, published_at) FROM outbox_event \
                 WHERE msg_key = '{campaign}' AND status = 'PUBLISHED' ORDER BY 1"
            ),
        ))
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<i64>(0))
        .collect::<Result<Vec<_>, _>>()?;
    let pct = |p: f64| -> f64 {
        if lags.is_empty() {
            return f64::NAN;
        }
        let i = ((lags.len() as f64 - 1.0) * p).round() as usize;
        lags[i] as f64 / 1_000.0
    };

    stop.cancel();
    server_task.await??;
    admin
        .execute_unprepared(&format!("DROP DATABASE `{name}`"))
        .await?;

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!("| relay benchmark | value |");
    println!("|---|---|");
    println!(
        "| machine | {} cores, {cpu} |",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| relay | {} workers, batch {}, {} partitions |",
        settings.relay.workers, settings.relay.batch_size, settings.kafka.partitions
    );
    println!("| drain: rows / keys | {rows} / {keys} |");
    println!(
        "| drain: time (incl. start-up) | {:.2} s |",
        drain.as_secs_f64()
    );
    println!(
        "| drain: throughput | {:.0} rows/s |",
        rows as f64 / drain.as_secs_f64()
    );
    println!(
        "| steady load: offered / accepted | {total} at {rate}/s over {:.1} s / {accepted} |",
        offered.as_secs_f64()
    );
    println!(
        "| steady load: commit→published lag p50 / p95 / p99 / max | {:.1} / {:.1} / {:.1} / {:.1} ms |",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}
