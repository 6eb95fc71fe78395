//! Consumer benchmark (a script, not a test). Prints a table.
//!
//! 1. Backlog: BENCH_EVENTS (100,000) `ParticipationAccepted` events produced to a fresh topic,
//!    then the stats consumer started; events/s = events ÷ (first → last inbox row written), and
//!    the wall time from start (group join included). Per-campaign order is checked for every run:
//!    within a campaign, no event may be applied in an earlier transaction than an event before
//!    it (`consumer_inbox.processed_at` non-decreasing in `sequence` order). Scenarios, the real
//!    case first: one hot campaign; then BENCH_CAMPAIGNS (100) campaigns through 1 partition and
//!    through 8, with one consumer process and with two in one group.
//! 2. Latency: joins through the HTTP API at BENCH_RATE (1,000/s) for BENCH_SECONDS (10) on one
//!    campaign, relay and stats consumer running; commit → applied = the outbox row's
//!    `created_at` (inside the participation transaction) → the stats inbox row's
//!    `processed_at` (inside the consumer's transaction).
//! 3. Daily stats: BENCH_DAILY_ROWS (1,000,000) participations on one day over 100 campaigns;
//!    the aggregate query (`campaign_daily_stats`) vs the raw one (`participation`), 10 times
//!    each.
//!
//! Every measure runs BENCH_RUNS (3) times; the table gives min / median / max.
//! Run: `scripts/bench-consumers.sh` (or `cargo run --release --example consumer_bench`).
//! The embedded broker keeps ~5 MiB a partition: the backlog is produced with lz4, and a run
//! whose topic lost data (low watermark above 0) stops with an error rather than report it.

mod bench_common;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use bench_common::{
    env, fixed_rate_joins, machine, percentile, query_i64, query_i64s, spread, Scratch, TOKEN,
};
use chrono::Utc;
use firstcome::{
    campaign::repo::{self, NewCampaign},
    config::{consumers::ConsumerName, GroupProtocol, Settings},
    consumer::stats,
    events::{
        accepted::{WinStatus, PARTICIPATION_ACCEPTED},
        headers, ParticipationAccepted,
    },
    kafka::EmbeddedBroker,
    startup::Application,
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use firstcome::events::lifecycle::ParticipationMessage;

/// One backlog scenario.
struct Scenario {
    name: String,
    campaigns: usize,
    partitions: i32,
    processes: usize,
}

struct BacklogRun {
    /// events ÷ (first → last inbox row)
    rate: f64,
    /// start of the consumers → last event applied
    wall: Duration,
    /// events applied in an earlier transaction than an event of their campaign before them
    inversions: usize,
}

/// The campaign ids the backlog uses: the first `n` of the ones created up front.
async fn create_campaigns(
    db: &DatabaseConnection,
    n: usize,
    stock: i64,
) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let c = repo::insert(
            &firstcome::db::Db::new(db.clone(), std::time::Duration::from_secs(30)),
            &NewCampaign {
                name: "bench".into(),
                total_stock: stock,
                per_user_limit: 1,
                reward_points: 10,
                confirm_within_seconds: 0,
                starts_at: Utc::now(),
                ends_at: None,
                admission: firstcome::campaign::Admission::Open,
                admission_rate_per_second: 0,
                buckets: 1,
                group_id: None,
                offer_seconds: 0,
                bot_check: None,
                key: None,
            },
        )
        .await?;
        ids.push(c.campaign.id);
    }
    Ok(ids)
}

/// Produces `events` events round-robin over `campaigns`; returns (event id → (campaign,
/// sequence)).
async fn produce_backlog(
    bootstrap: &str,
    topic: &str,
    campaigns: &[i64],
    events: usize,
) -> anyhow::Result<HashMap<Uuid, (i64, i64)>> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "50")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let mut index = HashMap::with_capacity(events);
    let mut acks = Vec::with_capacity(events);
    for n in 0..events {
        let campaign_id = campaigns[n % campaigns.len()];
        let sequence = (n / campaigns.len()) as i64 + 1;
        let event = ParticipationAccepted {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_ACCEPTED.into(),
            occurred_at: Utc::now(),
            campaign_id,
            participation_id: n as i64 + 1,
            user_id: n as i64 + 1,
            quantity: 1,
            sequence,
            reward_points: 10,
            status: WinStatus::Confirmed,
            hold_expires_at: None,
            purchase_id: None,
        };
        index.insert(event.event_id, (campaign_id, sequence));
        let key = event.key();
        let value = event.json();
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(&value)
            .headers(headers::to_kafka(&event.message_headers(None), &[]));
        acks.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for ack in acks {
        ack.await?.map_err(|(e, _)| e)?;
    }
    Ok(index)
}

/// Fails when the embedded broker evicted data of `topic` (its ~5 MiB a partition cap).
async fn check_nothing_evicted(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()?;
        for p in 0..partitions {
            let (low, _) = c.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
            anyhow::ensure!(
                low == 0,
                "the embedded broker evicted {low} messages of {topic}[{p}]; use fewer BENCH_EVENTS"
            );
        }
        Ok(())
    })
    .await?
}

async fn reset_stats(db: &DatabaseConnection) -> anyhow::Result<()> {
    for table in ["consumer_inbox", "campaign_stats", "campaign_daily_stats"] {
        db.execute_unprepared(&format!("TRUNCATE TABLE {table}"))
            .await?;
    }
    Ok(())
}

async fn backlog_run(
    settings: &Settings,
    db: &DatabaseConnection,
    broker: &EmbeddedBroker,
    scenario: &Scenario,
    campaigns: &[i64],
    events: usize,
    run: usize,
) -> anyhow::Result<BacklogRun> {
    reset_stats(db).await?;
    let topic = format!(
        "bench.c{}.p{}.x{}.r{run}",
        scenario.campaigns, scenario.partitions, scenario.processes
    );
    broker
        .with_cluster(|c| c.create_topic(&topic, scenario.partitions, 1))
        .ok_or_else(|| anyhow::anyhow!("no cluster"))??;
    let bootstrap = broker.bootstrap_servers();
    let index =
        produce_backlog(bootstrap, &topic, &campaigns[..scenario.campaigns], events).await?;
    check_nothing_evicted(bootstrap, &topic, scenario.partitions).await?;

    let mut s = settings.clone();
    s.kafka.topic = topic;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let processes: Vec<_> = (0..scenario.processes)
        .map(|_| tokio::spawn(firstcome::startup::consume(s.clone(), stop.clone())))
        .collect();
    let deadline = started + Duration::from_secs(600);
    while query_i64(
        db,
        "SELECT CAST(COALESCE(SUM(accepted_count), 0) AS SIGNED) FROM campaign_stats",
    )
    .await?
        < events as i64
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the backlog was not applied in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = started.elapsed();
    stop.cancel();
    for p in processes {
        p.await??;
    }
    let span_us = query_i64(
        db,
        "SELECT TIMESTAMPDIFF(MICROSECOND, MIN(processed_at), MAX(processed_at)) FROM consumer_inbox",
    )
    .await?;
    // Per-campaign order: sequence order must never go back in processed_at.
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT event_id, TIMESTAMPDIFF(MICROSECOND, '2000-01-01', processed_at) FROM consumer_inbox",
        ))
        .await?;
    let mut applied: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for r in rows {
        let id: String = r.try_get_by_index(0)?;
        let at: i64 = r.try_get_by_index(1)?;
        let (campaign, sequence) = index[&id.parse::<Uuid>()?];
        applied.entry(campaign).or_default().push((sequence, at));
    }
    anyhow::ensure!(
        applied.values().map(Vec::len).sum::<usize>() == events,
        "not one inbox row per event"
    );
    let mut inversions = 0;
    for list in applied.values_mut() {
        list.sort_unstable();
        inversions += list.windows(2).filter(|w| w[1].1 < w[0].1).count();
    }
    Ok(BacklogRun {
        rate: events as f64 / (span_us.max(1) as f64 / 1e6),
        wall,
        inversions,
    })
}

/// Commit → applied, and its two parts: commit → published (the relay, up to Kafka's ack) and
/// published → applied (the consumer); sorted microseconds.
struct Lags {
    total: Vec<i64>,
    relay: Vec<i64>,
    consumer: Vec<i64>,
}

/// Joins at `rate`/s on one campaign through the whole service; commit → applied per win, in
/// microseconds, sorted.
async fn latency_run(
    settings: &Settings,
    db: &DatabaseConnection,
    rate: u64,
    seconds: u64,
    run: usize,
) -> anyhow::Result<(u64, Lags)> {
    reset_stats(db).await?;
    let mut s = settings.clone();
    s.relay.enabled = true;
    let app = Application::build(s).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let stop = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"name": "steady", "totalStock": 10_000_000, "rewardPoints": 1}))
        .send()
        .await?
        .json()
        .await?;
    let campaign = created["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no campaign id: {created}"))?;
    let first_user = 1_000_000 * (run as u64 + 1);
    let load = fixed_rate_joins(&base, &[campaign], rate, seconds, first_user).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while query_i64(db, "SELECT COUNT(*) FROM consumer_inbox").await? < load.accepted as i64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "wins not applied within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lag = |from: &str, to: &str| {
        format!(
            "SELECT TIMESTAMPDIFF(MICROSECOND, {from}, {to}) FROM consumer_inbox i \
             JOIN outbox_event o ON o.event_id = i.event_id ORDER BY 1"
        )
    };
    let lags = Lags {
        total: query_i64s(db, &lag("o.created_at", "i.processed_at")).await?,
        relay: query_i64s(db, &lag("o.created_at", "o.published_at")).await?,
        consumer: query_i64s(db, &lag("o.published_at", "i.processed_at")).await?,
    };
    stop.cancel();
    server.await??;
    Ok((load.accepted, lags))
}

/// `rows` participations on one day over `campaigns`, and the aggregate the stats consumer keeps
/// for them; then both daily queries, 10 times each (milliseconds).
async fn daily_queries(
    db: &DatabaseConnection,
    rows: u64,
    campaigns: &[i64],
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    db.execute_unprepared("TRUNCATE TABLE participation")
        .await?;
    db.execute_unprepared("TRUNCATE TABLE campaign_daily_stats")
        .await?;
    let digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
                  UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
    let (lo, n) = (campaigns[0], campaigns.len() as i64);
    let mut written = 0u64;
    while written < rows {
        // 100,000 rows per statement: numbers 0..99,999 from five digit tables.
        let chunk = (rows - written).min(100_000);
        db.execute_unprepared(&format!(
            "INSERT INTO participation (campaign_id, user_id, quantity, sequence, created_at) \
             SELECT {lo} + (n % {n}), {written} + n + 1, 1 + n % 3, {written} + n + 1, \
             TIMESTAMP('2026-11-20') + INTERVAL (n % 86400) SECOND \
             FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d AS n \
                   FROM {digits} a, {digits} b, {digits} c, {digits} e, {digits} f) numbers WHERE n < {chunk}"
        ))
        .await?;
        written += chunk;
    }
    db.execute_unprepared(
        "INSERT INTO campaign_daily_stats (campaign_id, day, accepted_count, accepted_quantity, \
         confirmed_count) SELECT campaign_id, DATE(created_at), COUNT(*), SUM(quantity), COUNT(*) \
         FROM participation GROUP BY 1, 2",
    )
    .await?;
    let day =
        chrono::NaiveDate::from_ymd_opt(2026, 11, 20).ok_or_else(|| anyhow::anyhow!("date"))?;
    let (mut aggregated, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let t = Instant::now();
        let a = stats::daily(db, day, day).await?;
        aggregated.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let r = stats::daily_raw(db, day, day).await?;
        raw.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(a == r, "the aggregate and the raw figures differ");
    }
    Ok((aggregated, raw))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: usize = env("BENCH_EVENTS", 100_000);
    let many: usize = env("BENCH_CAMPAIGNS", 100);
    let runs: usize = env("BENCH_RUNS", 3);
    let rate: u64 = env("BENCH_RATE", 1_000);
    let seconds: u64 = env("BENCH_SECONDS", 10);
    let daily_rows: u64 = env("BENCH_DAILY_ROWS", 1_000_000);

    let (mut settings, scratch) = Scratch::settings().await?;
    firstcome::startup::migrate(&settings.database).await?;
    let db = Database::connect(settings.database.url.expose()).await?;
    let broker = EmbeddedBroker::start::<&str>(&[], 8)?;
    settings.kafka.bootstrap_servers = Some(broker.bootstrap_servers().to_string());
    settings.kafka.partitions = 8;
    settings.consumers.enabled = vec![ConsumerName::Stats];
    settings.consumers.group_protocol = Some(GroupProtocol::Consumer);
    settings.migrate_on_start = false;
    // The embedded broker holds every fetch for fetch.wait.max.ms (a real broker answers when
    // data arrives); the service uses 10 ms with it, and so does this external use of it.
    settings.consumers.fetch_wait = Some(Duration::from_millis(10));
    broker
        .with_cluster(|c| c.create_topic(&settings.kafka.topic, 8, 1))
        .ok_or_else(|| anyhow::anyhow!("no cluster"))??;

    let campaigns = create_campaigns(&db, many.max(1), (events / many.max(1)) as i64).await?;
    let hot = create_campaigns(&db, 1, events as i64).await?;
    let scenarios = [
        Scenario {
            name: "1 campaign, 8 partitions, 1 process".into(),
            campaigns: 1,
            partitions: 8,
            processes: 1,
        },
        Scenario {
            name: format!("{many} campaigns, 1 partition, 1 process"),
            campaigns: many,
            partitions: 1,
            processes: 1,
        },
        Scenario {
            name: format!("{many} campaigns, 8 partitions, 1 process"),
            campaigns: many,
            partitions: 8,
            processes: 1,
        },
        Scenario {
            name: format!("{many} campaigns, 8 partitions, 2 processes"),
            campaigns: many,
            partitions: 8,
            processes: 2,
        },
    ];
    let mut backlog = Vec::new();
    for scenario in &scenarios {
        let ids = if scenario.campaigns == 1 {
            &hot
        } else {
            &campaigns
        };
        let mut results = Vec::new();
        for run in 0..runs {
            let r = backlog_run(&settings, &db, &broker, scenario, ids, events, run).await?;
            eprintln!(
                "{}: run {run}: {:.0} events/s, {:.2} s wall, {} inversions",
                scenario.name,
                r.rate,
                r.wall.as_secs_f64(),
                r.inversions
            );
            results.push(r);
        }
        backlog.push(results);
    }

    let mut latency = Vec::new();
    for run in 0..runs {
        let (accepted, lags) = latency_run(&settings, &db, rate, seconds, run).await?;
        eprintln!(
            "latency run {run}: {accepted} wins, p50 {:.1} ms, p99 {:.1} ms (relay p99 {:.1}, consumer p99 {:.1})",
            percentile(&lags.total, 0.5),
            percentile(&lags.total, 0.99),
            percentile(&lags.relay, 0.99),
            percentile(&lags.consumer, 0.99)
        );
        latency.push((accepted, lags));
    }
    let (aggregated, raw) = daily_queries(&db, daily_rows, &campaigns).await?;
    drop(db);
    scratch.drop_database().await?;

    println!("| consumer benchmark (min / median / max of {runs} runs) | value |");
    println!("|---|---|");
    println!(
        "| machine | {}; MariaDB, the embedded broker and the consumers on it |",
        machine()
    );
    println!(
        "| consumer | stats, batch {}, commit every {} ms |",
        settings.consumers.batch_size,
        settings.consumers.commit_interval.as_millis()
    );
    for (scenario, results) in scenarios.iter().zip(&backlog) {
        let rates: Vec<f64> = results.iter().map(|r| r.rate).collect();
        let walls: Vec<f64> = results.iter().map(|r| r.wall.as_secs_f64()).collect();
        let inversions: usize = results.iter().map(|r| r.inversions).sum();
        println!(
            "| backlog of {events}, {}: events/s applied / wall time incl. group join / per-campaign order inversions | {} / {} s / {inversions} |",
            scenario.name,
            spread(&rates, 0),
            spread(&walls, 2)
        );
    }
    let p50: Vec<f64> = latency
        .iter()
        .map(|(_, l)| percentile(&l.total, 0.5))
        .collect();
    let p99: Vec<f64> = latency
        .iter()
        .map(|(_, l)| percentile(&l.total, 0.99))
        .collect();
    let relay99: Vec<f64> = latency
        .iter()
        .map(|(_, l)| percentile(&l.relay, 0.99))
        .collect();
    let consumer99: Vec<f64> = latency
        .iter()
        .map(|(_, l)| percentile(&l.consumer, 0.99))
        .collect();
    let accepted: Vec<f64> = latency.iter().map(|(a, _)| *a as f64).collect();
    println!(
        "| steady {rate} wins/s for {seconds} s, 1 campaign: wins / commit→applied p50 / p99 | {} / {} ms / {} ms |",
        spread(&accepted, 0),
        spread(&p50, 1),
        spread(&p99, 1)
    );
    println!(
        "| … of which commit→published (relay) p99 / published→applied (consumer) p99 | {} ms / {} ms |",
        spread(&relay99, 1),
        spread(&consumer99, 1)
    );
    println!(
        "| daily stats, {daily_rows} participations on one day: aggregated / raw query (10 runs) | {} ms / {} ms |",
        spread(&aggregated, 2),
        spread(&raw, 1)
    );
    Ok(())
}
