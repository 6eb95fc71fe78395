//! A bucketed campaign's end, bucket by bucket (§21, D6), once settled (nothing in transfer):
//! - MySQL: the pool and every bucket row at or above zero, adding up to the campaign's
//!   `remainingStock`; one row per bucket; each row's `acceptedCount` the wins its bucket
//!   accepted in the order (counted as the stats consumer counts the campaign's: every win
//!   accepted, whatever became of it);
//! - every participation (of any campaign) in its user's home bucket, one the campaign has;
//! - the gate, one entry per bucket: each user and each returned win in its home bucket's
//!   entry, every winner in it (or it would win again), every closed win returned there and no
//!   other, no reservation open, and the stock the model leaves free split over the buckets
//!   and the pool: the gates' sum and the pool make the order's free units, and each gate holds
//!   the stock of its bucket's MySQL row.
//!
//! Transfers between buckets write no event, so how the free units are split is MySQL's to
//! say; the checker holds the gate to it and the sum to the order. O(n) with hash lookups.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{end_state::note, Ctx};
use crate::{
    final_state::{BucketGate, BucketState, Campaign},
    model::{bucket::home, WinState},
    report::{AnomalyKind, Report},
};

/// Checks what MySQL and the gate hold per bucket for the campaign of `ctx`.
pub fn check(ctx: &Ctx, row: &Campaign, state: &BucketState, report: &mut Report) {
    participations(ctx, state, report);
    if !ctx.keys.bucketed() {
        return;
    }
    rows(ctx, row, state, report);
    gates(ctx, state, report);
}

/// Each participation row's bucket is its user's home (0 for an unbucketed campaign).
fn participations(ctx: &Ctx, state: &BucketState, report: &mut Report) {
    let (c, n) = (ctx.campaign, ctx.keys.buckets);
    for p in state.participations.iter().filter(|p| p.campaign == c) {
        let want = home(p.user, n);
        if p.bucket != want {
            report.push(
                AnomalyKind::WrongBucket,
                Some(c),
                format!(
                    "participation {} of user {} is in bucket {}; its home is bucket {want} of {n}",
                    p.id, p.user, p.bucket
                ),
            );
        }
    }
}

/// The model's wins per home bucket.
fn wins_per_bucket(ctx: &Ctx) -> HashMap<i64, i64> {
    let mut wins: HashMap<i64, i64> = HashMap::new();
    for w in ctx.replay.model.wins() {
        *wins.entry(home(w.user, ctx.keys.buckets)).or_default() += 1;
    }
    wins
}

fn rows(ctx: &Ctx, row: &Campaign, state: &BucketState, report: &mut Report) {
    let (c, n) = (ctx.campaign, ctx.keys.buckets);
    let pool = state.campaign(c).and_then(|b| b.pool);
    if let Some(pool) = pool.filter(|&p| p < 0) {
        report.push(AnomalyKind::BucketStock, Some(c), format!("pool {pool}"));
    }
    let Some(all) = &state.bucket_rows else {
        note(report, "the bucket rows (final state has no `bucketRows`)");
        return;
    };
    let mut by_bucket: BTreeMap<i64, i64> = BTreeMap::new();
    let wins = wins_per_bucket(ctx);
    for r in all.iter().filter(|r| r.campaign == c) {
        let b = r.bucket;
        let problem = if !(0..n).contains(&b) {
            Some((
                AnomalyKind::WrongBucket,
                format!("a row for bucket {b} of {n}"),
            ))
        } else if by_bucket.insert(b, r.remaining_stock).is_some() {
            Some((
                AnomalyKind::DatabaseMismatch,
                format!("two rows for bucket {b}"),
            ))
        } else if r.remaining_stock < 0 {
            Some((
                AnomalyKind::BucketStock,
                format!("bucket {b}'s row has {} remaining", r.remaining_stock),
            ))
        } else {
            let mine = wins.get(&b).copied().unwrap_or(0);
            r.accepted_count.filter(|&t| t != mine).map(|t| {
                (AnomalyKind::DatabaseMismatch, format!("bucket {b}'s row has acceptedCount {t}; the order accepted {mine} win(s) there"))
            })
        };
        if let Some((kind, detail)) = problem {
            report.push(kind, Some(c), detail);
        }
    }
    let missing: Vec<i64> = (0..n).filter(|b| !by_bucket.contains_key(b)).collect();
    if !missing.is_empty() {
        report.push(
            AnomalyKind::DatabaseMismatch,
            Some(c),
            format!("no row for bucket(s) {missing:?} of {n}"),
        );
    }
    let dealt: i64 = by_bucket.values().sum();
    if let Some(pool) = pool.filter(|p| p + dealt != row.remaining_stock) {
        report.push(
            AnomalyKind::BucketStock,
            Some(c),
            format!(
                "pool {pool} + the bucket rows' {dealt} ≠ the campaign's remainingStock {}",
                row.remaining_stock
            ),
        );
    }
}

fn gates(ctx: &Ctx, state: &BucketState, report: &mut Report) {
    let Some(gates) = &state.gates else {
        note(report, "the gate (final state has no `gates`)");
        return;
    };
    let (c, n, m) = (ctx.campaign, ctx.keys.buckets, &ctx.replay.model);
    let mut by_bucket: HashMap<i64, &BucketGate> = HashMap::new();
    for g in gates.iter().filter(|g| g.gate.campaign == c) {
        placement(ctx, g, report);
        by_bucket.insert(g.bucket, g);
    }
    stock(ctx, state, &by_bucket, report);
    let mut drift = |detail: String| {
        report.push(AnomalyKind::GateDrift, Some(c), detail);
    };
    let pending: i64 = by_bucket.values().filter_map(|g| g.gate.pending).sum();
    if pending > 0 {
        drift(format!("{pending} reservation(s) still open once settled"));
    }
    // Per bucket, when its keys are loaded: its users and its returned wins. A gate whose keys
    // were lost and not loaded again holds nothing; its next load reads both from MySQL.
    let set = |v: &Option<Vec<i64>>| {
        v.as_ref()
            .map(|v| v.iter().copied().collect::<HashSet<_>>())
    };
    let users: HashMap<i64, HashSet<i64>> = by_bucket
        .iter()
        .filter(|(_, g)| g.gate.stock.is_some())
        .filter_map(|(&b, g)| Some((b, set(&g.gate.users)?)))
        .collect();
    let returned: HashMap<i64, HashSet<i64>> = by_bucket
        .iter()
        .filter(|(_, g)| !m.closed && g.gate.stock.is_some())
        .filter_map(|(&b, g)| Some((b, set(&g.gate.returned)?)))
        .collect();
    for w in m.wins() {
        let b = home(w.user, n);
        if users.get(&b).is_some_and(|u| !u.contains(&w.user)) {
            drift(format!(
                "past winner {} missing from bucket {b}'s gate users: it would let them win again",
                w.user
            ));
        }
        let closed = matches!(w.state, WinState::Cancelled | WinState::Expired);
        if returned
            .get(&b)
            .is_some_and(|r| closed != r.contains(&w.participation))
        {
            drift(format!(
                "participation {} is {} but {} bucket {b}'s returned set",
                w.participation,
                w.state.name(),
                if closed { "missing from" } else { "in" }
            ));
        }
    }
}

/// The gates' stock once settled: each bucket's its row's, and all of them with the pool the
/// order's free units.
fn stock(
    ctx: &Ctx,
    state: &BucketState,
    by_bucket: &HashMap<i64, &BucketGate>,
    report: &mut Report,
) {
    let (c, n, m) = (ctx.campaign, ctx.keys.buckets, &ctx.replay.model);
    let mut drift = |detail: String| {
        report.push(AnomalyKind::GateDrift, Some(c), detail);
    };
    // A closed campaign's markers are dropped (§14): its gate stock no longer follows returns.
    // The buckets' gates hold what MySQL dealt them; the undealt pool is in no gate.
    let pool = state.campaign(c).and_then(|b| b.pool);
    let stocks: Option<Vec<i64>> = (0..n)
        .map(|b| by_bucket.get(&b).and_then(|g| g.gate.stock))
        .collect();
    if let (Some(stocks), Some(pool), false) = (stocks, pool, m.closed) {
        let sum: i64 = stocks.iter().sum();
        if sum + pool != m.free {
            drift(format!(
                "the buckets' gates hold {sum} and the pool {pool}; the order leaves {} free",
                m.free
            ));
        }
    }
    let rows = state
        .bucket_rows
        .iter()
        .flatten()
        .filter(|r| r.campaign == c);
    for r in rows.filter(|_| !m.closed) {
        let stock = by_bucket.get(&r.bucket).and_then(|g| g.gate.stock);
        if let Some(stock) = stock.filter(|&s| s != r.remaining_stock) {
            drift(format!(
                "bucket {}'s gate holds {stock}, its MySQL row {}",
                r.bucket, r.remaining_stock
            ));
        }
    }
}

/// A bucket's gate entry holds only its own bucket's users and returned wins.
fn placement(ctx: &Ctx, g: &BucketGate, report: &mut Report) {
    let (c, n, b) = (ctx.campaign, ctx.keys.buckets, g.bucket);
    let mut wrong = |detail: String| {
        report.push(AnomalyKind::WrongBucket, Some(c), detail);
    };
    if !(0..n).contains(&b) {
        wrong(format!("a gate for bucket {b} of {n}"));
        return;
    }
    let strays: HashSet<i64> = g
        .gate
        .users
        .iter()
        .flatten()
        .copied()
        .filter(|&u| home(u, n) != b)
        .collect();
    if !strays.is_empty() {
        let mut strays: Vec<i64> = strays.into_iter().collect();
        strays.sort_unstable();
        wrong(format!(
            "bucket {b}'s gate holds user(s) {strays:?} homed elsewhere"
        ));
    }
    for &p in g.gate.returned.iter().flatten() {
        if let Some(w) = ctx.replay.model.win(p).filter(|w| home(w.user, n) != b) {
            wrong(format!(
                "bucket {b}'s gate has participation {p} returned; its user {} is homed in bucket {}",
                w.user,
                home(w.user, n)
            ));
        }
    }
}
