//! What a join is and how it ends, for both paths: the request, the accepted win, the error
//! (with what each dependency failure means for the client), and running the part after the gate
//! where a hang-up cannot cut it.

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use uuid::Uuid;

use crate::{
    gate::{Entry, GateError},
    telemetry::trace::TraceContext,
    upkeep::loader::LoadError,
    win::{status::ParticipationStatus, store::StoredParticipation},
};

/// One request to join a campaign, already validated for shape by the API layer.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub entry: Entry,
    /// The request's server span; its `traceparent` goes with the event (`None` outside HTTP).
    pub trace: Option<TraceContext>,
    /// `Idempotency-Key`: a retry with the same key answers the win this key wrote.
    pub idempotency_key: Option<String>,
    /// The waiting room's admission token (campaigns with `QUEUE` or `RAFFLE` admission).
    pub admission_token: Option<String>,
    /// A solved bot check (`BOT_CHECK_ON_JOIN`, an `OPEN` campaign's join).
    pub bot_check: Option<String>,
}

/// Why a join of a campaign with a waiting room was refused for its admission (docs/design.md
/// §16). Nothing is reserved or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionRefusal {
    #[error(
        "this campaign has a waiting room: queue first and join with the admission token it gives"
    )]
    Required,
    #[error("the admission token is not valid for this campaign and user")]
    Invalid,
    #[error("the admission token was used already")]
    Used,
    #[error("the admission token has expired; queue again")]
    Expired,
}

impl AdmissionRefusal {
    pub const ALL: [Self; 4] = [Self::Required, Self::Invalid, Self::Used, Self::Expired];

    /// Counts one refusal in `firstcome_admission_refused_total{reason}` and gives it back.
    pub(crate) fn counted(self, metrics: &crate::telemetry::metrics::Metrics) -> Self {
        metrics
            .admission_refused
            .get_or_create(&crate::telemetry::metrics::registry::ReasonLabels {
                reason: self.as_str(),
            })
            .inc();
        self
    }

    /// The metric label (`firstcome_admission_refused_total{reason}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "REQUIRED",
            Self::Invalid => "INVALID",
            Self::Used => "USED",
            Self::Expired => "EXPIRED",
        }
    }
}

/// A committed win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub participation_id: i64,
    pub campaign_id: i64,
    pub user_id: i64,
    pub quantity: i32,
    pub sequence: i64,
    /// The event's id; `None` when a win read back from MySQL has no outbox row any more
    /// (cleaned up) or never had one (the sync path).
    pub event_id: Option<Uuid>,
    pub accepted_at: DateTime<Utc>,
    /// `Held` in a campaign with a confirmation window, else `Confirmed` (a win read back may
    /// since have been cancelled or expired).
    pub status: ParticipationStatus,
    pub hold_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("campaign {0} does not exist")]
    CampaignNotFound(i64),
    #[error("the campaign opens at {0}")]
    NotOpen(DateTime<Utc>),
    #[error("the campaign has ended")]
    Ended,
    /// An admin paused the campaign (docs/design.md §15); a resume opens it again.
    #[error("the campaign is paused")]
    Paused,
    #[error("quantity {quantity} is above the campaign's per-user limit of {limit}")]
    OverLimit { quantity: i32, limit: i32 },
    /// The synchronous baseline keeps one row per campaign; a bucketed campaign's stock is in
    /// its buckets' rows (docs/design.md §21), which only the outbox path uses.
    #[error("campaign {0} is bucketed: the synchronous baseline serves unbucketed campaigns only; join it at POST /api/v1/campaigns/{0}/participations")]
    BucketedOnSyncPath(i64),
    /// Likewise a campaign in a group: its limit is checked at the gate (docs/design.md §22).
    #[error("campaign {0} is in a group: the synchronous baseline serves campaigns in no group only; join it at POST /api/v1/campaigns/{0}/participations")]
    GroupedOnSyncPath(i64),
    /// `participation_id` is `None` while the first request of this user is still in flight.
    #[error("the user already participated in this campaign")]
    AlreadyParticipated { participation_id: Option<i64> },
    #[error("the campaign is sold out")]
    SoldOut,
    /// The user holds `held` units across the campaign's group (docs/design.md §22), and the
    /// quantity asked would pass its `limit`.
    #[error(
        "the user holds {held} of the {limit} units one user may have across the campaign's group"
    )]
    GroupLimit { limit: i32, held: i64 },
    /// The waiting room's admission is missing or refused.
    #[error(transparent)]
    Admission(#[from] AdmissionRefusal),
    /// The bot check refused the client (docs/design.md §16). Nothing is reserved or written.
    #[error("{0}")]
    BotCheck(crate::bot_check::BotRefusal),
    /// The key already wrote this user's win here, with another request body.
    #[error("this Idempotency-Key was used for another request (quantity {stored})")]
    IdempotencyKeyReused { stored: i32 },
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
        event_id: Option<Uuid>,
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
            status: ParticipationStatus::Confirmed,
            hold_expires_at: None,
        }
    }

    /// The win's state when it is not final at once.
    pub(crate) fn with_status(
        mut self,
        status: ParticipationStatus,
        hold_expires_at: Option<DateTime<Utc>>,
    ) -> Self {
        self.status = status;
        self.hold_expires_at = hold_expires_at;
        self
    }

    /// `req`'s win as MySQL has it, answered as it was accepted (a retry gets the original
    /// body, [`StoredParticipation::accepted_status`]).
    pub(crate) fn stored(req: &JoinRequest, found: &StoredParticipation) -> Self {
        let event_id = found
            .event_id
            .as_deref()
            .and_then(|e| Uuid::parse_str(e).ok());
        Self::new(
            req,
            found.id,
            found.sequence,
            event_id,
            found.created_at.and_utc(),
        )
        .with_status(
            found.accepted_status(),
            found.hold_expires_at.map(|t| t.and_utc()),
        )
    }
}

/// The answer to a join by a user who already has a win in the campaign (`found`, read back from
/// MySQL): the same request again, carrying the `Idempotency-Key` that wrote the win, gets that
/// win (a retry after a lost answer); the same key with another quantity is refused; anything else
/// is ALREADY_PARTICIPATED. `None`: the first request is still in flight.
pub(crate) fn existing(
    req: &JoinRequest,
    found: Option<StoredParticipation>,
) -> Result<Accepted, JoinError> {
    let Some(found) = found else {
        return Err(JoinError::AlreadyParticipated {
            participation_id: None,
        });
    };
    let same_key = req.idempotency_key.is_some() && req.idempotency_key == found.idempotency_key;
    match same_key {
        true if found.quantity == req.entry.quantity => Ok(Accepted::stored(req, &found)),
        true => Err(JoinError::IdempotencyKeyReused {
            stored: found.quantity,
        }),
        false => Err(JoinError::AlreadyParticipated {
            participation_id: Some(found.id),
        }),
    }
}

/// Runs the part of a participation that must not stop halfway in its own task, so that a
/// client hanging up (which drops the request's future) cannot cut it.
///
/// Spawned here, before the returned future is first polled: `work` (the gate call and the
/// settlement, the largest future of a join) then goes straight into its task and is never
/// part of the request's future, which poem boxes and hyper moves for every request. Boxed
/// first: a task keeps its future inline and moves the whole of it as it is spawned and again
/// as it finishes (tokio's `set_stage`), ~4 KiB a join each time; a box moves as a pointer.
pub(crate) fn detached<F>(work: F) -> impl std::future::Future<Output = Result<Accepted, JoinError>>
where
    F: std::future::Future<Output = Result<Accepted, JoinError>> + Send + 'static,
{
    // It keeps the request's span, so its logs stay with the request.
    let task = tokio::spawn(Box::pin(tracing::Instrument::in_current_span(work)));
    async move {
        task.await.unwrap_or_else(|e| {
            Err(JoinError::Unavailable {
                what: "the participation task",
                source: e.into(),
            })
        })
    }
}

/// What the gate decided for a join: a reservation to settle, or a user it already knows (whose
/// win the settle step looks up).
pub(super) enum Gated {
    Reserved(Reserved),
    Already,
}

/// A reservation the gate made: the win's FCFS sequence, the campaign's count of returns then
/// (a MySQL refusal hands it to `lua/release.lua`) and the gate's generation (the win's guard).
#[derive(Debug, Clone, Copy)]
pub(super) struct Reserved {
    pub sequence: i64,
    pub returns_seen: i64,
    pub gate_gen: i64,
    /// The time the reservation carries in Redis (`<reserved at ms>:<quantity>`).
    pub reserved_at_ms: i64,
    /// Past it the win must not commit (`NewParticipation::commit_by`).
    pub commit_by: std::time::Instant,
    /// The campaign's group's limit, which the win's transaction guards too.
    pub group: Option<crate::group::Limit>,
}
