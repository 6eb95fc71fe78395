//! Whether a change MySQL committed (units given back, a live control) reached the gate before
//! its call answered (docs/design.md §18.1): the answer says which, so that a client told a unit
//! came back knows whether a join sent now can win it.

/// What a committed change's gate call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// The gate has it (or holds no state, and its next load reads MySQL): joins see it now.
    Now,
    /// Redis could not be reached: the change's marker carries it to the gate within about a
    /// second after Redis answers again; a join meanwhile may be told SOLD_OUT.
    Later,
}

impl Reached {
    /// Several gate calls of one answer: `Later` if any of them did not reach the gate.
    pub fn and(self, other: Reached) -> Reached {
        match (self, other) {
            (Reached::Now, Reached::Now) => Reached::Now,
            _ => Reached::Later,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reached;

    #[test]
    fn one_call_that_did_not_reach_the_gate_makes_the_answer_later() {
        assert_eq!(Reached::Now.and(Reached::Now), Reached::Now);
        assert_eq!(Reached::Now.and(Reached::Later), Reached::Later);
        assert_eq!(Reached::Later.and(Reached::Now), Reached::Later);
    }
}
