//! `/api/v1/admin/campaigns/{id}/…`: live controls of a running campaign (docs/design.md §15),
//! admin only: add or withdraw stock, pause, resume, close, and the audit trail of what was done,
//! by which admin token, when; and whether its door asks for the bot check (§16).

use chrono::{DateTime, Utc};
use poem::{web::Data, Request};
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Enum, Object, OpenApi,
};

use crate::{
    api::{campaigns::CampaignDto, Tag},
    bot_check::BotCheck,
    campaign::{
        control::{CampaignControls, Control, ControlRequest, HistoryRow},
        repo,
    },
    db::Db,
    events::control::ControlKind,
    http::{
        admin_auth::{AdminName, AdminOnly},
        error::ApiError,
        idempotency_key::{checked_key, IdempotencyKey},
        request_span::ServerSpan,
    },
    refusal::RefusalView,
};

const DEFAULT_PAGE: u32 = 50;

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct StockChange {
    /// Units to add (positive) or withdraw (negative), not 0. The total stays at most
    /// 10,000,000; a withdrawal takes unsold units only.
    #[oai(validator(minimum(value = "-10000000"), maximum(value = "10000000")))]
    pub delta: i64,
}

/// Whether a campaign's door asks for the bot check.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct BotCheckChange {
    /// `true`: its door asks; `false`: it does not; absent or null: the service's default
    /// (`BOT_CHECK`, and `BOT_CHECK_ON_JOIN` for an `OPEN` campaign).
    pub required: Option<bool>,
}

/// What a control did.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ControlKindDto {
    StockChanged,
    Paused,
    Resumed,
    Closed,
}

impl From<ControlKind> for ControlKindDto {
    fn from(k: ControlKind) -> Self {
        match k {
            ControlKind::StockChanged => Self::StockChanged,
            ControlKind::Paused => Self::Paused,
            ControlKind::Resumed => Self::Resumed,
            ControlKind::Closed => Self::Closed,
        }
    }
}

/// One control in a campaign's audit trail.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ControlEvent {
    /// The control's number within the campaign: 1, 2, … in commit order.
    pub seq: i64,
    pub kind: ControlKindDto,
    /// The event's `eventType` on the topic (`CampaignStockChanged`, …).
    pub event_type: String,
    /// The event's id on the topic.
    pub event_id: String,
    /// Units added or withdrawn (stock changes only).
    #[oai(skip_serializing_if_is_none)]
    pub delta: Option<i64>,
    /// The campaign's stock right after the control.
    pub total_stock: i64,
    pub remaining_stock: i64,
    /// The name of the admin token that asked (`ADMIN_TOKENS`; `admin` for `ADMIN_TOKEN`).
    pub changed_by: String,
    pub at: DateTime<Utc>,
}

impl ControlEvent {
    fn from_row(r: HistoryRow) -> Option<Self> {
        let kind = ControlKind::parse(&r.kind)?;
        Some(Self {
            seq: r.seq,
            kind: kind.into(),
            event_type: kind.event_type().into(),
            event_id: r.event_id,
            delta: r.delta,
            total_stock: r.total_stock,
            remaining_stock: r.remaining_stock,
            changed_by: r.admin,
            at: r.created_at.and_utc(),
        })
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ControlPage {
    pub items: Vec<ControlEvent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<i64>,
}

/// One bucket of a bucketed campaign: its MySQL row beside its gate.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct BucketDto {
    pub bucket: i32,
    /// Units in the bucket's row: not sold, reservations not yet committed included.
    pub remaining_stock: i64,
    /// Wins committed in the bucket.
    pub accepted_count: i64,
    /// Units moved into the bucket so far (from the pool or a sibling) and out of it (to a
    /// sibling, or withdrawn).
    pub units_in: i64,
    pub units_out: i64,
    /// Units its gate can reserve now (absent: its gate state is not loaded, or Redis did not
    /// answer).
    #[oai(skip_serializing_if_is_none)]
    pub gate_stock: Option<i64>,
}

/// A campaign's buckets and its pool (docs/design.md §21).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct BucketsDto {
    pub campaign_id: i64,
    /// How many buckets its stock is split into (1: an unbucketed campaign, no rows below).
    pub buckets: i32,
    /// Units not dealt to any bucket yet (an unbucketed campaign: its whole remaining stock).
    pub pool: i64,
    /// Transfers committed whose units a bucket's gate may still lack (applied within about a
    /// second).
    pub transfers_owed: i64,
    pub items: Vec<BucketDto>,
}

/// The controls resource.
pub struct ControlsApi {
    pub controls: CampaignControls,
    /// The refusals the answered campaign shows.
    pub refusals: RefusalView,
    /// The campaigns' choices of the bot check, and where the answered campaign is read.
    pub bot: (BotCheck, Db),
}

/// What every control call carries besides its control: the `Idempotency-Key` header as
/// declared, the raw request (to tell an unreadable key from none) and the request's span.
struct Call<'a> {
    key: IdempotencyKey,
    http: &'a Request,
    span: &'a ServerSpan,
}

impl ControlsApi {
    /// Runs `control` for `admin` (already checked).
    async fn run(
        &self,
        admin: AdminName,
        id: i64,
        control: Control,
        call: Call<'_>,
    ) -> Result<Json<CampaignDto>, ApiError> {
        let idempotency_key = checked_key(call.key, call.http)?;
        let (campaign, reached) = self
            .controls
            .apply(ControlRequest {
                campaign_id: id,
                control,
                admin: admin.to_string(),
                idempotency_key,
                traceparent: Some(call.span.0.to_string()),
            })
            .await?;
        let refused = self.refusals.one(id).await?;
        Ok(Json(
            CampaignDto::new(campaign, Utc::now())
                .with_refusals(refused)
                .with_gate(reached.map(Into::into)),
        ))
    }
}

#[OpenApi(prefix_path = "/api/v1/admin/campaigns", tag = "Tag::Admin")]
impl ControlsApi {
    /// Add units to a campaign (sellable on every instance within about a second; a sold-out
    /// campaign opens again) or withdraw unsold ones (409 STOCK_IN_USE with `freeStock` when
    /// fewer are unsold). `totalStock` and `remainingStock` both move by `delta`. Answers the
    /// campaign (admin), with `gate`: `UPDATED` when the change was at the gate before the answer,
    /// `PENDING` when Redis could not be reached (applied within about a second after it answers
    /// again).
    #[oai(path = "/:id/stock", method = "post")]
    async fn stock(
        &self,
        auth: AdminOnly,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        body: Json<StockChange>,
        /// Makes a retry safe: a control already applied to this campaign with this key is
        /// answered (200, the campaign now), not applied again; the same key with another control:
        /// 422 IDEMPOTENCY_KEY_REUSED. 1-128 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: IdempotencyKey,
        span: Data<&ServerSpan>,
        http: &Request,
    ) -> Result<Json<CampaignDto>, ApiError> {
        let admin = auth.name().clone();
        let delta = body.0.delta;
        if delta == 0 {
            return Err(ApiError::validation("delta must not be 0"));
        }
        let call = Call {
            key: idempotency_key,
            http,
            span: span.0,
        };
        self.run(admin, id.0, Control::Stock(delta), call).await
    }

    /// Pause a campaign: joins answer 422 CAMPAIGN_PAUSED on every instance within about a second;
    /// confirm and cancel keep working. Pausing a paused campaign answers it again; an ended one:
    /// 409 CAMPAIGN_ENDED (admin).
    #[oai(path = "/:id/pause", method = "post")]
    async fn pause(
        &self,
        auth: AdminOnly,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        /// Makes a retry safe: a control already applied to this campaign with this key is
        /// answered (200, the campaign now), not applied again; the same key with another control:
        /// 422 IDEMPOTENCY_KEY_REUSED. 1-128 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: IdempotencyKey,
        span: Data<&ServerSpan>,
        http: &Request,
    ) -> Result<Json<CampaignDto>, ApiError> {
        let admin = auth.name().clone();
        let call = Call {
            key: idempotency_key,
            http,
            span: span.0,
        };
        self.run(admin, id.0, Control::Pause, call).await
    }

    /// Resume a paused campaign. Resuming a running campaign answers it again; an ended one: 409
    /// CAMPAIGN_ENDED (admin).
    #[oai(path = "/:id/resume", method = "post")]
    async fn resume(
        &self,
        auth: AdminOnly,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        /// Makes a retry safe: a control already applied to this campaign with this key is
        /// answered (200, the campaign now), not applied again; the same key with another control:
        /// 422 IDEMPOTENCY_KEY_REUSED. 1-128 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: IdempotencyKey,
        span: Data<&ServerSpan>,
        http: &Request,
    ) -> Result<Json<CampaignDto>, ApiError> {
        let admin = auth.name().clone();
        let call = Call {
            key: idempotency_key,
            http,
            span: span.0,
        };
        self.run(admin, id.0, Control::Resume, call).await
    }

    /// Close a campaign now: it has ended (joins answer 422 CAMPAIGN_ENDED on every instance
    /// within about a second; confirm and cancel keep working). Final: it cannot be resumed.
    /// Closing an ended campaign answers it again (admin).
    #[oai(path = "/:id/close", method = "post")]
    async fn close(
        &self,
        auth: AdminOnly,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        /// Makes a retry safe: a control already applied to this campaign with this key is
        /// answered (200, the campaign now), not applied again; the same key with another control:
        /// 422 IDEMPOTENCY_KEY_REUSED. 1-128 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: IdempotencyKey,
        span: Data<&ServerSpan>,
        http: &Request,
    ) -> Result<Json<CampaignDto>, ApiError> {
        let admin = auth.name().clone();
        let call = Call {
            key: idempotency_key,
            http,
            span: span.0,
        };
        self.run(admin, id.0, Control::Close, call).await
    }

    /// Whether the campaign's door asks for the bot check: its waiting room's queue, or an `OPEN`
    /// campaign's joins and carts. The service's provider checks it (`BOT_CHECK`; with `off`,
    /// the built-in proof of work). Every instance's door follows within about a second.
    /// Switched on, a ticket given without the check wins nothing at its join (a bot queued before
    /// the switch gains nothing, nor does a person: switch it on before the room opens); switched
    /// off, every ticket is good. Setting it again answers the campaign again (admin).
    #[oai(path = "/:id/bot-check", method = "post")]
    async fn bot_check(
        &self,
        auth: AdminOnly,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        body: Json<BotCheckChange>,
    ) -> Result<Json<CampaignDto>, ApiError> {
        let (bot, db) = &self.bot;
        let required = body.0.required;
        if !bot.choices().set(id.0, required).await? {
            return Err(ApiError::campaign_not_found(id.0));
        }
        tracing::info!(campaign_id = id.0, admin = %auth.name(), ?required, "the campaign's bot check changed");
        let campaign =
            (repo::find(db, id.0).await?).ok_or_else(|| ApiError::campaign_not_found(id.0))?;
        let refused = self.refusals.one(id.0).await?;
        Ok(Json(
            CampaignDto::new(campaign, Utc::now()).with_refusals(refused),
        ))
    }

    /// The balance of a campaign's buckets: each bucket's row (units, wins, units moved in and
    /// out) beside its gate's free units, and the pool not dealt yet (admin).
    #[oai(path = "/:id/buckets", method = "get")]
    async fn buckets(
        &self,
        _auth: AdminOnly,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
    ) -> Result<Json<BucketsDto>, ApiError> {
        let (campaign, balance) = self
            .controls
            .buckets(id.0)
            .await?
            .ok_or_else(|| ApiError::campaign_not_found(id.0))?;
        Ok(Json(BucketsDto {
            campaign_id: campaign.id,
            buckets: i32::from(campaign.buckets),
            pool: balance.pool,
            transfers_owed: balance.transfers_owed,
            items: balance
                .buckets
                .into_iter()
                .map(|b| BucketDto {
                    bucket: i32::from(b.row.bucket),
                    remaining_stock: b.row.remaining_stock,
                    accepted_count: b.row.accepted_count,
                    units_in: b.row.units_in,
                    units_out: b.row.units_out,
                    gate_stock: b.gate_stock,
                })
                .collect(),
        }))
    }

    /// The campaign's controls, oldest first: what, by which admin, when, and the stock after
    /// each (admin).
    #[oai(path = "/:id/events", method = "get")]
    async fn events(
        &self,
        _auth: AdminOnly,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        /// Page size, 1 to 500 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// `nextCursor` of the previous page.
        #[oai(validator(minimum(value = "0")))]
        cursor: Query<Option<i64>>,
    ) -> Result<Json<ControlPage>, ApiError> {
        let limit = limit.0.unwrap_or(DEFAULT_PAGE);
        let mut rows = self
            .controls
            .history(id.0, cursor.0.unwrap_or(0), limit + 1)
            .await?
            .ok_or_else(|| ApiError::campaign_not_found(id.0))?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.seq)
        } else {
            None
        };
        Ok(Json(ControlPage {
            items: rows
                .into_iter()
                .filter_map(ControlEvent::from_row)
                .collect(),
            next_cursor,
        }))
    }
}
