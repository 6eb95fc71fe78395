//! The `gate` field of an answer to a call that gave units back or changed a campaign's sale
//! (docs/design.md §18.1): whether the change reached the gate (Redis) before the answer.

use poem_openapi::Enum;

use crate::gate::Reached;

/// Whether this call's change reached the gate before the answer. `UPDATED`: a join sent now
/// sees it (a unit given back can be won). `PENDING`: Redis could not be reached; the change is
/// committed and reaches the gate within about a second after Redis answers again, and a join
/// meanwhile may be refused SOLD_OUT. Present only on the answer of a call that changed it, or
/// `PENDING` on a control that changed nothing while a control it reports could not be given to
/// the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GateUpdate {
    Updated,
    Pending,
}

impl From<Reached> for GateUpdate {
    fn from(r: Reached) -> Self {
        match r {
            Reached::Now => Self::Updated,
            Reached::Later => Self::Pending,
        }
    }
}
