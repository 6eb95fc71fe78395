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
//!    is dropped and its lease released in MySQL ([`KeyOrder::is_blocked`]).
//! 3. The claim loop claims no row of a blocked key ([`KeyOrder::blocked_keys`]) and counts every
//!    row it claimed as soon as the claim returns ([`KeyOrder::end_claim`]); a worker uncounts a
//!    row only after its outcome is in MySQL ([`KeyOrder::settled`]). While a claim runs
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

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

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
    /// A claim is running: keys whose last row settles meanwhile stay blocked until it ends.
    claiming: bool,
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

    /// A claim starts; returns the keys it must leave alone.
    pub fn begin_claim(&self) -> Vec<String> {
        self.lock().claiming = true;
        self.blocked_keys()
    }

    /// The claim returned `keys` (one entry per row claimed): they are in the pipeline now.
    /// Keys whose block was held open by the claim and that have nothing left are unblocked.
    pub fn end_claim<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut book = self.lock();
        for key in keys {
            book.keys.entry(key.to_string()).or_default().in_pipeline += 1;
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

    /// Keys the claim must leave alone.
    pub fn blocked_keys(&self) -> Vec<String> {
        self.lock()
            .keys
            .iter()
            .filter(|(_, s)| s.blocked_from.is_some())
            .map(|(k, _)| k.clone())
            .collect()
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

    /// `rows` rows of `key` were settled (their outcome is in MySQL, or they were published).
    pub fn settled(&self, key: &str, rows: usize) {
        let mut book = self.lock();
        let claiming = book.claiming;
        let Some(state) = book.keys.get_mut(key) else {
            return;
        };
        state.in_pipeline = state.in_pipeline.saturating_sub(rows);
        if state.in_pipeline == 0 && !(claiming && state.blocked_from.is_some()) {
            let was_blocked = state.blocked_from.is_some();
            book.keys.remove(key);
            drop(book);
            if was_blocked {
                self.unblocked.notify_one();
            }
        }
    }

    /// Rows in the pipeline, over all keys.
    pub fn in_pipeline(&self) -> usize {
        self.lock().keys.values().map(|s| s.in_pipeline).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_lasts_exactly_until_the_keys_last_row_is_settled() {
        let order = KeyOrder::new(Arc::new(Notify::new()));
        order.begin_claim();
        order.end_claim(["a", "a", "a", "b"]);
        order.block("a", 10);
        order.block("a", 12);
        assert_eq!(order.blocked_from("a"), Some(10));
        assert!(order.is_blocked("a"));
        assert!(!order.is_blocked("b"));
        assert_eq!(order.blocked_keys(), vec!["a".to_string()]);
        // A row claimed while blocked (the claim raced the block) keeps the block alive.
        order.begin_claim();
        order.end_claim(["a"]);
        order.settled("a", 3);
        assert!(
            order.is_blocked("a"),
            "one row of `a` is still in the pipeline"
        );
        order.settled("a", 1);
        assert!(!order.is_blocked("a"));
        assert!(order.blocked_keys().is_empty());
        assert_eq!(order.in_pipeline(), 1);
    }

    #[test]
    fn a_key_blocked_during_a_claim_stays_blocked_until_the_claim_has_counted_its_rows() {
        let order = KeyOrder::new(Arc::new(Notify::new()));
        order.begin_claim();
        order.end_claim(["a"]);
        // The next claim starts (it sees no blocked key), then row `a` fails and settles.
        assert!(order.begin_claim().is_empty());
        order.block("a", 1);
        order.settled("a", 1);
        assert!(
            order.is_blocked("a"),
            "the running claim may be taking younger rows of `a`"
        );
        order.end_claim(["a"]);
        assert!(
            order.is_blocked("a"),
            "its row of `a` must be dropped, not sent"
        );
        order.settled("a", 1);
        assert!(!order.is_blocked("a"));
        // A claim that took nothing of a blocked key lets it open when it ends.
        order.begin_claim();
        order.end_claim(["b"]);
        order.begin_claim();
        order.block("b", 2);
        order.settled("b", 1);
        assert!(order.is_blocked("b"));
        order.end_claim([]);
        assert!(!order.is_blocked("b"));
    }

    #[test]
    fn blocking_a_key_with_nothing_in_the_pipeline_does_nothing() {
        let order = KeyOrder::new(Arc::new(Notify::new()));
        order.block("a", 1);
        assert!(!order.is_blocked("a"));
        order.settled("a", 1);
        assert_eq!(order.in_pipeline(), 0);
    }
}
