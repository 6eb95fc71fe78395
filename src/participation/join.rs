//! What a join is and how it ends, for both paths: the request, the accepted win, the error
//! (with what each dependency failure means for the client), and running the part after the gate
//! where a hang-up cannot cut it.

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use uuid::Uuid;

use crate::gate::{loader::LoadError, Entry, GateError};
use crate::trace::TraceContext;

/// One request to join a campaign, already validated for shape by the API layer.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub entry: Entry,
    /// The request's server span; its `traceparent` goes with the event (`None` outside HTTP).
    pub trace: Option<TraceContext>,
}

/// A committed win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub participation_id: i64,
    pub campaign_id: i64,
    pub user_id: i64,
    pub quantity: i32,
    pub sequence: i64,
    pub event_id: Uuid,
    pub accepted_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("campaign {0} does not exist")]
    CampaignNotFound(i64),
    #[error("the campaign opens at {0}")]
    NotOpen(DateTime<Utc>),
    #[error("the campaign has ended")]
    Ended,
    #[error("quantity {quantity} is above the campaign's per-user limit of {limit}")]
    OverLimit { quantity: i32, limit: i32 },
    /// `participation_id` is `None` while the first request of this user is still in flight.
    #[error("the user already participated in this campaign")]
    AlreadyParticipated { participation_id: Option<i64> },
    #[error("the campaign is sold out")]
    SoldOut,
    #[error("all database connections are busy")]
    Busy,
    #[error("{what} is unavailable")]
    Unavailable {
        what: &'static str,
        #[source]
        source: anyhow::Error,
    },
}

/// Every pooled connection stayed busy for `DB_ACQUIRE_TIMEOUT_MS`: SERVICE_BUSY, not an outage.
fn pool_exhausted(e: &DbErr) -> bool {
    matches!(
        e,
        DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout)
    )
}

impl From<DbErr> for JoinError {
    fn from(e: DbErr) -> Self {
        match e {
            e if pool_exhausted(&e) => JoinError::Busy,
            other => JoinError::Unavailable {
                what: "MySQL",
                source: other.into(),
            },
        }
    }
}

impl From<LoadError> for JoinError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::CampaignGone(id) => JoinError::CampaignNotFound(id),
            LoadError::Db(db) if pool_exhausted(&db) => JoinError::Busy,
            other => JoinError::Unavailable {
                what: "the gate rebuild",
                source: other.into(),
            },
        }
    }
}

impl From<GateError> for JoinError {
    fn from(e: GateError) -> Self {
        JoinError::Unavailable {
            what: "Redis",
            source: e.into(),
        }
    }
}

impl Accepted {
    pub(crate) fn new(
        req: &JoinRequest,
        participation_id: i64,
        sequence: i64,
        event_id: Uuid,
        accepted_at: DateTime<Utc>,
    ) -> Self {
        Self {
            participation_id,
            campaign_id: req.entry.campaign_id,
            user_id: req.entry.user_id,
            quantity: req.entry.quantity,
            sequence,
            event_id,
            accepted_at,
        }
    }
}

/// Runs the part of a participation that must not stop halfway in its own task, so that a
/// client hanging up (which drops the request's future) cannot cut it.
pub(crate) async fn detached<F>(work: F) -> Result<Accepted, JoinError>
where
    F: std::future::Future<Output = Result<Accepted, JoinError>> + Send + 'static,
{
    // It keeps the request's span, so its logs stay with the request.
    tokio::spawn(tracing::Instrument::in_current_span(work))
        .await
        .unwrap_or_else(|e| {
            Err(JoinError::Unavailable {
                what: "the participation task",
                source: e.into(),
            })
        })
}
