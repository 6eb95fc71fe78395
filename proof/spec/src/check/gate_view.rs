//! What the gate may have had for sale while a refusal ran: the order's free units at each
//! prefix the refusal may have seen, less the units a documented relaxation keeps away from the
//! gate over part of those prefixes (a reservation in doubt until its win commits, a return
//! from its commit until it reaches the gate).
//!
//! Each unit is subtracted once, and only where the order does not already account for it: a
//! reservation in doubt stops counting at the prefix where its win is in the order (from then on
//! the order's free units lack it), a return starts counting only at the prefix that has it.
//! Summing units over the whole window and subtracting them from its minimum would count a
//! unit twice whenever the window straddles the event (issue 56).

use super::rmq::RangeMinMax;

/// Units kept from the gate over the prefixes `from..=to`; `tag` names who kept them.
#[derive(Debug, Clone, Copy)]
pub struct Withheld {
    pub from: usize,
    pub to: usize,
    pub units: i64,
    pub tag: usize,
}

/// The least units the gate may have had over the prefixes `a..=b`:
/// `min over k of free[k] − Σ units withheld at k`, with the tags withheld at that minimum.
/// O(w log w + w log n) for `w` withheld ranges; `None` for an empty window.
pub fn least_free(
    free: &RangeMinMax,
    (a, b): (usize, usize),
    withheld: &[Withheld],
) -> Option<(i64, Vec<usize>)> {
    if a > b {
        return None;
    }
    // Breakpoints where the withheld sum changes, clipped to the window.
    let mut cuts: Vec<usize> = vec![a, b + 1];
    for w in withheld {
        let (from, to) = (w.from.max(a), w.to.min(b));
        if from <= to {
            cuts.push(from);
            cuts.push(to + 1);
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut best: Option<(i64, usize)> = None;
    for pair in cuts.windows(2) {
        let (s, e) = (pair[0], pair[1] - 1);
        let Some((min, _)) = free.query(s, e) else {
            continue;
        };
        let kept: i64 = withheld
            .iter()
            .filter(|w| w.from <= s && s <= w.to)
            .map(|w| w.units)
            .sum();
        if best.is_none_or(|(v, _)| min - kept < v) {
            best = Some((min - kept, s));
        }
    }
    let (value, at) = best?;
    let tags = withheld
        .iter()
        .filter(|w| w.from <= at && at <= w.to)
        .map(|w| w.tag)
        .collect();
    Some((value, tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_is_subtracted_only_where_it_is_withheld() {
        // Free 1 before a return at prefix 2, then 2.
        let free = RangeMinMax::new(&[1, 1, 2, 2]);
        let back = Withheld {
            from: 2,
            to: 3,
            units: 1,
            tag: 7,
        };
        // Straddling the return: prefix 1 already had a unit free.
        assert_eq!(least_free(&free, (1, 3), &[back]).map(|r| r.0), Some(1));
        // Only after it: the returned unit may not have reached the gate.
        assert_eq!(least_free(&free, (2, 3), &[back]), Some((1, vec![7])));
        let held = Withheld {
            from: 0,
            to: 1,
            units: 1,
            tag: 8,
        };
        assert_eq!(least_free(&free, (0, 3), &[held]), Some((0, vec![8])));
        assert_eq!(least_free(&free, (3, 2), &[held]), None);
    }
}
