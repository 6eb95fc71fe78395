//! The admin door's limit on guessing (docs/design.md §17): each client IP has a bucket of failed
//! admin attempts (`ADMIN_FAILED_ATTEMPTS_BURST`, refilled at `ADMIN_FAILED_ATTEMPTS_PER_MINUTE`).
//! A failure takes one; a client whose bucket is empty is answered 429 with `Retry-After`
//! *before* its token is compared, so guessing runs at the refill rate however fast it knocks,
//! and an operator who mistyped waits seconds, not hours.
//!
//! The buckets live in this process, not in Redis: the admin API must keep working when Redis is
//! down, and the check happens before the comparison, which a take-a-token Redis call cannot do
//! without spending a token on every call. With N instances a client gets N buckets; the
//! refill rate keeps that to a few guesses a minute each.
//!
//! The table is bounded (`ADMIN_DOOR_MAX_CLIENTS`): a new client past the bound evicts the one
//! whose last failure is the oldest, in O(log n) under the lock, never a scan. A flood of fresh
//! addresses forgets the quiet clients first, while the one guessing now keeps its empty bucket.
//! Its size is `firstcome_admin_door_tracked_clients`.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::telemetry::metrics::Metrics;

/// Failed attempts per client IP.
#[derive(Debug)]
pub struct FailedAttempts {
    burst: f64,
    /// Attempts given back per second.
    refill: f64,
    max_clients: usize,
    table: Mutex<Table>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct Table {
    buckets: HashMap<String, Bucket>,
    /// Each client by the order of its last failure (`Bucket::order`): the first is the oldest.
    by_age: BTreeMap<u64, String>,
    /// The next failure's place in `by_age`.
    next: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures the client may still make.
    left: f64,
    at: Instant,
    /// Its key in `Table::by_age`.
    order: u64,
}

impl FailedAttempts {
    pub fn new(burst: u32, per_minute: u32, max_clients: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            refill: f64::from(per_minute.max(1)) / 60.0,
            max_clients: max_clients.max(1),
            table: Mutex::new(Table::default()),
            metrics,
        }
    }

    /// How long `client` must wait before it may try again, or `None` if it may try now.
    pub fn blocked(&self, client: &str, now: Instant) -> Option<Duration> {
        let table = self.lock();
        let left = table.buckets.get(client).map(|b| self.refilled(b, now))?;
        (left < 1.0).then(|| Duration::from_secs_f64((1.0 - left) / self.refill))
    }

    /// One failed attempt of `client`.
    pub fn record(&self, client: &str, now: Instant) {
        let mut table = self.lock();
        let order = table.next;
        table.next += 1;
        let left = match table.buckets.get(client).copied() {
            Some(bucket) => {
                table.by_age.remove(&bucket.order);
                self.refilled(&bucket, now)
            }
            None => {
                if table.buckets.len() >= self.max_clients {
                    if let Some((_, oldest)) = table.by_age.pop_first() {
                        table.buckets.remove(&oldest);
                    }
                }
                self.burst
            }
        };
        table.by_age.insert(order, client.to_string());
        let bucket = Bucket {
            left: (left - 1.0).max(0.0),
            at: now,
            order,
        };
        table.buckets.insert(client.to_string(), bucket);
        self.metrics
            .admin_door_tracked
            .set(table.buckets.len() as i64);
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.left + elapsed * self.refill).min(self.burst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(burst: u32, per_minute: u32, max_clients: usize) -> FailedAttempts {
        FailedAttempts::new(burst, per_minute, max_clients, Arc::new(Metrics::new()))
    }

    #[test]
    fn a_client_is_blocked_after_its_burst_and_freed_by_the_refill() {
        let door = door(3, 6, 100); // one attempt back every 10 s
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(door.blocked("a", t0), None);
            door.record("a", t0);
        }
        let wait = door.blocked("a", t0).expect("blocked after 3 failures");
        assert!(
            wait > Duration::from_secs(9) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        assert_eq!(door.blocked("b", t0), None, "another client is not blocked");
        let later = t0 + Duration::from_secs(10);
        assert_eq!(door.blocked("a", later), None, "one attempt refilled");
        door.record("a", later);
        assert!(door.blocked("a", later).is_some());
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest_failure_first() {
        let door = door(1, 1, 1_000);
        let t0 = Instant::now();
        door.record("guesser", t0);
        for i in 0..2_000 {
            door.record(&i.to_string(), t0);
            // The guesser keeps failing: its last failure is never the oldest for long.
            if i % 500 == 0 {
                door.record("guesser", t0);
            }
        }
        assert_eq!(door.lock().buckets.len(), 1_000);
        assert_eq!(door.lock().by_age.len(), 1_000);
        assert_eq!(door.metrics.admin_door_tracked.get(), 1_000);
        assert!(door.blocked("guesser", t0).is_some(), "still blocked");
        assert_eq!(door.blocked("0", t0), None, "the oldest were forgotten");
        assert!(door.blocked("1999", t0).is_some(), "the newest are kept");
    }
}
