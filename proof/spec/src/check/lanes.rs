//! Which prefixes an operation may have seen, per key (§21). A bucketed campaign's merged order
//! ([`super::merge`]) places each event at its instant, not its commit, and a read sees commits:
//! an event of another key acknowledged before an operation began says that *its* key had
//! committed that far, not that every earlier event of the merge had. So a question about one
//! win (its user's confirm, cancel, refund, a repeated join) is judged on the windows of that
//! win's key alone, and a question about pause, resume and close on the campaign key's alone:
//! each is then what an unbucketed campaign's order gives, exactly. For an unbucketed campaign
//! (one key) these are the order's windows, unchanged.

use super::{
    merge::Merged,
    timeline::{Span, Windows},
    Ctx,
};
use crate::{
    event::Event,
    model::bucket::{home, Lane},
};

/// A campaign's keys and the windows each gives.
pub struct KeyWindows {
    pub buckets: i64,
    /// The keys, by index (as [`Merged::lanes`]).
    pub names: Vec<Lane>,
    /// `of[p]`: the key index of event `p`.
    pub of: Vec<usize>,
    /// Per key; empty when the campaign has at most one key (the order's windows serve).
    per_key: Vec<Windows>,
    /// A key without events: it bounds nothing.
    none: Windows,
    /// Per key, the position of its first win.
    first_win: Vec<Option<usize>>,
}

impl KeyWindows {
    /// O(n log n) per key with events, O(n) overall for one key.
    pub fn new(merged: &Merged, spans: &[Span], buckets: i64) -> Self {
        let many = merged.lanes.len() > 1;
        let per_key = match many {
            true => (0..merged.lanes.len())
                .map(|k| Windows::lane(spans, &merged.lane, k))
                .collect(),
            false => Vec::new(),
        };
        let mut first_win = vec![None; merged.lanes.len()];
        for (p, e) in merged.order.iter().enumerate() {
            if let (Event::Accepted { .. }, Some(first)) =
                (&e.event, first_win.get_mut(merged.lane[p]))
            {
                first.get_or_insert(p);
            }
        }
        Self {
            buckets,
            names: merged.lanes.clone(),
            of: merged.lane.clone(),
            per_key,
            none: Windows::lane(spans, &[], usize::MAX),
            first_win,
        }
    }

    pub fn bucketed(&self) -> bool {
        self.buckets > 1
    }

    pub fn index(&self, lane: Lane) -> Option<usize> {
        self.names.iter().position(|&l| l == lane)
    }

    /// Key `key`'s windows; the order's own (`all`) when the campaign has one key.
    fn of_key<'a>(&'a self, all: &'a Windows, key: Option<usize>) -> &'a Windows {
        if self.per_key.is_empty() {
            return all;
        }
        key.and_then(|k| self.per_key.get(k)).unwrap_or(&self.none)
    }

    /// Whether some instant of `[invoke, …]` may have had no win committed in any key.
    fn no_win_at(&self, all: &Windows, invoke: i64) -> bool {
        self.first_win
            .iter()
            .enumerate()
            .all(|(k, first)| first.is_none_or(|p| p >= self.of_key(all, Some(k)).earliest(invoke)))
    }
}

impl Ctx<'_> {
    /// The windows of the key that holds `user`'s win: the key its win was accepted under, or
    /// the user's home bucket's before any.
    pub fn user_windows(&self, user: i64) -> &Windows {
        let key = match self.replay.users.get(&user) {
            Some(line) => self.keys.of.get(line.accepted).copied(),
            None => match self.keys.bucketed() {
                true => self.keys.index(Lane::Bucket(home(user, self.keys.buckets))),
                false => self.keys.index(Lane::Campaign),
            },
        };
        self.keys.of_key(self.windows, key)
    }

    /// The windows of the campaign's own key: its controls'.
    pub fn control_windows(&self) -> &Windows {
        self.keys
            .of_key(self.windows, self.keys.index(Lane::Campaign))
    }

    /// `CAMPAIGN_NOT_OPEN`: whether the campaign may have had no win yet at some instant from
    /// `invoke` on; for a bucketed campaign, no key's first win acknowledged before it.
    pub fn no_win_yet(&self, invoke: i64) -> bool {
        if !self.keys.bucketed() {
            let a = self.windows.earliest(invoke);
            return self.replay.first_win.is_none_or(|w| w > a);
        }
        self.keys.no_win_at(self.windows, invoke)
    }
}
