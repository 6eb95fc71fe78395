//! Per-key order inside one relay: which keys have rows in the pipeline, and which keys are
//! blocked because one of their rows left the pipeline unpublished.
//!
//! # The invariant
//!
//! For every key, the rows this relay has in its pipeline (claimed and handed to the key's
//! worker, not yet recorded) are a run of the key's PENDING rows in id order, and they reach
//! librdkafka in that order. librdkafka keeps a partition's order, and the producer is set so
//! that it never fails a message while a later one of the partition is written (no message
//! timeout, unlimited retries, one request in flight, the gap-less guarantee for permanent
//! errors; see `kafka/producer.rs`). The relay's own purge, when Kafka does not answer, fails
//! every unacknowledged message at once, and rows sent on a producer replaced after a fatal
//! error are all reported before the new one is used (`worker.rs`). So what reaches the topic
//! is a prefix of that run.
//!
//! The run can only be broken by a row that leaves it unpublished: a produce failure, a row
//! dropped because the shard lease was lost, a worker that panicked with rows in hand. Then the
//! younger rows of that key behind it must not be sent before it. So:
//!
//! 1. The row that breaks the run **blocks** its key ([`KeyOrder::block`]) before anything else
//!    of that key is sent, and its own outcome (backoff, release) is written to MySQL.
//! 2. While a key is blocked, its worker sends none of its rows: each one reaching the worker
//!    is dropped, unsent and unchanged in MySQL ([`KeyOrder::is_blocked`]).
//! 3. The claim loop claims no row of a blocked key (read with [`KeyOrder::begin_claim`]) and
//!    counts every row it claimed as soon as the claim returns ([`KeyOrder::end_claim`]); a
//!    worker uncounts a row only after its outcome is in MySQL ([`KeyOrder::settled`]). While a claim runs
//!    ([`KeyOrder::begin_claim`]), no key is unblocked: the claim may be taking rows of a key
//!    that was blocked after it read the blocked keys, and those rows must find the key still
//!    blocked (measured: without this, a worker panic let rows claimed just before it go out
//!    ahead of the crashed batch).
//! 4. A blocked key is unblocked when its last row in the pipeline is settled. By then every row
//!    of the key is back in MySQL in a consistent state (published, in backoff, DEAD, or plain
//!    PENDING), so the next claim takes the key's rows again from its oldest, in id order, and
//!    the claim's own rules (a row in backoff holds back its younger rows) do the rest.
//!
//! There is no timer in this: a block ends exactly when the pipeline holds nothing of the key,
//! so it can neither end early (younger rows still queued) nor last forever (the rows drain).
//!
//! # Rows held
//!
//! Nothing in MySQL says that a row is in this relay's pipeline: the shard lease is the fence
//! (docs/design.md §7), and rows are not leased one by one. The ledger keeps their ids instead,
//! from the claim that took them until their outcome is in MySQL: a published row until its
//! PUBLISHED mark is committed ([`KeyOrder::recorded`]), any other row from the moment it is
//! settled (its backoff or DEAD mark is written, or it was dropped and is plain PENDING again).
//! Each claim leaves out the ids held when it starts ([`KeyOrder::begin_claim`]); an id is let go
//! only after MySQL shows its outcome, so a claim either sees the outcome or still leaves the row
//! out. A row settled otherwise than published is let go in the same step that settles its key,
//! so a key never opens while one of its rows is still left out of the claims (its younger rows
//! would be taken without it).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::relay::held::HeldIds;
pub use crate::relay::held::HeldRuns;

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct KeyState {
    /// Rows of the key handed to a worker and not yet settled.
    in_pipeline: usize,
    /// The smallest id of the key that left the pipeline unpublished; cleared with the entry
    /// when `in_pipeline` reaches zero.
    blocked_from: Option<i64>,
}

#[derive(Debug, Default)]
struct KeyLedger {
    keys: HashMap<String, KeyState>,
    /// Ids claimed whose outcome is not yet in MySQL (see "Rows held").
    held: HeldIds,
    /// A claim is running: keys whose last row settles meanwhile stay blocked until it ends.
    claiming: bool,
}

/// What a claim must leave alone, read at once when it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimView {
    /// Keys blocked in this relay.
    pub blocked: Vec<String>,
    /// The ids held, as runs (`held.rs`).
    pub held: HeldRuns,
}

/// Shared by the claim loop (which counts claimed rows) and the workers (which settle and
/// block).
#[derive(Debug)]
pub struct KeyOrder {
    book: Mutex<KeyLedger>,
    /// Wakes the claim loop when a key is unblocked: its rows are claimable again.
    unblocked: Arc<Notify>,
}

impl KeyOrder {
    pub fn new(unblocked: Arc<Notify>) -> Self {
        Self {
            book: Mutex::default(),
            unblocked,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyLedger> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A claim starts; returns what it must leave alone: the blocked keys and the held ids.
    pub fn begin_claim(&self) -> ClaimView {
        let mut book = self.lock();
        book.claiming = true;
        ClaimView {
            blocked: blocked_keys(&book),
            held: book.held.runs(),
        }
    }

    /// The claim returned `rows` (key and id of each row claimed): they are in the pipeline, and
    /// held, now. Keys whose block was held open by the claim and that have nothing left are
    /// unblocked.
    pub fn end_claim<'a>(&self, rows: impl IntoIterator<Item = (&'a str, i64)>) {
        let mut book = self.lock();
        for (key, id) in rows {
            book.keys.entry(key.to_string()).or_default().in_pipeline += 1;
            book.held.claimed(id);
        }
        book.claiming = false;
        let before = book.keys.len();
        book.keys.retain(|_, s| s.in_pipeline > 0);
        let opened = book.keys.len() < before;
        drop(book);
        if opened {
            self.unblocked.notify_one();
        }
    }

    /// Keys the claim must leave alone (the claim reads them with the held ids, in
    /// [`KeyOrder::begin_claim`]).
    #[cfg(test)]
    fn blocked_keys(&self) -> Vec<String> {
        blocked_keys(&self.lock())
    }

    /// Row `id` of `key` left the pipeline unpublished: send nothing more of the key until the
    /// pipeline holds none of its rows.
    pub fn block(&self, key: &str, id: i64) {
        if let Some(state) = self.lock().keys.get_mut(key) {
            state.blocked_from = Some(state.blocked_from.map_or(id, |from| from.min(id)));
        }
    }

    pub fn is_blocked(&self, key: &str) -> bool {
        self.blocked_from(key).is_some()
    }

    /// The smallest id of `key` that left the pipeline unpublished, while the key is blocked.
    /// A younger row of the key that is delivered anyway broke per-key order on the topic.
    pub fn blocked_from(&self, key: &str) -> Option<i64> {
        self.lock().keys.get(key).and_then(|s| s.blocked_from)
    }

    /// `rows` (key and id) were settled with an outcome that is in MySQL now (backoff, DEAD), or
    /// none (dropped unsent: plain PENDING): they leave the pipeline and are no longer held.
    pub fn settled<'a>(&self, rows: impl IntoIterator<Item = (&'a str, i64)>) {
        self.leave(rows, true);
    }

    /// `rows` were published: they leave the pipeline, but stay held until the recorder's mark
    /// is committed ([`KeyOrder::recorded`]).
    pub fn published<'a>(&self, rows: impl IntoIterator<Item = (&'a str, i64)>) {
        self.leave(rows, false);
    }

    /// The PUBLISHED marks of `ids` are committed: claims see them, and no longer leave them out.
    pub fn recorded(&self, ids: &[i64]) {
        let mut book = self.lock();
        for &id in ids {
            book.held.recorded(id);
        }
    }

    fn leave<'a>(&self, rows: impl IntoIterator<Item = (&'a str, i64)>, let_go: bool) {
        let mut book = self.lock();
        let claiming = book.claiming;
        let mut opened = false;
        for (key, id) in rows {
            if let_go {
                book.held.let_go(id);
            }
            let Some(state) = book.keys.get_mut(key) else {
                continue;
            };
            state.in_pipeline = state.in_pipeline.saturating_sub(1);
            if state.in_pipeline == 0 && !(claiming && state.blocked_from.is_some()) {
                opened |= state.blocked_from.is_some();
                book.keys.remove(key);
            }
        }
        drop(book);
        if opened {
            self.unblocked.notify_one();
        }
    }

    /// Ids held: claimed, their outcome not yet in MySQL.
    pub fn held(&self) -> usize {
        self.lock().held.len()
    }

    /// Rows in the pipeline, over all keys.
    #[cfg(test)]
    fn in_pipeline(&self) -> usize {
        self.lock().keys.values().map(|s| s.in_pipeline).sum()
    }
}

fn blocked_keys(book: &KeyLedger) -> Vec<String> {
    book.keys
        .iter()
        .filter(|(_, s)| s.blocked_from.is_some())
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_lasts_exactly_until_the_keys_last_row_is_settled() {
        let order = KeyOrder::new(Arc::new(Notify::new()));
        order.begin_claim();
        order.end_claim([("a", 10), ("a", 11), ("a", 12), ("b", 13)]);
        order.block("a", 10);
        order.block("a", 12);
        assert_eq!(order.blocked_from("a"), Some(10));
        assert!(order.is_blocked("a"));
        assert!(!order.is_blocked("b"));
        assert_eq!(order.blocked_keys(), vec!["a".to_string()]);
        // A row claimed while blocked (the claim raced the block) keeps the block alive.
        order.begin_claim();
        order.end_claim([("a", 14)]);
        order.settled([("a", 10), ("a", 11), ("a", 12)]);
        assert!(
            order.is_blocked("a"),
            "one row of `a` is still in the pipeline"
        );
        order.settled([("a", 14)]);
        assert!(!order.is_blocked("a"));
        assert!(order.blocked_keys().is_empty());
        assert_eq!(order.in_pipeline(), 1);
    }

    #[test]
    fn a_key_blocked_during_a_claim_stays_blocked_until_the_claim_has_counted_its_rows() {
        let order = KeyOrder::new(Arc::new(Notify::new()));
        order.begin_claim();
        order.end_claim([("a", 1)]);
        // The next claim starts (it sees no blocked key), then row `a` fails and settles.
        assert!(order.begin_claim().blocked.is_empty());
        order.block("a", 1);
        order.settled([("a", 1)]);
        assert!(
            order.is_blocked("a"),
            "the running claim may be taking younger rows of `a`"
        );
        order.end_claim([("a", 2)]);
        assert!(
            order.is_blocked("a"),
            "its row of `a` must be dropped, not sent"
        );
        order.settled([("a", 2)]);
        assert!(!order.is_blocked("a"));
        // A claim that took nothing of a blocked key lets it open when it ends.
        order.begin_claim();
        order.end_claim([("b", 3)]);
        order.begin_claim();
        order.block("b", 3);
        order.settled([("b", 3)]);
        assert!(order.is_blocked("b"));
        order.end_claim([]);
        assert!(!order.is_blocked("b"));
    }

    #[test]
    fn blocking_a_key_with_nothing_in_the_pipeline_does_nothing() {
        let order = KeyOrder::new(Arc::new(Notify::new()));
        order.block("a", 1);
        assert!(!order.is_blocked("a"));
        order.settled([("a", 1)]);
        assert_eq!(order.in_pipeline(), 0);
    }

    #[test]
    fn a_published_row_stays_held_until_its_mark_is_recorded_and_other_outcomes_let_go_at_once() {
        let order = KeyOrder::new(Arc::new(Notify::new()));
        order.begin_claim();
        order.end_claim([("a", 5), ("a", 6), ("b", 7), ("b", 9)]);
        let view = order.begin_claim();
        assert_eq!(view.held.runs, vec![(5, 7), (9, 9)]);
        order.end_claim([]);
        order.published([("a", 5), ("a", 6)]);
        order.block("b", 7);
        order.settled([("b", 7)]);
        assert_eq!(order.in_pipeline(), 1, "b's row 9 is still in the pipeline");
        assert_eq!(
            order.begin_claim().held.runs,
            vec![(5, 6), (9, 9)],
            "published rows stay left out until their mark is committed; the failed one not"
        );
        order.end_claim([]);
        order.recorded(&[5, 6]);
        order.settled([("b", 9)]);
        assert_eq!(order.held(), 0);
        assert!(!order.is_blocked("b"));
    }
}
