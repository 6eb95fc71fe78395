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

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How many client buckets are kept before full ones are forgotten (a full bucket is the same as
/// none): a flood from many addresses cannot grow the map without bound.
const MAX_TRACKED: usize = 100_000;

/// Failed attempts per client IP.
#[derive(Debug)]
pub struct FailedAttempts {
    burst: f64,
    /// Attempts given back per second.
    refill: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures the client may still make.
    left: f64,
    at: Instant,
}

impl FailedAttempts {
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            refill: f64::from(per_minute.max(1)) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// How long `client` must wait before it may try again, or `None` if it may try now.
    pub fn blocked(&self, client: &str, now: Instant) -> Option<Duration> {
        let buckets = self.lock();
        let left = buckets.get(client).map(|b| self.refilled(b, now))?;
        (left < 1.0).then(|| Duration::from_secs_f64((1.0 - left) / self.refill))
    }

    /// One failed attempt of `client`.
    pub fn record(&self, client: &str, now: Instant) {
        let mut buckets = self.lock();
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(client) {
            buckets.retain(|_, b| self.refilled(b, now) < self.burst);
        }
        let left = buckets
            .get(client)
            .map_or(self.burst, |b| self.refilled(b, now));
        buckets.insert(
            client.to_string(),
            Bucket {
                left: (left - 1.0).max(0.0),
                at: now,
            },
        );
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.left + elapsed * self.refill).min(self.burst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bucket>> {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_blocked_after_its_burst_and_freed_by_the_refill() {
        let door = FailedAttempts::new(3, 6); // one attempt back every 10 s
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
    fn full_buckets_are_forgotten_when_the_map_is_full() {
        let door = FailedAttempts::new(2, 60_000);
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED {
            door.record(&i.to_string(), t0);
        }
        // A second later every bucket is full again: the next new client clears them.
        door.record("new", t0 + Duration::from_secs(1));
        assert_eq!(door.lock().len(), 1);
    }
}
