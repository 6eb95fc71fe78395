//! `firstcome-proof`, the harness behind `firstcome-proof run` (issue 38): starts what a sale needs, runs the
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
//!   ports, at the service's production defaults unless `--fast-timeouts` ([`timeouts`]).
//!
//! Then the campaigns ([`campaigns`]: open ones with per-user limits of 1 and more, one split
//! into buckets (design §21) and one with a waiting room), the clients ([`workload`], [`waiting_room`]),
//! the burst on a bucketed campaign ([`burst`]) and the nemesis ([`nemesis`],
//! [`failover`]) for `--duration`; then the faults are healed, the system settles ([`settle`]),
//! the final state is taken ([`capture`]), everything started is stopped, and the checker judges
//! `history.jsonl` and `final.json` in the output directory, told the instances' bounds; a join
//! of a failover's burst answered past the request deadline fails the run too. Every child is
//! killed when the run ends, fails, panics or is interrupted.
//!
//! The harness talks to the service only over HTTP, reads MySQL, Redis and the topic only to
//! settle and take the final state, and touches processes only to inject faults.

// The specification, judged by the same names the harness was written against.
pub use firstcome_proof_spec::{check, event, final_state, history, model, report};

pub mod broker;
mod burst;
mod campaigns;
mod capture;
mod carts;
mod commit_watch;
mod failover;
mod learn;
mod mix;
pub mod nemesis;
mod options;
mod procs;
mod proxy;
mod recorder;
mod redis_server;
mod request;
mod service;
mod settle;
mod slots;
mod system;
mod timeouts;
mod topic_tail;
mod waiting_room;
pub mod workload;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;

use crate::{check::Options, model::ModelParams};

use self::{
    mix::Mix,
    nemesis::{Injected, Targets},
    options::service_binary,
    recorder::Recorder,
    system::{start, System},
    timeouts::Timeouts,
    workload::{Plan, Shared, WorkloadParams},
};

pub use self::options::RunOptions;

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

/// What the run decided before anything started.
struct Prepared {
    seed: u64,
    mix: Mix,
    faults: Vec<String>,
    out: PathBuf,
    binary: PathBuf,
    timeouts: Timeouts,
}

fn prepare(opts: &RunOptions) -> anyhow::Result<Prepared> {
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
    let mut faults: Vec<String> = Vec::new();
    for f in opts.faults.iter().filter(|f| !f.trim().is_empty()) {
        let kind = nemesis::kind(f.trim());
        anyhow::ensure!(
            nemesis::KINDS.contains(&kind),
            "--faults: unknown kind {f:?} (known: {})",
            nemesis::KINDS.join(", ")
        );
        faults.push(kind.to_owned());
    }
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("target/proof/{seed}")));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let binary = service_binary(opts)?;
    let timeouts = if opts.fast_timeouts {
        Timeouts::fast(opts.sold_out_memo_ms)
    } else {
        Timeouts::production(&binary)?
    };
    Ok(Prepared {
        seed,
        mix,
        faults,
        out,
        binary,
        timeouts,
    })
}

async fn run_async(opts: RunOptions) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let p = prepare(&opts)?;
    println!(
        "firstcome-proof run: seed {}, {} s, {} + {} clients, {} + {} bucketed (of {}) + {} + {} bucketed queued campaigns of {}, {} + {} bucketed groups of {} campaigns (limit {}, stock {}), faults [{}], output {}",
        p.seed,
        opts.duration,
        opts.processes,
        opts.queue_processes,
        opts.campaigns,
        opts.bucketed_campaigns,
        opts.buckets,
        opts.queued_campaigns,
        opts.bucketed_queued_campaigns,
        opts.stock,
        opts.groups,
        opts.bucketed_groups,
        opts.group_campaigns,
        opts.group_limit,
        opts.group_stock,
        p.faults.join(","),
        p.out.display()
    );
    println!(
        "instances: {}, GROUP_COMMIT_BUCKET_LANES {}; burst: {} users, {} at once, on {} units in {} buckets",
        p.timeouts.describe(),
        opts.bucket_lanes,
        opts.burst_users.max(0),
        opts.burst_concurrency,
        opts.burst_stock,
        opts.burst_buckets
    );
    let (mut system, targets) = start(&opts, &p).await?;
    let (http, base, token) = (&system.http, &system.bases[0], &system.admin_token);
    let mut created = campaigns::create_all(http, base, token, &opts).await?;
    let burst = campaigns::create_burst(http, base, token, &opts).await?;
    let mut slots = slots::of_campaigns(
        (created.plans.iter()).map(|(id, plan)| (*id, plan.buckets, created.group_of(plan))),
    );
    // The burst's campaign is settled and captured, but no other client touches it.
    let burst = burst.map(|(campaign, plan)| {
        slots.extend(slots::of_campaigns([(campaign, plan.buckets, None)]));
        created.initial.insert(campaign, opts.burst_stock);
        burst::Burst {
            campaign,
            users: opts.burst_users,
            concurrency: opts.burst_concurrency,
            timeout: Duration::from_millis(p.timeouts.request_ms.saturating_add(2_000)),
        }
    });
    let (plans, initial, groups) = (created.plans, created.initial, created.groups);
    let targets = Arc::new(targets);
    let injected = drive(&opts, &p, &system, targets.clone(), (plans, groups, burst)).await?;
    let final_path = settle_and_capture(&opts, &p.out, &mut system, &slots, &initial).await?;

    // Stop what was started (Drop would kill; this lets the instances shut down cleanly).
    for instance in &targets.instances {
        let grace = p.timeouts.shutdown_grace();
        instance.lock().await.terminate(grace).await;
    }
    drop(targets);
    system.pool.close().await;
    system.db_guard.drop_now().await;

    let code = judge(
        &opts,
        &p,
        &final_path,
        (&injected, burst.map(|b| b.campaign)),
    )?;
    println!("run took {:.1} s", started.elapsed().as_secs_f64());
    Ok(code)
}

/// Runs the clients, the waiting room's clients and the nemesis for `--duration`.
async fn drive(
    opts: &RunOptions,
    p: &Prepared,
    system: &System,
    targets: Arc<Targets>,
    (plans, groups, burst): (Vec<(i64, Plan)>, Vec<i64>, Option<burst::Burst>),
) -> anyhow::Result<Injected> {
    let recorder = Arc::new(Recorder::create(&p.out.join("history.jsonl"))?);
    let shared = Arc::new(
        Shared::new(system.bases.clone(), system.admin_token.clone(), plans).with_groups(groups),
    );
    let params = Arc::new(WorkloadParams {
        processes: opts.processes,
        users: opts.users,
        mix: p.mix,
        timeout: Duration::from_millis(opts.timeout_ms),
        think: Duration::from_millis(opts.think_ms),
        idempotency_share: opts.idempotency_share.clamp(0.0, 1.0),
        over_limit_share: opts.over_limit_share.clamp(0.0, 1.0),
        poll_every: Duration::from_millis(opts.poll_ms.max(10)),
        patience: Duration::from_secs(opts.queue_patience),
        close_after: 0.6,
        cart_share: opts.cart_share.clamp(0.0, 1.0),
        group_users: opts.group_users.clamp(1, opts.users.max(1)),
        seed: p.seed,
    });
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(opts.duration);
    let mut clients = tokio::task::JoinSet::new();
    let (sale, room) = (opts.processes as u64, opts.queue_processes as u64);
    for id in 0..sale + room {
        let args = (
            params.clone(),
            shared.clone(),
            recorder.clone(),
            system.http.clone(),
        );
        if id < sale {
            clients.spawn(workload::process(
                id, args.0, args.1, args.2, args.3, t0, until,
            ));
        } else {
            clients.spawn(waiting_room::process(
                id, args.0, args.1, args.2, args.3, t0, until,
            ));
        }
    }
    let burst = burst.map(|b| {
        let args = (params.clone(), shared.clone(), recorder.clone());
        tokio::spawn(burst::run(b, args.0, args.1, args.2, system.http.clone()))
    });
    let nemesis = tokio::spawn(nemesis::run(
        p.faults.clone(),
        params.clone(),
        until,
        targets,
        shared.clone(),
        recorder.clone(),
    ));
    let progress = tokio::spawn(progress(recorder.clone(), t0));
    while clients.join_next().await.is_some() {}
    if let Some(burst) = burst {
        let took = burst.await.context("the burst panicked")?;
        println!("burst done in {:.1} s", took.as_secs_f64());
    }
    let injected = nemesis.await.context("the nemesis panicked")??;
    progress.abort();
    recorder.finish()?;
    println!(
        "workload done in {:.1} s: {} operations, {} faults",
        t0.elapsed().as_secs_f64(),
        recorder.completed(),
        injected.faults
    );
    Ok(injected)
}

/// Waits until the system settles, then takes the final state; returns where it was written.
async fn settle_and_capture(
    opts: &RunOptions,
    out: &Path,
    system: &mut System,
    slots: &[slots::Slot],
    initial: &HashMap<i64, i64>,
) -> anyhow::Result<PathBuf> {
    let settled = settle::wait(
        &system.pool,
        &system.redis_url,
        &system.prefix,
        slots,
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
    let topic_tail = system
        .topic_tail
        .take()
        .context("the topic was read already")?;
    println!(
        "topic: {} record(s) read while the run went on",
        topic_tail.records_read()
    );
    let (state, notes) = capture::take(
        &system.pool,
        &system.redis_url,
        &system.prefix,
        topic_tail,
        initial,
    )
    .await?;
    for note in &notes {
        println!("final state: {note}");
    }
    let final_path = out.join("final.json");
    std::fs::write(&final_path, serde_json::to_vec_pretty(&state)?)
        .with_context(|| format!("writing {}", final_path.display()))?;
    Ok(final_path)
}

/// The checker on the recorded files, told the instances' bounds; and the failovers' bounded
/// waits. Exit 1 on any anomaly or a join the service left unanswered past its deadline.
fn judge(
    opts: &RunOptions,
    p: &Prepared,
    final_path: &Path,
    (injected, burst): (&Injected, Option<i64>),
) -> anyhow::Result<ExitCode> {
    let history_path = p.out.join("history.jsonl");
    let h = history::read(std::io::BufReader::new(std::fs::File::open(&history_path)?))
        .with_context(|| format!("reading {}", history_path.display()))?;
    let (s, buckets, groups) =
        final_state::read_all(std::io::BufReader::new(std::fs::File::open(final_path)?))?;
    let t = &p.timeouts;
    let ms = |v: u64| i64::try_from(v.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    // The instances' own bounds; the contract's (a commit in doubt settled 2 s after MySQL
    // answers again, …) are the checker's defaults.
    let check_opts = Options {
        sold_out_memo: ms(t.sold_out_memo_ms),
        lookback: ms(opts.lookback_ms),
        reservation_timeout: ms(t.reservation_ms),
        request_timeout: ms(t.request_ms),
        model: ModelParams {
            deadline_tolerance: chrono::Duration::milliseconds(opts.deadline_tolerance_ms),
            control_grace: chrono::Duration::milliseconds(opts.control_grace_ms),
        },
        ..Options::default()
    };
    let report = check::check_all(&h, &s, &buckets, &groups, &check_opts);
    std::fs::write(
        p.out.join("report.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    print!("{}", report.render(opts.details));
    if let Some(campaign) = burst {
        println!("{}", burst::Tail::of(&h, campaign).describe(campaign));
    }
    let late: usize = injected.failovers.iter().map(|f| f.late).sum();
    for (i, f) in injected.failovers.iter().enumerate() {
        println!("mysql failover {}: {}", i + 1, f.describe());
    }
    if late > 0 {
        println!(
            "BOUNDED WAITS BROKEN: {late} join(s) of the failover bursts got no answer within \
             HTTP_REQUEST_TIMEOUT_MS ({} ms) + {} ms",
            t.request_ms,
            failover::SLACK.as_millis()
        );
    }
    println!(
        "files in {} (re-check: firstcome-proof check {} {} --sold-out-memo-ms {} \
         --reservation-timeout-ms {} --request-timeout-ms {} --lookback-ms {})",
        p.out.display(),
        history_path.display(),
        final_path.display(),
        t.sold_out_memo_ms,
        t.reservation_ms,
        t.request_ms,
        opts.lookback_ms,
    );
    Ok(if report.is_clean() && late == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
