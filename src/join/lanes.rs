//! The group commit's lanes (docs/design.md §6 step 3, §21): for each campaign, and for a
//! bucketed campaign each share of its buckets, the wins waiting for the transaction after the
//! running one. [`super::group_commit`] drives each lane with one task; this is the queue it
//! takes its batches from, under one lock.
//!
//! A batch is the head of the queue, as many wins as `GROUP_COMMIT_MAX_BATCH` allows rounded
//! down to a list size of `db::sql` (a statement text per size). Wins a batch left for the next
//! (another writer held their bucket's row) go back to the head, in their order.

use std::{
    collections::{hash_map::Entry, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tokio::sync::{oneshot, Notify};

use crate::{
    db::sql::size_at_most,
    join::{
        rows::{NewParticipation, Written},
        write_error::WriteError,
    },
};

/// A lane: a campaign, and for a bucketed campaign one share of its buckets (0 otherwise).
pub(super) type LaneKey = (i64, u16);

/// A win waiting in its lane, and where its answer goes.
pub(super) struct Member {
    pub(super) ticket: u64,
    pub(super) win: NewParticipation,
    pub(super) answer: oneshot::Sender<Result<Written, WriteError>>,
    /// Batches that left this win for the next because another writer held its bucket's row.
    pub(super) deferred: u8,
}

/// What a win's queue timeout found.
pub(super) enum Withdrawn {
    /// Out of the queue: the lane took no batch for the timeout.
    Out,
    /// Still queued behind batches that the lane keeps taking.
    Moving,
    /// A batch took it: its answer comes.
    Taken,
}

/// A lane's wins waiting for the transaction after the running one.
struct Queue {
    waiting: VecDeque<Member>,
    /// Signalled when the queue holds a full batch, ending a window early.
    full: Arc<Notify>,
    /// When the lane last took a batch (or opened).
    moved_at: Instant,
}

impl Queue {
    fn new() -> Self {
        Self {
            waiting: VecDeque::new(),
            full: Arc::new(Notify::new()),
            moved_at: Instant::now(),
        }
    }
}

/// Every open lane's queue.
pub(super) struct Lanes {
    queues: Mutex<HashMap<LaneKey, Queue>>,
    max_batch: usize,
    /// `DB_ACQUIRE_TIMEOUT_MS`: how long a lane may take no batch before a win waiting in it
    /// may leave.
    queue_timeout: Duration,
}

impl Lanes {
    pub(super) fn new(max_batch: usize, queue_timeout: Duration) -> Self {
        Self {
            queues: Mutex::new(HashMap::new()),
            max_batch,
            queue_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<LaneKey, Queue>> {
        // A panic while the map is held cannot leave a lane half-changed (pushes and drains).
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `member` in lane `key`; true when the lane was not open, so the caller starts
    /// its task.
    pub(super) fn enqueue(&self, key: LaneKey, member: Member) -> bool {
        let mut queues = self.lock();
        match queues.entry(key) {
            Entry::Occupied(mut lane) => {
                let lane = lane.get_mut();
                lane.waiting.push_back(member);
                if lane.waiting.len() >= self.max_batch {
                    lane.full.notify_one();
                }
                false
            }
            Entry::Vacant(vacant) => {
                vacant.insert(Queue::new()).waiting.push_back(member);
                true
            }
        }
    }

    /// Takes a still-queued win out of its lane when the lane took no batch for the queue
    /// timeout; `Taken` if a batch already took it.
    pub(super) fn withdraw(&self, key: LaneKey, ticket: u64) -> Withdrawn {
        let mut queues = self.lock();
        let Some(lane) = queues.get_mut(&key) else {
            return Withdrawn::Taken;
        };
        let Some(at) = lane.waiting.iter().position(|m| m.ticket == ticket) else {
            return Withdrawn::Taken;
        };
        if lane.moved_at.elapsed() < self.queue_timeout {
            return Withdrawn::Moving;
        }
        lane.waiting.remove(at);
        Withdrawn::Out
    }

    /// Wins queued for a campaign's next transactions.
    pub(super) fn queued(&self, campaign_id: i64) -> usize {
        self.lock()
            .iter()
            .filter(|((c, _), _)| *c == campaign_id)
            .map(|(_, lane)| lane.waiting.len())
            .sum()
    }

    /// The lane's next batch; `None`, closing the lane, when nothing waits.
    pub(super) fn take(&self, key: LaneKey) -> Option<Vec<Member>> {
        let mut queues = self.lock();
        let lane = queues.get_mut(&key)?;
        if lane.waiting.is_empty() {
            queues.remove(&key);
            return None;
        }
        // A list size (see `db::sql`): each size is one statement text, prepared once per
        // connection; the rest waits for the next batch.
        let n = size_at_most(lane.waiting.len().min(self.max_batch));
        lane.moved_at = Instant::now();
        Some(lane.waiting.drain(..n).collect())
    }

    /// What signals a full batch in lane `key`, while it holds less (`None`: full already, or
    /// closed).
    pub(super) fn until_full(&self, key: LaneKey) -> Option<Arc<Notify>> {
        match self.lock().get(&key) {
            Some(lane) if lane.waiting.len() < self.max_batch => Some(lane.full.clone()),
            _ => None,
        }
    }

    /// Puts the members a batch left for the next back at the head of their lane, in their
    /// order.
    pub(super) fn requeue(&self, key: LaneKey, deferred: Vec<Member>) {
        if deferred.is_empty() {
            return;
        }
        let mut queues = self.lock();
        let lane = queues.entry(key).or_insert_with(Queue::new);
        for member in deferred.into_iter().rev() {
            lane.waiting.push_front(member);
        }
    }
}

/// How long a lane keeps taking only the free bucket rows after a batch found one held.
const CONTENTION_HELD_FOR: Duration = Duration::from_secs(1);

/// How often a lane that found no row held looks again, by taking only the free rows once.
const CONTENTION_PROBE_EVERY: Duration = Duration::from_millis(200);

/// Whether a lane's batches over several buckets take only the rows no other writer holds
/// (`SELECT … SKIP LOCKED` first: one statement more a transaction) or every row they need, as
/// one instance alone does without waiting. A lane takes only the free rows while it found one
/// held within [`CONTENTION_HELD_FOR`], and once every [`CONTENTION_PROBE_EVERY`] otherwise, to
/// notice another writer. Kept by the lane's task for the lane's life.
#[derive(Default)]
pub(super) struct Contention {
    held_at: Option<Instant>,
    probed_at: Option<Instant>,
}

impl Contention {
    /// Whether the next batch over several buckets takes only the free rows.
    pub(super) fn skips(&self, now: Instant) -> bool {
        let recent = |at: Option<Instant>, within| at.is_some_and(|t| now - t < within);
        recent(self.held_at, CONTENTION_HELD_FOR) || !recent(self.probed_at, CONTENTION_PROBE_EVERY)
    }

    /// A batch that took only the free rows, and whether it found one held.
    pub(super) fn found(&mut self, now: Instant, held: bool) {
        self.probed_at = Some(now);
        if held {
            self.held_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_skips_while_it_meets_held_rows_and_probes_now_and_then_otherwise() {
        let start = Instant::now();
        let mut c = Contention::default();
        assert!(c.skips(start), "a new lane looks once");
        c.found(start, false);
        assert!(!c.skips(start + Duration::from_millis(100)));
        assert!(c.skips(start + CONTENTION_PROBE_EVERY), "and again later");
        let held = start + CONTENTION_PROBE_EVERY;
        c.found(held, true);
        assert!(c.skips(held + Duration::from_millis(10)));
        c.found(held + Duration::from_millis(10), false);
        assert!(
            c.skips(held + Duration::from_millis(500)),
            "held within the second"
        );
        // A probe a second after the last held row found none: plain batches again.
        c.found(held + CONTENTION_HELD_FOR, false);
        assert!(!c.skips(held + CONTENTION_HELD_FOR + Duration::from_millis(10)));
    }
}
