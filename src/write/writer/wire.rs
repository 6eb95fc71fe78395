//! What travels between an instance and a campaign's writer (JSON in the mailboxes): the win
//! itself ([`Forwarded`]: the origin's [`NewParticipation`], addressed) and what became of it
//! ([`Reply`]: the writer's own `Result<Written, WriteError>`). Nothing is restated here: a field
//! added to a win or a refusal added to `WriteError` crosses as it is. A win's commit deadline
//! crosses as the same moment on the writer's clock (`rows::commit_by_ms`); a commit in doubt
//! crosses with the verdicts the writer's settlement reached (`in_doubt::across`).

use sea_orm::DbErr;
use serde::{Deserialize, Serialize};

use crate::{
    gate::Entry,
    write::{
        error::WriteError,
        in_doubt::InDoubt,
        rows::{NewParticipation, Written},
    },
};

/// A win handed to its campaign's writer: sent as `Forwarded<&NewParticipation>` (the origin
/// keeps its win, nothing is copied to send it), read as `Forwarded`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded<W = NewParticipation> {
    /// The instance to reply to, and its ticket for the win.
    pub origin: String,
    pub ticket: u64,
    /// The win, as its origin built it (a win under a group's limit is never handed over).
    pub win: W,
}

/// A forwarded win's outcome, sent back to its origin: what the writer's write came to, a
/// commit in doubt settled there first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ticket: u64,
    pub outcome: Result<Written, WriteError>,
}

/// A settlement whose outcome nobody will learn: the origin answers 503 at once and leaves the
/// reservation to the reconciler.
pub fn unknown(why: &str, entry: &Entry) -> WriteError {
    let key = (entry.campaign_id, entry.user_id);
    WriteError::InDoubt(InDoubt::decided(DbErr::Custom(why.into()), key, None))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use chrono::Utc;

    use super::*;
    use crate::{events::accepted::WinStatus, write::in_doubt::Verdict};

    fn win() -> NewParticipation {
        let mut win = crate::write::rows::test_win(3, 11, Some(5));
        (win.entry.quantity, win.reward_points) = (2, 10);
        win.traceparent = Some("00-abc-def-01".into());
        win
    }

    fn across<T: Serialize + for<'de> Deserialize<'de>>(value: &T) -> T {
        serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
    }

    #[test]
    fn a_win_crosses_with_its_deadline_on_the_same_moment() {
        let sent = win();
        let forwarded = Forwarded {
            origin: "o".into(),
            ticket: 7,
            win: &sent,
        };
        let json = serde_json::to_string(&forwarded).unwrap();
        let got = serde_json::from_str::<Forwarded>(&json).unwrap().win;
        assert_eq!(got.entry, sent.entry);
        assert_eq!((got.sequence, got.event_id), (sent.sequence, sent.event_id));
        assert_eq!((got.topic, got.traceparent), (sent.topic, sent.traceparent));
        let drift = got.commit_by.max(sent.commit_by) - got.commit_by.min(sent.commit_by);
        assert!(drift < std::time::Duration::from_millis(5), "{drift:?}");
    }

    #[test]
    fn a_deadline_passed_on_the_way_stays_passed() {
        let mut sent = serde_json::to_value(win()).unwrap();
        sent["commit_by"] = (Utc::now().timestamp_millis() - 10).into();
        let back: NewParticipation = serde_json::from_value(sent).unwrap();
        assert!(back.commit_by <= Instant::now());
    }

    #[test]
    fn refusals_come_back_as_they_left() {
        for error in [
            WriteError::Duplicate,
            WriteError::Stale,
            WriteError::GateLost { row_gen: 4 },
            WriteError::SoldOut {
                remaining_stock: 0,
                control_seq: 3,
            },
            WriteError::Db(DbErr::Custom("lost".into())),
        ] {
            let text = error.to_string();
            let reply = across(&Reply {
                ticket: 1,
                outcome: Err(error),
            });
            assert_eq!(reply.outcome.unwrap_err().to_string(), text);
        }
        let written = Written {
            participation_id: 5,
            accepted_at: Utc::now(),
            status: WinStatus::Confirmed,
            hold_expires_at: None,
        };
        let reply = across(&Reply {
            ticket: 2,
            outcome: Ok(written),
        });
        assert_eq!(reply.outcome.unwrap(), written);
    }

    #[tokio::test]
    async fn a_commit_in_doubt_comes_back_with_the_writers_verdict() {
        let entry = win().entry;
        let error = DbErr::Custom("deadline".into());
        let settled = InDoubt::decided(error, (3, 11), Some(Verdict::NotCommitted));
        let reply = across(&Reply {
            ticket: 3,
            outcome: Err(WriteError::InDoubt(settled)),
        });
        let Err(WriteError::InDoubt(doubt)) = reply.outcome else {
            panic!("still in doubt");
        };
        assert_eq!(doubt.error().to_string(), "Custom Error: deadline");
        let within = std::time::Duration::from_millis(10);
        let verdict = doubt
            .verdict(entry.campaign_id, entry.user_id, within)
            .await;
        assert!(
            matches!(verdict, Some(Verdict::NotCommitted)),
            "{verdict:?}"
        );
        let other = doubt.verdict(entry.campaign_id, 12, within).await;
        assert!(other.is_none(), "only the win's own verdict crosses");
    }
}
