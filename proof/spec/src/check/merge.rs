//! One order for a bucketed campaign (§21): its keys' orders ([`super::order`]) interleaved by
//! outbox id. The model's stock, the `SOLD_OUT` and `STOCK_IN_USE` refusals and the consumers'
//! figures are the campaign's, so they need one order; the topic gives one per key and none
//! across keys. An unbucketed campaign has one key: its order is the topic's, unchanged.
//!
//! # Why the outbox id
//!
//! Every transaction of a campaign locks the rows it changes (a bucket's row for a win and its
//! lifecycle, the campaign's row, its pool, for a control, both rows for a transfer) and takes
//! its outbox id after that lock; the ids come from one counter, handed out increasing. Call the
//! moment a transaction takes its id its *instant*. It lies after the request that caused it
//! began and before any answer that observed it (that answer follows the commit), and instants
//! increase with the ids. Hence:
//!
//! 1. Within a key, id order is commit order (the row's lock is held from before the id to the
//!    commit): the topic's order, which [`super::order::against_outbox`] checks.
//! 2. Stock. A unit that a win or a withdrawal takes was brought into its row by the initial
//!    stock, a stock addition or a return that committed before the taker locked the row: in
//!    the same row, or through transfers, each of which locks the row it takes from after what
//!    it takes committed. So every source took its id before the taker did, every prefix of the
//!    id order holds the sources its takers need, and its free units (stock − live units) are
//!    never negative if the service never oversold: an oversell or a withdrawal past the free
//!    units in the merged order is one in the service. Transfers move units between rows and
//!    write no event; the campaign's free units do not see them.
//! 3. Real time. Instants rise along the order and each lies within its event's span
//!    ([`super::timeline`]), so the merged order is consistent with real time, and the prefixes
//!    [`super::timeline::Windows`] allows an operation include the id prefix at every instant it
//!    ran; a real-time inversion anywhere in it is one. What needs a commit rather than an
//!    instant is bounded per key: an event's commit precedes the instant of the next event of
//!    its key, not of another key's ([`super::timeline::CommitBounds`]).
//! 4. Refusals. A read of the whole campaign at instant `t` sees the transactions committed by
//!    `t`: the id prefix at `t`, less the transactions that had their id but not yet their
//!    commit. Wins among those only lower the prefix's free units; a return or a stock addition
//!    raises them, so for a free-units question each is withheld from its position until its
//!    commit bound ([`super::arrivals`]' unseen units). Questions about one user's win are
//!    judged on its key's windows, about pause and close on the campaign key's: exact, as for
//!    an unbucketed campaign.
//!
//! A control's `remainingStock` is the one figure no merge can place: the control read the rows
//! of other keys at some instant of its own, so it is held only to `0..=totalStock`
//! ([`crate::model::CampaignModel::with_buckets`]). When some event has no outbox row (the
//! outbox was not taken) the lanes are merged by `occurredAt` instead: still every key's order,
//! but 2–4 then hold only as far as `occurredAt` follows the ids (inversions are then looked for
//! within each key only), and the report says so.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
};

use super::order::Lanes;
use crate::{event::Envelope, model::bucket::Lane};

/// A campaign's order with the key (lane) of each event.
#[derive(Debug, Default)]
pub struct Merged {
    pub order: Vec<Envelope>,
    /// `lane[p]`: the index in `lanes` of event `p`'s key.
    pub lane: Vec<usize>,
    /// The keys, by index.
    pub lanes: Vec<Lane>,
    /// Whether every event was placed by its outbox id (always, for one key).
    pub by_outbox: bool,
}

/// Interleaves the lanes by outbox id (`id_of`: eventId → id), or by `occurredAt` when some
/// event has no id. Every lane's own order is kept as it is. O(n log k) for k lanes.
pub fn merge(lanes: Lanes, id_of: &HashMap<&str, i64>) -> Merged {
    let names: Vec<Lane> = lanes.keys().copied().collect();
    let queues: Vec<Vec<Envelope>> = lanes.into_values().collect();
    if queues.len() <= 1 {
        let order = queues.into_iter().next().unwrap_or_default();
        return Merged {
            lane: vec![0; order.len()],
            order,
            lanes: names,
            by_outbox: true,
        };
    }
    let by_outbox = queues
        .iter()
        .flatten()
        .all(|e| id_of.contains_key(e.event_id.as_str()));
    let place = |e: &Envelope| match by_outbox {
        true => id_of.get(e.event_id.as_str()).copied().unwrap_or(i64::MAX),
        false => e.occurred_at.timestamp_nanos_opt().unwrap_or(i64::MAX),
    };
    let total = queues.iter().map(Vec::len).sum();
    let mut merged = Merged {
        order: Vec::with_capacity(total),
        lane: Vec::with_capacity(total),
        lanes: names,
        by_outbox,
    };
    let mut iters: Vec<_> = queues
        .into_iter()
        .map(|q| q.into_iter().peekable())
        .collect();
    let mut heads = BinaryHeap::new();
    for (i, it) in iters.iter_mut().enumerate() {
        if let Some(e) = it.peek() {
            heads.push(Reverse((place(e), i)));
        }
    }
    while let Some(Reverse((_, i))) = heads.pop() {
        let Some(e) = iters[i].next() else { continue };
        merged.order.push(e);
        merged.lane.push(i);
        if let Some(next) = iters[i].peek() {
            heads.push(Reverse((place(next), i)));
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::event::{ControlKind, Event};

    fn event(id: &str, second: i64) -> Envelope {
        Envelope {
            event_id: id.to_owned(),
            campaign: 1,
            occurred_at: DateTime::<Utc>::from_timestamp(second, 0).unwrap_or_default(),
            event: Event::Control {
                kind: ControlKind::Pause,
                seq: 1,
                total_stock: 1,
                remaining_stock: 1,
            },
        }
    }

    fn ids(m: &Merged) -> Vec<&str> {
        m.order.iter().map(|e| e.event_id.as_str()).collect()
    }

    #[test]
    fn lanes_interleave_by_outbox_id_and_keep_their_own_order() {
        let mut lanes = Lanes::new();
        // Bucket 0's second event carries a lower id than its first: its order is kept.
        lanes.insert(Lane::Bucket(0), vec![event("a", 9), event("b", 1)]);
        lanes.insert(Lane::Bucket(1), vec![event("c", 5), event("d", 6)]);
        let id_of: HashMap<&str, i64> = [("a", 2), ("b", 1), ("c", 3), ("d", 4)].into();
        let m = merge(lanes, &id_of);
        assert_eq!(ids(&m), ["a", "b", "c", "d"]);
        assert_eq!(m.lane, [0, 0, 1, 1]);
        assert!(m.by_outbox);
    }

    #[test]
    fn without_every_id_the_lanes_interleave_by_occurred_at() {
        let mut lanes = Lanes::new();
        lanes.insert(Lane::Campaign, vec![event("a", 3)]);
        lanes.insert(Lane::Bucket(2), vec![event("b", 1), event("c", 5)]);
        let id_of: HashMap<&str, i64> = [("a", 1)].into();
        let m = merge(lanes, &id_of);
        assert_eq!(ids(&m), ["b", "a", "c"]);
        assert!(!m.by_outbox);
    }
}
