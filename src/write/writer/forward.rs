//! The origin's side of a hand-over: a win reserved here for a campaign another instance writes
//! goes to that writer's inbox, and its outcome comes back to this instance's replies
//! (docs/design.md §23).
//!
//! An answer that does not come within [`PATIENCE`] is the crux. The origin takes its win back
//! (`lua/handover_back.lua`, atomic against the writer's `lua/handover_take.lua`: a win is the
//! writer's once its mark says `taken`, the origin's once it says `back` or the origin removed
//! it from the inbox):
//! - back: the writer never took it (stopped, dead, far behind, or the push never landed), and
//!   the win is written here, as if it had never left; a push that lands later is dropped;
//! - taken: the writer has it. Its answer may still come; the win's commit deadline
//!   (`commit_by`, checked under the row's lock on the writer as everywhere) bounds when it can
//!   still commit, and the writer's settlement of a commit in doubt answers within the statement
//!   deadline after that. Meanwhile, every [`LOOK_EVERY`] without an answer, the win's row is
//!   looked for in MySQL: one carrying the win's event id answers the join (a writer stopped
//!   after its COMMIT, a reply Redis lost). Past both with no row, the join answers 503 and its
//!   reservation stays open for the reconciler, which decides under the row's lock, as for an
//!   instance that died mid-commit.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::sync::oneshot;

use super::{
    committed,
    post::Poster,
    wire::{self, Forwarded, Reply},
};
use crate::{
    db::{session::RetryPause, Db},
    gate::{mailbox::Mailbox, Gate},
    telemetry::metrics::{registry::ReasonLabels, Metrics},
    write::{
        error::WriteError,
        rows::{NewParticipation, Written},
    },
};

/// How long a handed-over win waits for its answer before the origin asks whether the writer
/// took it: a writer pops its inbox within milliseconds unless it is stopped or gone.
pub const PATIENCE: Duration = Duration::from_millis(500);

/// How often a win its writer took and has not answered for is looked for in MySQL: a writer
/// stopped after its COMMIT wrote it, and its join is answered from the row within the request.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What a hand-over came to.
pub enum Handed {
    /// The writer's answer, its row found in MySQL, or (when neither came in time) a commit of
    /// unknown outcome.
    Answer(Result<Written, WriteError>),
    /// Taken back before the writer saw it: write it here.
    Back,
}

/// The wins this instance handed over and waits on.
pub struct Forwarder {
    gate: Gate,
    poster: Poster,
    /// Where a win its writer took and has not answered for is looked for.
    db: Db,
    me: Arc<str>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Result<Written, WriteError>>>>,
    tickets: AtomicU64,
    /// How long past its commit deadline a win's answer may still come: the writer's
    /// settlement of a commit in doubt (the statement deadline) and a margin.
    late: Duration,
    /// How long a win's mark (taken or back) lives in Redis: past any moment either side may
    /// still look at it.
    mark_life: Duration,
    metrics: Arc<Metrics>,
}

/// Removes a ticket from the waiting list however its hand-over ends.
struct Waiting<'a>(&'a Forwarder, u64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting().remove(&self.1);
    }
}

impl Forwarder {
    pub fn new(
        (gate, poster, db): (Gate, Poster, Db),
        me: Arc<str>,
        (late, mark_life): (Duration, Duration),
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            gate,
            poster,
            db,
            me,
            waiting: Mutex::default(),
            tickets: AtomicU64::new(0),
            late,
            mark_life,
            metrics,
        }
    }

    fn waiting(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Result<Written, WriteError>>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a handed-over win's mark lives (the writer's side sets it too).
    pub fn mark_life(&self) -> Duration {
        self.mark_life
    }

    /// Hand-overs waiting on their answer.
    pub fn in_flight(&self) -> usize {
        self.waiting().len()
    }

    fn count(&self, outcome: &'static str) {
        let labels = ReasonLabels { reason: outcome };
        self.metrics.writer_handovers.get_or_create(&labels).inc();
    }

    /// Hands `win` to `writer` and waits for its outcome (see the module's text).
    pub async fn write(&self, writer: &Arc<str>, win: &NewParticipation) -> Handed {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}:{ticket}", self.me);
        let forwarded = Forwarded {
            origin: self.me.to_string(),
            ticket,
            win,
        };
        let wire = serde_json::to_string(&forwarded).expect("a win serializes");
        let item = format!("{id}|{wire}");
        let (answer, mut answered) = oneshot::channel();
        self.waiting().insert(ticket, answer);
        let _waiting = Waiting(self, ticket);
        let posted = (self.poster)
            .post(writer.clone(), Mailbox::Inbox, item.clone())
            .await;
        if posted {
            if let Ok(Ok(outcome)) = tokio::time::timeout(PATIENCE, &mut answered).await {
                self.count("answered");
                return Handed::Answer(outcome);
            }
        }
        if self.take_back((writer, &id), &item, win).await == Some(true) {
            tracing::info!(campaign_id = win.entry.campaign_id, writer = %writer,
                "The campaign's writer did not take a win in time; writing it here.");
            self.count("taken_back");
            return Handed::Back;
        }
        self.await_taken(writer, win, answered).await
    }

    /// The writer took `win`: its answer, awaited until the win's commit deadline and the
    /// writer's settlement of a commit in doubt; every [`LOOK_EVERY`] without one, the win's row
    /// looked for in MySQL (the writer stopped after its COMMIT, or Redis lost its reply). No
    /// answer and no row by the end: in doubt (503; the reconciler settles its reservation).
    async fn await_taken(
        &self,
        writer: &str,
        win: &NewParticipation,
        mut answered: oneshot::Receiver<Result<Written, WriteError>>,
    ) -> Handed {
        let answer_by = tokio::time::Instant::from_std(win.commit_by) + self.late;
        let mut open = true;
        loop {
            let look_at = (tokio::time::Instant::now() + LOOK_EVERY).min(answer_by);
            if open {
                match tokio::time::timeout_at(look_at, &mut answered).await {
                    Ok(Ok(outcome)) => {
                        self.count("answered");
                        return Handed::Answer(outcome);
                    }
                    Ok(Err(_)) => open = false,
                    Err(_) => {}
                }
            } else {
                tokio::time::sleep_until(look_at).await;
            }
            if let Some(found) = self.written(win).await {
                tracing::warn!(campaign_id = win.entry.campaign_id, user_id = win.entry.user_id, writer = %writer,
                    "The campaign's writer took a win and has not answered; found it written, answered from its row.");
                self.count("found_written");
                return Handed::Answer(Ok(found));
            }
            if tokio::time::Instant::now() >= answer_by {
                break;
            }
        }
        tracing::warn!(campaign_id = win.entry.campaign_id, user_id = win.entry.user_id, writer = %writer,
            "The campaign's writer took a win and never answered; the reconciler settles its reservation.");
        self.count("unanswered");
        let why = "the campaign's writer did not answer";
        Handed::Answer(Err(wire::unknown(why, &win.entry)))
    }

    /// `win` as committed in MySQL ([`committed`]); `None` also when MySQL does not answer.
    async fn written(&self, win: &NewParticipation) -> Option<Written> {
        committed(&self.db, &win.entry, win.event_id)
            .await
            .unwrap_or_else(|e| {
                tracing::debug!(error = %e, campaign_id = win.entry.campaign_id,
                    user_id = win.entry.user_id, "Could not look for a handed-over win's row.");
                None
            })
    }

    /// Takes the win back from its writer, asking until Redis answers: whether it is this
    /// instance's to write (`false`: the writer took it); `None` when Redis did not answer
    /// before the win's commit deadline (nobody may write it now; the reconciler settles it).
    async fn take_back(
        &self,
        (writer, id): (&str, &str),
        item: &str,
        win: &NewParticipation,
    ) -> Option<bool> {
        let mut pause = RetryPause::new();
        loop {
            match self
                .gate
                .take_back((writer, id), item, self.mark_life)
                .await
            {
                Ok(back) => return Some(back),
                Err(e) if std::time::Instant::now() >= win.commit_by => {
                    tracing::warn!(error = %e, campaign_id = win.entry.campaign_id, writer = %writer,
                        "Could not take a win back from its writer before its deadline.");
                    return None;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Could not take a win back yet; asking again.");
                    pause.wait().await;
                }
            }
        }
    }

    /// A writer's reply: answers the hand-over waiting on it (none when it gave up).
    pub fn answer(&self, item: &str) {
        match serde_json::from_str::<Reply>(item) {
            Ok(reply) => {
                if let Some(waiting) = self.waiting().remove(&reply.ticket) {
                    let _ = waiting.send(reply.outcome);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "A reply in this instance's mailbox could not be read; dropped.")
            }
        }
    }
}
