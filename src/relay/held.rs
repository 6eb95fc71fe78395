//! The rows a relay holds, and how a claim leaves them out.
//!
//! Rows are not leased one by one in MySQL (the shard lease is the fence, docs/design.md §7), so
//! a claim must be told which rows this relay already has: it names them by id, as runs
//! (`id < ? OR id > ?`), which the range optimizer cuts out of the claim's index scan, so a
//! claim does not read the rows in flight at all. Few runs keep the statement short.
//!
//! Held ids alone fragment quickly: workers publish at different paces, so the ids still held
//! are scattered among ids already published. A published row has left the index range the claim
//! scans (its status changed), so it can be inside a run without changing what the claim finds:
//! the set also keeps the ids this relay has published and recorded (`covered`, as intervals),
//! and a run spans every held id whose interval it shares. On the benchmark's 100-key drain that
//! is one run instead of thousands.
//!
//! An id leaves `covered` only when it is let go unpublished (its row is PENDING again, to be
//! claimed); PUBLISHED is final, so a recorded id may stay. Intervals below the oldest held id are
//! dropped, and all of them once nothing is held. If rows of other relays' shards break the ids
//! into more runs than a statement names ([`MAX_HELD_RUNS`]), the claim also leaves out every id
//! from the first run it could not name (`below`): it takes fewer rows, never a held one.

use std::collections::{BTreeMap, BTreeSet};

/// The most runs one claim names; the ids from the next run on are left out by a bound.
pub const MAX_HELD_RUNS: usize = 64;

/// Past this many intervals, `covered` is rebuilt from the held ids alone (it only glues runs).
const MAX_COVERED: usize = 4_096;

/// The ids a claim leaves out: every id in `runs` (inclusive ranges, ascending), and every id
/// from `below` on when there were more runs than [`MAX_HELD_RUNS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldRuns {
    pub runs: Vec<(i64, i64)>,
    pub below: Option<i64>,
}

impl HeldRuns {
    /// The runs of consecutive ids in `ids` (no published ids to join them).
    pub fn of(ids: &BTreeSet<i64>) -> Self {
        let mut held = HeldIds::default();
        for &id in ids {
            held.claimed(id);
        }
        held.runs()
    }
}

/// The ids held (claimed, their outcome not yet in MySQL) and the ids covered (held, or published
/// and recorded).
#[derive(Debug, Default)]
pub struct HeldIds {
    held: BTreeSet<i64>,
    /// Disjoint intervals `start → end` (inclusive) of covered ids; never adjacent.
    covered: BTreeMap<i64, i64>,
}

impl HeldIds {
    /// A claim returned the row.
    pub fn claimed(&mut self, id: i64) {
        self.held.insert(id);
        self.cover(id);
    }

    /// The row's PUBLISHED mark is committed.
    pub fn recorded(&mut self, id: i64) {
        self.held.remove(&id);
    }

    /// The row left unpublished (backoff or DEAD written, or plain PENDING): claims may see it.
    pub fn let_go(&mut self, id: i64) {
        if self.held.remove(&id) {
            self.uncover(id);
        }
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The runs a claim leaves out now: each run spans the held ids of one covered interval.
    pub fn runs(&mut self) -> HeldRuns {
        let Some(&oldest) = self.held.first() else {
            self.covered.clear();
            return HeldRuns::default();
        };
        self.covered.retain(|_, end| *end >= oldest);
        if self.covered.len() > MAX_COVERED {
            self.covered.clear();
            for id in self.held.clone() {
                self.cover(id);
            }
        }
        let mut out = HeldRuns::default();
        // The end of the covered interval of the run being built.
        let mut interval_end = i64::MIN;
        for &id in &self.held {
            if let Some((_, run_end)) = out.runs.last_mut().filter(|_| id <= interval_end) {
                *run_end = id;
                continue;
            }
            if out.runs.len() == MAX_HELD_RUNS {
                out.below = Some(id);
                break;
            }
            interval_end = self
                .covered
                .range(..=id)
                .next_back()
                .map_or(id, |(_, &end)| end);
            out.runs.push((id, id));
        }
        out
    }

    fn cover(&mut self, id: i64) {
        let before = self.covered.range(..=id).next_back().map(|(&s, &e)| (s, e));
        if matches!(before, Some((_, end)) if end >= id) {
            return;
        }
        let after = self.covered.get(&(id + 1)).copied();
        let start = match before {
            Some((start, end)) if end + 1 == id => start,
            _ => id,
        };
        let end = match after {
            Some(end) => {
                self.covered.remove(&(id + 1));
                end
            }
            None => id,
        };
        self.covered.insert(start, end);
    }

    fn uncover(&mut self, id: i64) {
        let Some((start, end)) = self.covered.range(..=id).next_back().map(|(&s, &e)| (s, e))
        else {
            return;
        };
        if end < id {
            return;
        }
        self.covered.remove(&start);
        if start < id {
            self.covered.insert(start, id - 1);
        }
        if id < end {
            self.covered.insert(id + 1, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_ids_are_named_as_runs_and_past_the_last_run_by_a_bound() {
        let ids: BTreeSet<i64> = [1, 2, 3, 7, 9, 10].into();
        let held = HeldRuns::of(&ids);
        assert_eq!(held.runs, vec![(1, 3), (7, 7), (9, 10)]);
        assert_eq!(held.below, None);
        let scattered: BTreeSet<i64> = (0..(MAX_HELD_RUNS as i64 + 5)).map(|i| i * 2).collect();
        let held = HeldRuns::of(&scattered);
        assert_eq!(held.runs.len(), MAX_HELD_RUNS);
        assert_eq!(held.runs.last(), Some(&(126, 126)));
        assert_eq!(
            held.below,
            Some(128),
            "every id from the first run not named on is left out"
        );
    }

    #[test]
    fn published_ids_join_the_runs_of_held_ids_and_ids_let_go_split_them() {
        let mut held = HeldIds::default();
        for id in 1..=10 {
            held.claimed(id);
        }
        // Every other row published: the held ones still make one run.
        for id in (2..=10).step_by(2) {
            held.recorded(id);
        }
        assert_eq!(held.runs().runs, vec![(1, 9)]);
        // Row 5 goes back to MySQL unpublished: a claim must be able to take it.
        held.let_go(5);
        assert_eq!(held.runs().runs, vec![(1, 3), (7, 9)]);
        // The oldest published ones fall away with the held ids below them.
        held.recorded(1);
        held.recorded(3);
        assert_eq!(held.runs().runs, vec![(7, 9)]);
        held.recorded(7);
        held.recorded(9);
        assert!(held.is_empty());
        assert_eq!(held.runs(), HeldRuns::default());
        // A new claim starts from nothing covered.
        held.claimed(12);
        held.claimed(14);
        assert_eq!(held.runs().runs, vec![(12, 12), (14, 14)]);
    }

    #[test]
    fn an_id_never_claimed_between_held_ids_splits_their_run() {
        let mut held = HeldIds::default();
        for id in [1, 2, 4, 5] {
            held.claimed(id);
        }
        held.recorded(2);
        // 3 was never claimed here (another relay's shard, or not yet committed).
        assert_eq!(held.runs().runs, vec![(1, 1), (4, 5)]);
    }
}
