//! A user's win in the model and the states it goes through (design §14).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::event::{CancelReason, LiveStatus};

/// A win's state, as `participation.status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WinState {
    Held,
    Confirmed,
    Cancelled,
    Expired,
}

impl WinState {
    pub fn name(self) -> &'static str {
        match self {
            WinState::Held => "HELD",
            WinState::Confirmed => "CONFIRMED",
            WinState::Cancelled => "CANCELLED",
            WinState::Expired => "EXPIRED",
        }
    }

    pub(super) fn live(status: LiveStatus) -> Self {
        match status {
            LiveStatus::Held => WinState::Held,
            LiveStatus::Confirmed => WinState::Confirmed,
        }
    }
}

/// One user's win.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Win {
    pub participation: i64,
    pub user: i64,
    pub quantity: i64,
    pub state: WinState,
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<CancelReason>,
}
