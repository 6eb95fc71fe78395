//! Group commit (docs/design.md §6 step 3): the wins of one campaign that pass the gate while an
//! earlier transaction of that campaign is running share the next transaction.
//!
//! Each campaign with wins in flight has a lane: a queue and one task that commits it. A win that
//! finds no lane opens one and its task commits it at once, alone (no added latency when there
//! is no queue). Wins that arrive while that transaction runs queue; when it ends, the task takes
//! up to `GROUP_COMMIT_MAX_BATCH` of them, rounded down to a list size of `db::sql` (a statement
//! text per size), as the next batch (after up to `GROUP_COMMIT_WINDOW_MS` for more, if set and
//! the lane is busy), so the batch size follows the load. The task ends with an empty queue.
//!
//! A win queues as long as its lane moves: only when the lane committed nothing for
//! `DB_ACQUIRE_TIMEOUT_MS` (its running transaction holds the campaign that long) does a queued
//! win leave the queue and answer SERVICE_BUSY, as it would after waiting that long for a pooled
//! connection. A burst larger than a lane commits in one transaction waits for the batches
//! before it instead (5,000 joins at once on 64 buckets once answered some 503s on a slow
//! machine while every batch committed); its commit deadline still bounds the wait.
//!
//! A batch is one transaction ([`transaction::write_all`]). When its guarded decrement is refused
//! (MySQL has less stock than Redis let through) or one member turns out to be a duplicate, it
//! falls back to one transaction per member, in queue order, so exactly the right ones win. Any
//! other failure is every member's failure (each compensates, as with one transaction per win).
//!
//! A purchase's items (docs/design.md §22) are written here too, in a transaction of their own
//! (their rows are several campaigns'), by the same transaction and the same settlement of a
//! commit in doubt ([`GroupCommit::write_purchase`]).
//!
//! Settling a batch's reservations in Redis and answering its members happen in a task of their
//! own, off the lane: the next batch does not wait for that round trip. A bucketed campaign's
//! reservations are closed a moment later, gathered per bucket ([`super::closing`]).
//!
//! Order: a lane commits one transaction at a time, and every transaction takes the campaign
//! row's lock before it takes ids, so outbox ids of a campaign follow commit order across
//! batches and instances.
//!
//! A bucketed campaign (docs/design.md §21) may have up to `GROUP_COMMIT_BUCKET_LANES` lanes
//! (default 1) over its one queue, each batch over buckets no other batch of the instance has
//! out: a batch holds the waiting wins of those buckets, and its transaction takes each bucket's
//! units in one statement, rows locked in ascending bucket order
//! ([`super::guard::decrement_buckets`]); a bucket's outbox ids still follow its commits (its
//! row's lock is held to the commit). Lanes open only when one is not enough (a full batch
//! waits while every lane has one out, or every batch out is stalled while other buckets'
//! wins wait: [`lanes`]), so batches stay one lane's until the load needs more; fixed lanes per
//! bucket share divided every batch by their number, and a campaign's cost per win grew with
//! its lanes (docs/benchmarks.md).
//!
//! Two writers of one bucketed campaign (two instances, each with its lanes) would wait on each
//! other's bucket rows. So a batch over several buckets first locks the rows no other
//! transaction holds (`SKIP LOCKED`, [`transaction::write_free`]) and writes the wins of those;
//! its wins of the others go back to the head of the lane's queue for its next batch. A win
//! passed over [`MAX_DEFERRALS`] times goes in a batch that waits for its rows, as every batch
//! of one bucket does, so no win is passed over for good. The `SELECT` is one statement more a
//! transaction, so a lane takes only the free rows while it finds rows held (within a second),
//! and otherwise once every 200 ms, to notice another writer (`lanes::Contention`).

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::future::join_all;
use sea_orm::{error::ConnAcquireErr, DbErr};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::hooks::Hooks;
use crate::{
    config::GroupCommitSettings,
    db::Db,
    gate::{Committed, Gate, Slot},
    telemetry::metrics::Metrics,
    write::{
        closing::Closing,
        error::{Refused, WriteError},
        in_doubt,
        lanes::{self, LaneId, Lanes, Member, Withdrawn},
        rows::{NewParticipation, PurchaseRow, Written},
        transaction::{self, Committed as Wrote},
    },
};

/// The campaigns' lanes; cheap to share.
pub struct GroupCommit {
    db: Db,
    /// For a batch whose COMMIT ended in doubt (its settlement gives units back).
    gate: Gate,
    /// Closes the reservations of a batch's committed wins.
    closing: Arc<Closing>,
    settings: GroupCommitSettings,
    /// `DB_ACQUIRE_TIMEOUT_MS`: the longest a lane may commit nothing while a win waits in it,
    /// as a win would wait for a pooled connection; then the win answers SERVICE_BUSY.
    queue_timeout: Duration,
    lanes: Lanes,
    tickets: AtomicU64,
    metrics: Arc<Metrics>,
    /// The test seam (`crate::hooks`): where a test holds a write.
    hooks: Arc<dyn Hooks>,
}

/// How many batches may leave a win for the next because another transaction held its
/// bucket's row ([`transaction::write_free`]); a batch holding a win deferred this often waits
/// for every row it needs, so no win is passed over for good.
const MAX_DEFERRALS: u8 = 8;

impl GroupCommit {
    pub fn new(
        db: Db,
        gate: Gate,
        settings: GroupCommitSettings,
        queue_timeout: Duration,
        metrics: Arc<Metrics>,
        hooks: Arc<dyn Hooks>,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            closing: Closing::start(gate.clone()),
            gate,
            settings,
            queue_timeout,
            lanes: Lanes::new(
                settings.max_batch,
                (settings.bucket_lanes, settings.row_lanes),
                queue_timeout,
            ),
            tickets: AtomicU64::new(0),
            metrics,
            hooks,
        })
    }

    /// Writes one win, in a transaction of its own or shared with other wins of its campaign;
    /// a committed win's reservation is settled in Redis before the answer (best effort).
    pub async fn write(self: &Arc<Self>, win: NewParticipation) -> Result<Written, WriteError> {
        if self.settings.max_batch <= 1 {
            self.metrics.group_commit_batch_size.observe(1.0);
            let written =
                transaction::write(&self.db, &win, &self.metrics.write_row_hold, &*self.hooks)
                    .await;
            if written.is_ok() {
                self.closing
                    .close(win.entry.slot(), vec![Committed::from(&win.entry)])
                    .await;
            }
            self.settle_in_doubt(std::slice::from_ref(&win), std::slice::from_ref(&written));
            return written;
        }
        let campaign_id = win.entry.campaign_id;
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let (answer, mut answered) = oneshot::channel();
        let member = Member {
            ticket,
            win,
            answer,
            deferred: 0,
        };
        if let Some(lane) = self.lanes.enqueue(member) {
            self.start_lane(campaign_id, lane);
        }
        // A bucketed campaign's win looks every stall whether every batch out is stalled, and
        // if so opens a lane for the waiting wins of other buckets.
        let look_every = match self.settings.bucket_lanes > 1 {
            true => lanes::STALL.min(self.queue_timeout),
            false => self.queue_timeout,
        };
        let mut withdraw_at = std::time::Instant::now() + self.queue_timeout;
        let answer = loop {
            if let Ok(answer) = tokio::time::timeout(look_every, &mut answered).await {
                break answer;
            }
            if let Some(lane) = self.lanes.open_if_stalled(campaign_id) {
                self.start_lane(campaign_id, lane);
            }
            if std::time::Instant::now() < withdraw_at {
                continue;
            }
            withdraw_at += self.queue_timeout;
            match self.lanes.withdraw(campaign_id, ticket) {
                // Still queued and no lane took a batch meanwhile: a running transaction holds
                // the campaign that long. Busy, as a pool with no connection to give; nothing
                // was sent.
                Withdrawn::Out => {
                    return Err(WriteError::Db(DbErr::ConnectionAcquire(
                        ConnAcquireErr::Timeout,
                    )))
                }
                // Queued behind batches that commit: wait on.
                Withdrawn::Moving => {}
                Withdrawn::Taken => break answered.await,
            }
        };
        answer.unwrap_or(Err(WriteError::Unanswered))
    }

    /// Wins queued for a campaign's next transaction (tests use it to know a batch has formed).
    pub fn queued(&self, campaign_id: i64) -> usize {
        self.lanes.queued(campaign_id)
    }

    /// Starts lane `lane` of `campaign_id`'s queue in a task of its own.
    fn start_lane(self: &Arc<Self>, campaign_id: i64, lane: LaneId) {
        let this = self.clone();
        tokio::spawn(
            async move { this.drive(campaign_id, lane).await }.instrument(tracing::debug_span!(
                parent: None,
                "group_commit",
                campaign_id,
                lane
            )),
        );
    }

    /// Commits batches of the campaign's queue until the lane closes (`Lanes::take`).
    async fn drive(self: Arc<Self>, campaign_id: i64, lane: LaneId) {
        let (mut busy, mut first) = (false, true);
        loop {
            if busy && !self.settings.window.is_zero() {
                if let Some(full) = self.lanes.until_full(campaign_id) {
                    let _ = tokio::time::timeout(self.settings.window, full.notified()).await;
                }
            }
            let Some(batch) = self.lanes.take(campaign_id, lane, first) else {
                return;
            };
            first = false;
            // More than one member means wins queued behind the previous transaction.
            busy = batch.len() > 1;
            let now = std::time::Instant::now();
            let skip = Self::may_skip_held_rows(&batch) && self.lanes.skips(campaign_id, now);
            let deferred = self.commit(batch, skip).await;
            self.metrics
                .write_lane_busy
                .inc_by(now.elapsed().as_secs_f64());
            if skip {
                self.lanes.found(campaign_id, now, !deferred.is_empty());
            }
            self.lanes.requeue(campaign_id, deferred);
        }
    }

    /// Whether `batch` may take only the bucket rows no other writer holds: a bucketed
    /// campaign's wins of two buckets or more, none of them passed over [`MAX_DEFERRALS`] times
    /// already.
    fn may_skip_held_rows(batch: &[Member]) -> bool {
        let first = batch[0].win.entry.bucket;
        first.is_some()
            && batch.iter().any(|m| m.win.entry.bucket != first)
            && batch.iter().all(|m| m.deferred < MAX_DEFERRALS)
    }

    /// One batch: one transaction, or one per member when the batch's is refused; every member
    /// it wrote gets its own answer, after its reservation is settled. With `skip`, it takes only
    /// the bucket rows no other writer holds, and returns the members it left for the next
    /// batch.
    async fn commit(&self, batch: Vec<Member>, skip: bool) -> Vec<Member> {
        let (wins, members): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|m| (m.win, (m.ticket, m.answer, m.deferred)))
            .unzip();
        let outcomes = if skip {
            self.write_free(&wins).await
        } else {
            self.write_batch(&wins).await
        };
        let mut deferred = Vec::new();
        let (mut answers, mut results, mut written) = (Vec::new(), Vec::new(), Vec::new());
        for ((win, (ticket, answer, times)), outcome) in wins.into_iter().zip(members).zip(outcomes)
        {
            match outcome {
                None => deferred.push(Member {
                    ticket,
                    win,
                    answer,
                    deferred: times + 1,
                }),
                Some(result) => {
                    written.push(win);
                    answers.push(answer);
                    results.push(result);
                }
            }
        }
        self.metrics
            .group_commit_deferred
            .inc_by(deferred.len() as u64);
        if !written.is_empty() {
            self.metrics
                .group_commit_batch_size
                .observe(written.len() as f64);
            self.answer(written, answers, results);
        }
        deferred
    }

    /// A batch's wins written the usual way: one transaction, or one per win when the batch's is
    /// refused.
    async fn write_batch(
        &self,
        wins: &[NewParticipation],
    ) -> Vec<Option<Result<Written, WriteError>>> {
        match wins {
            [one] => vec![Some(
                transaction::write(&self.db, one, &self.metrics.write_row_hold, &*self.hooks).await,
            )],
            _ => match transaction::write_all(
                &self.db,
                wins,
                &self.metrics.write_row_hold,
                &*self.hooks,
            )
            .await
            {
                Ok(written) => written.into_iter().map(|w| Some(Ok(w))).collect(),
                Err(refused) => self.after_refusal(wins, refused).await,
            },
        }
    }

    /// A batch's wins whose bucket rows no other writer holds, written as [`Self::write_batch`]
    /// writes them; `None` for the others, which were not written.
    async fn write_free(
        &self,
        wins: &[NewParticipation],
    ) -> Vec<Option<Result<Written, WriteError>>> {
        let free =
            transaction::write_free(&self.db, wins, &self.metrics.write_row_hold, &*self.hooks)
                .await;
        let outcomes = match free.written {
            Ok(written) => written.into_iter().map(|w| Some(Ok(w))).collect(),
            Err(refused) => {
                let taken: Vec<NewParticipation> = (wins.iter().zip(&free.taken))
                    .filter(|(_, &t)| t)
                    .map(|(w, _)| w.clone())
                    .collect();
                self.after_refusal(&taken, refused).await
            }
        };
        let mut outcomes = outcomes.into_iter();
        (free.taken.iter())
            .map(|&t| if t { outcomes.next().flatten() } else { None })
            .collect()
    }

    /// What a batch's failure means for each of its wins: a refusal (MySQL has less stock than
    /// Redis let through, a duplicate, a stale win, a lost gate) sends them one by one, each
    /// judged alone; any other failure is every win's.
    async fn after_refusal(
        &self,
        wins: &[NewParticipation],
        refused: WriteError,
    ) -> Vec<Option<Result<Written, WriteError>>> {
        match refused {
            WriteError::SoldOut { .. }
            | WriteError::BatchRefused
            | WriteError::Duplicate
            | WriteError::Stale
            | WriteError::GateLost { .. } => {
                tracing::info!(campaign_id = wins[0].entry.campaign_id, wins = wins.len(), reason = %refused,
                    "A batch was refused; committing its wins one by one.");
                self.metrics.group_commit_fallbacks.inc();
                let mut results = Vec::with_capacity(wins.len());
                for win in wins {
                    results.push(Some(
                        transaction::write(
                            &self.db,
                            win,
                            &self.metrics.write_row_hold,
                            &*self.hooks,
                        )
                        .await,
                    ));
                }
                results
            }
            failed => vec![Some(Err(failed)); wins.len()],
        }
    }

    /// Settles the written wins' commits in doubt, closes the committed wins' reservations and
    /// answers each, off the lane.
    fn answer(
        &self,
        wins: Vec<NewParticipation>,
        answers: Vec<oneshot::Sender<Result<Written, WriteError>>>,
        results: Vec<Result<Written, WriteError>>,
    ) {
        self.settle_in_doubt(&wins, &results);
        let campaign_id = wins[0].entry.campaign_id;
        // A bucketed campaign's batch may hold wins of several buckets: one call per bucket.
        let mut committed: BTreeMap<Slot, Vec<Committed>> = BTreeMap::new();
        for (win, _) in wins.iter().zip(&results).filter(|(_, r)| r.is_ok()) {
            let users = committed.entry(win.entry.slot()).or_default();
            users.push(Committed::from(&win.entry));
        }
        let closing = self.closing.clone();
        tokio::spawn(
            async move {
                join_all(
                    committed
                        .into_iter()
                        .map(|(slot, users)| closing.close(slot, users)),
                )
                .await;
                for (answer, result) in answers.into_iter().zip(results) {
                    // Nobody left to answer only when the runtime is shutting down; a committed
                    // win then stands, and the reconciler closes its reservation.
                    let _ = answer.send(result);
                }
            }
            .instrument(tracing::debug_span!("group_commit_answers", campaign_id)),
        );
    }
}

impl GroupCommit {
    /// Starts the settlement of each transaction among `results` whose COMMIT ended in doubt,
    /// with the wins it carried ([`in_doubt`]): its units are back as soon as MySQL answers.
    fn settle_in_doubt(&self, wins: &[NewParticipation], results: &[Result<Written, WriteError>]) {
        let mut seen: Vec<&Arc<in_doubt::InDoubt>> = Vec::new();
        for result in results {
            if let Err(WriteError::InDoubt(batch)) = result {
                if !seen.iter().any(|s| Arc::ptr_eq(s, batch)) {
                    seen.push(batch);
                }
            }
        }
        for batch in seen {
            let members = wins
                .iter()
                .zip(results)
                .filter(|(_, r)| matches!(r, Err(WriteError::InDoubt(b)) if Arc::ptr_eq(b, batch)))
                .map(|(w, _)| w);
            self.settle(batch, members);
        }
    }

    /// Writes a purchase's items and its row in one transaction of their own (not batched: they
    /// are one user's wins of several campaigns); a COMMIT in doubt is settled as a batch's is.
    pub async fn write_purchase(
        &self,
        items: &[NewParticipation],
        row: &PurchaseRow,
    ) -> Result<Wrote, Refused> {
        let written = transaction::write_wins(
            &self.db,
            items,
            Some(row),
            &self.metrics.write_row_hold,
            &*self.hooks,
        )
        .await;
        match &written {
            // Each item's reservation closed (best effort: the reconciler finds them won).
            Ok(_) => {
                for item in items {
                    let won = [Committed::from(&item.entry)];
                    if let Err(e) = self.gate.settle(item.entry.slot(), &won).await {
                        tracing::debug!(error = %e, "Could not close a purchase's reservation; the reconciler will.");
                    }
                }
            }
            Err(Refused {
                error: WriteError::InDoubt(doubt),
                ..
            }) => self.settle(doubt, items.iter()),
            Err(_) => {}
        }
        written
    }

    /// Starts the settlement of a transaction in doubt with the wins it carried.
    fn settle<'a>(
        &self,
        doubt: &Arc<in_doubt::InDoubt>,
        wins: impl Iterator<Item = &'a NewParticipation>,
    ) {
        self.metrics.group_commit_in_doubt.inc();
        let members = wins
            .map(|w| in_doubt::Member {
                entry: w.entry,
                event_id: w.event_id,
                reserved_at_ms: w.reserved_at_ms,
            })
            .collect();
        doubt.settle(self.db.clone(), self.gate.clone(), members);
    }
}
