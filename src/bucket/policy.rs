//! A dry bucket's policy (docs/design.md §21): where it takes units from, how many, and when its
//! join stops waiting for them. Decisions only: the join carries them out (`join::tail`: the
//! refill, the steal, MySQL's count, through `store` and the gate).
//!
//! - **From where**: the undealt pool first, a refill of [`refill_units`]; once the pool is
//!   empty, the sibling whose gate has the most free units ([`fullest`]).
//! - **When it stops**: [`TailWait`]: while MySQL's campaign-wide count moves the join waits;
//!   it refuses once nothing is left ([`counted`]) or the count stood still; past its longest
//!   wait it answers busy.

use std::time::{Duration, Instant};

use crate::{bucket::Deal, gate::Slot};

/// Searches that moved units to the home bucket and still found it dry (its other joins took
/// them) before the join answers SERVICE_BUSY: units exist, so SOLD_OUT would be false.
const MOVED_ROUNDS: u32 = 64;

/// How many units a dry bucket takes from the pool for a join of `quantity`: a chunk of the
/// deal, or the quantity when it is more.
pub fn refill_units(deal: Deal, quantity: i64) -> i64 {
    deal.chunk.max(quantity)
}

/// The sibling to take from: the one whose gate has the most free units (the lowest slot among
/// equals), none when no sibling has one. `read` is each sibling's free units (`None`: its gate
/// holds no state).
pub fn fullest(read: impl IntoIterator<Item = (Slot, Option<i64>)>) -> Option<Slot> {
    read.into_iter()
        .filter_map(|(slot, free)| Some((slot, free?)))
        .filter(|&(_, free)| free > 0)
        .max_by_key(|&(slot, free)| (free, std::cmp::Reverse(slot)))
        .map(|(slot, _)| slot)
}

/// What MySQL's campaign-wide count of `remaining` units (pool and every row, in one snapshot)
/// means for a join of `quantity` whose search moved nothing.
pub fn counted(remaining: i64, quantity: i64) -> Found {
    if remaining < quantity {
        Found::SoldOut
    } else {
        Found::InFlight { remaining }
    }
}

/// What the dry bucket's search found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Units reached the home bucket's gate: the join asks it again.
    Moved,
    /// MySQL had fewer than the join's quantity in the whole campaign at one instant: SOLD_OUT.
    SoldOut,
    /// No gate has a free unit, but MySQL has `remaining` units (pool and rows): reservations
    /// in flight hold them (they commit, or come back), or a transfer is on its way to a gate.
    /// Ask again shortly.
    InFlight { remaining: i64 },
}

/// A dry bucket's join waiting while MySQL has units that no gate can give (reservations in
/// flight hold them, or a transfer on its way to a gate). It waits as long as they keep
/// settling: a SOLD_OUT answered while the campaign's units were still changing hands is one a
/// later arrival could prove false, by winning a unit that came back to a sibling's gate (issue
/// 68: 1,000 units over 64 buckets on two instances answered SOLD_OUT with units left, and later
/// joins won them). Only when MySQL's count stood still for as long as a join waits for its reservations in flight (units held by a
/// stalled MySQL or a dead instance's reservations: §18.1's bounds) does the SOLD_OUT stand; and
/// a join still waiting past its longest wait (half its commit window) answers SERVICE_BUSY
/// (units exist).
pub struct TailWait {
    started: Instant,
    /// How long MySQL's count may stand still (the join's wait for reservations in flight).
    stall: Duration,
    /// Past it, SERVICE_BUSY.
    longest: Duration,
    /// MySQL's count at the last search, and since when it has been that.
    remaining: Option<i64>,
    changed_at: Instant,
    pause: Duration,
    moved: u32,
}

/// What a dry bucket's join does after a search.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Ask the gate and search again at once (units reached the home bucket).
    Search,
    /// Units are settling: ask again after this pause.
    Sleep(Duration),
    SoldOut,
    Busy,
}

/// The pause between searches while units settle: 5 ms doubling to 40 ms, back to 5 ms each
/// time MySQL's count moves (the tail is short only if its last units are found at once).
const TAIL_FIRST_PAUSE: Duration = Duration::from_millis(5);
const TAIL_LONGEST_PAUSE: Duration = Duration::from_millis(40);

impl TailWait {
    /// A wait begun at `now` that refuses once MySQL's count stood still for `stall`, and answers
    /// busy past `longest`.
    pub fn new(stall: Duration, longest: Duration, now: Instant) -> Self {
        Self {
            started: now,
            stall,
            longest,
            remaining: None,
            changed_at: now,
            pause: TAIL_FIRST_PAUSE,
            moved: 0,
        }
    }

    /// The next step after a search that `found` this, at `now`.
    pub fn after(&mut self, found: Found, now: Instant) -> Next {
        let remaining = match found {
            Found::SoldOut => return Next::SoldOut,
            Found::Moved if self.moved >= MOVED_ROUNDS => return Next::Busy,
            Found::Moved => {
                self.moved += 1;
                self.changed_at = now;
                return Next::Search;
            }
            Found::InFlight { remaining } => remaining,
        };
        if self.remaining != Some(remaining) {
            self.remaining = Some(remaining);
            self.changed_at = now;
            self.pause = TAIL_FIRST_PAUSE;
        }
        let still = now.saturating_duration_since(self.changed_at);
        if still >= self.stall {
            return Next::SoldOut;
        }
        if now.saturating_duration_since(self.started) >= self.longest {
            return Next::Busy;
        }
        let pause = self.pause.min(self.stall - still);
        self.pause = (self.pause * 2).min(TAIL_LONGEST_PAUSE);
        Next::Sleep(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// The wait a join with this commit window makes: a second of stillness, half the window.
    fn wait_of(commit_within: Duration, now: Instant) -> TailWait {
        TailWait::new(Duration::from_secs(1), commit_within / 2, now)
    }

    #[test]
    fn the_pool_gives_a_chunk_the_fullest_sibling_is_taken_from_and_the_count_decides() {
        let deal = Deal::of(1_000, 64);
        assert_eq!(refill_units(deal, 1), deal.chunk);
        assert_eq!(refill_units(deal, 9), 9);
        let slot = |b| Slot {
            campaign_id: 1,
            bucket: Some(b),
            group: None,
        };
        let read = [
            (slot(1), Some(3)),
            (slot(2), None),
            (slot(3), Some(7)),
            (slot(4), Some(7)),
        ];
        assert_eq!(fullest(read), Some(slot(3)));
        assert_eq!(fullest([(slot(1), Some(0)), (slot(2), None)]), None);
        assert_eq!(counted(0, 1), Found::SoldOut);
        assert_eq!(counted(2, 3), Found::SoldOut);
        assert_eq!(counted(3, 3), Found::InFlight { remaining: 3 });
    }

    #[test]
    fn a_dry_join_waits_while_the_count_moves_and_refuses_once_it_stands_still() {
        // Production defaults: a 15 s reservation, so an 11.25 s commit window.
        let commit_within = Duration::from_millis(11_250);
        let t0 = Instant::now();
        let mut waiting = wait_of(commit_within, t0);
        let in_flight = |remaining| Found::InFlight { remaining };
        assert_eq!(waiting.after(in_flight(5), t0), Next::Sleep(5 * MS));
        assert_eq!(
            waiting.after(in_flight(5), t0 + 5 * MS),
            Next::Sleep(10 * MS)
        );
        // The count moves for three seconds: the join waits on, 5 ms after each move.
        let mut now = t0;
        for (i, remaining) in (1..=4).rev().enumerate() {
            now = t0 + Duration::from_millis(900) * (i as u32 + 1);
            assert_eq!(
                waiting.after(in_flight(remaining), now),
                Next::Sleep(5 * MS)
            );
        }
        // Then it stands still: SOLD_OUT a second after it last moved, not before.
        assert_eq!(waiting.after(in_flight(1), now + 999 * MS), Next::Sleep(MS));
        assert_eq!(waiting.after(in_flight(1), now + 1_000 * MS), Next::SoldOut);
    }

    #[test]
    fn pauses_double_up_to_their_longest_and_a_long_wait_answers_busy() {
        let t0 = Instant::now();
        let mut waiting = wait_of(Duration::from_millis(11_250), t0);
        let pauses: Vec<Next> = (0..6)
            .map(|_| waiting.after(Found::InFlight { remaining: 3 }, t0))
            .collect();
        let ms = |n| Next::Sleep(n * MS);
        assert_eq!(pauses, vec![ms(5), ms(10), ms(20), ms(40), ms(40), ms(40)]);
        // Moving for half the commit window (5.625 s): units exist, so not SOLD_OUT.
        for step in 1..=11u32 {
            let now = t0 + Duration::from_millis(500) * step;
            assert!(matches!(
                waiting.after(
                    Found::InFlight {
                        remaining: i64::from(step) + 3
                    },
                    now
                ),
                Next::Sleep(_)
            ));
        }
        let late = t0 + Duration::from_millis(5_625);
        assert_eq!(
            waiting.after(Found::InFlight { remaining: 20 }, late),
            Next::Busy
        );
        assert_eq!(waiting.after(Found::SoldOut, late), Next::SoldOut);
    }

    #[test]
    fn units_taken_by_the_buckets_other_joins_64_times_answer_busy() {
        let t0 = Instant::now();
        let mut waiting = wait_of(Duration::from_millis(11_250), t0);
        for _ in 0..MOVED_ROUNDS {
            assert_eq!(waiting.after(Found::Moved, t0), Next::Search);
        }
        assert_eq!(waiting.after(Found::Moved, t0), Next::Busy);
    }
}
