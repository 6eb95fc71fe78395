//! An in-process memo of campaigns seen sold out, so that the flood after a sell-out is answered
//! without a Redis round trip (on a 2-core machine that round trip, with its syscalls and Redis's
//! own CPU, is most of the cost of a refused request; see the README's benchmark notes).
//!
//! What it may answer: SOLD_OUT, for a user who is not in its copy of the winners set. A winner
//! (or a user whose reservation is in flight) still goes to Redis and gets ALREADY_PARTICIPATED
//! with their participation id, as if the memo did not exist. The copy is taken from Redis when
//! the set's size changes. Only "no stock left at all" is remembered, and only for
//! `SOLD_OUT_MEMO_MS`: stock can come back (a reservation released after a failed transaction),
//! and this instance sees it at most that long after Redis does. The memo never makes a win
//! possible that Redis or MySQL would refuse. Campaigns with more than `MAX_WINNERS` winners are
//! not memoized.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

/// Largest winners set copied into the memo.
pub const MAX_WINNERS: i64 = 100_000;
/// Bound on remembered campaigns; past it the memo starts over.
const MAX_ENTRIES: usize = 1_000;

struct Entry {
    seen_at: Instant,
    winners: Arc<HashSet<i64>>,
}

pub struct SoldOutMemo {
    ttl: Duration,
    entries: RwLock<HashMap<i64, Entry>>,
}

impl SoldOutMemo {
    /// A zero `ttl` disables the memo.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::default(),
        }
    }

    /// True when the campaign was seen with no stock less than `ttl` ago and `user_id` is not
    /// among its winners: the request can be answered SOLD_OUT without Redis.
    pub fn refuses(&self, campaign_id: i64, user_id: i64) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&campaign_id)
            .is_some_and(|e| e.seen_at.elapsed() < self.ttl && !e.winners.contains(&user_id))
    }

    /// After Redis answered SOLD_OUT with no stock and `winners` set members: refreshes the
    /// entry if its copy of the set has that size and returns `true`; otherwise `false`, and the
    /// caller fetches the set and calls [`SoldOutMemo::record`].
    pub fn refresh(&self, campaign_id: i64, winners: i64) -> bool {
        if self.ttl.is_zero() || winners > MAX_WINNERS {
            return true;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        match entries.get_mut(&campaign_id) {
            Some(e) if e.winners.len() as i64 == winners => {
                e.seen_at = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Records a sold-out campaign with its winners set.
    pub fn record(&self, campaign_id: i64, winners: impl IntoIterator<Item = i64>) {
        if self.ttl.is_zero() {
            return;
        }
        let entry = Entry {
            seen_at: Instant::now(),
            winners: Arc::new(winners.into_iter().collect()),
        };
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(campaign_id, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_winners_for_the_ttl_only() {
        let memo = SoldOutMemo::new(Duration::from_millis(30));
        assert!(!memo.refuses(1, 7));
        assert!(!memo.refresh(1, 2), "no copy of the winners yet");
        memo.record(1, [5, 6]);
        assert!(memo.refuses(1, 7));
        assert!(
            !memo.refuses(1, 5),
            "a winner is sent on to Redis (ALREADY_PARTICIPATED)"
        );
        assert!(!memo.refuses(2, 7));
        assert!(memo.refresh(1, 2));
        assert!(
            !memo.refresh(1, 3),
            "the winners set changed: fetch it again"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert!(!memo.refuses(1, 7), "stale observations are not trusted");
    }

    #[test]
    fn a_zero_ttl_disables_it() {
        let memo = SoldOutMemo::new(Duration::ZERO);
        memo.record(1, []);
        assert!(!memo.refuses(1, 7));
    }
}
