//! An in-process memo of campaigns seen sold out, so that the flood after a sell-out is answered
//! without a Redis round trip (on a 2-core machine that round trip, with its syscalls and Redis's
//! own CPU, is most of the cost of a refused request; see docs/benchmarks.md ("Flash sale")).
//!
//! What it may answer: SOLD_OUT, for a user who is not in its copy of the winners set. A winner
//! (or a user whose reservation is in flight) still goes to Redis and gets ALREADY_PARTICIPATED
//! with their participation id, as if the memo did not exist. The copy is taken from Redis when
//! the set's size changes. Only "no stock left at all" is remembered, and only for
//! `SOLD_OUT_MEMO_MS`: stock can come back (a reservation released after a failed transaction),
//! and this instance sees it at most that long after Redis does. The memo never makes a win
//! possible that Redis or MySQL would refuse.
//!
//! A return here (a cancel, an expiry, a refund, added stock, a resume) forgets the campaign before
//! it answers, and a sell-out seen by a call made before that return is not remembered after it:
//! a join sent once the return answered is asked of Redis (docs/design.md §18.1). The same memo
//! keeps a bucketed campaign's last search that found no unit anywhere ([`SoldOutMemo::searched`]),
//! forgotten by a return alike.
//!
//! Bounds: campaigns with more than [`MAX_WINNERS`] winners are not memoized, and at most
//! [`MAX_ENTRIES`] campaigns are (a flash sale has one hot campaign), so the memo holds at most
//! a few million ids. One caller at a time copies a campaign's set ([`SoldOutMemo::start_copy`]);
//! the others meanwhile go to Redis as if there were no memo, instead of each running SMEMBERS.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use crate::gate::{Gate, Slot};

/// Largest winners set copied into the memo.
pub const MAX_WINNERS: i64 = 100_000;
/// Bound on remembered campaigns; past it the memo starts over.
pub const MAX_ENTRIES: usize = 16;

/// A campaign seen sold out: when, and its winners then.
struct SoldOutCampaign {
    seen_at: Instant,
    winners: Arc<HashSet<i64>>,
}

pub struct SoldOutMemo {
    ttl: Duration,
    entries: RwLock<HashMap<i64, SoldOutCampaign>>,
    /// Campaigns whose winners set one caller is copying now.
    copying: Mutex<HashSet<i64>>,
    /// When each campaign's latest search over its buckets found no unit (bucketed campaigns).
    searched: Mutex<HashMap<i64, Instant>>,
    /// When units last came back to each campaign here: a sell-out seen before it is stale and
    /// not recorded. Taken by the writers only, always before `entries` or `searched`.
    returned: Mutex<HashMap<i64, Instant>>,
}

impl SoldOutMemo {
    /// A zero `ttl` disables the memo.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::default(),
            copying: Mutex::default(),
            searched: Mutex::default(),
            returned: Mutex::default(),
        }
    }

    /// True when the campaign was seen with no stock less than `ttl` ago and `user_id` is not
    /// among its winners: the request can be answered SOLD_OUT without Redis.
    pub fn refuses(&self, campaign_id: i64, user_id: i64) -> bool {
        self.refuses_at(campaign_id, user_id, Instant::now())
    }

    fn refuses_at(&self, campaign_id: i64, user_id: i64, now: Instant) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(&campaign_id).is_some_and(|e| {
            now.saturating_duration_since(e.seen_at) < self.ttl && !e.winners.contains(&user_id)
        })
    }

    /// Runs `note` unless a return came here after `seen_at` (a sell-out seen before it is
    /// stale). Holding the returns' lock through `note` orders it with [`SoldOutMemo::forget`],
    /// which takes that lock first too: a stale sell-out is never noted after the forget. Only
    /// the writers take it; the refusals read as before.
    fn unless_returned_since(&self, campaign_id: i64, seen_at: Instant, note: impl FnOnce()) {
        let returned = self.returned.lock().unwrap_or_else(|p| p.into_inner());
        if returned.get(&campaign_id).is_none_or(|&at| seen_at > at) {
            note();
        }
    }

    /// A bucketed campaign: a search that began at `read_at` found no unit in the pool, any row
    /// or any gate. Repeated for `SOLD_OUT_MEMO_MS` by [`SoldOutMemo::searched`].
    pub fn note_searched(&self, campaign_id: i64, read_at: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        self.unless_returned_since(campaign_id, read_at, || {
            let mut searched = self.searched.lock().unwrap_or_else(|p| p.into_inner());
            searched.retain(|_, at| at.elapsed() < self.ttl);
            searched.insert(campaign_id, read_at);
        });
    }

    /// Whether a search found the bucketed campaign without a unit less than `SOLD_OUT_MEMO_MS`
    /// ago, and no return came here since it began.
    pub fn searched(&self, campaign_id: i64) -> bool {
        let searched = self.searched.lock().unwrap_or_else(|p| p.into_inner());
        searched
            .get(&campaign_id)
            .is_some_and(|at| at.elapsed() < self.ttl)
    }

    /// After Redis answered SOLD_OUT with no stock and `winners` set members, to a call made at
    /// `asked_at`: refreshes the entry if its copy of the set has that size and returns `true`;
    /// otherwise `false`, and the caller fetches the set (if [`SoldOutMemo::start_copy`] lets it)
    /// and records it. The memo's window counts from `asked_at`, the earliest moment the
    /// answer can describe, never from when it was noted (after the copy, or after a busy
    /// runtime got to it): a sold-out is repeated at most `SOLD_OUT_MEMO_MS` after Redis saw it.
    pub fn refresh(&self, campaign_id: i64, winners: i64, asked_at: Instant) -> bool {
        if self.ttl.is_zero() || winners > MAX_WINNERS {
            return true;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        match entries.get_mut(&campaign_id) {
            Some(e) if e.winners.len() as i64 == winners => {
                e.seen_at = e.seen_at.max(asked_at);
                true
            }
            _ => false,
        }
    }

    /// Notes a sold-out campaign (its unbucketed `slot`), copying the winners set from `gate`
    /// when it changed (one caller at a time): [`SoldOutMemo::refresh`], else the copy. Best
    /// effort: without the copy the memo simply does not answer for the campaign.
    pub async fn remember(&self, gate: &Gate, slot: Slot, winners: i64, asked_at: Instant) {
        if self.refresh(slot.campaign_id, winners, asked_at) {
            return;
        }
        let Some(copy) = self.start_copy(slot.campaign_id) else {
            return;
        };
        match gate.winners(slot).await {
            // Fewer members than Redis counted with its SOLD_OUT answer: the keys were lost in
            // between (eviction, flush). Such a copy would refuse past winners SOLD_OUT instead
            // of ALREADY_PARTICIPATED; a larger set only sends more users on to Redis.
            Ok(set) if (set.len() as i64) < winners => {
                tracing::debug!(
                    copied = set.len(),
                    winners,
                    "The winners set shrank while copied; no sold-out memo."
                );
            }
            Ok(set) => copy.record(set, asked_at),
            Err(e) => {
                tracing::debug!(error = %e, "Could not copy the winners set; no sold-out memo.")
            }
        }
    }

    /// `Some` when the caller is the one to copy the campaign's winners set now; the copy ends
    /// when the guard is recorded or dropped (a caller cancelled mid-copy does not block the
    /// next one).
    pub fn start_copy(&self, campaign_id: i64) -> Option<WinnersCopy<'_>> {
        let started = self
            .copying
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(campaign_id);
        started.then_some(WinnersCopy {
            memo: self,
            campaign_id,
        })
    }

    fn end_copy(&self, campaign_id: i64) {
        self.copying
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&campaign_id);
    }

    /// Drops what is remembered of the campaign: stock came back here (a cancel, an expiry, a
    /// refund, an admin's added units or resume), so this instance asks Redis again at once, and
    /// a sell-out seen by a call made before now is not remembered later.
    pub fn forget(&self, campaign_id: i64) {
        let now = Instant::now();
        let mut returned = self.returned.lock().unwrap_or_else(|p| p.into_inner());
        returned.retain(|_, at| now.saturating_duration_since(*at) < self.ttl);
        returned.insert(campaign_id, now);
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&campaign_id);
        self.searched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&campaign_id);
    }

    /// Records a sold-out campaign with its winners set, seen by a call made at `seen_at`.
    fn record_at(
        &self,
        campaign_id: i64,
        winners: impl IntoIterator<Item = i64>,
        seen_at: Instant,
    ) {
        if self.ttl.is_zero() {
            return;
        }
        let entry = SoldOutCampaign {
            seen_at,
            winners: Arc::new(winners.into_iter().collect()),
        };
        self.unless_returned_since(campaign_id, seen_at, || {
            let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(campaign_id, entry);
        });
    }
}

/// The right to copy one campaign's winners set; see [`SoldOutMemo::start_copy`].
pub struct WinnersCopy<'a> {
    memo: &'a SoldOutMemo,
    campaign_id: i64,
}

impl WinnersCopy<'_> {
    /// Records the copy for a sold-out Redis answered to a call made at `asked_at`.
    pub fn record(self, winners: impl IntoIterator<Item = i64>, asked_at: Instant) {
        self.memo.record_at(self.campaign_id, winners, asked_at);
    }
}

impl Drop for WinnersCopy<'_> {
    fn drop(&mut self) {
        self.memo.end_copy(self.campaign_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_winners_for_the_ttl_only() {
        let ttl = Duration::from_millis(30);
        let memo = SoldOutMemo::new(ttl);
        let t0 = Instant::now();
        assert!(!memo.refuses_at(1, 7, t0));
        assert!(!memo.refresh(1, 2, t0), "no copy of the winners yet");
        memo.record_at(1, [5, 6], t0);
        assert!(memo.refuses_at(1, 7, t0));
        assert!(memo.refuses_at(1, 7, t0 + ttl - Duration::from_millis(1)));
        assert!(
            !memo.refuses_at(1, 5, t0),
            "a winner is sent on to Redis (ALREADY_PARTICIPATED)"
        );
        assert!(!memo.refuses_at(2, 7, t0));
        assert!(memo.refresh(1, 2, t0));
        assert!(
            !memo.refresh(1, 3, t0),
            "the winners set changed: fetch it again"
        );
        assert!(
            !memo.refuses_at(1, 7, t0 + ttl),
            "stale observations are not trusted"
        );
        assert!(memo.refresh(1, 2, t0 + ttl), "seen again with the same set");
        assert!(memo.refuses_at(1, 7, t0 + ttl));
    }

    #[test]
    fn a_return_forgets_the_sell_out_and_any_seen_before_it() {
        let memo = SoldOutMemo::new(Duration::from_secs(60));
        let before = Instant::now();
        memo.record_at(1, [5], before);
        memo.note_searched(2, before);
        assert!(memo.refuses_at(1, 7, Instant::now()) && memo.searched(2));
        memo.forget(1);
        memo.forget(2);
        assert!(!memo.refuses_at(1, 7, Instant::now()) && !memo.searched(2));
        // A call that saw the sell-out before the return, noted after it: not remembered.
        memo.record_at(1, [5], before);
        memo.note_searched(2, before);
        assert!(
            !memo.refuses_at(1, 7, Instant::now()),
            "seen before the return"
        );
        assert!(!memo.searched(2), "searched before the return");
        // One that saw it after the return is.
        let after = Instant::now() + Duration::from_millis(1);
        memo.record_at(1, [5], after);
        memo.note_searched(2, after);
        assert!(memo.refuses_at(1, 7, after) && memo.searched(2));
    }

    #[test]
    fn the_window_counts_from_the_call_that_saw_the_sell_out_not_from_the_note() {
        let ttl = Duration::from_millis(100);
        let memo = SoldOutMemo::new(ttl);
        let asked = Instant::now();
        // Noted 80 ms after the call (a slow copy of the winners set): 20 ms are left.
        memo.record_at(1, [5], asked);
        let noted = asked + Duration::from_millis(80);
        assert!(memo.refuses_at(1, 7, noted));
        assert!(
            !memo.refuses_at(1, 7, asked + ttl),
            "over 100 ms after Redis saw it"
        );
        // A refresh for an older call never moves the window back.
        assert!(memo.refresh(1, 1, asked + Duration::from_millis(50)));
        assert!(memo.refresh(1, 1, asked));
        assert!(memo.refuses_at(1, 7, asked + ttl));
        assert!(!memo.refuses_at(1, 7, asked + Duration::from_millis(150)));
    }

    #[test]
    fn one_caller_at_a_time_copies_a_set() {
        let memo = SoldOutMemo::new(Duration::from_secs(1));
        let first = memo.start_copy(1).expect("nobody copies yet");
        assert!(memo.start_copy(1).is_none(), "a copy is under way");
        assert!(memo.start_copy(2).is_some(), "per campaign");
        first.record([5], Instant::now());
        assert!(memo.refuses(1, 7));
        let second = memo.start_copy(1).expect("the copy ended");
        drop(second);
        assert!(memo.start_copy(1).is_some(), "a dropped copy ends too");
    }

    #[test]
    fn it_remembers_a_bounded_number_of_campaigns() {
        let memo = SoldOutMemo::new(Duration::from_secs(60));
        for id in 0..=MAX_ENTRIES as i64 {
            memo.record_at(id, [1], Instant::now());
        }
        let held = memo.entries.read().map(|e| e.len()).unwrap_or(0);
        assert!(held <= MAX_ENTRIES, "{held} campaigns held");
        assert!(
            memo.refresh(99, MAX_WINNERS + 1, Instant::now()),
            "too many winners: nothing to fetch"
        );
        assert!(!memo.refuses(99, 7), "and nothing memoized");
    }

    #[test]
    fn a_zero_ttl_disables_it() {
        let memo = SoldOutMemo::new(Duration::ZERO);
        memo.record_at(1, [], Instant::now());
        assert!(!memo.refuses(1, 7));
    }
}
