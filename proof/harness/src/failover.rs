//! The `mysql-failover` fault: MySQL stops answering in the middle of group-commit batches,
//! stays silent while joins keep arriving, then every connection is reset as in a failover and
//! MySQL answers again at once (design §2.1, §2.9, §18.1).
//!
//! 1. An open campaign gets [`BURST_UNITS`] more units (an admin `stock` operation, recorded),
//!    so the joins that follow pass the gate and reach MySQL, and [`WORKERS`] burst clients
//!    start joining it with users no one else uses, each with a client timeout of the request
//!    deadline plus [`SLACK`], so what they record is the service's answer, not their own
//!    give-up.
//! 2. Once [`WON_BEFORE`] of them have won (batches are committing, the others' in flight),
//!    the proxy is armed: the next COMMIT that goes through it reaches MySQL, and from that
//!    packet on MySQL's answers are dropped — what is sent still arrives, so that COMMIT, and
//!    any sent in the next [`ANSWERS_ONLY`], commits unanswered, its outcome unknown to the
//!    service. Then every byte is dropped both ways, every connection kept open. The history's
//!    `start` (target `mysql`) is the arming instant; if no COMMIT comes within [`ARMED_FOR`],
//!    the answers are cut anyway.
//! 3. The outage lasts [`HOLD`] plus up to a second while the burst goes on: every join must
//!    still be answered (503 while MySQL is silent) within the request deadline.
//! 4. Every proxied connection is reset (RST) and forwarding resumes: the history's `stop`,
//!    which the checker reads as "MySQL answers again" (a unit held by a commit in doubt must
//!    be back in the sale within 2 s of it). The burst goes on for [`AFTER`], so joins meet the
//!    sale while those units come back. From the outage on, each burst client sends its next
//!    join [`PACE`] after an answer (before, back to back: the wave that fills the batches).
//!
//! The burst's joins are ordinary operations of the history (processes from [`FIRST_PROCESS`]).
//! One answered later than the request deadline plus [`SLACK`] after it was sent, or not at
//! all, is late: the run fails on any (§2.9, bounded waits).

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, Rng};

use crate::history::{EntryType, Func, Value};

use super::{
    nemesis::Targets,
    recorder::Recorder,
    request::Request,
    workload::{seeded, Client, Shared, WorkloadParams},
};

/// Units added before the burst, so its joins reach MySQL rather than the sold-out answer,
/// through the outage too: more than the first wave of the burst takes.
pub const BURST_UNITS: i64 = 60;
/// Burst clients, each one join at a time.
pub const WORKERS: u64 = 24;
/// Burst wins before MySQL goes silent.
pub const WON_BEFORE: usize = 8;
/// How long the proxy waits, armed, for a COMMIT to cut at.
pub const ARMED_FOR: Duration = Duration::from_millis(1_000);
/// How long only MySQL's answers are lost before every byte is.
pub const ANSWERS_ONLY: Duration = Duration::from_millis(30);
/// The outage, plus up to a second drawn by the seed.
pub const HOLD: Duration = Duration::from_millis(5_000);
/// The burst goes on this long after MySQL answers again.
pub const AFTER: Duration = Duration::from_millis(3_000);
/// From the outage on, a burst client's pause between an answer and its next join.
pub const PACE: Duration = Duration::from_millis(200);
/// An answer later than the request deadline plus this, as the client measures it, is late.
pub const SLACK: Duration = Duration::from_millis(1_000);
/// The burst's process numbers start here (the sale's and the waiting room's are below).
pub const FIRST_PROCESS: u64 = 100_000;

/// What one failover's burst got.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub campaign: Option<i64>,
    /// Joins invoked while MySQL was silent, by answer (`201`, `503 DEPENDENCY_UNAVAILABLE`,
    /// `409 SOLD_OUT`, …).
    pub during: BTreeMap<String, usize>,
    /// Joins of the burst with no answer within the request deadline plus the slack.
    pub late: usize,
    pub joins: usize,
    /// The longest a join invoked while MySQL was silent waited for its answer.
    pub slowest: Duration,
    /// Whether the answers were cut right after a COMMIT went through (not after [`ARMED_FOR`]).
    pub cut_at_commit: bool,
}

impl Outcome {
    pub fn describe(&self) -> String {
        let during: Vec<String> = self
            .during
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        format!(
            "campaign {}: answers cut {}; {} burst joins; invoked while MySQL was silent: {} \
             (slowest answered in {:.1} s); late: {}",
            self.campaign
                .map_or_else(|| "none open".to_owned(), |c| c.to_string()),
            if self.cut_at_commit {
                "right after a COMMIT"
            } else {
                "with no COMMIT going by"
            },
            self.joins,
            if during.is_empty() {
                "none".to_owned()
            } else {
                during.join(", ")
            },
            self.slowest.as_secs_f64(),
            self.late
        )
    }
}

/// Injects one failover; `round` numbers it (its burst's users are its own).
pub async fn inject(
    round: u64,
    rng: &mut StdRng,
    t: &Targets,
    shared: &Arc<Shared>,
    params: &WorkloadParams,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<Outcome> {
    let deadline = Duration::from_millis(t.timeouts.request_ms);
    let burst = Arc::new(WorkloadParams {
        // Past the late mark, so a late answer is seen as such rather than as a give-up.
        timeout: deadline + SLACK * 3,
        idempotency_share: 0.0,
        over_limit_share: 0.0,
        ..params.clone()
    });
    let campaign = prepare(rng, t, shared, &burst, recorder).await;
    // The other instance's sold-out memo may repeat a sell-out for its window after the units
    // were added (documented); the burst starts once it has passed, so it meets the units.
    tokio::time::sleep(Duration::from_millis(t.timeouts.sold_out_memo_ms + 50)).await;
    let won = Arc::new(AtomicUsize::new(0));
    let paced = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for k in 0..campaign.map_or(0, |_| WORKERS) {
        let w = Worker {
            process: FIRST_PROCESS + k,
            first_user: params.users + 1 + ((round * WORKERS + k) * 10_000) as i64,
            campaign: campaign.unwrap_or_default(),
        };
        let (burst, shared, recorder) = (burst.clone(), shared.clone(), recorder.clone());
        let flags = [paced.clone(), stop.clone()];
        workers.spawn(worker(
            w,
            burst,
            shared,
            recorder,
            t.http.clone(),
            won.clone(),
            flags,
        ));
    }
    // MySQL goes silent mid-batch: once the first wins are back, or after 3 s regardless.
    let wait_from = Instant::now();
    while won.load(Ordering::SeqCst) < WON_BEFORE && wait_from.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    paced.store(true, Ordering::SeqCst);
    let (start, end, cut_at_commit) = outage(rng, t, recorder).await;
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::SeqCst);
    let mut outcome = Outcome {
        campaign,
        cut_at_commit,
        ..Outcome::default()
    };
    while let Some(done) = workers.join_next().await {
        for j in done? {
            outcome.joins += 1;
            if j.took > deadline + SLACK {
                outcome.late += 1;
            }
            if (start..=end).contains(&j.invoked) {
                *outcome.during.entry(j.answer).or_default() += 1;
                outcome.slowest = outcome.slowest.max(j.took);
            }
        }
    }
    Ok(outcome)
}

/// MySQL silent from the next COMMIT of a batch of wins, then reset and answering again;
/// returns when it went silent and answered again (the history's clock), and whether the cut
/// came at a COMMIT.
async fn outage(rng: &mut StdRng, t: &Targets, recorder: &Recorder) -> (u64, u64, bool) {
    let start = recorder.now();
    recorder.fault("mysql-failover", Some("start"), "mysql");
    t.proxy.arm_commit_cut();
    let armed = Instant::now();
    while !t.proxy.answers_lost() && armed.elapsed() < ARMED_FOR {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let cut_at_commit = t.proxy.answers_lost();
    t.proxy.lose_answers();
    tokio::time::sleep(ANSWERS_ONLY).await;
    t.proxy.black_hole();
    tokio::time::sleep(HOLD + Duration::from_millis(rng.random_range(0..1_000))).await;
    t.proxy.reset();
    let end = recorder.now();
    recorder.fault("mysql-failover", Some("stop"), "mysql");
    (start, end, cut_at_commit)
}

/// Picks an open campaign the clients believe is not paused (resuming one if all are) and adds
/// the burst's units to it; `None` when no campaign is open.
async fn prepare(
    rng: &mut StdRng,
    t: &Targets,
    shared: &Arc<Shared>,
    burst: &Arc<WorkloadParams>,
    recorder: &Arc<Recorder>,
) -> Option<i64> {
    let open = shared.joinable(false);
    let running: Vec<i64> = open
        .iter()
        .copied()
        .filter(|&c| !shared.is_paused(c))
        .collect();
    let pool = if running.is_empty() { &open } else { &running };
    let campaign = *pool.get(rng.random_range(0..pool.len().max(1)))?;
    let mut admin = Client {
        id: FIRST_PROCESS - 1,
        params: burst,
        shared,
        recorder,
        http: &t.http,
        started: Instant::now(),
        until: Instant::now() + Duration::from_secs(60),
    };
    let value = Value {
        campaign: Some(campaign),
        ..Value::default()
    };
    if running.is_empty() {
        let mut resume = Request::post(
            Func::Resume,
            format!("/api/v1/admin/campaigns/{campaign}/resume"),
            value.clone(),
        );
        resume.admin = true;
        admin.send(resume, rng).await;
    }
    let mut stock = Request::post(
        Func::Stock,
        format!("/api/v1/admin/campaigns/{campaign}/stock"),
        Value {
            delta: Some(BURST_UNITS),
            ..value
        },
    );
    stock.body = Some(serde_json::json!({ "delta": BURST_UNITS }));
    stock.admin = true;
    admin.send(stock, rng).await;
    Some(campaign)
}

struct Worker {
    process: u64,
    first_user: i64,
    campaign: i64,
}

/// One join of the burst: when it was sent (the history's clock), how long its answer took,
/// and the answer.
struct Joined {
    invoked: u64,
    took: Duration,
    answer: String,
}

/// One burst client: joins with fresh users until told to stop, back to back until the
/// outage, then at a pace.
async fn worker(
    w: Worker,
    params: Arc<WorkloadParams>,
    shared: Arc<Shared>,
    recorder: Arc<Recorder>,
    http: reqwest::Client,
    won: Arc<AtomicUsize>,
    [paced, stop]: [Arc<AtomicBool>; 2],
) -> Vec<Joined> {
    let mut rng = seeded(&params, w.process);
    let mut client = Client {
        id: w.process,
        params: &params,
        shared: &shared,
        recorder: &recorder,
        http: &http,
        started: Instant::now(),
        until: Instant::now() + Duration::from_secs(600),
    };
    let mut answers = Vec::new();
    let mut user = w.first_user;
    while !stop.load(Ordering::SeqCst) {
        let (invoked, sent) = (recorder.now(), Instant::now());
        let (kind, value) = client.join_with(w.campaign, user, 1, None, &mut rng).await;
        if kind == EntryType::Ok {
            won.fetch_add(1, Ordering::SeqCst);
        }
        answers.push(Joined {
            invoked,
            took: sent.elapsed(),
            answer: describe(kind, &value),
        });
        user += 1;
        if paced.load(Ordering::SeqCst) {
            tokio::time::sleep(PACE).await;
        }
    }
    answers
}

/// An answer as the outcome counts it.
fn describe(kind: EntryType, v: &Value) -> String {
    match kind {
        EntryType::Ok => "201".to_owned(),
        EntryType::Fail => v.code.clone().unwrap_or_else(|| "refused".to_owned()),
        _ => v.error.clone().unwrap_or_else(|| "info".to_owned()),
    }
}
