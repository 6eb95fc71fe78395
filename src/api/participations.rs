//! `/api/v1/campaigns/{id}/participations`: join through the outbox path, and look a user's
//! participation up.
//!
//! The reads follow `USER_AUTH` (docs/design.md §3): with `none` they are public, as the joins
//! trust the `userId`; with `jwt` a user's participation is for that user (or an admin) only, and
//! the list, which names every winner, for an admin only.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::{web::Data, Request};
use poem_openapi::{
    param::{Header, Path, Query},
    payload::Json,
    ApiResponse, Enum, Object, OpenApi, SecurityScheme,
};
use uuid::Uuid;

use crate::{
    api::{
        gate_update::GateUpdate,
        join_json::{JoinJson, ParticipationJson},
        Tag,
    },
    campaign::CampaignService,
    gate::Entry,
    http::{
        admin_auth::{bearer, AdminAuth, AdminTokens, Presented},
        error::ApiError,
        idempotency_key::{checked_key, IdempotencyKey},
        json_string::JsonString,
        rate_limit::RateLimits,
        request_span::ServerSpan,
        user_auth::{AdminOrUserToken, UserAuthority, UserToken},
    },
    join::{
        baseline::SyncParticipationService, Accepted, JoinError, JoinRequest, ParticipationService,
    },
    refusal::RefusalCounter,
    telemetry::metrics::{Metrics, ParticipationPath},
    win::{store::StoredParticipation, ParticipationStatus},
};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinBody {
    /// The user, a positive 64-bit integer.
    #[oai(validator(minimum(value = "1")))]
    pub user_id: i64,
    /// Units to take (default 1); at most the campaign's `perUserLimit`.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000000")))]
    pub quantity: Option<i32>,
    /// Required by a campaign with a waiting room (`QUEUE`, `RAFFLE`): the token its queue gave
    /// this user (`…/queue/{ticket}` once `ADMITTED`). Single use; ignored by an `OPEN` campaign.
    #[oai(validator(max_length = 256))]
    pub admission_token: Option<JsonString>,
    /// Required on both join paths by an `OPEN` campaign that asks for the bot check (its
    /// `botCheck`, or `BOT_CHECK_ON_JOIN`): a solved bot check (the ALTCHA payload of
    /// `GET /api/v1/campaigns/{id}/bot-check`, or the captcha provider's token). A campaign with
    /// a waiting room checks its admission token's ticket instead.
    #[oai(validator(max_length = 4096))]
    pub bot_check: Option<JsonString>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ParticipationDto {
    pub participation_id: i64,
    pub campaign_id: i64,
    pub user_id: i64,
    pub quantity: i32,
    /// FCFS order handed out by the gate.
    pub sequence: i64,
    /// The Kafka event's id (the dedupe key); absent once the outbox row was cleaned up.
    #[oai(skip_serializing_if_is_none)]
    pub event_id: Option<Uuid>,
    pub accepted_at: DateTime<Utc>,
    // No doc comment: poem-openapi would wrap the enum's $ref in an allOf with it, which
    // generated clients cannot read; the enum carries the description.
    pub status: StatusDto,
    /// When a held win expires unless confirmed (absent unless `HELD`).
    #[oai(skip_serializing_if_is_none)]
    pub hold_expires_at: Option<DateTime<Utc>>,
    // No doc comment (the enum carries it, see `status`). On a cancel's answer only.
    #[oai(skip_serializing_if_is_none)]
    pub gate: Option<GateUpdate>,
}

/// Where a participation is: `HELD` (waiting for its confirmation until `holdExpiresAt`),
/// `CONFIRMED`, `CANCELLED` (by the user, or refunded by an admin) or `EXPIRED`.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusDto {
    Held,
    Confirmed,
    Cancelled,
    Expired,
}

impl From<ParticipationStatus> for StatusDto {
    fn from(s: ParticipationStatus) -> Self {
        match s {
            ParticipationStatus::Held => Self::Held,
            ParticipationStatus::Confirmed => Self::Confirmed,
            ParticipationStatus::Cancelled => Self::Cancelled,
            ParticipationStatus::Expired => Self::Expired,
        }
    }
}

/// The deadline is shown while it matters: on a held win.
fn deadline(status: ParticipationStatus, at: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    at.filter(|_| status == ParticipationStatus::Held)
}

impl From<Accepted> for ParticipationDto {
    fn from(a: Accepted) -> Self {
        Self {
            participation_id: a.participation_id,
            campaign_id: a.campaign_id,
            user_id: a.user_id,
            quantity: a.quantity,
            sequence: a.sequence,
            event_id: a.event_id,
            accepted_at: a.accepted_at,
            status: a.status.into(),
            hold_expires_at: deadline(a.status, a.hold_expires_at),
            gate: None,
        }
    }
}

impl From<StoredParticipation> for ParticipationDto {
    fn from(p: StoredParticipation) -> Self {
        let status = ParticipationStatus::parse(&p.status);
        Self {
            participation_id: p.id,
            campaign_id: p.campaign_id,
            user_id: p.user_id,
            quantity: p.quantity,
            sequence: p.sequence,
            event_id: p.event_id.and_then(|e| e.parse().ok()),
            accepted_at: p.created_at.and_utc(),
            status: status.into(),
            hold_expires_at: deadline(status, p.hold_expires_at.map(|t| t.and_utc())),
            gate: None,
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ParticipationPage {
    pub items: Vec<ParticipationDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<i64>,
}

/// An admin token, required when the service runs with `USER_AUTH=jwt`; nothing with `none`.
#[derive(SecurityScheme)]
pub enum AdminTokenUnderJwt {
    AdminAuth(AdminAuth),
    #[oai(fallback)]
    NoToken,
}

#[derive(ApiResponse)]
pub enum Joined {
    /// The win is committed; its event is in the outbox.
    #[oai(status = 201)]
    Created(ParticipationJson),
}

impl ParticipationsApi {
    /// `USER_AUTH`'s check, counted like any other answer when it refuses.
    fn authorize(
        &self,
        http: &Request,
        user_id: i64,
        path: ParticipationPath,
    ) -> Result<(), ApiError> {
        self.users.authorize(http, user_id).inspect_err(|e| {
            self.metrics.participation_outcome(path, e.code().name());
        })
    }

    /// Who may read `user_id`'s participation: with `USER_AUTH=jwt`, an admin (named) or that
    /// user; with `none`, anyone (as before: the joins trust the `userId` too).
    fn reader(&self, http: &Request, user_id: i64) -> Result<(), ApiError> {
        reader(&self.admin, &self.users, http, user_id)
    }

    /// Who may list a campaign's participations: with `USER_AUTH=jwt`, an admin only (the list
    /// names every winner); with `none`, anyone.
    fn lister(&self, http: &Request) -> Result<(), ApiError> {
        if !self.users.enabled() {
            return Ok(());
        }
        // As the admin API answers a call without a token: 401, not a failed attempt.
        let presented = bearer(http).ok_or_else(ApiError::unauthorized)?;
        self.admin.check(http, presented)?;
        Ok(())
    }

    /// The caller's rate limits (docs/design.md §16), a refusal counted like any answer.
    async fn limited(
        &self,
        http: &Request,
        campaign_id: i64,
        user_id: i64,
        path: ParticipationPath,
    ) -> Result<(), ApiError> {
        self.limits
            .check(http, campaign_id, user_id)
            .await
            .inspect_err(|e| {
                let code = e.code().name();
                self.refusals.record_code(campaign_id, &code);
                self.metrics.participation_outcome(path, code);
            })
    }
}

/// Who may read `user_id`'s participations (a purchase's too): with `USER_AUTH=jwt`, an admin
/// (named) or that user; with `none`, anyone.
pub(crate) fn reader(
    admin: &AdminTokens,
    users: &UserAuthority,
    http: &Request,
    user_id: i64,
) -> Result<(), ApiError> {
    if !users.enabled() {
        return Ok(());
    }
    // A user's JWT (well-formed, valid or not) never meets the admin door; any other bearer
    // that is no admin token is a failed admin attempt.
    match admin.presented(http)? {
        Presented::Admin(admin) => {
            tracing::info!(admin = %admin, "Admin call.");
            Ok(())
        }
        Presented::Failed => Err(ApiError::unauthenticated()),
        Presented::UserJwt | Presented::Nothing => users.verified(http, user_id),
    }
}

/// Counts the answer (`firstcome_participation_outcomes_total`, and a refusal of the campaign)
/// and gives it back.
fn counted(
    api: &ParticipationsApi,
    campaign_id: i64,
    path: ParticipationPath,
    result: Result<Accepted, JoinError>,
) -> Result<Joined, ApiError> {
    let result = result.map_err(ApiError::from);
    let code = match &result {
        Ok(_) => "CREATED".to_string(),
        Err(e) => e.code().name(),
    };
    api.refusals.record_code(campaign_id, &code);
    api.metrics.participation_outcome(path, code);
    Ok(Joined::Created(ParticipationJson(result?.into())))
}

fn join_request(
    campaign_id: i64,
    body: JoinBody,
    span: ServerSpan,
    idempotency_key: Option<String>,
) -> JoinRequest {
    JoinRequest {
        entry: Entry {
            campaign_id,
            user_id: body.user_id,
            quantity: body.quantity.unwrap_or(1),
            // The home bucket, once the campaign is read (`join::admit`).
            bucket: None,
            group: None,
        },
        trace: Some(span.0),
        idempotency_key,
        admission_token: body.admission_token.map(|t| t.0),
        bot_check: body.bot_check.map(|t| t.0),
    }
}

/// The participations resource: the two join paths, and the campaigns a listing must name.
pub struct ParticipationsApi {
    pub participations: ParticipationService,
    pub sync: SyncParticipationService,
    /// Whether the synchronous path is served (`SYNC_PATH_ENABLED`).
    pub sync_enabled: bool,
    pub campaigns: CampaignService,
    /// Counts each join's answer.
    pub metrics: Arc<Metrics>,
    /// Who may join for a user, and read a user's participation (`USER_AUTH`).
    pub users: UserAuthority,
    /// Who may read every user's participations under `USER_AUTH=jwt`.
    pub admin: AdminTokens,
    /// Per-user and per-IP limits (docs/design.md §16).
    pub limits: RateLimits,
    /// Refused joins, counted per campaign (docs/design.md §20).
    pub refusals: Arc<RefusalCounter>,
}

#[OpenApi(prefix_path = "/api/v1/campaigns", tag = "Tag::Participations")]
impl ParticipationsApi {
    /// Join a campaign (outbox path): Redis gate, then one MySQL transaction writing the
    /// participation and its outbox event.
    #[oai(path = "/:id/participations", method = "post")]
    // One argument per documented parameter, header and security scheme: poem-openapi's shape.
    #[allow(clippy::too_many_arguments)]
    async fn join(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        body: JoinJson,
        /// W3C trace context. The service's span for this request continues it (a missing or
        /// malformed one starts a new trace); the Kafka event's `traceparent` is that span's.
        #[oai(name = "traceparent")]
        _traceparent: Header<Option<String>>,
        /// Makes a retry safe: the same key again, by the same user with the same body, answers
        /// the win it wrote (201, the original body), also when the first answer was lost. The
        /// same key with another quantity: 422 IDEMPOTENCY_KEY_REUSED. 1-128 visible ASCII
        /// characters.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: IdempotencyKey,
        span: Data<&ServerSpan>,
        _token: UserToken,
        http: &Request,
    ) -> Result<Joined, ApiError> {
        let path = ParticipationPath::Outbox;
        self.authorize(http, body.0.user_id, path)?;
        self.limited(http, id.0, body.0.user_id, path).await?;
        let key = checked_key(idempotency_key, http)?;
        let req = join_request(id.0, body.0, *span.0, key);
        let result = self.participations.join(req).await;
        counted(self, id.0, path, result)
    }

    /// Join a campaign (synchronous baseline, for comparison): no Redis; the campaign row is
    /// locked for the check and the write; after the commit the event is produced to Kafka and
    /// awaited. No outbox row: a Kafka failure after the commit loses the event (counted in
    /// `syncEventsLost`). Served only where `SYNC_PATH_ENABLED` says (unset: on a loopback
    /// address only); elsewhere 404 `NOT_FOUND`.
    #[oai(path = "/:id/participations/sync", method = "post")]
    // One argument per documented parameter, header and security scheme: poem-openapi's shape.
    #[allow(clippy::too_many_arguments)]
    async fn join_sync(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        body: JoinJson,
        /// W3C trace context. The service's span for this request continues it (a missing or
        /// malformed one starts a new trace); the Kafka event's `traceparent` is that span's.
        #[oai(name = "traceparent")]
        _traceparent: Header<Option<String>>,
        /// As on the outbox path: a retry with the same key answers the win it wrote (the sync
        /// path keeps no event id, so the replayed answer has none).
        #[oai(name = "Idempotency-Key")]
        idempotency_key: IdempotencyKey,
        span: Data<&ServerSpan>,
        _token: UserToken,
        http: &Request,
    ) -> Result<Joined, ApiError> {
        if !self.sync_enabled {
            return Err(ApiError::not_found(
                "the synchronous path is off on this service (SYNC_PATH_ENABLED)",
            ));
        }
        let path = ParticipationPath::Sync;
        self.authorize(http, body.0.user_id, path)?;
        self.limited(http, id.0, body.0.user_id, path).await?;
        let key = checked_key(idempotency_key, http)?;
        let req = join_request(id.0, body.0, *span.0, key);
        let result = self.sync.join(req).await;
        counted(self, id.0, path, result)
    }

    /// A campaign's participations in id order, a page at a time.
    ///
    /// Ids follow the order the wins' writes began, not quite their commits: while a sale runs,
    /// a win may commit just after a page with a higher id was read. The list read once the
    /// sale is over is complete; the events (`ParticipationAccepted`) arrive in commit order.
    ///
    /// Who may read it follows `USER_AUTH`. With `none`: anyone. With `jwt`: an admin only (an
    /// admin token; no token, a user's JWT or any other: 401 UNAUTHORIZED, counted as a failed
    /// admin attempt when a token was sent), since the list names every user who won.
    #[oai(path = "/:id/participations", method = "get")]
    async fn list(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        /// Page size, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `nextCursor` of the previous page.
        #[oai(validator(minimum(value = "0")))]
        cursor: Query<Option<i64>>,
        _token: AdminTokenUnderJwt,
        http: &Request,
    ) -> Result<Json<ParticipationPage>, ApiError> {
        self.lister(http)?;
        if !self.campaigns.exists(id.0).await? {
            return Err(ApiError::campaign_not_found(id.0));
        }
        let limit = limit.0.unwrap_or(100);
        let mut rows = self
            .participations
            .page(id.0, cursor.0.unwrap_or(0), limit + 1)
            .await?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|p| p.id)
        } else {
            None
        };
        Ok(Json(ParticipationPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        }))
    }

    /// A user's participation in a campaign.
    ///
    /// Who may read it follows `USER_AUTH`. With `none`: anyone. With `jwt`: that user (their
    /// JWT) or an admin (an admin token); no token or an invalid one: 401 UNAUTHENTICATED;
    /// another user's valid JWT: 403 USER_MISMATCH.
    #[oai(path = "/:id/participations/:userId", method = "get")]
    async fn find(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        #[oai(name = "userId", validator(minimum(value = "1")))] user_id: Path<i64>,
        _token: AdminOrUserToken,
        http: &Request,
    ) -> Result<Json<ParticipationDto>, ApiError> {
        self.reader(http, user_id.0)?;
        let found = self
            .participations
            .find(id.0, user_id.0)
            .await?
            .ok_or_else(ApiError::participation_not_found)?;
        Ok(Json(found.into()))
    }
}
