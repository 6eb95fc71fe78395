//! [`ParticipationStatus`]: where a participation is in its life (docs/design.md §14), as stored
//! in `participation.status` and answered by the API.

use chrono::{DateTime, Utc};

use crate::events::accepted::WinStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipationStatus {
    /// Waiting for its confirmation until `hold_expires_at`.
    Held,
    /// Final: confirmed, or won in a campaign without a confirmation window.
    Confirmed,
    /// Given up by the user, or refunded by an admin; its units went back to the sale.
    Cancelled,
    /// Not confirmed in time; its units went back to the sale.
    Expired,
}

impl ParticipationStatus {
    /// Cancelled or expired: its units went back to the sale.
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Cancelled | Self::Expired)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "HELD",
            Self::Confirmed => "CONFIRMED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
        }
    }

    /// The stored text; an unknown value (a newer version's) reads as `CONFIRMED`, the state
    /// that changes nothing.
    pub fn parse(text: &str) -> Self {
        match text {
            "HELD" => Self::Held,
            "CANCELLED" => Self::Cancelled,
            "EXPIRED" => Self::Expired,
            _ => Self::Confirmed,
        }
    }
}

/// What a win accepted at `accepted_at` is, in a campaign whose confirmation window is
/// `window_secs`: held until the window's end, or (0) confirmed at once.
pub fn at_acceptance(
    window_secs: i32,
    accepted_at: DateTime<Utc>,
) -> (WinStatus, Option<DateTime<Utc>>) {
    match window_secs {
        0 => (WinStatus::Confirmed, None),
        s => (
            WinStatus::Held,
            Some(accepted_at + chrono::Duration::seconds(i64::from(s))),
        ),
    }
}

impl From<WinStatus> for ParticipationStatus {
    fn from(s: WinStatus) -> Self {
        match s {
            WinStatus::Held => Self::Held,
            WinStatus::Confirmed => Self::Confirmed,
        }
    }
}
