//! What each domain's error answers (docs/design.md §3): the join's, the waiting room's and the
//! bot check's refusals, a win's lifecycle, the live controls and MySQL's errors, each mapped
//! to the one error response of [`super::error`] in one place.

use poem_openapi::payload::Json;

use super::error::{body, ApiError, ErrorBody, ErrorCode, RETRY_AFTER_SECS};
use crate::{
    bot_check::BotRefusal,
    campaign::control::ControlError,
    join::{AdmissionRefusal, JoinError},
    waiting_room::RoomError,
    win::lifecycle::LifecycleError,
};

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        // A value given that MySQL cannot store (a character its column cannot hold, a number
        // out of range) is the request's fault: 400, not an outage (docs/design.md §17).
        if crate::db::error::kind(&e) == crate::db::error::DbErrorKind::BadValue {
            tracing::info!(error = %e, "MySQL refused a value of the request.");
            return Self::validation("a value of the request cannot be stored as given");
        }
        match JoinError::from(e) {
            JoinError::Busy => Self::busy(),
            other => Self::from(other),
        }
    }
}

impl From<JoinError> for ApiError {
    fn from(e: JoinError) -> Self {
        match &e {
            JoinError::CampaignNotFound(id) => Self::campaign_not_found(*id),
            JoinError::NotOpen(_) => {
                Self::Unprocessable(body(ErrorCode::CampaignNotOpen, e.to_string()))
            }
            JoinError::Ended => Self::Unprocessable(body(ErrorCode::CampaignEnded, e.to_string())),
            JoinError::Paused => {
                Self::Unprocessable(body(ErrorCode::CampaignPaused, e.to_string()))
            }
            JoinError::OverLimit { .. }
            | JoinError::BucketedOnSyncPath(_)
            | JoinError::GroupedOnSyncPath(_) => Self::validation(e.to_string()),
            JoinError::AlreadyParticipated { participation_id } => {
                Self::Conflict(Json(ErrorBody {
                    code: ErrorCode::AlreadyParticipated,
                    message: e.to_string(),
                    participation_id: *participation_id,
                    free_stock: None,
                    campaign_id: None,
                }))
            }
            JoinError::SoldOut => Self::Conflict(body(ErrorCode::SoldOut, e.to_string())),
            JoinError::GroupLimit { .. } => {
                Self::Conflict(body(ErrorCode::GroupLimitReached, e.to_string()))
            }
            JoinError::Admission(why) => {
                let message = e.to_string();
                match why {
                    AdmissionRefusal::Required => {
                        Self::Forbidden(body(ErrorCode::AdmissionRequired, message))
                    }
                    AdmissionRefusal::Invalid => {
                        Self::Forbidden(body(ErrorCode::AdmissionTokenInvalid, message))
                    }
                    AdmissionRefusal::Used => {
                        Self::Conflict(body(ErrorCode::AdmissionTokenUsed, message))
                    }
                    AdmissionRefusal::Expired => {
                        Self::Conflict(body(ErrorCode::AdmissionTokenExpired, message))
                    }
                }
            }
            JoinError::IdempotencyKeyReused { .. } => {
                Self::Unprocessable(body(ErrorCode::IdempotencyKeyReused, e.to_string()))
            }
            JoinError::BotCheck(refusal) => Self::from(*refusal),
            JoinError::Busy => Self::busy(),
            JoinError::Unavailable { what, .. } => Self::dependency(what, &e),
        }
    }
}

impl From<BotRefusal> for ApiError {
    fn from(refusal: BotRefusal) -> Self {
        match refusal {
            BotRefusal::Unavailable => Self::Unavailable(
                body(ErrorCode::DependencyUnavailable, refusal.to_string()),
                Some(RETRY_AFTER_SECS),
            ),
            other => Self::Forbidden(body(ErrorCode::BotCheckFailed, other.to_string())),
        }
    }
}

impl From<RoomError> for ApiError {
    fn from(e: RoomError) -> Self {
        let message = e.to_string();
        match e {
            RoomError::CampaignNotFound(id) => Self::campaign_not_found(id),
            RoomError::NoWaitingRoom(_) => {
                Self::Unprocessable(body(ErrorCode::NoWaitingRoom, message))
            }
            RoomError::Ended => Self::Unprocessable(body(ErrorCode::CampaignEnded, message)),
            RoomError::TicketNotFound => Self::NotFound(body(ErrorCode::TicketNotFound, message)),
            RoomError::ClientTicketLimit(_) => {
                Self::Conflict(body(ErrorCode::TicketLimitReached, message))
            }
            RoomError::Full(_) => Self::Conflict(body(ErrorCode::QueueFull, message)),
            RoomError::Unavailable { what, ref source } => Self::dependency(what, source.as_ref()),
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        let code = match &e {
            LifecycleError::NotFound => return Self::participation_not_found(),
            LifecycleError::HoldExpired => ErrorCode::HoldExpired,
            LifecycleError::Cancelled => ErrorCode::ParticipationCancelled,
            LifecycleError::AlreadyConfirmed => ErrorCode::AlreadyConfirmed,
            LifecycleError::Db(_) => ErrorCode::Internal,
        };
        match e {
            LifecycleError::Db(db) => Self::from(db),
            other => Self::Conflict(body(code, other.to_string())),
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound(id) => Self::campaign_not_found(id),
            ControlError::Ended => Self::Conflict(body(ErrorCode::CampaignEnded, e.to_string())),
            ControlError::StockInUse { free, .. } => Self::Conflict(Json(ErrorBody {
                code: ErrorCode::StockInUse,
                message: e.to_string(),
                participation_id: None,
                free_stock: Some(free),
                campaign_id: None,
            })),
            ControlError::TooMuchStock { .. } => Self::validation(e.to_string()),
            ControlError::KeyReused { .. } => {
                Self::Unprocessable(body(ErrorCode::IdempotencyKeyReused, e.to_string()))
            }
            ControlError::Db(db) => Self::from(db),
        }
    }
}
