//! A public read's answer kept briefly per instance (docs/design.md §17): `GET` of a campaign, of
//! a group and of a campaign's statistics cost MySQL two statements or so each, for anyone, as
//! often as they like; a flood of them slowed the joins beside it (issue 71: an 8-connection read
//! flood moved a join's p50 from 3 to 25 ms on two cores). Each answer, a "not found" included, is
//! kept `PUBLIC_READ_CACHE_MS` (0: off) and served to every read of the same id meanwhile, so a
//! flood costs MySQL one read per id per period per instance. The figures are that much older at
//! most; a join's, a control's or a cancel's own answer is never cached.

use std::{
    collections::HashMap,
    future::Future,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Ids kept at most; past it the expired ones go, and all of them if none has.
const MAX_ENTRIES: usize = 10_000;

/// Answers by id, each kept `ttl`.
pub struct ReadCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<i64, (Instant, V)>>,
}

impl<V: Clone> ReadCache<V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    /// The answer for `id` read less than the ttl ago, or `load`'s, kept when it succeeds.
    pub async fn get_or<E, F>(&self, id: i64, load: impl FnOnce() -> F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        if self.ttl.is_zero() {
            return load().await;
        }
        if let Some(value) = self.fresh(id, Instant::now()) {
            return Ok(value);
        }
        let value = load().await?;
        self.keep(id, value.clone(), Instant::now());
        Ok(value)
    }

    fn fresh(&self, id: i64, now: Instant) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&id)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, value)| value.clone())
    }

    fn keep(&self, id: i64, value: V, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(id, (now, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_is_served_again_for_its_ttl_and_read_anew_after() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let one: Result<i32, ()> = cache.get_or(1, || async { Ok(1) }).await;
        assert_eq!(one, Ok(1));
        let again: Result<i32, ()> = cache.get_or(1, || async { Ok(2) }).await;
        assert_eq!(again, Ok(1), "kept");
        let other: Result<i32, ()> = cache.get_or(2, || async { Ok(3) }).await;
        assert_eq!(other, Ok(3), "by id");
        let later = Instant::now() + Duration::from_secs(61);
        assert_eq!(cache.fresh(1, later), None, "past its ttl");
    }

    #[tokio::test]
    async fn a_failed_read_is_not_kept_and_a_zero_ttl_keeps_nothing() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let failed: Result<i32, &str> = cache.get_or(1, || async { Err("down") }).await;
        assert_eq!(failed, Err("down"));
        let read: Result<i32, &str> = cache.get_or(1, || async { Ok(5) }).await;
        assert_eq!(read, Ok(5));
        let off = ReadCache::new(Duration::ZERO);
        let _: Result<i32, ()> = off.get_or(1, || async { Ok(1) }).await;
        let fresh: Result<i32, ()> = off.get_or(1, || async { Ok(2) }).await;
        assert_eq!(fresh, Ok(2));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let now = Instant::now();
        for id in 0..(MAX_ENTRIES as i64 + 5) {
            cache.keep(id, id, now);
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
