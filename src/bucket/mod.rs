//! Buckets: one campaign's stock split over several Redis slots and MySQL rows, so that one sale
//! is served by many Redis primaries and many row locks (docs/design.md §21).
//!
//! Users do not move, stock does: a user's [`home`] bucket holds everything about them in the
//! campaign (the one-win rule, the per-user limit, the open reservation, the admission token's
//! single use), so a join stays one atomic script in one slot. Units move between buckets by
//! transfers ([`store`]): from the undealt pool in chunks ([`Deal`]), and once the pool is empty
//! from the fullest siblings. One bucket is today's campaign, unchanged in every key and row.
//!
//! - [`store`]: the rows: the deal at creation, refills, steals, withdrawals, the pause and close
//!   every row carries, the campaign's one-snapshot remaining.
//! - [`markers`]: the `gate_transfer` markers, what a gate still lacks of a transfer.
//! - [`view`]: the operators' balance of the buckets, rows beside gates.
//! - [`policy`]: a dry bucket's policy: where it takes units from, how many, and when its join
//!   stops waiting for them.
//!
//! The join carries the policy out (`join::tail`: the search a dry bucket's join makes); the
//! gate's side of a transfer (set aside, give) is `gate::transfer`.

pub mod markers;
pub mod policy;
pub mod store;
pub mod view;

/// The most buckets a campaign may have (docs/design.md §21): the contract's, since a bucket
/// is part of the message key.
pub use crate::events::contract::MAX_BUCKETS;

/// A user's home bucket in a campaign of `buckets` buckets: FNV-1a (64 bits) over the user id
/// written in decimal ASCII, modulo `buckets`. Stable across instances, releases and languages:
/// the proof's checker computes it from docs/design.md, not from this function.
pub fn home(user_id: i64, buckets: u16) -> u16 {
    if buckets <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in user_id.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // The remainder is below `buckets`, which fits u16.
    u16::try_from(hash % u64::from(buckets)).unwrap_or(0)
}

/// The FCFS sequence a win carries, from the one its bucket's gate handed out: in a bucketed
/// campaign `local × buckets + bucket`, so that sequences stay distinct across the campaign and
/// grow within a bucket (bucket 3 of 16 hands out 19, 35, 51, …); unchanged when unbucketed.
pub fn sequence(local: i64, bucket: Option<u16>, buckets: u16) -> i64 {
    match bucket {
        Some(b) if buckets > 1 => local * i64::from(buckets) + i64::from(b),
        _ => local,
    }
}

/// How a bucketed campaign's stock is dealt: each bucket starts with three chunks (while the
/// pool lasts) and is refilled a chunk at a time. A chunk is a quarter of a bucket's even share,
/// so a quarter of the stock stays in the pool at the start, for the buckets whose users come
/// first, and a refill is one transfer per chunk's worth of wins. (The pool's row is one lock:
/// dealing less at the start makes the tail queue on it; docs/buckets-sim.md.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deal {
    /// Units a refill moves from the pool (or fewer, when the pool has fewer).
    pub chunk: i64,
    /// Units each bucket is dealt at creation (the last buckets may get fewer, or none).
    pub initial: i64,
}

impl Deal {
    /// The deal of `stock` units over `buckets` buckets (`buckets` ≥ 1).
    pub fn of(stock: i64, buckets: u16) -> Self {
        let quarters = 4 * i64::from(buckets.max(1));
        let chunk = ((stock + quarters - 1) / quarters).max(1);
        Self {
            chunk,
            initial: 3 * chunk,
        }
    }

    /// The units each bucket starts with, in bucket order, and what stays in the pool.
    pub fn slices(self, stock: i64, buckets: u16) -> (Vec<i64>, i64) {
        let mut pool = stock.max(0);
        let slices = (0..buckets)
            .map(|_| {
                let slice = self.initial.min(pool);
                pool -= slice;
                slice
            })
            .collect();
        (slices, pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed values (computed independently, with Python's own FNV-1a): the hash is part of the
    /// contract between the service and its checker.
    #[test]
    fn home_is_fnv1a_of_the_decimal_id() {
        assert_eq!(home(42, 1), 0);
        assert_eq!(home(42, 16), (0x07ee_7e07_b4b1_9223_u64 % 16) as u16);
        assert_eq!(home(0, 1024), (0xaf63_ad4c_8601_9caf_u64 % 1024) as u16);
        assert_eq!(home(-7, 64), (0x07d0_1107_b497_db5d_u64 % 64) as u16);
    }

    #[test]
    fn sequences_are_distinct_across_buckets() {
        assert_eq!(sequence(5, None, 1), 5);
        assert_eq!(sequence(1, Some(3), 16), 19);
        assert_eq!(sequence(2, Some(3), 16), 35);
        let all: std::collections::HashSet<i64> = (1..=50)
            .flat_map(|local| (0..16).map(move |b| sequence(local, Some(b), 16)))
            .collect();
        assert_eq!(all.len(), 50 * 16);
    }

    #[test]
    fn homes_spread_over_every_bucket() {
        let mut seen = [0u32; 64];
        for user in 1..=64_000 {
            seen[usize::from(home(user, 64))] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    }

    #[test]
    fn the_deal_keeps_every_unit() {
        for (stock, buckets) in [(1_000, 64), (1_000_000, 64), (10, 16), (0, 4), (7, 1)] {
            let deal = Deal::of(stock, buckets);
            let (slices, pool) = deal.slices(stock, buckets);
            assert_eq!(slices.len(), usize::from(buckets));
            assert_eq!(
                slices.iter().sum::<i64>() + pool,
                stock,
                "{stock}/{buckets}"
            );
            assert!(slices.iter().all(|&s| (0..=deal.initial).contains(&s)));
        }
        assert_eq!(
            Deal::of(1_000, 64),
            Deal {
                chunk: 4,
                initial: 12
            }
        );
        assert_eq!(Deal::of(1_000_000, 64).chunk, 3_907);
    }
}
