//! `/api/v1/groups/{id}/purchases`: carts (docs/design.md §22) — several campaigns of a group
//! bought together, every item won or none; a purchase read back, confirmed or cancelled as a
//! whole. Who may act for a user follows `USER_AUTH`, as a join does.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::{web::Data, Request};
use poem_openapi::{
    param::{Header, Path},
    payload::Json,
    ApiResponse, Object, OpenApi,
};

use crate::{
    api::{
        gate_update::GateUpdate,
        lifecycle::canceller,
        participations::{reader, ParticipationDto},
        Tag,
    },
    bot_check::BotCheck,
    http::{
        admin_auth::{AdminTokens, Presented},
        error::ApiError,
        idempotency_key::{checked_key, IdempotencyKey},
        rate_limit::RateLimits,
        request_span::ServerSpan,
        user_auth::{AdminOrUserToken, UserAuthority, UserToken},
    },
    join::cart::{service::Carts, store::StoredPurchase, CartError, CartRequest},
    refusal::RefusalCounter,
    win::lifecycle::LifecycleService,
};

/// Items one purchase may hold.
const MAX_ITEMS: usize = 50;

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseItem {
    /// A campaign of the group, named once per purchase.
    #[oai(validator(minimum(value = "1")))]
    pub campaign_id: i64,
    /// Units of it (default 1); at most the campaign's `perUserLimit`.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000000")))]
    pub quantity: Option<i32>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseBody {
    /// The user, a positive 64-bit integer.
    #[oai(validator(minimum(value = "1")))]
    pub user_id: i64,
    /// 1 to 50 items, each a distinct campaign of the group.
    #[oai(validator(min_items = 1, max_items = 50))]
    pub items: Vec<PurchaseItem>,
    /// Required when one of the items' campaigns asks for the bot check at its joins (its
    /// `botCheck`, or `BOT_CHECK_ON_JOIN`): a solved bot check for the first such item's
    /// campaign (`GET /api/v1/campaigns/{id}/bot-check`), or the captcha provider's token.
    #[oai(validator(max_length = 4096))]
    pub bot_check: Option<String>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PurchaseDto {
    pub purchase_id: i64,
    pub group_id: i64,
    pub user_id: i64,
    /// One win per item, in campaign order; all share the purchase's state and deadline.
    pub items: Vec<ParticipationDto>,
    pub created_at: DateTime<Utc>,
    // No doc comment (the enum carries it). On a cancel's answer only.
    #[oai(skip_serializing_if_is_none)]
    pub gate: Option<GateUpdate>,
}

impl From<StoredPurchase> for PurchaseDto {
    fn from(p: StoredPurchase) -> Self {
        Self {
            purchase_id: p.id,
            group_id: p.group_id,
            user_id: p.user_id,
            items: p.items.into_iter().map(Into::into).collect(),
            created_at: p.created_at.and_utc(),
            gate: None,
        }
    }
}

#[derive(ApiResponse)]
pub enum Purchased {
    /// Every item is won, in one transaction with its events; or a retry of the same
    /// Idempotency-Key answered with the purchase it wrote.
    #[oai(status = 201)]
    Created(Json<PurchaseDto>),
}

impl From<CartError> for ApiError {
    fn from(e: CartError) -> Self {
        match e {
            CartError::GroupNotFound(id) => Self::group_not_found(id),
            CartError::Invalid(message) => Self::validation(message),
            CartError::Item { campaign_id, error } => Self::from(error).about_campaign(campaign_id),
            CartError::Join(error) => Self::from(error),
        }
    }
}

/// The purchases resource.
pub struct PurchasesApi {
    pub carts: Carts,
    pub lifecycle: LifecycleService,
    pub admin: AdminTokens,
    /// Who may buy, read, confirm or cancel for a user (`USER_AUTH`).
    pub users: UserAuthority,
    /// Per-user and per-IP limits (docs/design.md §16): a purchase is one call.
    pub limits: RateLimits,
    /// A refused purchase counts against the item it names (docs/design.md §20).
    pub refusals: Arc<RefusalCounter>,
    /// With `BOT_CHECK_ON_JOIN`, a purchase passes the bot check as a join does.
    pub bot: BotCheck,
}

impl PurchasesApi {
    /// The first of `items`' campaigns that asks for the bot check at its joins, if any.
    async fn asking(&self, items: &[PurchaseItem]) -> Result<Option<i64>, ApiError> {
        for item in items {
            if self
                .bot
                .asks(item.campaign_id)
                .await
                .map_err(ApiError::from)?
            {
                return Ok(Some(item.campaign_id));
            }
        }
        Ok(None)
    }

    /// Purchase `id` of group `group_id`, or 404.
    async fn stored(&self, group_id: i64, id: i64) -> Result<StoredPurchase, ApiError> {
        self.carts
            .find_purchase(id)
            .await?
            .filter(|p| p.group_id == group_id)
            .ok_or_else(|| ApiError::purchase_not_found(id))
    }

    /// Purchase `id` of group `group_id` for the caller, who is known before anything is looked
    /// up (docs/design.md §17): with `USER_AUTH=jwt`, 401 without a valid token (an admin's
    /// where `admin` allows it), and 404 for another user's purchase as for none, so that no
    /// answer says whether a purchase id exists to a caller it is not for. The call's own check
    /// of who may act follows.
    async fn stored_for(
        &self,
        http: &Request,
        (group_id, id): (i64, i64),
        admin: bool,
    ) -> Result<StoredPurchase, ApiError> {
        let caller = match self.users.enabled() {
            false => None,
            true => match self.admin.presented(http)? {
                Presented::Admin(_) if admin => None,
                Presented::Admin(_) | Presented::Failed => return Err(ApiError::unauthenticated()),
                Presented::Nothing | Presented::UserJwt => self.users.token_user(http)?,
            },
        };
        let found = self.stored(group_id, id).await?;
        match caller {
            Some(user) if user != found.user_id => Err(ApiError::purchase_not_found(id)),
            _ => Ok(found),
        }
    }
}

#[OpenApi(prefix_path = "/api/v1/groups", tag = "Tag::Groups")]
impl PurchasesApi {
    /// Buy several campaigns of the group at once: every item won, or none (nothing reserved,
    /// nothing written; the refusal's `campaignId` names the item that could not be had). One
    /// transaction writes every item's win and event; each event goes on its campaign's key and
    /// names the purchase. The purchase is held until the earliest confirmation deadline among
    /// its campaigns (confirmed at once when none has a window), and is confirmed, cancelled or
    /// expired as a whole. Campaigns with a waiting room are joined on their own.
    #[oai(path = "/:id/purchases", method = "post")]
    // One argument per documented parameter, header and security scheme: poem-openapi's shape.
    #[allow(clippy::too_many_arguments)]
    async fn purchase(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        body: Json<PurchaseBody>,
        /// W3C trace context, continued by the request's span (as on a join).
        #[oai(name = "traceparent")]
        _traceparent: Header<Option<String>>,
        /// Makes a retry safe: the same key again, by the same user with the same items, answers
        /// the purchase it wrote; with other items, 422 IDEMPOTENCY_KEY_REUSED. 1-128 visible
        /// ASCII characters.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: IdempotencyKey,
        span: Data<&ServerSpan>,
        _token: UserToken,
        http: &Request,
    ) -> Result<Purchased, ApiError> {
        let body = body.0;
        self.users.authorize(http, body.user_id)?;
        if body.items.len() > MAX_ITEMS {
            return Err(ApiError::validation("at most 50 items"));
        }
        let first = body.items[0].campaign_id;
        self.limits
            .check(http, first, body.user_id)
            .await
            .inspect_err(|e| self.refusals.record_code(first, &e.code().name()))?;
        if let Some(asking) = self.asking(&body.items).await? {
            let ip = crate::http::client_ip::of(http).0.to_string();
            (self
                .bot
                .pass(asking, body.bot_check.as_deref(), Some(&ip))
                .await)
                .map_err(ApiError::from)
                .inspect_err(|e| self.refusals.record_code(first, &e.code().name()))?;
        }
        let req = CartRequest {
            group_id: id.0,
            user_id: body.user_id,
            items: body
                .items
                .iter()
                .map(|i| (i.campaign_id, i.quantity.unwrap_or(1)))
                .collect(),
            idempotency_key: checked_key(idempotency_key, http)?,
            trace: Some(span.0 .0),
        };
        let purchased = self
            .carts
            .purchase(req)
            .await
            .map_err(ApiError::from)
            .inspect_err(|e| {
                if let Some(campaign_id) = e.campaign_id() {
                    self.refusals.record_code(campaign_id, &e.code().name());
                }
            })?;
        if purchased.created {
            tracing::info!(
                group_id = id.0,
                purchase_id = purchased.purchase.id,
                "Purchase committed."
            );
        }
        Ok(Purchased::Created(Json(purchased.purchase.into())))
    }

    /// A purchase with its items.
    #[oai(path = "/:id/purchases/:purchaseId", method = "get")]
    async fn get(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        #[oai(name = "purchaseId", validator(minimum(value = "1")))] purchase_id: Path<i64>,
        _token: AdminOrUserToken,
        http: &Request,
    ) -> Result<Json<PurchaseDto>, ApiError> {
        let found = self.stored_for(http, (id.0, purchase_id.0), true).await?;
        reader(&self.admin, &self.users, http, found.user_id)?;
        Ok(Json(found.into()))
    }

    /// Confirm (pay for) a held purchase before its deadline: every item becomes `CONFIRMED`.
    /// Past the deadline: 409 HOLD_EXPIRED (every item expires); a cancelled purchase: 409
    /// PARTICIPATION_CANCELLED.
    #[oai(path = "/:id/purchases/:purchaseId/confirm", method = "post")]
    async fn confirm(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        #[oai(name = "purchaseId", validator(minimum(value = "1")))] purchase_id: Path<i64>,
        span: Data<&ServerSpan>,
        _token: UserToken,
        http: &Request,
    ) -> Result<Json<PurchaseDto>, ApiError> {
        let found = self.stored_for(http, (id.0, purchase_id.0), false).await?;
        self.users.authorize(http, found.user_id)?;
        let trace = Some(span.0 .0.to_string());
        self.lifecycle
            .confirm_purchase(purchase_id.0, trace)
            .await?;
        Ok(Json(self.stored(id.0, purchase_id.0).await?.into()))
    }

    /// Cancel a purchase: a held one by its user, a confirmed one (a refund) by an admin. Every
    /// item's units go back to its campaign's sale; `gate` says whether they were on sale before
    /// the answer (`UPDATED`) or Redis could not be reached (`PENDING`).
    #[oai(path = "/:id/purchases/:purchaseId/cancel", method = "post")]
    async fn cancel(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        #[oai(name = "purchaseId", validator(minimum(value = "1")))] purchase_id: Path<i64>,
        span: Data<&ServerSpan>,
        _token: AdminOrUserToken,
        http: &Request,
    ) -> Result<Json<PurchaseDto>, ApiError> {
        let found = self.stored_for(http, (id.0, purchase_id.0), true).await?;
        let (caller, admin) = canceller(&self.admin, &self.users, http, found.user_id)?;
        let trace = Some(span.0 .0.to_string());
        let reached = self
            .lifecycle
            .cancel_purchase(purchase_id.0, caller, trace)
            .await?;
        tracing::info!(
            purchase_id = purchase_id.0,
            ?caller,
            admin = admin.as_ref().map(tracing::field::display),
            "Purchase cancelled."
        );
        let mut answer: PurchaseDto = self.stored(id.0, purchase_id.0).await?.into();
        answer.gate = Some(reached.into());
        Ok(Json(answer))
    }
}
