//! The burst (issue 68; design §21, "first come, first served to the last unit"): in every run,
//! distinct users (`--burst-users`, from [`FIRST_USER`]) join one bucketed campaign
//! (`--burst-stock` units in `--burst-buckets` buckets) with `--burst-concurrency` joins in
//! flight at once, spread evenly over the instances, until every user has tried once. The
//! campaign sells out under load across its buckets, so its tail is where a SOLD_OUT answered
//! while a later join still wins would show; the checker judges it as any other campaign (no
//! relaxation covers units moving between buckets). It runs from the start of the workload,
//! beside the other clients and under the nemesis.
//!
//! Its joins are ordinary operations of the history (processes from [`FIRST_PROCESS`]), each
//! waiting past the service's request deadline for its answer. Once the run is checked,
//! [`Tail::of`] reads the burst's tail from the history and the run prints it.

use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, SeedableRng};
use serde_json::json;

use crate::history::{Func, History, Outcome, Value};

use super::{
    recorder::Recorder,
    request::Request,
    workload::{Client, Shared, WorkloadParams},
};

/// The burst's process numbers start here (the failover burst's are below).
pub const FIRST_PROCESS: u64 = 200_000;
/// The burst's users start here, above any user the other clients draw.
pub const FIRST_USER: i64 = 50_000_000;

/// What the burst is: its campaign, how many users, how many joins at once, how long a client
/// waits for an answer.
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    pub campaign: i64,
    pub users: i64,
    pub concurrency: usize,
    pub timeout: Duration,
}

/// Runs the burst to its end: every user joins once. Answers how long it took.
pub async fn run(
    burst: Burst,
    params: Arc<WorkloadParams>,
    shared: Arc<Shared>,
    recorder: Arc<Recorder>,
    http: reqwest::Client,
) -> Duration {
    let started = Instant::now();
    let next = Arc::new(AtomicI64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for k in 0..burst.concurrency.max(1) {
        let args = (
            params.clone(),
            shared.clone(),
            recorder.clone(),
            http.clone(),
            next.clone(),
        );
        workers.spawn(async move {
            let (params, shared, recorder, http, next) = args;
            let mut client = Client {
                id: FIRST_PROCESS + k as u64,
                params: &params,
                shared: &shared,
                recorder: &recorder,
                http: &http,
                started,
                until: started + Duration::from_secs(3_600),
            };
            worker(&mut client, burst, &next).await;
        });
    }
    while workers.join_next().await.is_some() {}
    started.elapsed()
}

/// One burst client: the next user not yet sent, until there is none; user `n` goes to
/// instance `n mod instances`.
async fn worker(client: &mut Client<'_>, burst: Burst, next: &AtomicI64) {
    let mut rng = StdRng::seed_from_u64(client.params.seed ^ client.id);
    let instances = client.shared.bases.len().max(1);
    loop {
        let n = next.fetch_add(1, Ordering::SeqCst);
        if n >= burst.users {
            return;
        }
        let user = FIRST_USER + n;
        let mut request = Request::post(
            Func::Join,
            format!("/api/v1/campaigns/{}/participations", burst.campaign),
            Value {
                campaign: Some(burst.campaign),
                user: Some(user),
                quantity: Some(1),
                ..Value::default()
            },
        );
        request.body = Some(json!({"userId": user, "quantity": 1}));
        request.timeout = Some(burst.timeout);
        request.instance = usize::try_from(n).ok().map(|n| n % instances);
        client.send(request, &mut rng).await;
    }
}

/// The burst campaign's tail as the history shows it (ns of the history's clock).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tail {
    pub joins: usize,
    pub won: usize,
    pub sold_out: usize,
    /// Neither: other refusals and unknown outcomes.
    pub other: usize,
    /// The first join's invoke.
    pub first_invoke: Option<i64>,
    /// The first SOLD_OUT's answer.
    pub first_sold_out: Option<i64>,
    /// The last win's answer and the last winning join's invoke.
    pub last_win: Option<i64>,
    pub last_win_invoke: Option<i64>,
    /// SOLD_OUT answered before a join that still won was invoked.
    pub sold_out_before_a_winner: usize,
    /// Wins of joins invoked after the first SOLD_OUT's answer.
    pub late_winners: usize,
}

impl Tail {
    /// Reads the tail of `campaign`'s joins. O(n log n).
    pub fn of(history: &History, campaign: i64) -> Self {
        let joins: Vec<_> = (history.ops.iter())
            .filter(|o| o.f == Func::Join && o.campaign() == Some(campaign))
            .collect();
        let sold_out =
            |o: &&&crate::history::Op| o.outcome == Outcome::Fail && o.code() == Some("SOLD_OUT");
        let wins: Vec<_> = joins.iter().filter(|o| o.outcome == Outcome::Ok).collect();
        let refused: Vec<_> = joins.iter().filter(sold_out).collect();
        let first_sold_out = refused.iter().filter_map(|o| o.complete).min();
        let last_win_invoke = wins.iter().map(|o| o.invoke).max();
        let sold_out_before_a_winner = last_win_invoke.map_or(0, |last| {
            refused
                .iter()
                .filter(|o| o.complete.is_some_and(|c| c < last))
                .count()
        });
        let late_winners =
            first_sold_out.map_or(0, |first| wins.iter().filter(|o| o.invoke > first).count());
        Self {
            joins: joins.len(),
            won: wins.len(),
            sold_out: refused.len(),
            other: joins.len() - wins.len() - refused.len(),
            first_invoke: joins.iter().map(|o| o.invoke).min(),
            first_sold_out,
            last_win: wins.iter().filter_map(|o| o.complete).max(),
            last_win_invoke,
            sold_out_before_a_winner,
            late_winners,
        }
    }

    /// From the first SOLD_OUT's answer to the last win's, ns (0 when no win came after).
    pub fn span(&self) -> Option<i64> {
        match (self.first_sold_out, self.last_win) {
            (Some(first), Some(last)) => Some((last - first).max(0)),
            _ => None,
        }
    }

    /// One line for the run's log.
    pub fn describe(&self, campaign: i64) -> String {
        let s = |t: Option<i64>| match (t, self.first_invoke) {
            (Some(t), Some(t0)) => format!("{:.3} s", (t - t0) as f64 / 1e9),
            _ => "never".to_owned(),
        };
        let span = self
            .span()
            .map_or("none".to_owned(), |ns| format!("{:.0} ms", ns as f64 / 1e6));
        format!(
            "burst campaign {campaign}: {} joins, {} won, {} SOLD_OUT, {} other; from the first \
             invoke, first SOLD_OUT answered at {}, last win answered at {} (invoked at {}); \
             tail (first SOLD_OUT → last win) {span}; {} SOLD_OUT answered before a join that \
             won was invoked; {} win(s) invoked after the first SOLD_OUT",
            self.joins,
            self.won,
            self.sold_out,
            self.other,
            s(self.first_sold_out),
            s(self.last_win),
            s(self.last_win_invoke),
            self.sold_out_before_a_winner,
            self.late_winners,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, Outcome};

    fn join(id: usize, invoke: i64, complete: i64, outcome: Outcome, code: Option<&str>) -> Op {
        Op {
            id,
            process: id as u64,
            f: Func::Join,
            invoke,
            complete: Some(complete),
            outcome,
            value: Value {
                campaign: Some(7),
                user: Some(id as i64),
                code: code.map(str::to_owned),
                ..Value::default()
            },
        }
    }

    #[test]
    fn the_tail_counts_refusals_answered_before_a_winner_began() {
        let ms = 1_000_000;
        let history = History {
            ops: vec![
                join(0, 0, 10 * ms, Outcome::Ok, None),
                join(1, ms, 20 * ms, Outcome::Fail, Some("SOLD_OUT")),
                join(2, 2 * ms, 30 * ms, Outcome::Fail, Some("SOLD_OUT")),
                join(3, 25 * ms, 40 * ms, Outcome::Ok, None),
                join(4, 26 * ms, 50 * ms, Outcome::Info, None),
            ],
            faults: Vec::new(),
        };
        let tail = Tail::of(&history, 7);
        assert_eq!(
            (tail.joins, tail.won, tail.sold_out, tail.other),
            (5, 2, 2, 1)
        );
        assert_eq!(tail.sold_out_before_a_winner, 1);
        assert_eq!(tail.late_winners, 1);
        assert_eq!(tail.span(), Some(20 * ms));
        assert!(tail
            .describe(7)
            .contains("tail (first SOLD_OUT → last win) 20 ms"));
        assert_eq!(Tail::of(&history, 8).span(), None);
    }
}
