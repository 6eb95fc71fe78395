//! Units asked by a campaign's joins that overlap an operation: what an unjustified refusal's
//! explanation cites as reservations in flight.

use super::{index, Options};
use crate::history::{Op, Outcome};

/// Units asked by the joins of a campaign that overlap an interval: Q(invoked before its end) −
/// Q(over before its start), with prefix sums over the sorted times. O(log n) a query.
pub struct InFlight {
    starts: Vec<(i64, i64)>,
    ends: Vec<(i64, i64)>,
}

impl InFlight {
    pub fn new(ops: &[Op], index: &index::CampaignOps, opts: &Options) -> Self {
        let joins = index.joins.values().flatten().map(|&i| &ops[i]);
        let mut starts: Vec<(i64, i64)> = Vec::new();
        let mut ends: Vec<(i64, i64)> = Vec::new();
        for op in joins {
            starts.push((op.invoke, op.quantity()));
            let end = match (op.outcome, op.complete) {
                (_, None) => i64::MAX,
                (Outcome::Info, Some(t)) => t.saturating_add(opts.lookback),
                (_, Some(t)) => t,
            };
            ends.push((end, op.quantity()));
        }
        for v in [&mut starts, &mut ends] {
            v.sort_unstable();
            for j in 1..v.len() {
                v[j].1 += v[j - 1].1;
            }
        }
        Self { starts, ends }
    }

    /// Units asked by the joins in flight at some moment of `op` (itself included).
    pub fn quantity(&self, op: &Op) -> i64 {
        let sum_before = |v: &[(i64, i64)], t: i64, inclusive: bool| {
            let i = v.partition_point(|&(x, _)| if inclusive { x <= t } else { x < t });
            if i == 0 {
                0
            } else {
                v[i - 1].1
            }
        };
        let end = op.complete.unwrap_or(i64::MAX);
        sum_before(&self.starts, end, false) - sum_before(&self.ends, op.invoke, true)
    }
}
