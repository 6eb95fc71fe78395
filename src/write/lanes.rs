//! The group commit's lanes (docs/design.md §6 step 3, §23): for each campaign, the wins waiting
//! for a transaction, and the tasks (its lanes) that commit them. [`super::group_commit`] runs
//! each lane; this is the queue they take their batches from. A campaign's queue is changed
//! under its shard's lock ([`SHARDS`] of them, by campaign id): one campaign's wins serialize on
//! their own queue, as they must, and never on every campaign's (one lock over every queue was a
//! cost per win that grew with the cores and the campaigns on sale).
//!
//! A batch is the head of the queue, as many wins as `GROUP_COMMIT_MAX_BATCH` allows rounded
//! down to a list size of `db::sql` (a statement text per size). Wins a batch left for the next
//! (another writer held their bucket's row) go back to the head, in their order.
//!
//! One lane per campaign by default. An unbucketed campaign may run up to
//! `GROUP_COMMIT_ROW_LANES` at once, every batch on its one row: they overlap where the row is
//! not held (a batch's participations go in before its guarded decrement, docs/design.md §23)
//! and queue for it in MySQL. A bucketed campaign may run up to
//! `GROUP_COMMIT_BUCKET_LANES` at once, each batch over buckets no other running batch of this
//! instance holds (a lane skips the wins of those; their holder takes them next), and a lane
//! opens only when one is not enough: when a full batch waits beyond what the running lanes
//! take, or when every running batch has been out longer than [`STALL`] (a row held by another
//! writer, a slow commit) while wins of other buckets wait. A lane that finds less than a full
//! batch waiting while another runs closes. So the batches stay as big as one lane's until the
//! load needs more (lanes fixed per bucket share divided every batch by their number: a
//! campaign's cost per win grew with its lanes, docs/design.md §23).

use std::{
    collections::{hash_map::Entry, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tokio::sync::{oneshot, Notify};

use crate::{
    db::sql::size_at_most,
    write::{
        error::WriteError,
        rows::{NewParticipation, Written},
    },
};

/// How long every running batch of a campaign may be out before a win of another bucket that
/// waits behind them opens a lane of its own.
pub(super) const STALL: Duration = Duration::from_millis(50);

/// A lane's name within its campaign.
pub(super) type LaneId = u32;

/// A win waiting in its campaign's queue, and where its answer goes.
pub(super) struct Member {
    pub(super) ticket: u64,
    pub(super) win: NewParticipation,
    pub(super) answer: oneshot::Sender<Result<Written, WriteError>>,
    /// Batches that left this win for the next because another writer held its bucket's row.
    pub(super) deferred: u8,
}

/// What a win's queue timeout found.
pub(super) enum Withdrawn {
    /// Out of the queue: no lane took a batch for the timeout.
    Out,
    /// Still queued behind batches that the lanes keep taking.
    Moving,
    /// A batch took it: its answer comes.
    Taken,
}

/// A campaign's wins waiting for a transaction, and its lanes.
struct Queue {
    waiting: VecDeque<Member>,
    /// Signalled when the queue holds a full batch, ending a window early.
    full: Arc<Notify>,
    /// When a lane last took a batch (or the queue opened).
    moved_at: Instant,
    /// Lanes alive.
    lanes: u16,
    next_lane: LaneId,
    /// Each lane's batch out: since when, and its buckets.
    out: HashMap<LaneId, (Instant, Vec<Option<u16>>)>,
    /// When a waiting win last looked for a stall (one look a stall at most: every waiting
    /// win asks).
    looked_at: Option<Instant>,
    /// Whether the campaign's batches take only the free bucket rows, shared by its lanes
    /// (a lane that opens knows what the others found).
    contention: Contention,
}

impl Queue {
    fn new() -> Self {
        Self {
            waiting: VecDeque::new(),
            full: Arc::new(Notify::new()),
            moved_at: Instant::now(),
            lanes: 0,
            next_lane: 0,
            out: HashMap::new(),
            looked_at: None,
            contention: Contention::default(),
        }
    }

    fn open_lane(&mut self) -> LaneId {
        self.lanes += 1;
        self.next_lane = self.next_lane.wrapping_add(1);
        self.next_lane
    }

    /// Whether a batch out holds `bucket`'s row. An unbucketed campaign's lanes all take its
    /// one row, by design: none holds it from the others here.
    fn held(&self, bucket: Option<u16>) -> bool {
        bucket.is_some() && self.out.values().any(|(_, held)| held.contains(&bucket))
    }

    /// Whether a win waits whose bucket no batch out holds.
    fn any_free(&self) -> bool {
        self.waiting.iter().any(|m| !self.held(m.win.entry.bucket))
    }
}

/// How many locks the campaigns' queues are spread over: enough that two hot campaigns rarely
/// share one on any machine this runs on.
const SHARDS: usize = 64;

/// Every campaign's queue, in [`SHARDS`] maps by campaign id.
pub(super) struct Lanes {
    shards: Box<[Mutex<HashMap<i64, Queue>>]>,
    max_batch: usize,
    /// `GROUP_COMMIT_BUCKET_LANES`: the most lanes of a bucketed campaign.
    max_lanes: u16,
    /// `GROUP_COMMIT_ROW_LANES`: the most lanes of an unbucketed campaign.
    row_lanes: u16,
    /// `DB_ACQUIRE_TIMEOUT_MS`: how long no lane may take a batch before a win waiting may
    /// leave.
    queue_timeout: Duration,
}

impl Lanes {
    /// `max_lanes`: (a bucketed campaign's, an unbucketed one's).
    pub(super) fn new(max_batch: usize, max_lanes: (u16, u16), queue_timeout: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            max_batch,
            max_lanes: max_lanes.0.max(1),
            row_lanes: max_lanes.1.max(1),
            queue_timeout,
        }
    }

    /// The map that holds `campaign_id`'s queue, locked.
    fn lock(&self, campaign_id: i64) -> MutexGuard<'_, HashMap<i64, Queue>> {
        let shard = usize::try_from(campaign_id.rem_euclid(SHARDS as i64)).unwrap_or(0);
        // A panic while the map is held cannot leave a queue half-changed (pushes and drains).
        self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `member` in its campaign's queue; a lane for the caller to start when the
    /// campaign had none, or when a full batch waits while every lane has a batch out (below
    /// the campaign's most lanes: a bucketed one's, or an unbucketed one's).
    pub(super) fn enqueue(&self, member: Member) -> Option<LaneId> {
        let bucketed = member.win.entry.bucket.is_some();
        let mut queues = self.lock(member.win.entry.campaign_id);
        match queues.entry(member.win.entry.campaign_id) {
            Entry::Occupied(mut queue) => {
                let queue = queue.get_mut();
                queue.waiting.push_back(member);
                if queue.lanes == 0 {
                    // Kept idle for what its lanes found of another writer.
                    return Some(queue.open_lane());
                }
                if queue.waiting.len() < self.max_batch {
                    return None;
                }
                queue.full.notify_one();
                // Every lane has a batch out (none is about to take this one).
                let all_out = queue.out.len() >= usize::from(queue.lanes);
                let most = if bucketed {
                    self.max_lanes
                } else {
                    self.row_lanes
                };
                let more = queue.lanes < most && all_out;
                more.then(|| queue.open_lane())
            }
            Entry::Vacant(vacant) => {
                let queue = vacant.insert(Queue::new());
                queue.waiting.push_back(member);
                let lane = queue.open_lane();
                // Idle queues of this shard kept for their contention go once it is old
                // (checked when a campaign opens a queue, not on every lane's close).
                let now = Instant::now();
                queues.retain(|_, q| {
                    q.lanes > 0 || !q.waiting.is_empty() || q.contention.recent(now)
                });
                Some(lane)
            }
        }
    }

    /// A lane for the caller to start when every batch of `campaign_id` out has been out longer
    /// than [`STALL`] while a win of another bucket waits (a bucketed campaign, below its most
    /// lanes).
    pub(super) fn open_if_stalled(&self, campaign_id: i64) -> Option<LaneId> {
        let mut queues = self.lock(campaign_id);
        let queue = queues.get_mut(&campaign_id)?;
        let now = Instant::now();
        if queue.lanes >= self.max_lanes || queue.looked_at.is_some_and(|at| now - at < STALL) {
            return None;
        }
        queue.looked_at = Some(now);
        let stalled = !queue.out.is_empty()
            && queue
                .out
                .values()
                .all(|(since, _)| since.elapsed() >= STALL);
        let bucketed = queue.waiting.front()?.win.entry.bucket.is_some();
        (bucketed && stalled && queue.any_free()).then(|| queue.open_lane())
    }

    /// Takes a still-queued win out when no lane took a batch for the queue timeout; `Taken`
    /// if a batch already took it.
    pub(super) fn withdraw(&self, campaign_id: i64, ticket: u64) -> Withdrawn {
        let mut queues = self.lock(campaign_id);
        let Some(queue) = queues.get_mut(&campaign_id) else {
            return Withdrawn::Taken;
        };
        let Some(at) = queue.waiting.iter().position(|m| m.ticket == ticket) else {
            return Withdrawn::Taken;
        };
        if queue.moved_at.elapsed() < self.queue_timeout {
            return Withdrawn::Moving;
        }
        queue.waiting.remove(at);
        Withdrawn::Out
    }

    /// Wins queued for a campaign's next transactions.
    pub(super) fn queued(&self, campaign_id: i64) -> usize {
        self.lock(campaign_id)
            .get(&campaign_id)
            .map_or(0, |q| q.waiting.len())
    }

    /// Lane `lane`'s next batch, its previous one done: the waiting wins of buckets no other
    /// batch out holds. `None` closes the lane: nothing it may take waits, or (after its first
    /// batch) less than a full batch waits while another lane runs.
    pub(super) fn take(&self, campaign_id: i64, lane: LaneId, first: bool) -> Option<Vec<Member>> {
        let mut queues = self.lock(campaign_id);
        let queue = queues.get_mut(&campaign_id)?;
        queue.out.remove(&lane);
        let others = queue.lanes > 1;
        let batch = match () {
            _ if others && !first && queue.waiting.len() < self.max_batch => None,
            _ => self.free_batch(queue),
        };
        let Some(batch) = batch else {
            queue.lanes -= 1;
            let now = Instant::now();
            if queue.lanes == 0 && queue.waiting.is_empty() && !queue.contention.recent(now) {
                queues.remove(&campaign_id);
            }
            return None;
        };
        let buckets = batch.iter().map(|m| m.win.entry.bucket).collect();
        queue.out.insert(lane, (Instant::now(), buckets));
        queue.moved_at = Instant::now();
        Some(batch)
    }

    /// The head of the queue's wins whose buckets no batch out holds, a list size of them at
    /// most `max_batch` (see `db::sql`: each size is one statement text, prepared once per
    /// connection); the rest keeps its order.
    fn free_batch(&self, queue: &mut Queue) -> Option<Vec<Member>> {
        if queue.out.is_empty() {
            let n = size_at_most(queue.waiting.len().min(self.max_batch));
            return (n > 0).then(|| queue.waiting.drain(..n).collect());
        }
        let free: Vec<bool> = (queue.waiting.iter())
            .map(|m| !queue.held(m.win.entry.bucket))
            .collect();
        let count = free.iter().filter(|&&f| f).count();
        let mut n = size_at_most(count.min(self.max_batch));
        if n == 0 {
            return None;
        }
        let (mut batch, mut rest) = (Vec::with_capacity(n), VecDeque::new());
        for (member, free) in queue.waiting.drain(..).zip(free) {
            if free && n > 0 {
                batch.push(member);
                n -= 1;
            } else {
                rest.push_back(member);
            }
        }
        queue.waiting = rest;
        Some(batch)
    }

    /// Whether `campaign_id`'s next batch over several buckets takes only the free rows
    /// ([`Contention::skips`]).
    pub(super) fn skips(&self, campaign_id: i64, now: Instant) -> bool {
        let queues = self.lock(campaign_id);
        queues
            .get(&campaign_id)
            .is_none_or(|q| q.contention.skips(now))
    }

    /// A batch of `campaign_id` that took only the free rows, and whether it found one held.
    pub(super) fn found(&self, campaign_id: i64, now: Instant, held: bool) {
        if let Some(queue) = self.lock(campaign_id).get_mut(&campaign_id) {
            queue.contention.found(now, held);
        }
    }

    /// What signals a full batch in `campaign_id`'s queue, while it holds less (`None`: full
    /// already, or closed).
    pub(super) fn until_full(&self, campaign_id: i64) -> Option<Arc<Notify>> {
        match self.lock(campaign_id).get(&campaign_id) {
            Some(queue) if queue.waiting.len() < self.max_batch => Some(queue.full.clone()),
            _ => None,
        }
    }

    /// Puts the members a batch left for the next back at the head of their queue, in their
    /// order.
    pub(super) fn requeue(&self, campaign_id: i64, deferred: Vec<Member>) {
        if deferred.is_empty() {
            return;
        }
        let mut queues = self.lock(campaign_id);
        let queue = queues.entry(campaign_id).or_insert_with(Queue::new);
        for member in deferred.into_iter().rev() {
            queue.waiting.push_front(member);
        }
    }
}

/// How long a lane keeps taking only the free bucket rows after a batch found one held.
const CONTENTION_HELD_FOR: Duration = Duration::from_secs(1);

/// How often a lane that found no row held looks again, by taking only the free rows once.
const CONTENTION_PROBE_EVERY: Duration = Duration::from_millis(200);

/// Whether a lane's batches over several buckets take only the rows no other writer holds
/// (`SELECT … SKIP LOCKED` first: one statement more a transaction) or every row they need, as
/// one instance alone does without waiting. One writer per campaign (`super::writer`) is the
/// answer to two instances on one campaign; this is its safety net, for the times two still
/// write it (wins under a group's limit and purchases, written where they were reserved; a
/// moment the instances disagree on the writer; `WRITER_PER_CAMPAIGN=false`), so that their
/// batches pass each other's rows instead of waiting on them (docs/design.md §23). A lane takes only the free rows while it found one
/// held within [`CONTENTION_HELD_FOR`], and once every [`CONTENTION_PROBE_EVERY`] otherwise, to
/// notice another writer. Kept per campaign, shared by its lanes, and kept while recent when
/// the campaign's queue is idle (kept per lane, it was lost whenever a lane closed: a lane that
/// took the whole queue in one batch closed, and the next one probed afresh).
#[derive(Default)]
pub(super) struct Contention {
    held_at: Option<Instant>,
    probed_at: Option<Instant>,
}

impl Contention {
    /// Whether a batch found a row held within [`CONTENTION_HELD_FOR`]: the campaign's idle
    /// queue is kept that long, so that its next lane skips from its first batch.
    fn recent(&self, now: Instant) -> bool {
        self.held_at.is_some_and(|t| now - t < CONTENTION_HELD_FOR)
    }

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

    fn member(ticket: u64, bucket: Option<u16>) -> Member {
        let (answer, _) = oneshot::channel();
        let win = crate::write::rows::test_win(1, ticket as i64, bucket);
        Member {
            ticket,
            win,
            answer,
            deferred: 0,
        }
    }

    fn buckets(batch: &[Member]) -> Vec<Option<u16>> {
        batch.iter().map(|m| m.win.entry.bucket).collect()
    }

    #[test]
    fn one_lane_takes_every_bucket_until_a_full_batch_waits_beyond_it() {
        let lanes = Lanes::new(4, (8, 1), Duration::from_secs(5));
        let first = lanes
            .enqueue(member(0, Some(0)))
            .expect("the campaign's first lane");
        for t in 1..4 {
            assert_eq!(lanes.enqueue(member(t, Some(t as u16))), None);
        }
        let batch = lanes.take(1, first, true).expect("a batch");
        assert_eq!(buckets(&batch), [Some(0), Some(1), Some(2), Some(3)]);
        // Wins queue behind it; a full batch beyond it opens a second lane, which takes only
        // the buckets the first does not hold.
        for t in 4..7 {
            assert_eq!(lanes.enqueue(member(t, Some(t as u16 % 5))), None);
        }
        let second = lanes.enqueue(member(7, Some(7))).expect("a second lane");
        let batch = lanes.take(1, second, true).expect("its batch");
        assert_eq!(
            buckets(&batch),
            [Some(4), Some(7)],
            "buckets 0 and 1 are held"
        );
        assert_eq!(lanes.queued(1), 2);
        // The first lane, done, finds less than a full batch with another lane running, and
        // closes; the last lane keeps the queue: the second takes the rest.
        assert!(lanes.take(1, first, false).is_none());
        let rest = lanes.take(1, second, false).expect("the rest");
        assert_eq!(buckets(&rest), [Some(0), Some(1)]);
        assert!(lanes.take(1, second, false).is_none(), "nothing waits");
        assert_eq!(lanes.queued(1), 0);
        assert_eq!(
            lanes.enqueue(member(8, Some(0))).map(|_| ()),
            Some(()),
            "reopens"
        );
    }

    #[test]
    fn a_stalled_batch_lets_a_win_of_another_bucket_open_a_lane() {
        let lanes = Lanes::new(64, (2, 1), Duration::from_secs(5));
        let first = lanes.enqueue(member(0, Some(0))).expect("a lane");
        let _out = lanes.take(1, first, true).expect("bucket 0 out");
        assert!(lanes.enqueue(member(1, Some(0))).is_none());
        assert!(lanes.open_if_stalled(1).is_none(), "not stalled yet");
        std::thread::sleep(STALL);
        assert!(
            lanes.open_if_stalled(1).is_none(),
            "only bucket 0 waits: its batch holds it"
        );
        assert!(lanes.enqueue(member(2, Some(1))).is_none());
        assert!(
            lanes.open_if_stalled(1).is_none(),
            "one look a stall at most"
        );
        std::thread::sleep(STALL);
        let second = lanes
            .open_if_stalled(1)
            .expect("bucket 1 waits behind a stalled batch");
        let batch = lanes.take(1, second, true).expect("its batch");
        assert_eq!(buckets(&batch), [Some(1)]);
        assert!(lanes.open_if_stalled(1).is_none(), "two lanes at most");
    }

    #[test]
    fn what_a_campaign_found_of_another_writer_outlives_its_lanes() {
        let lanes = Lanes::new(64, (1, 1), Duration::from_secs(5));
        let lane = lanes.enqueue(member(0, Some(0))).expect("a lane");
        let _out = lanes.take(1, lane, true).expect("out");
        let now = Instant::now();
        lanes.found(1, now, true);
        assert!(
            lanes.take(1, lane, false).is_none(),
            "idle: the lane closes"
        );
        let again = lanes.enqueue(member(1, Some(1))).expect("a new lane");
        let _out = lanes.take(1, again, true).expect("out");
        // A clean probe by the new lane: the row found held a moment ago still counts.
        lanes.found(1, now + Duration::from_millis(10), false);
        assert!(lanes.skips(1, now + Duration::from_millis(50)));
        let later = now + CONTENTION_HELD_FOR;
        lanes.found(1, later, false);
        assert!(
            !lanes.skips(1, later + Duration::from_millis(50)),
            "a second on, it is old"
        );
    }

    #[test]
    fn campaigns_that_share_a_shard_keep_their_own_queues() {
        let lanes = Lanes::new(64, (1, 1), Duration::from_secs(5));
        let neighbour = 1 + SHARDS as i64;
        let of = |campaign_id, ticket| {
            let mut m = member(ticket, None);
            m.win.entry.campaign_id = campaign_id;
            m
        };
        let first = lanes.enqueue(of(1, 0)).expect("campaign 1's lane");
        let second = lanes
            .enqueue(of(neighbour, 1))
            .expect("its neighbour's lane");
        assert!(lanes.enqueue(of(1, 2)).is_none());
        assert_eq!((lanes.queued(1), lanes.queued(neighbour)), (2, 1));
        let batch = lanes.take(neighbour, second, true).expect("its batch");
        assert_eq!(batch.iter().map(|m| m.ticket).collect::<Vec<_>>(), [1]);
        assert_eq!(lanes.take(1, first, true).map(|b| b.len()), Some(2));
        assert!(lanes.take(neighbour, second, false).is_none());
    }

    #[test]
    fn an_unbucketed_campaign_opens_row_lanes_that_all_take_its_row() {
        let lanes = Lanes::new(2, (8, 2), Duration::from_secs(5));
        let first = lanes.enqueue(member(0, None)).expect("a lane");
        let _out = lanes.take(1, first, true).expect("out");
        assert!(lanes.enqueue(member(1, None)).is_none());
        // A full batch waits while the one lane has its batch out: a second lane, on the same
        // row (its participations go in while the first holds the row).
        let second = lanes.enqueue(member(2, None)).expect("a second lane");
        let batch = lanes.take(1, second, true).expect("its batch");
        assert_eq!(batch.iter().map(|m| m.ticket).collect::<Vec<_>>(), [1, 2]);
        // At its most lanes: a full batch waiting opens no third.
        assert!(lanes.enqueue(member(3, None)).is_none());
        assert!(lanes.enqueue(member(4, None)).is_none());
        assert!(lanes.enqueue(member(5, None)).is_none());
        // The first lane back takes a full batch; then less than one waits while the other
        // runs, and it closes.
        assert_eq!(lanes.take(1, first, false).map(|b| b.len()), Some(2));
        assert!(lanes.take(1, first, false).is_none());
    }

    #[test]
    fn an_unbucketed_campaign_keeps_one_lane() {
        let lanes = Lanes::new(2, (8, 1), Duration::from_secs(5));
        let lane = lanes.enqueue(member(0, None)).expect("a lane");
        let _out = lanes.take(1, lane, true).expect("out");
        for t in 1..6 {
            assert!(lanes.enqueue(member(t, None)).is_none());
        }
        std::thread::sleep(STALL);
        assert!(lanes.open_if_stalled(1).is_none());
    }

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
