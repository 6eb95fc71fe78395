//! Reservations of one slot batched into one call (docs/design.md §10 "Serial sections"): a
//! campaign's Redis thread runs every reservation of the campaign (or of a bucket), and each call
//! costs it a fixed part (the arguments, the campaign hash's read, the reply) besides the
//! reservation's own work. So the joins of a slot that arrive while its previous call is in flight
//! wait for it and go together in the next one (`lua/reserve_batch.lua`, up to
//! `REDIS_RESERVE_BATCH_MAX` joins), decided one after another in the order they arrived, each
//! exactly as `lua/reserve.lua` decides it: no timer, a join alone goes at once. Joins that carry an
//! admission or a group's limit take `reserve.lua` alone.
//!
//! A slot's calls are made by one task at a time (the first join of an idle slot starts it; it
//! ends when no join waits). A join whose batch failed (Redis down, a timeout) gets the error and
//! undoes its own reservation as after a call of its own (its value is its own clock and quantity,
//! which the batch stored); a join that stopped waiting for its answer has a reservation made in
//! its name undone here.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        LazyLock, Mutex, OnceLock,
    },
};

use prometheus_client::metrics::counter::Counter;
use redis::Script;
use tokio::sync::oneshot;

use super::{
    entry::Entry,
    scripts::{Decision, Gate, GateError, Release},
    slot::Slot,
};

static RESERVE_BATCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../../lua/entry.lua"),
        include_str!("../../lua/reserve_batch.lua")
    ))
});

/// A join waiting for its slot's next call.
struct Waiting {
    entry: Entry,
    now_ms: i64,
    answer: oneshot::Sender<Result<Decision, GateError>>,
}

/// A batch's failed call, told to each of its joins.
struct Failed {
    timeout: bool,
    text: String,
}

impl Failed {
    fn again(&self, deadline: std::time::Duration) -> GateError {
        if self.timeout {
            GateError::Timeout(deadline)
        } else {
            GateError::Batch(self.text.clone())
        }
    }
}

/// The joins waiting, by slot and gate epoch; a slot is in the map while its task runs.
#[derive(Default)]
pub struct Batches {
    waiting: Mutex<HashMap<(Slot, i64), Vec<Waiting>>>,
    calls: AtomicU64,
    reservations: AtomicU64,
    /// The same counts in the application's metrics, once it has them.
    exported: OnceLock<(Counter, Counter)>,
}

impl Batches {
    /// Calls made and joins decided by them so far (joins ÷ calls: the batches' mean size).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.reservations.load(Ordering::Relaxed),
        )
    }

    fn count(&self, joins: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        (self.reservations).fetch_add(joins as u64, Ordering::Relaxed);
        if let Some((calls, batched)) = self.exported.get() {
            calls.inc();
            batched.inc_by(joins as u64);
        }
    }
}

impl Gate {
    /// Counts the batched calls and their joins in these counters too (the application's
    /// `firstcome_gate_reserve_batch_calls_total` and `…_batched_joins_total`); the first call wins.
    pub fn export_batches(&self, calls: Counter, batched: Counter) {
        let _ = self.batches.exported.set((calls, batched));
    }

    /// [`Gate::reserve`] of a join without an admission or a group: in its slot's next batch.
    pub(super) async fn reserve_batched(
        &self,
        entry: &Entry,
        epoch: i64,
        now_ms: i64,
    ) -> Result<Decision, GateError> {
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            entry: *entry,
            now_ms,
            answer,
        };
        let key = (entry.slot(), epoch);
        let start = {
            let mut all = self.batches.waiting.lock().expect("batches lock");
            match all.get_mut(&key) {
                Some(queue) => {
                    queue.push(waiting);
                    false
                }
                None => {
                    all.insert(key, vec![waiting]);
                    true
                }
            }
        };
        if start {
            tokio::spawn(self.clone().drain(key));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(GateError::Batch("its call ended without an answer".into())))
    }

    /// The slot's task: calls until no join waits, then leaves the map.
    async fn drain(self, key: (Slot, i64)) {
        loop {
            let batch: Vec<Waiting> = {
                let mut all = self.batches.waiting.lock().expect("batches lock");
                let Some(queue) = all.get_mut(&key) else {
                    return;
                };
                if queue.is_empty() {
                    all.remove(&key);
                    return;
                }
                let take = queue.len().min(self.batch_max);
                queue.drain(..take).collect()
            };
            if let Err(failed) = self.call_batch(key, batch).await {
                // Redis failed or hung: the joins waiting now would wait a deadline each behind
                // one another; they fail with the batch's error at once instead.
                let rest: Vec<Waiting> = {
                    let mut all = self.batches.waiting.lock().expect("batches lock");
                    all.get_mut(&key).map(std::mem::take).unwrap_or_default()
                };
                for w in rest {
                    self.answer(w, Err(failed.again(self.timeout)));
                }
            }
        }
    }

    /// One call for `batch`; each join gets its answer. A failed call's error comes back too.
    async fn call_batch(
        &self,
        (slot, epoch): (Slot, i64),
        batch: Vec<Waiting>,
    ) -> Result<(), Failed> {
        let mut cmd = self.evalsha(&RESERVE_BATCH, slot, ["meta", "users", "pending"]);
        cmd.arg(epoch);
        for w in &batch {
            cmd.arg(w.entry.user_id).arg(w.entry.quantity).arg(w.now_ms);
        }
        self.batches.count(batch.len());
        let replies = self
            .run_evalsha::<Vec<Vec<redis::Value>>>(&RESERVE_BATCH, &cmd)
            .await;
        let failed = match replies {
            Ok(replies) if replies.len() == batch.len() => {
                for (w, reply) in batch.into_iter().zip(replies) {
                    self.answer(w, super::scripts::decision(&reply));
                }
                return Ok(());
            }
            Ok(replies) => Failed {
                timeout: false,
                text: format!(
                    "{} answers to a batch of {} joins",
                    replies.len(),
                    batch.len()
                ),
            },
            Err(e) => Failed {
                timeout: matches!(e, GateError::Timeout(_)),
                text: e.to_string(),
            },
        };
        // One error for them all: each join undoes what the call may have reserved.
        for w in batch {
            self.answer(w, Err(failed.again(self.timeout)));
        }
        Err(failed)
    }

    /// Hands a join its decision; a reservation nobody waits for any more is undone.
    fn answer(&self, w: Waiting, decision: Result<Decision, GateError>) {
        let reserved = matches!(decision, Ok(Decision::Reserved { .. }));
        if w.answer.send(decision).is_ok() || !reserved {
            return;
        }
        let gate = self.clone();
        let value = super::scripts::reservation_value(w.now_ms, w.entry.quantity);
        tokio::spawn(async move {
            if let Err(e) = gate.release(&w.entry, None, Release::Expire, &value).await {
                tracing::warn!(error = %e, campaign_id = w.entry.campaign_id, user_id = w.entry.user_id,
                    "Could not undo a reservation whose join stopped waiting; the reconciler gives it back.");
            }
        });
    }
}
