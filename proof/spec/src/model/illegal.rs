//! The steps the contract forbids, each with what the model saw.

/// A step the contract forbids.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Illegal {
    #[error("a win of {asked} unit(s) with only {free} free: oversell")]
    Oversell { asked: i64, free: i64 },
    #[error("user {user} wins again (participation {second}) after participation {first}")]
    DoubleWin { user: i64, first: i64, second: i64 },
    #[error("participation {0} accepted twice under different event ids")]
    ParticipationReused(i64),
    #[error("a win of {0} unit(s)")]
    BadQuantity(i64),
    #[error("a HELD win without holdExpiresAt")]
    HeldWithoutDeadline,
    #[error("a win committed {late_ms} ms after the campaign was {what} (grace {grace_ms} ms)")]
    WinAfterControl {
        what: &'static str,
        late_ms: i64,
        grace_ms: i64,
    },
    #[error("an event about participation {0}, which the order never accepted")]
    UnknownParticipation(i64),
    #[error("an event of participation {participation} disagrees with its win on {field}")]
    Disagrees {
        participation: i64,
        field: &'static str,
    },
    #[error("a confirmation of a win that is already {0}")]
    ConfirmFrom(&'static str),
    #[error("confirmed {late_ms} ms past its deadline")]
    ConfirmPastDeadline { late_ms: i64 },
    #[error("units of participation {0} returned twice (it was already {1})")]
    ReturnedTwice(i64, &'static str),
    #[error("a cancellation with reason {reason} of a {state} win")]
    CancelFrom {
        reason: &'static str,
        state: &'static str,
    },
    #[error("previousStatus {said} but the win was {was}")]
    PreviousStatus {
        said: &'static str,
        was: &'static str,
    },
    #[error("expired {early_ms} ms before its deadline")]
    ExpiredEarly { early_ms: i64 },
    #[error("control {seq} follows control {last}: a control is missing or repeated")]
    ControlSeq { seq: i64, last: i64 },
    #[error("a control after the campaign was closed")]
    ControlAfterClose,
    #[error("a stock change of 0")]
    ZeroDelta,
    #[error("a withdrawal of {asked} unit(s) with only {free} unsold (below what is held and confirmed)")]
    WithdrawInUse { asked: i64, free: i64 },
    #[error("a {0} that changed nothing wrote an event")]
    NoOpControl(&'static str),
    #[error(
        "the control says total {said_total} / remaining {said_free}, the model {total} / {free}"
    )]
    ControlFigures {
        said_total: i64,
        said_free: i64,
        total: i64,
        free: i64,
    },
    #[error("rewardPoints {said} but the campaign grants {campaign}")]
    RewardPoints { said: i64, campaign: i64 },
}
