//! What travels between an instance and a campaign's writer (JSON in the mailboxes): a win to
//! write ([`Forwarded`]) and its outcome ([`Reply`]).
//!
//! A win's commit deadline crosses as epoch milliseconds: the writer turns it back into a moment
//! of its own clock, so it refuses the win (`Stale`) past the same moment the origin counts on.
//! The instances' clocks agree within the margin the reconciler already relies on (a quarter of
//! `RESERVATION_TIMEOUT_MS`, docs/design.md §2.1); a time left would have grown by the time the
//! win waited in the inbox.

use std::time::Instant;

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    gate::Entry,
    join::{
        in_doubt::{InDoubt, Verdict},
        rows::{NewParticipation, Written},
        write_error::WriteError,
    },
};

/// A win handed to its campaign's writer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded {
    /// The instance to reply to, and its ticket for the win.
    pub origin: String,
    pub ticket: u64,
    pub campaign_id: i64,
    pub user_id: i64,
    pub quantity: i32,
    pub bucket: Option<u16>,
    pub sequence: i64,
    pub gate_gen: i64,
    pub reward_points: i64,
    pub event_id: Uuid,
    pub topic: String,
    pub traceparent: Option<String>,
    pub idempotency_key: Option<String>,
    pub confirm_within_seconds: i32,
    /// `commit_by` as epoch milliseconds.
    pub commit_by_ms: i64,
    pub ends_at: Option<DateTime<Utc>>,
    pub reserved_at_ms: i64,
}

impl Forwarded {
    /// The wire form of `win` (which has no group limit: those stay local).
    pub fn of(win: &NewParticipation, origin: &str, ticket: u64) -> Self {
        let left = win.commit_by.saturating_duration_since(Instant::now());
        let left_ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX);
        Self {
            origin: origin.to_string(),
            ticket,
            campaign_id: win.entry.campaign_id,
            user_id: win.entry.user_id,
            quantity: win.entry.quantity,
            bucket: win.entry.bucket,
            sequence: win.sequence,
            gate_gen: win.gate_gen,
            reward_points: win.reward_points,
            event_id: win.event_id,
            topic: win.topic.to_string(),
            traceparent: win.traceparent.clone(),
            idempotency_key: win.idempotency_key.clone(),
            confirm_within_seconds: win.confirm_within_seconds,
            commit_by_ms: Utc::now().timestamp_millis().saturating_add(left_ms),
            ends_at: win.ends_at,
            reserved_at_ms: win.reserved_at_ms,
        }
    }

    /// The win to write here: its deadline the same moment on this instance's clock (passed
    /// already when it is).
    pub fn win(&self) -> NewParticipation {
        let left_ms = self.commit_by_ms - Utc::now().timestamp_millis();
        let left = std::time::Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        NewParticipation {
            entry: Entry {
                campaign_id: self.campaign_id,
                user_id: self.user_id,
                quantity: self.quantity,
                bucket: self.bucket,
                group: None,
            },
            sequence: self.sequence,
            gate_gen: self.gate_gen,
            reward_points: self.reward_points,
            event_id: self.event_id,
            topic: self.topic.as_str().into(),
            traceparent: self.traceparent.clone(),
            idempotency_key: self.idempotency_key.clone(),
            confirm_within_seconds: self.confirm_within_seconds,
            commit_by: Instant::now() + left,
            ends_at: self.ends_at,
            reserved_at_ms: self.reserved_at_ms,
            group: None,
        }
    }
}

/// A forwarded win's outcome, sent back to its origin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ticket: u64,
    pub outcome: Outcome,
}

/// What the writer's write came to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Outcome {
    Written(Written),
    /// Nothing was written; the origin gives the reservation back as the refusal says.
    Refused(Refusal),
    /// The COMMIT went unanswered at the writer, whose settlement gave back what was not
    /// written: its verdict for this win (`None`: not known within the statement deadline; the
    /// settlement goes on there). `error` says why it was in doubt.
    Settled {
        error: String,
        verdict: Option<Verdict>,
    },
    /// The writer's lane ended without an answer (a panic); MySQL says whether the win is there.
    Unanswered,
}

/// The refusals a writer reports, as `WriteError` has them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Refusal {
    Duplicate,
    SoldOut {
        remaining_stock: i64,
        control_seq: i64,
    },
    Paused,
    Closed,
    Stale,
    GroupLimit {
        limit: i32,
        held: i64,
    },
    GateLost {
        row_gen: i64,
    },
    /// Failed before its COMMIT was sent (said as text).
    Failed(String),
}

impl Outcome {
    /// The outcome of a write that ended as `written`; a commit in doubt is settled by the
    /// caller first ([`Outcome::Settled`]).
    pub fn of(written: Result<Written, WriteError>) -> Self {
        let refusal = match written {
            Ok(w) => return Self::Written(w),
            Err(WriteError::Unanswered) => return Self::Unanswered,
            Err(WriteError::InDoubt(doubt)) => {
                return Self::Settled {
                    error: doubt.error().to_string(),
                    verdict: None,
                }
            }
            Err(WriteError::Duplicate) => Refusal::Duplicate,
            Err(WriteError::SoldOut {
                remaining_stock,
                control_seq,
            }) => Refusal::SoldOut {
                remaining_stock,
                control_seq,
            },
            Err(WriteError::Paused) => Refusal::Paused,
            Err(WriteError::Closed) => Refusal::Closed,
            Err(WriteError::Stale) => Refusal::Stale,
            Err(WriteError::GroupLimit { limit, held }) => Refusal::GroupLimit { limit, held },
            Err(WriteError::GateLost { row_gen }) => Refusal::GateLost { row_gen },
            Err(failed @ (WriteError::Db(_) | WriteError::BatchRefused | WriteError::KeyUsed)) => {
                Refusal::Failed(failed.to_string())
            }
        };
        Self::Refused(refusal)
    }

    /// The write's result at the origin, for the win of `entry`: a commit settled at the writer
    /// comes as a settlement already decided, so the origin answers from its verdict and gives
    /// nothing back twice.
    pub fn written(self, entry: &Entry) -> Result<Written, WriteError> {
        let refusal = match self {
            Self::Written(w) => return Ok(w),
            Self::Unanswered => return Err(WriteError::Unanswered),
            Self::Settled { error, verdict } => {
                let key = (entry.campaign_id, entry.user_id);
                return Err(WriteError::InDoubt(InDoubt::decided(
                    DbErr::Custom(error),
                    key,
                    verdict,
                )));
            }
            Self::Refused(refusal) => refusal,
        };
        Err(match refusal {
            Refusal::Duplicate => WriteError::Duplicate,
            Refusal::SoldOut {
                remaining_stock,
                control_seq,
            } => WriteError::SoldOut {
                remaining_stock,
                control_seq,
            },
            Refusal::Paused => WriteError::Paused,
            Refusal::Closed => WriteError::Closed,
            Refusal::Stale => WriteError::Stale,
            Refusal::GroupLimit { limit, held } => WriteError::GroupLimit { limit, held },
            Refusal::GateLost { row_gen } => WriteError::GateLost { row_gen },
            Refusal::Failed(text) => WriteError::Db(DbErr::Custom(text)),
        })
    }
}

/// A settlement whose outcome nobody will learn: the origin answers 503 at once and leaves the
/// reservation to the reconciler.
pub fn unknown(why: &str, entry: &Entry) -> WriteError {
    let key = (entry.campaign_id, entry.user_id);
    WriteError::InDoubt(InDoubt::decided(DbErr::Custom(why.into()), key, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win() -> NewParticipation {
        Forwarded {
            origin: "o".into(),
            ticket: 7,
            campaign_id: 3,
            user_id: 11,
            quantity: 2,
            bucket: Some(5),
            sequence: 9,
            gate_gen: 1,
            reward_points: 10,
            event_id: Uuid::now_v7(),
            topic: "t".into(),
            traceparent: Some("00-abc-def-01".into()),
            idempotency_key: None,
            confirm_within_seconds: 0,
            commit_by_ms: Utc::now().timestamp_millis() + 5_000,
            ends_at: None,
            reserved_at_ms: 1,
        }
        .win()
    }

    #[test]
    fn a_win_crosses_with_its_deadline_on_the_same_moment() {
        let sent = win();
        let wire = Forwarded::of(&sent, "o", 7);
        let json = serde_json::to_string(&wire).unwrap();
        let back: Forwarded = serde_json::from_str(&json).unwrap();
        let got = back.win();
        assert_eq!(got.entry, sent.entry);
        assert_eq!((got.sequence, got.event_id), (sent.sequence, sent.event_id));
        assert_eq!(got.traceparent, sent.traceparent);
        let drift = got.commit_by.max(sent.commit_by) - got.commit_by.min(sent.commit_by);
        assert!(drift < std::time::Duration::from_millis(5), "{drift:?}");
    }

    #[test]
    fn a_deadline_passed_on_the_way_stays_passed() {
        let mut wire = Forwarded::of(&win(), "o", 7);
        wire.commit_by_ms = Utc::now().timestamp_millis() - 10;
        assert!(wire.win().commit_by <= Instant::now());
    }

    #[test]
    fn refusals_come_back_as_they_left() {
        let entry = win().entry;
        for error in [
            WriteError::Duplicate,
            WriteError::Stale,
            WriteError::GateLost { row_gen: 4 },
            WriteError::SoldOut {
                remaining_stock: 0,
                control_seq: 3,
            },
        ] {
            let text = error.to_string();
            let json = serde_json::to_string(&Outcome::of(Err(error))).unwrap();
            let back: Outcome = serde_json::from_str(&json).unwrap();
            assert_eq!(back.written(&entry).unwrap_err().to_string(), text);
        }
    }
}
