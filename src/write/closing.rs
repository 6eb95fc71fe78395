//! Closing the reservations of committed wins in Redis (the `pending` hash's `HDEL`). An
//! unbucketed campaign's batch closes its wins at once, in one call. A bucketed campaign's batch
//! holds wins of many buckets (docs/design.md §21), one slot each: one call per bucket and batch
//! cost a 64-bucket campaign 0.6 Redis commands a win more than the same campaign unbucketed. So
//! a bucket's committed wins are gathered and closed together every [`CLOSE_EVERY`] (or once
//! [`CLOSE_AT`] of them wait). Nothing waits for it: a reservation still open after its win
//! committed only looks in flight a moment longer (the drift audit repairs nothing while any is
//! open, the reconciler closes one left open after `RESERVATION_TIMEOUT_MS`, MySQL having its
//! win), and a bucketed join never judges a sell-out by the open reservations.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use futures::future::join_all;

use crate::gate::{Committed, Gate, Slot};

/// How often a bucket's gathered wins are closed.
pub const CLOSE_EVERY: Duration = Duration::from_millis(100);

/// A bucket with this many wins waiting is closed at once.
const CLOSE_AT: usize = 64;

/// The committed wins waiting to be closed, by bucket.
pub struct Closing {
    gate: Gate,
    waiting: Mutex<HashMap<Slot, Vec<Committed>>>,
}

impl Closing {
    /// Starts the task that closes the gathered wins every [`CLOSE_EVERY`]; it ends once the
    /// last handle is dropped.
    pub fn start(gate: Gate) -> Arc<Self> {
        let closing = Arc::new(Self {
            gate,
            waiting: Mutex::default(),
        });
        let weak: Weak<Self> = Arc::downgrade(&closing);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CLOSE_EVERY).await;
                let Some(closing) = weak.upgrade() else {
                    return;
                };
                closing.close_gathered().await;
            }
        });
        closing
    }

    /// Closes `users`' reservations in `slot`: at once for a campaign's only slot, with the
    /// bucket's other wins of the moment for a bucket.
    pub async fn close(&self, slot: Slot, users: Vec<Committed>) {
        if slot.bucket.is_none() {
            settle(&self.gate, slot, &users).await;
            return;
        }
        let full = {
            let mut waiting = self.lock();
            let gathered = waiting.entry(slot).or_default();
            gathered.extend(users);
            (gathered.len() >= CLOSE_AT).then(|| waiting.remove(&slot).unwrap_or_default())
        };
        if let Some(users) = full {
            settle(&self.gate, slot, &users).await;
        }
    }

    async fn close_gathered(&self) {
        let gathered: Vec<(Slot, Vec<Committed>)> = self.lock().drain().collect();
        join_all(
            gathered
                .iter()
                .map(|(slot, users)| settle(&self.gate, *slot, users)),
        )
        .await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Slot, Vec<Committed>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Closes committed wins' reservations. Best effort: one left open is found settled by the
/// reconciler (MySQL has the win) and only closed.
pub async fn settle(gate: &Gate, slot: Slot, users: &[Committed]) {
    if let Err(e) = gate.settle(slot, users).await {
        tracing::debug!(error = %e, %slot, wins = users.len(),
            "Could not close the reservations; the reconciler will.");
    }
}
