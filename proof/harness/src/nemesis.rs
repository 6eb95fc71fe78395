//! The nemesis: a seeded schedule of faults, one at a time, each healed before the next, every
//! one written to the history (`process: "nemesis"`, `phase` `start`/`stop`, or no phase for an
//! instantaneous one). The schedule goes through every kind asked for in a shuffled order, then
//! again, until the run's end; the first round is what makes a short run hit every kind once.
//!
//! | kind | what | healed by |
//! |---|---|---|
//! | `kill` | SIGKILL an instance | a restart |
//! | `stop` | SIGSTOP an instance past its relay lease | SIGCONT |
//! | `term` | SIGTERM an instance (graceful shutdown) | a restart |
//! | `broker-hang` | SIGSTOP the broker process | SIGCONT |
//! | `broker-down` | the mock broker down (connections closed and refused, data kept) | up |
//! | `redis-flush` | FLUSHALL on the run's own Redis | (instantaneous) |
//! | `redis-restart` | SIGKILL the run's Redis (no persistence: it comes back empty) | a restart |
//! | `redis-hang` | SIGSTOP the run's Redis | SIGCONT |
//! | `mysql-failover` | mid-burst, MySQL's answers lost then every byte both ways, 5–6 s ([`failover`]) | every connection reset |
//!
//! "The broker killed then restarted" is not among them: a mock cluster that is killed comes
//! back empty and on another port (the service keeps its bootstrap address), which no real
//! broker does; the topic would be lost and the final state could not be read. `broker-down`
//! is the nearest a mock broker gets. `mysql-blackhole`, the name of the MySQL fault before it
//! was timed during a burst, is read as `mysql-failover`.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use anyhow::Context;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

use super::{
    broker::Broker,
    failover::{self, Outcome},
    procs::Signal,
    proxy::Proxy,
    recorder::Recorder,
    redis_server::RedisServer,
    service::Instance,
    timeouts::Timeouts,
    workload::{Shared, WorkloadParams},
};

pub const KINDS: [&str; 9] = [
    "kill",
    "stop",
    "term",
    "broker-hang",
    "broker-down",
    "redis-flush",
    "redis-restart",
    "redis-hang",
    "mysql-failover",
];

/// A kind's current name (an older name is read as the kind it became).
pub fn kind(name: &str) -> &str {
    match name {
        "mysql-blackhole" => "mysql-failover",
        other => other,
    }
}

/// Everything the nemesis may hit.
pub struct Targets {
    pub instances: Vec<tokio::sync::Mutex<Instance>>,
    pub redis: tokio::sync::Mutex<RedisServer>,
    pub broker: tokio::sync::Mutex<Broker>,
    pub proxy: Proxy,
    pub http: reqwest::Client,
    /// The instances' timeouts: how long a SIGTERM may take, a request's deadline.
    pub timeouts: Timeouts,
}

/// What the nemesis did.
#[derive(Debug, Default)]
pub struct Injected {
    pub faults: u64,
    pub failovers: Vec<Outcome>,
}

/// A stop of an instance lasts this long: past `RELAY_LEASE_MS` (3 s), so another instance
/// takes its shards and the stopped one wakes up without them.
const STOP_FOR: Duration = Duration::from_millis(5_000);

pub async fn run(
    kinds: Vec<String>,
    params: Arc<WorkloadParams>,
    until: Instant,
    targets: Arc<Targets>,
    shared: Arc<Shared>,
    recorder: Arc<Recorder>,
) -> anyhow::Result<Injected> {
    let mut rng = StdRng::seed_from_u64(params.seed ^ 0x006E_656D_6573_6973);
    let mut injected = Injected::default();
    if kinds.is_empty() {
        return Ok(injected);
    }
    'rounds: loop {
        let mut round = kinds.clone();
        round.shuffle(&mut rng);
        for kind in round {
            let gap = Duration::from_millis(rng.random_range(1_500..4_000));
            // Leave time for the fault and its healing before the workload ends.
            let lasts = if kind == "mysql-failover" { 15 } else { 10 };
            if Instant::now() + gap + Duration::from_secs(lasts) >= until {
                break 'rounds;
            }
            tokio::time::sleep(gap).await;
            if kind == "mysql-failover" {
                let round = injected.failovers.len() as u64;
                let outcome =
                    failover::inject(round, &mut rng, &targets, &shared, &params, &recorder)
                        .await
                        .context("fault mysql-failover")?;
                eprintln!("mysql-failover: {}", outcome.describe());
                injected.failovers.push(outcome);
            } else {
                inject(&kind, &mut rng, &targets, &shared, &recorder)
                    .await
                    .with_context(|| format!("fault {kind}"))?;
            }
            injected.faults += 1;
            eprintln!(
                "[{:>6.1}s] fault {kind} healed",
                recorder.now() as f64 / 1e9
            );
        }
    }
    Ok(injected)
}

async fn inject(
    kind: &str,
    rng: &mut StdRng,
    t: &Targets,
    shared: &Shared,
    recorder: &Recorder,
) -> anyhow::Result<()> {
    match kind {
        "kill" | "stop" | "term" => instance_fault(kind, rng, t, shared, recorder).await?,
        "broker-hang" => {
            let broker = t.broker.lock().await;
            recorder.fault(kind, Some("start"), "kafka");
            broker.signal(Signal::Stop)?;
            tokio::time::sleep(hold(rng, 3_000)).await;
            broker.signal(Signal::Cont)?;
            recorder.fault(kind, Some("stop"), "kafka");
        }
        "broker-down" => {
            let mut broker = t.broker.lock().await;
            recorder.fault(kind, Some("start"), "kafka");
            broker.command("down")?;
            tokio::time::sleep(hold(rng, 3_000)).await;
            broker.command("up")?;
            recorder.fault(kind, Some("stop"), "kafka");
        }
        "redis-flush" => {
            let redis = t.redis.lock().await;
            let client = redis::Client::open(redis.url())?;
            let mut c = tokio::time::timeout(
                Duration::from_secs(5),
                client.get_multiplexed_async_connection(),
            )
            .await
            .context("connecting to Redis")??;
            recorder.fault(kind, None, "redis");
            let () = redis::cmd("FLUSHALL").query_async(&mut c).await?;
        }
        "redis-restart" => {
            let mut redis = t.redis.lock().await;
            recorder.fault(kind, Some("start"), "redis");
            redis.restart().await?;
            recorder.fault(kind, Some("stop"), "redis");
        }
        "redis-hang" => {
            let redis = t.redis.lock().await;
            recorder.fault(kind, Some("start"), "redis");
            redis.signal(Signal::Stop)?;
            tokio::time::sleep(hold(rng, 2_500)).await;
            redis.signal(Signal::Cont)?;
            recorder.fault(kind, Some("stop"), "redis");
        }
        other => anyhow::bail!("unknown fault {other:?} (known: {})", KINDS.join(", ")),
    }
    Ok(())
}

/// A fault's hold: `ms` plus up to a second drawn by the seed.
fn hold(rng: &mut StdRng, ms: u64) -> Duration {
    Duration::from_millis(ms + rng.random_range(0..1_000))
}

/// SIGKILL, SIGSTOP or SIGTERM of an instance drawn by the seed, healed before it returns.
async fn instance_fault(
    kind: &str,
    rng: &mut StdRng,
    t: &Targets,
    shared: &Shared,
    recorder: &Recorder,
) -> anyhow::Result<()> {
    let i = rng.random_range(0..t.instances.len());
    let mut instance = t.instances[i].lock().await;
    let target = instance.name.clone();
    recorder.fault(kind, Some("start"), &target);
    match kind {
        "kill" => {
            shared.up[i].store(false, Ordering::Relaxed);
            instance.kill();
            tokio::time::sleep(hold(rng, 500)).await;
            instance.start(false, &t.http).await?;
        }
        "term" => {
            shared.up[i].store(false, Ordering::Relaxed);
            let grace = t.timeouts.shutdown_grace();
            let clean = instance.terminate(grace).await;
            if !clean {
                eprintln!("{target} did not exit within {grace:?} of SIGTERM; killed");
            }
            instance.start(false, &t.http).await?;
        }
        _ => {
            instance.signal(Signal::Stop)?;
            tokio::time::sleep(STOP_FOR + hold(rng, 0)).await;
            instance.signal(Signal::Cont)?;
        }
    }
    shared.up[i].store(true, Ordering::Relaxed);
    recorder.fault(kind, Some("stop"), &target);
    Ok(())
}
