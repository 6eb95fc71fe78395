//! The harness behind `firstcome-proof run` (issue 38): starts what a sale needs, runs the
//! clients and the nemesis, settles, takes the final state and hands both files to the checker.
//!
//! # What runs
//!
//! - the run's own `redis-server` on a free port ([`redis_server`]), so Redis can be flushed,
//!   hung and restarted without touching anyone else's;
//! - the Kafka broker, librdkafka's mock cluster in a child process of this binary
//!   (`firstcome-proof broker`, [`broker`]), so it can be stopped;
//! - a TCP proxy in front of MySQL ([`proxy`]), so MySQL can be black-holed and reset; MySQL
//!   itself is the test suite's (`TEST_DATABASE_URL`), in a database of the run's own,
//!   `test_proof_<uuid>`, dropped at the end unless `--keep-db`;
//! - two instances of the real `firstcome` binary ([`service`]), child processes on loopback
//!   ports.
//!
//! Then the clients ([`workload`]) and the nemesis ([`nemesis`]) for `--duration`; then the
//! faults are healed, the system settles ([`settle`]), the final state is taken ([`capture`]),
//! everything started is stopped, and the checker judges `history.jsonl` and `final.json` in the
//! output directory. Every child is killed when the run ends, fails, panics or is interrupted.
//!
//! The harness talks to the service only over HTTP, reads MySQL, Redis and the topic only to
//! settle and take the final state, and touches processes only to inject faults.

pub mod broker;
mod capture;
pub mod nemesis;
mod procs;
mod proxy;
mod recorder;
mod redis_server;
mod service;
mod settle;
mod topic_tail;
pub mod workload;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{AssertSqlSafe, MySqlPool};

use crate::check::{self, Options};
use crate::model::ModelParams;
use crate::{final_state, history};

use self::nemesis::Targets;
use self::recorder::Recorder;
use self::service::{Instance, ServiceEnv};
use self::workload::{Mix, Shared, WorkloadParams};

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
    /// Logical clients (one operation at a time each).
    #[arg(long, default_value_t = 12)]
    pub processes: usize,
    #[arg(long, default_value_t = 3)]
    pub campaigns: usize,
    /// Initial stock of each campaign.
    #[arg(long, default_value_t = 40)]
    pub stock: i64,
    /// Users are drawn from 1..=users.
    #[arg(long, default_value_t = 2_000)]
    pub users: i64,
    /// The campaigns' `confirmWithinSeconds` (holds left unconfirmed expire after it).
    #[arg(long, default_value_t = 3)]
    pub confirm_within: i64,
    /// The campaigns' `perUserLimit`: joins ask 1, or up to this.
    #[arg(long, default_value_t = 2)]
    pub max_quantity: i64,
    #[arg(long, default_value_t = 5)]
    pub reward_points: i64,
    /// Operation weights, `join=700,confirm=140,cancel=50,refund=40,stock=40,pause=8,resume=20,close=2`.
    #[arg(long, default_value = "")]
    pub mix: String,
    /// Share of joins with an Idempotency-Key (retried with it after a timeout).
    #[arg(long, default_value_t = 0.3)]
    pub idempotency_share: f64,
    /// Client timeout per request, ms: shorter than the service's 2 s, so some end `info`.
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
    /// The instances' SOLD_OUT_MEMO_MS, passed to the checker as its relaxation.
    #[arg(long, default_value_t = 100)]
    pub sold_out_memo_ms: u64,
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

pub fn run(opts: RunOptions) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        tokio::select! {
            result = run_async(opts) => result,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; every child process is stopped"),
        }
    })
}

fn service_binary(opts: &RunOptions) -> anyhow::Result<PathBuf> {
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
fn split_mysql_url(url: &str) -> anyhow::Result<(String, String)> {
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

async fn run_async(opts: RunOptions) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let seed = opts.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            % 1_000_000_000
    });
    let mix: Mix = opts
        .mix
        .parse()
        .map_err(|e| anyhow::anyhow!("--mix: {e}"))?;
    let faults: Vec<String> = opts
        .faults
        .iter()
        .filter(|f| !f.trim().is_empty())
        .cloned()
        .collect();
    for f in &faults {
        anyhow::ensure!(
            nemesis::KINDS.contains(&f.as_str()),
            "--faults: unknown kind {f:?} (known: {})",
            nemesis::KINDS.join(", ")
        );
    }
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("target/proof/{seed}")));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let binary = service_binary(&opts)?;
    println!(
        "firstcome-proof run: seed {seed}, {} s, {} clients, {} campaigns of {}, faults [{}], output {}",
        opts.duration,
        opts.processes,
        opts.campaigns,
        opts.stock,
        faults.join(","),
        out.display()
    );

    // The database.
    let (server_url, mysql_addr) = split_mysql_url(&opts.database_url)?;
    // `test_` because the suite's MySQL user may create only those (scripts/test-services.sh).
    let db = format!("test_proof_{}", uuid::Uuid::now_v7().simple());
    let admin = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&server_url)
        .await
        .context("connecting to MySQL (TEST_DATABASE_URL)")?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE `{db}`")))
        .execute(&admin)
        .await
        .context("creating the run's database")?;
    println!("database {db}");
    let db_guard = DropDatabase {
        admin: admin.clone(),
        name: db.clone(),
        keep: opts.keep_db,
    };
    let pool = MySqlPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&format!("{server_url}/{db}"))
        .await
        .context("connecting to the run's database")?;

    // Redis, the broker, the proxy, the instances.
    let redis = redis_server::RedisServer::start(&opts.redis_server, &out).await?;
    let redis_url = redis.url();
    let broker = broker::Broker::start(opts.partitions, &opts.topic)?;
    let bootstrap = broker.bootstrap.clone();
    // Read from now on: the mock broker evicts a partition's oldest records past ~5 MiB.
    let topic_tail = topic_tail::TopicTail::start(&bootstrap, &opts.topic)?;
    let proxy = proxy::Proxy::start(mysql_addr.clone()).await?;
    let proxied = server_url.replacen(&mysql_addr, &format!("127.0.0.1:{}", proxy.port), 1);
    let prefix = "proof:".to_owned();
    // 32 random bytes in hex, as the admin-token rule asks (16 could fall short of 12 distinct).
    let admin_token = format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    );
    let env = ServiceEnv {
        binary,
        database_url: format!("{proxied}/{db}"),
        redis_url: redis_url.clone(),
        redis_prefix: prefix.clone(),
        bootstrap: bootstrap.clone(),
        admin_token: admin_token.clone(),
        admission_secret: format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        ),
        sold_out_memo_ms: opts.sold_out_memo_ms,
        group_protocol: opts.group_protocol.clone(),
        planted_bug: opts.planted_bug.clone(),
        log_dir: out.clone(),
    };
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let mut instances = Vec::new();
    for (i, name) in ["instance-1", "instance-2"].iter().enumerate() {
        let mut instance = Instance::new(name, env.clone())?;
        instance.start(i == 0, &http).await?;
        println!("{name} ready at {}", instance.base());
        instances.push(instance);
    }
    let bases: Vec<String> = instances.iter().map(Instance::base).collect();

    // The campaigns.
    let mut campaigns: HashMap<i64, i64> = HashMap::new();
    let mut ids = Vec::new();
    for n in 0..opts.campaigns {
        let id = create_campaign(&http, &bases[0], &admin_token, &opts, n).await?;
        campaigns.insert(id, opts.stock);
        ids.push(id);
    }

    // Clients and nemesis.
    let recorder = Arc::new(Recorder::create(&out.join("history.jsonl"))?);
    let shared = Arc::new(Shared::new(bases, admin_token.clone(), ids.clone()));
    let targets = Arc::new(Targets {
        instances: instances.into_iter().map(tokio::sync::Mutex::new).collect(),
        redis: tokio::sync::Mutex::new(redis),
        broker: tokio::sync::Mutex::new(broker),
        proxy,
        http: http.clone(),
    });
    let params = Arc::new(WorkloadParams {
        processes: opts.processes,
        users: opts.users,
        mix,
        timeout: Duration::from_millis(opts.timeout_ms),
        think: Duration::from_millis(opts.think_ms),
        idempotency_share: opts.idempotency_share.clamp(0.0, 1.0),
        max_quantity: opts.max_quantity.max(1),
        close_after: 0.6,
        seed,
    });
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(opts.duration);
    let mut clients = tokio::task::JoinSet::new();
    for p in 0..params.processes {
        clients.spawn(workload::process(
            p as u64,
            params.clone(),
            shared.clone(),
            recorder.clone(),
            http.clone(),
            t0,
            until,
        ));
    }
    let nemesis = tokio::spawn(nemesis::run(
        faults,
        seed,
        until,
        targets.clone(),
        shared.clone(),
        recorder.clone(),
    ));
    let progress = tokio::spawn(progress(recorder.clone(), t0));
    while clients.join_next().await.is_some() {}
    let injected = nemesis.await.context("the nemesis panicked")??;
    progress.abort();
    recorder.finish()?;
    println!(
        "workload done in {:.1} s: {} operations, {injected} faults",
        t0.elapsed().as_secs_f64(),
        recorder.completed()
    );

    // Settle, then the final state.
    let settled = settle::wait(
        &pool,
        &redis_url,
        &prefix,
        &ids,
        Duration::from_secs(opts.settle_timeout),
    )
    .await;
    let secs = |d: Option<Duration>| {
        d.map(|d| format!("{:.1} s", d.as_secs_f64()))
            .unwrap_or_else(|| "not reached".to_owned())
    };
    println!(
        "settled: holds resolved after {}, outbox drained after {}; consumers applied every event {} after the outbox drained; {} DEAD row(s)",
        secs(settled.holds_resolved),
        secs(settled.outbox_drained),
        secs(settled.consumers_after_drain),
        settled.dead_rows
    );
    if !settled.is_settled() {
        println!(
            "NOT SETTLED within {} s: {}",
            opts.settle_timeout,
            settled.waiting_for.join("; ")
        );
    }
    println!(
        "topic: {} record(s) read while the run went on",
        topic_tail.records_read()
    );
    let (state, notes) = capture::take(&pool, &redis_url, &prefix, topic_tail, &campaigns).await?;
    for note in &notes {
        println!("final state: {note}");
    }
    let final_path = out.join("final.json");
    std::fs::write(&final_path, serde_json::to_vec_pretty(&state)?)
        .with_context(|| format!("writing {}", final_path.display()))?;

    // Stop what was started (Drop would kill; this lets the instances shut down cleanly).
    for instance in &targets.instances {
        instance
            .lock()
            .await
            .terminate(Duration::from_secs(10))
            .await;
    }
    drop(targets);
    pool.close().await;
    db_guard.drop_now().await;

    // Check.
    let history_path = out.join("history.jsonl");
    let h = history::read(std::io::BufReader::new(std::fs::File::open(&history_path)?))
        .with_context(|| format!("reading {}", history_path.display()))?;
    let s = final_state::read(std::io::BufReader::new(std::fs::File::open(&final_path)?))?;
    let ms = |v: u64| i64::try_from(v.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    let check_opts = Options {
        sold_out_memo: ms(opts.sold_out_memo_ms),
        lookback: ms(opts.lookback_ms),
        reservation_timeout: ms(service::RESERVATION_TIMEOUT_MS),
        model: ModelParams {
            deadline_tolerance: chrono::Duration::milliseconds(opts.deadline_tolerance_ms),
            control_grace: chrono::Duration::milliseconds(opts.control_grace_ms),
        },
    };
    let report = check::check(&h, &s, &check_opts);
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    print!("{}", report.render(opts.details));
    println!(
        "run took {:.1} s; files in {} (re-check: firstcome-proof check {} {} --sold-out-memo-ms {} \
         --reservation-timeout-ms {})",
        started.elapsed().as_secs_f64(),
        out.display(),
        history_path.display(),
        final_path.display(),
        opts.sold_out_memo_ms,
        service::RESERVATION_TIMEOUT_MS
    );
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn create_campaign(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    opts: &RunOptions,
    n: usize,
) -> anyhow::Result<i64> {
    let response = http
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth(token)
        .json(&json!({
            "name": format!("proof {n}"),
            "totalStock": opts.stock,
            "perUserLimit": opts.max_quantity.max(1),
            "rewardPoints": opts.reward_points,
            "confirmWithinSeconds": opts.confirm_within,
        }))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .context("creating a campaign")?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "creating a campaign: {status} {body}");
    body.get("id")
        .and_then(serde_json::Value::as_i64)
        .context("the created campaign has no id")
}

async fn progress(recorder: Arc<Recorder>, t0: Instant) {
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let done = recorder.completed();
        let o = recorder.outcomes();
        let n = |k: &str| o.get(k).copied().unwrap_or(0);
        println!(
            "[{:>6.1}s] {done} ops ({:.0}/s): ok {} fail {} info {}",
            t0.elapsed().as_secs_f64(),
            (done - last) as f64 / 5.0,
            n("ok"),
            n("fail"),
            n("info")
        );
        last = done;
    }
}

/// Drops the run's database once the final state is taken, unless kept. A run that fails
/// before that leaves it (its name is printed at the start).
struct DropDatabase {
    admin: MySqlPool,
    name: String,
    keep: bool,
}

impl DropDatabase {
    async fn drop_now(self) {
        if self.keep {
            println!("database {} kept", self.name);
            return;
        }
        let _ = sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{}`",
            self.name
        )))
        .execute(&self.admin)
        .await;
    }
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
        let mix: Mix = "join=10,close=0".parse().unwrap();
        assert_eq!(
            (mix.join, mix.close, mix.confirm),
            (10, 0, Mix::default().confirm)
        );
        assert!("jump=3".parse::<Mix>().is_err());
        assert!("join".parse::<Mix>().is_err());
    }
}
