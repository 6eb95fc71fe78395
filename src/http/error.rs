//! The one error response of the API: `{"code": "...", "message": "..."}` with a stable code
//! (docs/design.md §3), and what each domain's error answers. The framework's own errors get the
//! same shape from [`super::catcher`]. 5xx are logged with their cause chain and never echo it.

use poem_openapi::{payload::Json, ApiResponse, Enum, Object};

use crate::{
    bot_check::BotRefusal,
    campaign::control::ControlError,
    join::{AdmissionRefusal, JoinError},
    waiting_room::RoomError,
    win::lifecycle::LifecycleError,
};

/// Stable error codes; clients switch on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    ValidationFailed,
    Unauthorized,
    Unauthenticated,
    UserMismatch,
    CampaignNotFound,
    GroupNotFound,
    PurchaseNotFound,
    ParticipationNotFound,
    EventNotFound,
    NotFound,
    MethodNotAllowed,
    AlreadyParticipated,
    SoldOut,
    GroupLimitReached,
    HoldExpired,
    ParticipationCancelled,
    AlreadyConfirmed,
    CampaignNotOpen,
    CampaignEnded,
    CampaignPaused,
    NoWaitingRoom,
    TicketNotFound,
    AdmissionRequired,
    AdmissionTokenInvalid,
    AdmissionTokenUsed,
    AdmissionTokenExpired,
    BotCheckFailed,
    TicketLimitReached,
    QueueFull,
    StockInUse,
    IdempotencyKeyReused,
    PayloadTooLarge,
    RequestTimeout,
    RateLimited,
    ServiceBusy,
    DependencyUnavailable,
    Internal,
}

impl ErrorCode {
    /// The code as clients read it (`SOLD_OUT`), e.g. for a metric label.
    pub fn name(self) -> String {
        match poem_openapi::types::ToJSON::to_json(&self) {
            Some(serde_json::Value::String(name)) => name,
            _ => format!("{self:?}"),
        }
    }
}

#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// With ALREADY_PARTICIPATED: the existing participation (absent while it is still being written).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participation_id: Option<i64>,
    /// With STOCK_IN_USE: the unsold units, the most a withdrawal can take now.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_stock: Option<i64>,
    /// With a purchase's refusal of one item: the item's campaign, the one that could not be had.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<i64>,
}

/// Seconds a client should wait after SERVICE_BUSY.
const RETRY_AFTER_SECS: u32 = 1;

#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// VALIDATION_FAILED: malformed JSON, wrong types, values out of range.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// UNAUTHORIZED: missing or wrong admin bearer token. UNAUTHENTICATED (`USER_AUTH=jwt`): a
    /// user's call without a valid JWT.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// USER_MISMATCH (`USER_AUTH=jwt`): a valid JWT of another user than the one the call names.
    /// ADMISSION_REQUIRED: a join of a campaign with a waiting room without an admission token
    /// (or on the sync path, which has none); ADMISSION_TOKEN_INVALID: forged, altered, or
    /// another campaign's or user's token. BOT_CHECK_FAILED (`BOT_CHECK`): no solved bot check,
    /// or one that is not valid, expired or used already (the message says which); a join with
    /// an admission token whose ticket was issued without the check.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// CAMPAIGN_NOT_FOUND, GROUP_NOT_FOUND, PURCHASE_NOT_FOUND, PARTICIPATION_NOT_FOUND,
    /// EVENT_NOT_FOUND, TICKET_NOT_FOUND.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// ALREADY_PARTICIPATED (with `participationId`), SOLD_OUT, GROUP_LIMIT_REACHED (the user's
    /// units across the campaign's group would pass its limit); on confirm and cancel:
    /// HOLD_EXPIRED, PARTICIPATION_CANCELLED, ALREADY_CONFIRMED (a confirmed win is cancelled by
    /// an admin only); on a campaign control: STOCK_IN_USE (with `freeStock`), CAMPAIGN_ENDED;
    /// on a join with an admission token: ADMISSION_TOKEN_USED, ADMISSION_TOKEN_EXPIRED; on
    /// queueing: TICKET_LIMIT_REACHED (this client address holds `QUEUE_TICKETS_PER_CLIENT` live
    /// tickets in the room), QUEUE_FULL (the room keeps `QUEUE_MAX_WAITING` tickets waiting).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// PAYLOAD_TOO_LARGE.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// CAMPAIGN_NOT_OPEN (before `startsAt`), CAMPAIGN_ENDED, CAMPAIGN_PAUSED, NO_WAITING_ROOM
    /// (queueing for an `OPEN` campaign),
    /// IDEMPOTENCY_KEY_REUSED (the key wrote this user's win, or applied a control, with another
    /// request).
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// RATE_LIMITED: this user or client IP made too many calls; `Retry-After` says when a call
    /// will be let through again.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] Option<u32>),
    /// INTERNAL: a bug; the cause is in the logs.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// SERVICE_BUSY (with Retry-After), DEPENDENCY_UNAVAILABLE.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] Option<u32>),
}

pub(super) fn body(code: ErrorCode, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code,
        message: message.into(),
        participation_id: None,
        free_stock: None,
        campaign_id: None,
    })
}

impl ApiError {
    /// The body, whatever the status.
    fn body_mut(&mut self) -> &mut ErrorBody {
        match self {
            Self::BadRequest(b)
            | Self::Unauthorized(b)
            | Self::Forbidden(b)
            | Self::NotFound(b)
            | Self::Conflict(b)
            | Self::PayloadTooLarge(b)
            | Self::Unprocessable(b)
            | Self::Internal(b)
            | Self::TooManyRequests(b, _)
            | Self::Unavailable(b, _) => &mut b.0,
        }
    }

    /// The same error naming the campaign it is about (a purchase's item).
    pub fn about_campaign(mut self, campaign_id: i64) -> Self {
        self.body_mut().campaign_id = Some(campaign_id);
        self
    }

    /// The body, whatever the status.
    fn body(&self) -> &ErrorBody {
        match self {
            Self::BadRequest(b)
            | Self::Unauthorized(b)
            | Self::Forbidden(b)
            | Self::NotFound(b)
            | Self::Conflict(b)
            | Self::PayloadTooLarge(b)
            | Self::Unprocessable(b)
            | Self::Internal(b)
            | Self::TooManyRequests(b, _)
            | Self::Unavailable(b, _) => &b.0,
        }
    }

    /// The error's stable code.
    pub fn code(&self) -> ErrorCode {
        self.body().code
    }

    /// The campaign the error names (a purchase's item), if any.
    pub fn campaign_id(&self) -> Option<i64> {
        self.body().campaign_id
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::BadRequest(body(ErrorCode::ValidationFailed, message))
    }
    pub fn key_reused(message: impl Into<String>) -> Self {
        Self::Unprocessable(body(ErrorCode::IdempotencyKeyReused, message))
    }
    pub fn unauthorized() -> Self {
        Self::Unauthorized(body(
            ErrorCode::Unauthorized,
            "a valid admin bearer token is required",
        ))
    }
    pub fn unauthenticated() -> Self {
        Self::Unauthorized(body(
            ErrorCode::Unauthenticated,
            "a valid bearer token (JWT) of the user is required",
        ))
    }
    pub fn user_mismatch() -> Self {
        Self::Forbidden(body(ErrorCode::UserMismatch, "the token is another user's"))
    }
    pub fn purchase_not_found(id: i64) -> Self {
        Self::missing(ErrorCode::PurchaseNotFound, "purchase", id)
    }
    pub fn group_not_found(id: i64) -> Self {
        Self::missing(ErrorCode::GroupNotFound, "group", id)
    }
    /// 404: the `what` with this id does not exist.
    fn missing(code: ErrorCode, what: &str, id: i64) -> Self {
        Self::NotFound(body(code, format!("{what} {id} does not exist")))
    }
    /// 404 NOT_FOUND: nothing is served here, as `message` says.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(body(ErrorCode::NotFound, message))
    }
    pub fn campaign_not_found(id: i64) -> Self {
        Self::missing(ErrorCode::CampaignNotFound, "campaign", id)
    }
    pub fn participation_not_found() -> Self {
        Self::NotFound(body(
            ErrorCode::ParticipationNotFound,
            "this user has no participation in this campaign",
        ))
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::PayloadTooLarge(body(
            ErrorCode::PayloadTooLarge,
            format!("request bodies are limited to {limit} bytes"),
        ))
    }
    pub fn rate_limited(retry_after_secs: u32) -> Self {
        Self::TooManyRequests(
            body(
                ErrorCode::RateLimited,
                format!("too many calls; retry in {retry_after_secs} s"),
            ),
            Some(retry_after_secs),
        )
    }
    pub fn busy() -> Self {
        Self::Unavailable(
            body(
                ErrorCode::ServiceBusy,
                "the service is at capacity; retry shortly",
            ),
            Some(RETRY_AFTER_SECS),
        )
    }
    /// Logs the cause (with its chain) and answers without it. Retry-After tells clients when
    /// to try again (dependencies that fail over are back within seconds), so they do not
    /// hammer a recovering service.
    pub fn dependency(what: &str, cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %Chain(cause), "{what} is unavailable.");
        Self::Unavailable(
            body(
                ErrorCode::DependencyUnavailable,
                format!("{what} is unavailable; retry later"),
            ),
            Some(RETRY_AFTER_SECS),
        )
    }
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %Chain(cause), "Internal error.");
        Self::Internal(body(ErrorCode::Internal, "internal error"))
    }
}

/// Formats an error with its sources: `a: b: c`.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use poem_openapi::{registry::Registry, types::Type};

    use super::ErrorCode;

    /// The refusal counts' reasons (`refusal::reason::REASONS`) are written as strings; each must
    /// be a code the API answers, or a new refusal reason would be counted under a name no client
    /// ever sees (issue 69: the codes are declared twice).
    #[test]
    fn every_counted_refusal_reason_is_an_error_code() {
        let mut registry = Registry::new();
        <ErrorCode as Type>::register(&mut registry);
        let schema = &registry.schemas[<ErrorCode as Type>::name().as_ref()];
        let codes: Vec<&str> = schema
            .enum_items
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(codes.contains(&"SOLD_OUT"), "{codes:?}");
        for reason in crate::refusal::reason::REASONS {
            assert!(
                codes.contains(&reason),
                "{reason} is no ErrorCode: {codes:?}"
            );
        }
    }
}
