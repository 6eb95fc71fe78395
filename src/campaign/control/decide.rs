//! What an admin asks of a running campaign ([`Control`]) and what it decides on the campaign's
//! locked row ([`decide`]): a change with its event's kind, nothing (already so), or a refusal
//! ([`ControlError`]). Pure: the transaction around it is the controls' (`super`).

use chrono::Utc;
use sea_orm::DbErr;

use super::store::{LockedCampaign, RowChange};
use crate::{campaign::MAX_TOTAL_STOCK, events::control::ControlKind};

/// What an admin asks of a running campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Add (positive) or withdraw (negative) units; never 0.
    Stock(i64),
    Pause,
    Resume,
    Close,
}

impl Control {
    /// The kind and delta its audit row records.
    pub(super) fn recorded(self) -> (&'static str, Option<i64>) {
        match self {
            Self::Stock(delta) => (ControlKind::StockChanged.as_str(), Some(delta)),
            Self::Pause => (ControlKind::Paused.as_str(), None),
            Self::Resume => (ControlKind::Resumed.as_str(), None),
            Self::Close => (ControlKind::Closed.as_str(), None),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("campaign {0} does not exist")]
    NotFound(i64),
    #[error("the campaign has ended; only close may be asked again")]
    Ended,
    #[error("only {free} units are unsold now; {asked} cannot be withdrawn")]
    StockInUse { free: i64, asked: i64 },
    #[error("totalStock would become {total}, above the limit of {MAX_TOTAL_STOCK}")]
    TooMuchStock { total: i64 },
    /// The `Idempotency-Key` already applied another control to this campaign.
    #[error("this Idempotency-Key was used for another control of this campaign ({kind})")]
    KeyReused { kind: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What a control decided on the locked row.
pub(super) enum Decision {
    /// Already so (pausing a paused campaign, closing an ended one): no change, no event.
    Keep,
    Change(RowChange, ControlKind, Option<i64>),
}

/// What `control` does to the locked campaign at `now`.
pub(super) fn decide(
    locked: &LockedCampaign,
    control: Control,
    now: chrono::DateTime<Utc>,
) -> Result<Decision, ControlError> {
    if locked.ended(now) {
        return match control {
            Control::Close => Ok(Decision::Keep),
            _ => Err(ControlError::Ended),
        };
    }
    Ok(match control {
        Control::Stock(delta) if delta < 0 && locked.remaining_stock < -delta => {
            return Err(ControlError::StockInUse {
                free: locked.remaining_stock,
                asked: -delta,
            })
        }
        Control::Stock(delta) if locked.total_stock.saturating_add(delta) > MAX_TOTAL_STOCK => {
            return Err(ControlError::TooMuchStock {
                total: locked.total_stock.saturating_add(delta),
            })
        }
        Control::Stock(0) => Decision::Keep,
        Control::Stock(delta) => Decision::Change(
            RowChange::Stock(delta),
            ControlKind::StockChanged,
            Some(delta),
        ),
        Control::Pause if locked.paused => Decision::Keep,
        Control::Pause => Decision::Change(RowChange::Paused(true), ControlKind::Paused, None),
        Control::Resume if !locked.paused => Decision::Keep,
        Control::Resume => Decision::Change(RowChange::Paused(false), ControlKind::Resumed, None),
        Control::Close => Decision::Change(RowChange::Closed(now), ControlKind::Closed, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration};

    fn row(remaining: i64, paused: bool, ends_in: Option<i64>) -> (LockedCampaign, DateTime<Utc>) {
        let now = DateTime::from_timestamp(1_000_000, 0).expect("valid");
        (
            LockedCampaign {
                total_stock: 10,
                remaining_stock: remaining,
                pool: remaining,
                buckets: 1,
                paused,
                closed_at: None,
                ends_at: ends_in.map(|s| (now + Duration::seconds(s)).naive_utc()),
                control_seq: 3,
            },
            now,
        )
    }

    fn kind(d: Result<Decision, ControlError>) -> Option<ControlKind> {
        match d.expect("allowed") {
            Decision::Keep => None,
            Decision::Change(_, kind, _) => Some(kind),
        }
    }

    #[test]
    fn a_withdrawal_takes_unsold_units_only() {
        let (c, now) = row(4, false, None);
        assert_eq!(
            kind(decide(&c, Control::Stock(-4), now)),
            Some(ControlKind::StockChanged)
        );
        assert!(matches!(
            decide(&c, Control::Stock(-5), now),
            Err(ControlError::StockInUse { free: 4, asked: 5 })
        ));
        assert!(matches!(
            decide(&c, Control::Stock(i64::MIN + 1), now),
            Err(ControlError::StockInUse { .. })
        ));
    }

    #[test]
    fn adding_stops_at_the_total_limit() {
        let (c, now) = row(4, false, None);
        assert_eq!(
            kind(decide(&c, Control::Stock(MAX_TOTAL_STOCK - 10), now)),
            Some(ControlKind::StockChanged)
        );
        assert!(matches!(
            decide(&c, Control::Stock(MAX_TOTAL_STOCK - 9), now),
            Err(ControlError::TooMuchStock { total }) if total == MAX_TOTAL_STOCK + 1
        ));
        assert!(matches!(
            decide(&c, Control::Stock(i64::MAX), now),
            Err(ControlError::TooMuchStock { .. })
        ));
    }

    #[test]
    fn what_is_already_so_changes_nothing() {
        let (running, now) = row(4, false, None);
        let (paused, _) = row(4, true, None);
        assert_eq!(kind(decide(&running, Control::Resume, now)), None);
        assert_eq!(kind(decide(&paused, Control::Pause, now)), None);
        assert_eq!(
            kind(decide(&running, Control::Pause, now)),
            Some(ControlKind::Paused)
        );
        assert_eq!(
            kind(decide(&paused, Control::Resume, now)),
            Some(ControlKind::Resumed)
        );
        assert_eq!(
            kind(decide(&paused, Control::Close, now)),
            Some(ControlKind::Closed)
        );
    }

    #[test]
    fn an_ended_campaign_only_answers_close() {
        let (ended, now) = row(4, false, Some(0));
        assert_eq!(kind(decide(&ended, Control::Close, now)), None);
        for control in [
            Control::Stock(1),
            Control::Stock(-1),
            Control::Pause,
            Control::Resume,
        ] {
            assert!(matches!(
                decide(&ended, control, now),
                Err(ControlError::Ended)
            ));
        }
        let (open, _) = row(4, false, Some(1));
        assert_eq!(
            kind(decide(&open, Control::Close, now)),
            Some(ControlKind::Closed)
        );
        let closed = LockedCampaign {
            closed_at: Some(now.naive_utc()),
            ..open
        };
        assert!(matches!(
            decide(&closed, Control::Pause, now),
            Err(ControlError::Ended)
        ));
    }
}
