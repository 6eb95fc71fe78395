//! `GET /api/v1/campaigns/{id}/live`: a campaign's live view as Server-Sent Events, one
//! `snapshot` event per `LIVE_INTERVAL_MS` (docs/design.md §20). Every watcher of a campaign on an
//! instance gets the same snapshot (`live::LiveHub`); the console at `/console` draws it.
//!
//! Who sees what: anyone sees the sale (stock, wins, refusals, the waiting room). The service's
//! own figures (`operations`: relay and consumer lag, dead events), which
//! `/api/v1/admin/outbox` keeps behind an admin token, come only with one, in the
//! `Authorization: Bearer` header: the console reads the stream with `fetch`, which can send it
//! (a browser's `EventSource` cannot, and a token in the query string would land in logs). A
//! request with an `Authorization` header that is not an admin token is a failed admin attempt,
//! 401, rather than a silent public view. Streams are capped per client IP and per instance
//! (`live::hub`).

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use poem::{web::sse::Event, Request};
use poem_openapi::{
    param::Path, payload::EventStream, types::ToJSON, ApiResponse, Object, OpenApi, SecurityScheme,
};

use crate::{
    api::{
        campaigns::StateDto,
        live_group::{LiveGroup, LiveSlot},
        Tag,
    },
    bucket::view::Balance,
    campaign::CampaignService,
    http::{
        admin_auth::{AdminAuth, AdminTokens, Presented},
        client_ip,
        error::ApiError,
    },
    live::{LiveHub, Operations, QueueFigures, Snapshot, Viewer, WatchError},
};

/// Comment lines between snapshots, so proxies keep an idle stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `Retry-After` of a client over its cap of streams: one of its streams has to end first, which
/// the service cannot foresee; a few seconds is what a console's reconnection waits anyway.
const CLIENT_BUSY_RETRY_AFTER_SECS: u32 = 5;

/// An admin token for the operational figures, or nothing for the public view.
#[derive(SecurityScheme)]
pub enum LiveViewer {
    AdminAuth(AdminAuth),
    #[oai(fallback)]
    Public,
}

/// The waiting room's figures (`QUEUE` and `RAFFLE` campaigns).
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct LiveQueue {
    /// Tickets in the queue.
    pub length: i64,
    pub admitted_per_second: f64,
    /// Tickets on the waitlist (a campaign with `offerSeconds`, docs/design.md §22): told it
    /// was sold out, waiting for a unit to come back.
    pub waitlisted: i64,
    /// Offers of units that came back, open now (each to one waitlisted user).
    pub offers_open: i64,
    /// Offers used by a win, and offers that expired and passed to the next user, so far.
    pub offers_taken: i64,
    pub offers_passed: i64,
}

/// One campaign, now. Counts are the campaign's across every instance; rates are per second
/// since the snapshot before. A figure that could not be read this time is `null`.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct LiveSnapshot {
    pub campaign_id: i64,
    pub at: DateTime<Utc>,
    pub name: String,
    pub state: StateDto,
    pub paused: bool,
    pub total_stock: i64,
    /// Units of confirmed wins.
    pub confirmed_stock: i64,
    /// Units held for their confirmation.
    pub held_stock: i64,
    /// Units on sale.
    pub free_stock: i64,
    pub accepted_count: i64,
    pub wins_per_second: f64,
    pub refused_count: i64,
    pub refused_by_reason: BTreeMap<String, i64>,
    pub refused_per_second: BTreeMap<String, f64>,
    /// Held and confirmed units over `totalStock`, 0 to 1.
    pub stock_usage_rate: f64,
    /// Holds running out within 60 seconds.
    pub holds_expiring_soon: i64,
    /// When the first hold runs out; `null` with no hold.
    pub next_hold_expires_at: Option<DateTime<Utc>>,
    /// Wins confirmed, at acceptance or later, as the stats consumer has applied them (a refunded
    /// win counts as confirmed and as cancelled). `acceptedCount` counts every win ever made, and
    /// units that came back are sold again: a 50-unit sale may show 52 wins, 2 of them cancelled
    /// or expired. `null` when it could not be read.
    pub wins_confirmed: Option<i64>,
    /// Wins cancelled by their user or an admin (refunds among them), as the stats consumer has
    /// applied them; `null` when it could not be read.
    pub wins_cancelled: Option<i64>,
    /// Holds that ran out, as the stats consumer has applied them; `null` when it could not be
    /// read.
    pub wins_expired: Option<i64>,
    /// Confirmed wins cancelled since by an admin (refunds), counted in `winsConfirmed` and
    /// `winsCancelled` too; `null` when it could not be read.
    pub wins_refunded: Option<i64>,
    /// `null` without a waiting room, or when Redis did not answer.
    pub queue: Option<LiveQueue>,
    /// The campaign's group with its campaigns side by side; `null` for a campaign in no group,
    /// or when it could not be read.
    pub group: Option<LiveGroup>,
    /// The last five minutes in 5-second slots, oldest first, whenever the stream was opened: a
    /// slot without wins or refusals is absent (empty when they could not be read).
    pub series: Vec<LiveSlot>,
    // No doc comment: poem-openapi would wrap the $ref in an allOf with it, which generated
    // clients read badly; `LiveOperations` says when it is there.
    #[oai(skip_serializing_if_is_none)]
    pub operations: Option<LiveOperations>,
}

/// How the service keeps up with the sale: in a snapshot as `operations` only on a stream opened
/// with an admin token (absent otherwise). A figure that could not be read this time is `null`.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct LiveOperations {
    /// How far behind the relay is: how long the outbox's oldest due event (of any campaign;
    /// the relay publishes in commit order) has waited, as the outbox gauges last read it
    /// (every `METRICS_OUTBOX_REFRESH_MS`). 0: nothing waits.
    pub relay_lag_ms: Option<i64>,
    /// The campaign's dead-lettered events (redrive them from the console or the admin API).
    pub dead_events: Option<i64>,
    /// Wins committed that the stats consumer has not applied yet.
    pub consumer_lag_events: Option<i64>,
    /// Commit → applied of the stats consumer's latest event of the campaign.
    pub consumer_lag_ms: Option<i64>,
    // No doc comment (see `operations`): `LiveBuckets` says when it is there.
    #[oai(skip_serializing_if_is_none)]
    pub buckets: Option<LiveBuckets>,
}

/// A bucketed campaign's balance (docs/design.md §21), in `operations` only for a campaign of
/// more than one bucket: the undealt pool, and each bucket's row beside its gate.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct LiveBuckets {
    pub pool: i64,
    /// Transfers committed whose units a bucket's gate may not have yet.
    pub transfers_owed: i64,
    pub items: Vec<LiveBucket>,
}

/// One bucket: its row's units (reserved ones included), its gate's free units (`null`: not
/// loaded), its wins.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct LiveBucket {
    pub bucket: i32,
    pub remaining_stock: i64,
    pub gate_stock: Option<i64>,
    pub accepted_count: i64,
}

impl From<&Balance> for LiveBuckets {
    fn from(b: &Balance) -> Self {
        Self {
            pool: b.pool,
            transfers_owed: b.transfers_owed,
            items: b
                .buckets
                .iter()
                .map(|x| LiveBucket {
                    bucket: i32::from(x.row.bucket),
                    remaining_stock: x.row.remaining_stock,
                    gate_stock: x.gate_stock,
                    accepted_count: x.row.accepted_count,
                })
                .collect(),
        }
    }
}

impl From<&Operations> for LiveOperations {
    fn from(o: &Operations) -> Self {
        Self {
            relay_lag_ms: o.relay_lag_ms,
            dead_events: o.dead_events,
            consumer_lag_events: o.consumer_lag_events,
            consumer_lag_ms: o.consumer_lag_ms,
            buckets: o.buckets.as_ref().map(LiveBuckets::from),
        }
    }
}

impl LiveSnapshot {
    /// `s` as a watcher sees it: with the service's own figures for an admin only.
    pub fn new(s: &Snapshot, admin: bool) -> Self {
        Self {
            campaign_id: s.campaign_id,
            at: s.at,
            name: s.name.clone(),
            state: s.state.into(),
            paused: s.paused,
            total_stock: s.total_stock,
            confirmed_stock: s.confirmed_stock,
            held_stock: s.held_stock,
            free_stock: s.free_stock,
            accepted_count: s.accepted_count,
            wins_per_second: s.wins_per_second,
            refused_count: s.refused_count,
            refused_by_reason: s.refused_by_reason.clone(),
            refused_per_second: s.refused_per_second.clone(),
            stock_usage_rate: s.stock_usage_rate,
            holds_expiring_soon: s.holds_expiring_soon,
            next_hold_expires_at: s.next_hold_expiry,
            wins_confirmed: s.outcomes.map(|o| o.confirmed),
            wins_cancelled: s.outcomes.map(|o| o.cancelled),
            wins_expired: s.outcomes.map(|o| o.expired),
            wins_refunded: s.outcomes.map(|o| o.refunded),
            queue: s.queue.as_ref().map(|q: &QueueFigures| LiveQueue {
                length: q.length,
                admitted_per_second: q.admitted_per_second,
                waitlisted: q.waitlisted,
                offers_open: q.offers_open,
                offers_taken: q.offers_taken,
                offers_passed: q.offers_passed,
            }),
            group: s.group.as_ref().map(LiveGroup::from),
            series: s.series.iter().map(LiveSlot::from).collect(),
            operations: admin.then(|| LiveOperations::from(&s.operations)),
        }
    }
}

#[derive(ApiResponse)]
pub enum LiveStream {
    /// `text/event-stream`: a `snapshot` event (its data a `LiveSnapshot`) at once when the
    /// campaign is watched already, else within one interval, then one per interval. The stream
    /// ends when the client stops reading (it is dropped after a few unread snapshots) or the
    /// service stops; `EventSource` reconnects by itself.
    #[oai(status = 200)]
    Stream(EventStream<futures::stream::BoxStream<'static, LiveSnapshot>>),
}

pub struct LiveApi {
    pub hub: LiveHub,
    pub campaigns: CampaignService,
    /// Who may see the operational figures.
    pub admin: AdminTokens,
}

impl LiveApi {
    /// Whether `req` is an admin's: no `Authorization` header is the public view; one that is
    /// an admin's bearer token, the admin's; anything else 401 (a failed admin attempt unless it
    /// is shaped like a user's JWT), and 429 once the client has none left.
    fn admin(&self, req: &Request) -> Result<bool, ApiError> {
        match self.admin.presented(req)? {
            Presented::Nothing => Ok(false),
            Presented::Admin(admin) => {
                tracing::debug!(admin = %admin, "An admin watches a live stream.");
                Ok(true)
            }
            Presented::UserJwt | Presented::Failed => Err(ApiError::unauthorized()),
        }
    }
}

#[OpenApi(prefix_path = "/api/v1/campaigns", tag = "Tag::Campaigns")]
impl LiveApi {
    /// A campaign's live view, as Server-Sent Events: stock sold, held and free, wins and
    /// refusals per second, holds expiring soon, the waiting room; with an admin token, the
    /// relay's and the consumer's lag and the dead events too (`operations`). A wrong token is
    /// 401. Streams per client IP are capped (`LIVE_MAX_WATCHERS_PER_CLIENT`, then 429
    /// RATE_LIMITED), and per instance (`LIVE_MAX_WATCHERS`, then 503 SERVICE_BUSY; an admin's
    /// stream is let in past it).
    #[oai(path = "/:id/live", method = "get")]
    async fn live(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        _viewer: LiveViewer,
        http: &Request,
    ) -> Result<LiveStream, ApiError> {
        let admin = self.admin(http)?;
        if !self.campaigns.exists(id.0).await? {
            return Err(ApiError::campaign_not_found(id.0));
        }
        let viewer = Viewer {
            client: client_ip::of(http).key(),
            admin,
        };
        let watcher = self.hub.watch(id.0, &viewer).map_err(|e| match e {
            WatchError::ClientBusy(_) => ApiError::rate_limited(CLIENT_BUSY_RETRY_AFTER_SECS),
            WatchError::Busy(_) | WatchError::ShuttingDown => ApiError::busy(),
        })?;
        let snapshots = watcher.map(move |s| LiveSnapshot::new(&s, admin)).boxed();
        Ok(LiveStream::Stream(
            EventStream::new(snapshots)
                .keep_alive(KEEP_ALIVE)
                .to_event(|s| Event::message(s.to_json_string()).event_type("snapshot")),
        ))
    }
}
