//! `/api/v1/campaigns`: create (admin), list and get with live status (public).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    types::ToJSON,
    ApiResponse, Enum, Object, OpenApi,
};

use crate::{
    api::{gate_update::GateUpdate, read_cache::ReadCache, Tag},
    campaign::{
        self,
        create_key::CreateKey,
        repo::{CampaignWithCount, NewCampaign},
        Admission, CampaignService, CampaignState, CreateError, Creation, MAX_ADMISSION_RATE,
    },
    http::{
        admin_auth::AdminOnly,
        error::ApiError,
        idempotency_key::{checked_key, IdempotencyKey},
        json_string::JsonString,
    },
    join::ParticipationService,
    refusal::{RefusalTotals, RefusalView},
};

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCampaign {
    /// 1 to 200 characters, without control characters (NUL, tab, newline, …); leading and
    /// trailing whitespace is dropped.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: JsonString,
    /// Units on sale, 1 to 10,000,000.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000000")))]
    pub total_stock: i64,
    /// Most units one user may take in their one participation (default 1).
    #[oai(validator(minimum(value = "1"), maximum(value = "10000000")))]
    pub per_user_limit: Option<i32>,
    /// Points granted per unit won, by the rewards consumer (default 0, at most 1,000,000,000).
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub reward_points: Option<i64>,
    /// Seconds a win stays `HELD` for its confirmation before it expires and its units go back
    /// to the sale, 0 to 86,400 (default 0: a win is `CONFIRMED` at once).
    #[oai(validator(minimum(value = "0"), maximum(value = "86400")))]
    pub confirm_within_seconds: Option<i32>,
    /// Opening time (default: now); years 1000 to 9999.
    pub starts_at: Option<DateTime<Utc>>,
    /// Closing time, exclusive (default: none). Must be after `startsAt`; years 1000 to 9999.
    pub ends_at: Option<DateTime<Utc>>,
    // No doc comment: poem-openapi would wrap the enum's $ref in an allOf with it, which
    // generated clients cannot read; the enum carries the description (default `OPEN`).
    pub admission: Option<AdmissionDto>,
    /// With `QUEUE` or `RAFFLE`: users admitted per second while stock lasts, 1 to 10,000
    /// (default 100). Not allowed with `OPEN`.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
    pub admission_rate_per_second: Option<i32>,
    /// Buckets the stock is split into, 1 to 1,024 (default 1): each has its own Redis slot and
    /// MySQL row, so one campaign's joins spread over several Redis primaries and row locks;
    /// stock moves between buckets so that no join is refused while another bucket has units.
    /// Clients see one campaign either way, with or without a waiting room (docs/design.md §21).
    #[oai(validator(minimum(value = "1"), maximum(value = "1024")))]
    pub buckets: Option<i32>,
    /// The group the campaign joins (`POST /api/v1/groups`): a user's units across the group's
    /// campaigns stay within the group's `perUserLimit`. The campaign takes the group's
    /// `buckets` (`buckets`, if given, must equal it). Not allowed with the synchronous baseline.
    #[oai(validator(minimum(value = "1")))]
    pub group_id: Option<i64>,
    /// With `QUEUE` or `RAFFLE`: keep a waitlist (docs/design.md §22). A ticket told the
    /// campaign is sold out stays on it (`WAITLISTED`) while it is polled (one not polled for
    /// `QUEUE_TICKET_IDLE_MS`, 30 s, is dropped), and every unit that comes back (a cancel, an
    /// expiry, a refund, stock added) is offered to the next waitlisted user in order: an
    /// admission valid this many seconds, 1 to 86,400, passed on to the next user when unused.
    /// Absent: no waitlist.
    #[oai(validator(minimum(value = "1"), maximum(value = "86400")))]
    pub offer_seconds: Option<i32>,
    /// Whether the campaign's door asks for the bot check: its waiting room's queue, or an
    /// `OPEN` campaign's joins (and carts). Absent: the service's default (`BOT_CHECK`, and
    /// `BOT_CHECK_ON_JOIN` for `OPEN` campaigns). The service's provider checks it (with
    /// `BOT_CHECK=off`, the built-in proof of work). Changed live with
    /// `POST /api/v1/admin/campaigns/{id}/bot-check`.
    pub bot_check: Option<bool>,
}

/// A name as stored: trimmed, not blank, without control characters (a NUL or a newline in a
/// name breaks the logs, exports and C clients that show it).
pub(crate) fn display_name(raw: &str) -> Result<&str, ApiError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ApiError::validation("name must not be blank"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name must not contain control characters",
        ));
    }
    Ok(name)
}

/// Users admitted per second by a waiting room created without a rate.
const DEFAULT_ADMISSION_RATE: i32 = 100;

/// How a campaign lets joins in. `OPEN` (the default): anyone may join, first come first
/// served. `QUEUE`: users queue at `…/queue` and join with the admission token they are given,
/// in arrival order, at `admissionRatePerSecond`. `RAFFLE`: like `QUEUE`, but everyone who
/// queues before `startsAt` gets a random place; later arrivals queue behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AdmissionDto {
    Open,
    Queue,
    Raffle,
}

impl From<AdmissionDto> for Admission {
    fn from(a: AdmissionDto) -> Self {
        match a {
            AdmissionDto::Open => Self::Open,
            AdmissionDto::Queue => Self::Queue,
            AdmissionDto::Raffle => Self::Raffle,
        }
    }
}

impl From<Admission> for AdmissionDto {
    fn from(a: Admission) -> Self {
        match a {
            Admission::Open => Self::Open,
            Admission::Queue => Self::Queue,
            Admission::Raffle => Self::Raffle,
        }
    }
}

/// The admission and its rate a create request asks for, checked together.
fn admission(body: &CreateCampaign) -> Result<(Admission, i32), ApiError> {
    let admission: Admission = body.admission.map_or(Admission::Open, Into::into);
    match (admission.queued(), body.admission_rate_per_second) {
        (false, Some(_)) => Err(ApiError::validation(
            "admissionRatePerSecond applies to QUEUE and RAFFLE campaigns only",
        )),
        (false, None) => Ok((admission, 0)),
        (true, rate) => Ok((
            admission,
            rate.unwrap_or(DEFAULT_ADMISSION_RATE)
                .min(MAX_ADMISSION_RATE),
        )),
    }
}

/// `at` truncated to what the database keeps, refused unless MySQL's `DATETIME` can hold it:
/// years 1000 to 9999. RFC 3339 parsing accepts years far outside it (`-0001`, `+10000`), and a
/// leap second `9999-12-31T23:59:60Z` only leaves year 9999 once truncated, so the check runs
/// on the truncated value.
fn storable(field: &str, at: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match at.map(crate::db::time::precision) {
        Some(t) if !campaign::storable(t) => Err(ApiError::validation(format!(
            "{field} must be between 1000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z"
        ))),
        t => Ok(t),
    }
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StateDto {
    Scheduled,
    Open,
    /// Paused by an admin: joins answer CAMPAIGN_PAUSED until it is resumed.
    Paused,
    SoldOut,
    Ended,
}

impl From<CampaignState> for StateDto {
    fn from(s: CampaignState) -> Self {
        match s {
            CampaignState::Scheduled => Self::Scheduled,
            CampaignState::Open => Self::Open,
            CampaignState::Paused => Self::Paused,
            CampaignState::SoldOut => Self::SoldOut,
            CampaignState::Ended => Self::Ended,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct CampaignDto {
    pub id: i64,
    pub name: String,
    pub total_stock: i64,
    /// Live, from MySQL (the source of truth).
    pub remaining_stock: i64,
    /// Accepted participations so far.
    pub accepted_count: i64,
    pub per_user_limit: i32,
    /// Points granted per unit won.
    pub reward_points: i64,
    /// Seconds a win stays `HELD` for its confirmation (0: final at once).
    pub confirm_within_seconds: i32,
    pub starts_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub ends_at: Option<DateTime<Utc>>,
    /// When an admin closed the campaign early (it has ended since).
    #[oai(skip_serializing_if_is_none)]
    pub closed_at: Option<DateTime<Utc>>,
    /// Paused by an admin (the state shows it while the window is open).
    pub paused: bool,
    /// Live controls applied so far (the audit trail at `/api/v1/admin/campaigns/{id}/events`).
    pub control_count: i64,
    pub state: StateDto,
    // No doc comment (see `CreateCampaign::admission`).
    pub admission: AdmissionDto,
    /// Users the waiting room admits per second (0 with `OPEN`).
    pub admission_rate_per_second: i32,
    /// Buckets its stock is split into (absent: 1, an unbucketed campaign).
    #[oai(skip_serializing_if_is_none)]
    pub buckets: Option<i32>,
    /// The group it belongs to (absent: none).
    #[oai(skip_serializing_if_is_none)]
    pub group_id: Option<i64>,
    /// Seconds an offer to a waitlisted user stays valid (absent: no waitlist).
    #[oai(skip_serializing_if_is_none)]
    pub offer_seconds: Option<i32>,
    /// Its own choice of the bot check at its door (absent: the service's default).
    #[oai(skip_serializing_if_is_none)]
    pub bot_check: Option<bool>,
    /// Joins refused so far, by every instance (current within about a second; statistics: an
    /// instance killed may lose its last half second of counts).
    pub refused_count: i64,
    /// `refusedCount` by the error code the joins were answered with (`SOLD_OUT`,
    /// `ALREADY_PARTICIPATED`, `CAMPAIGN_NOT_OPEN`, `CAMPAIGN_ENDED`, `CAMPAIGN_PAUSED`,
    /// `RATE_LIMITED`, `ADMISSION_…`, `GROUP_LIMIT_REACHED`, `BOT_CHECK_FAILED`); codes never
    /// answered are absent.
    pub refused_by_reason: BTreeMap<String, i64>,
    /// Held and confirmed units over `totalStock`, 0 to 1.
    pub stock_usage_rate: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    // No doc comment (the enum carries it, see `admission`). On a control's answer only.
    #[oai(skip_serializing_if_is_none)]
    pub gate: Option<GateUpdate>,
}

impl CampaignDto {
    pub(crate) fn new(c: CampaignWithCount, now: DateTime<Utc>) -> Self {
        let state = c.campaign.state(now).into();
        let stock_usage_rate = c.campaign.stock_usage_rate();
        let c2 = c.campaign;
        Self {
            id: c2.id,
            name: c2.name,
            total_stock: c2.total_stock,
            remaining_stock: c2.remaining_stock,
            accepted_count: c.accepted_count,
            per_user_limit: c2.per_user_limit,
            reward_points: c2.reward_points,
            confirm_within_seconds: c2.confirm_within_seconds,
            starts_at: c2.starts_at,
            ends_at: c2.ends_at,
            closed_at: c2.closed_at,
            paused: c2.paused,
            control_count: c2.control_seq,
            state,
            admission: c2.admission.into(),
            admission_rate_per_second: c2.admission_rate_per_second,
            buckets: (c2.buckets > 1).then_some(i32::from(c2.buckets)),
            group_id: c2.group_id,
            offer_seconds: (c2.offer_seconds > 0).then_some(c2.offer_seconds),
            bot_check: c2.bot_check,
            refused_count: 0,
            refused_by_reason: BTreeMap::new(),
            stock_usage_rate,
            created_at: c2.created_at,
            updated_at: c2.updated_at,
            gate: None,
        }
    }

    /// With whether the control answered reached the gate first (`None`: it wrote nothing).
    pub(crate) fn with_gate(mut self, gate: Option<GateUpdate>) -> Self {
        self.gate = gate;
        self
    }

    /// With the campaign's refusals.
    pub(crate) fn with_refusals(mut self, refusals: RefusalTotals) -> Self {
        self.refused_count = refusals.total;
        self.refused_by_reason = refusals.by_reason;
        self
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CampaignPage {
    pub items: Vec<CampaignDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<i64>,
}

#[derive(ApiResponse)]
pub enum Created {
    #[oai(status = 201)]
    Created(Json<CampaignDto>),
}

/// How long a creation's answer waits for its gates to be primed (a 1,024-bucket campaign's
/// take 0.6–0.9 s on two cores; the rest goes on after the answer).
const PRIME_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// The campaigns resource: campaigns, and the participation service that readies a new one.
pub struct CampaignsApi {
    pub campaigns: CampaignService,
    /// The groups a new campaign may join (docs/design.md §22).
    pub groups: crate::group::GroupService,
    pub participations: ParticipationService,
    /// Refused joins per campaign (docs/design.md §20).
    pub refusals: RefusalView,
    /// A campaign's public read, kept briefly ([`super::read_cache`]).
    pub reads: ReadCache<Option<CampaignDto>>,
}

#[OpenApi(prefix_path = "/api/v1/campaigns", tag = "Tag::Campaigns")]
impl CampaignsApi {
    /// Create a campaign (admin).
    ///
    /// With an `Idempotency-Key`, a retry of the same request (its
    /// answer lost, or past the request's deadline) answers the campaign the key created, and
    /// the same key with another request is refused 422 IDEMPOTENCY_KEY_REUSED; keys are the
    /// admin token's own. A bucketed campaign is refused 400 when open campaigns would hold
    /// more than `CAMPAIGN_BUCKETS_MAX_TOTAL` buckets together.
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: AdminOnly,
        req: &poem::Request,
        #[oai(name = "Idempotency-Key")] idempotency_key: IdempotencyKey,
        body: Json<CreateCampaign>,
    ) -> Result<Created, ApiError> {
        let now = crate::db::time::precision(Utc::now());
        let key = checked_key(idempotency_key, req)?.map(|key| CreateKey {
            admin: auth.name().to_string(),
            key,
            request: body.0.to_json_string(),
        });
        let new = self.new_campaign(body.0, now, key).await?;
        let created = match self.campaigns.create(&new).await {
            Ok(Creation::Created(created)) => {
                self.prime(&created).await;
                tracing::info!(
                    campaign_id = created.campaign.id,
                    total_stock = new.total_stock,
                    "Campaign created."
                );
                created
            }
            Ok(Creation::Replayed(created)) => {
                tracing::info!(
                    campaign_id = created.campaign.id,
                    "A campaign creation retried with its Idempotency-Key; answered the campaign it made."
                );
                created
            }
            Err(CreateError::Db(e)) => return Err(e.into()),
            Err(e @ CreateError::KeyReused { .. }) => {
                return Err(ApiError::key_reused(e.to_string()))
            }
            Err(e @ CreateError::BucketsExhausted { .. }) => {
                return Err(ApiError::validation(e.to_string()))
            }
        };
        Ok(Created::Created(Json(CampaignDto::new(created, now))))
    }

    /// List campaigns, newest first.
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `nextCursor` of the previous page.
        #[oai(validator(minimum(value = "1")))]
        cursor: Query<Option<i64>>,
    ) -> Result<Json<CampaignPage>, ApiError> {
        let limit = limit.0.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
        let mut rows = self.campaigns.page(cursor.0, limit + 1).await?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|c| c.campaign.id)
        } else {
            None
        };
        let ids: Vec<i64> = rows.iter().map(|c| c.campaign.id).collect();
        let mut refusals = self.refusals.totals(&ids).await?;
        let now = Utc::now();
        Ok(Json(CampaignPage {
            items: rows
                .into_iter()
                .map(|c| {
                    let refused = refusals.remove(&c.campaign.id).unwrap_or_default();
                    CampaignDto::new(c, now).with_refusals(refused)
                })
                .collect(),
            next_cursor,
        }))
    }

    /// A campaign with its live status.
    #[oai(path = "/:id", method = "get")]
    async fn get(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
    ) -> Result<Json<CampaignDto>, ApiError> {
        let id = id.0;
        let read = self
            .reads
            .get_or(id, || async {
                let Some(found) = self.campaigns.find(id).await? else {
                    return Ok::<_, ApiError>(None);
                };
                let refused = self.refusals.one(id).await?;
                Ok(Some(
                    CampaignDto::new(found, Utc::now()).with_refusals(refused),
                ))
            })
            .await?;
        read.map(Json)
            .ok_or_else(|| ApiError::campaign_not_found(id))
    }
}

impl CampaignsApi {
    /// The campaign a create request asks for, its fields checked.
    async fn new_campaign(
        &self,
        body: CreateCampaign,
        now: DateTime<Utc>,
        key: Option<CreateKey>,
    ) -> Result<NewCampaign, ApiError> {
        let starts_at = storable("startsAt", body.starts_at)?.unwrap_or(now);
        let ends_at = storable("endsAt", body.ends_at)?;
        if ends_at.is_some_and(|end| end <= starts_at) {
            return Err(ApiError::validation("endsAt must be after startsAt"));
        }
        let name = display_name(&body.name.0)?;
        let (admission, admission_rate_per_second) = admission(&body)?;
        if body.offer_seconds.is_some() && !admission.queued() {
            return Err(ApiError::validation(
                "offerSeconds applies to QUEUE and RAFFLE campaigns only (a waitlist lives in the waiting room)",
            ));
        }
        let buckets = self.buckets_in_group(&body).await?;
        let per_user_limit = body.per_user_limit.unwrap_or(1);
        if i64::from(per_user_limit) > body.total_stock {
            return Err(ApiError::validation(
                "perUserLimit must not exceed totalStock",
            ));
        }
        Ok(NewCampaign {
            name: name.to_string(),
            total_stock: body.total_stock,
            per_user_limit,
            reward_points: body.reward_points.unwrap_or(0),
            confirm_within_seconds: body.confirm_within_seconds.unwrap_or(0),
            starts_at,
            ends_at,
            admission,
            admission_rate_per_second,
            buckets,
            group_id: body.group_id,
            offer_seconds: body.offer_seconds.unwrap_or(0),
            bot_check: body.bot_check,
            key,
        })
    }

    /// Readies a new campaign's gates for its first burst, waiting at most [`PRIME_WAIT`]: the
    /// priming goes on in its own task after that (a join meanwhile waits for its bucket's), so
    /// the answer never outlives the request's deadline for it.
    async fn prime(&self, created: &CampaignWithCount) {
        let participations = self.participations.clone();
        let campaign = created.campaign.clone();
        let priming = tokio::spawn(async move { participations.prime(&campaign).await });
        if tokio::time::timeout(PRIME_WAIT, priming).await.is_err() {
            tracing::info!(
                campaign_id = created.campaign.id,
                "The new campaign's gates are still being primed; answered without waiting."
            );
        }
    }

    /// The new campaign's buckets: its group's, when it joins one (a group's campaigns share
    /// their number of buckets, docs/design.md §22), and the group must exist.
    async fn buckets_in_group(&self, body: &CreateCampaign) -> Result<u16, ApiError> {
        let asked = body.buckets.map(|b| u16::try_from(b).unwrap_or(1).max(1));
        let Some(group_id) = body.group_id else {
            return Ok(asked.unwrap_or(1));
        };
        let Some(group) = self.groups.group(group_id).await? else {
            return Err(ApiError::validation(format!(
                "groupId {group_id} names no group"
            )));
        };
        match asked {
            Some(b) if b != group.buckets => Err(ApiError::validation(format!(
                "buckets must be the group's ({})",
                group.buckets
            ))),
            _ => Ok(group.buckets),
        }
    }
}
