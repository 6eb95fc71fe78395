//! `GET /api/v1/campaigns/{id}/live`: a campaign's live view as Server-Sent Events, one
//! `snapshot` event per `LIVE_INTERVAL_MS` (docs/design.md §18). Every watcher of a campaign on an
//! instance gets the same snapshot (`live::LiveHub`); the console at `/console` draws it.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use poem::web::sse::Event;
use poem_openapi::{
    param::Path, payload::EventStream, types::ToJSON, ApiResponse, Object, OpenApi,
};

use super::{campaigns::StateDto, error::ApiError, Tag};
use crate::{
    campaign::CampaignService,
    live::{LiveHub, QueueFigures, Snapshot, WatchError},
};

/// Comment lines between snapshots, so proxies keep an idle stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The waiting room's figures (`QUEUE` and `RAFFLE` campaigns).
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct LiveQueue {
    /// Tickets in the queue.
    pub length: i64,
    pub admitted_per_second: f64,
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
    /// `null` without a waiting room, or when Redis did not answer.
    pub queue: Option<LiveQueue>,
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
}

impl From<&Snapshot> for LiveSnapshot {
    fn from(s: &Snapshot) -> Self {
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
            queue: s.queue.as_ref().map(|q: &QueueFigures| LiveQueue {
                length: q.length,
                admitted_per_second: q.admitted_per_second,
            }),
            relay_lag_ms: s.relay_lag_ms,
            dead_events: s.dead_events,
            consumer_lag_events: s.consumer_lag_events,
            consumer_lag_ms: s.consumer_lag_ms,
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
}

#[OpenApi(prefix_path = "/api/v1/campaigns", tag = "Tag::Campaigns")]
impl LiveApi {
    /// A campaign's live view, as Server-Sent Events: stock sold, held and free, wins and
    /// refusals per second, holds expiring soon, the waiting room, relay and consumer lag.
    #[oai(path = "/:id/live", method = "get")]
    async fn live(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
    ) -> Result<LiveStream, ApiError> {
        if !self.campaigns.exists(id.0).await? {
            return Err(ApiError::campaign_not_found(id.0));
        }
        let watcher = self.hub.watch(id.0).map_err(|e| match e {
            WatchError::Busy(_) | WatchError::ShuttingDown => ApiError::busy(),
        })?;
        let snapshots = watcher.map(|s| LiveSnapshot::from(&*s)).boxed();
        Ok(LiveStream::Stream(
            EventStream::new(snapshots)
                .keep_alive(KEEP_ALIVE)
                .to_event(|s| Event::message(s.to_json_string()).event_type("snapshot")),
        ))
    }
}
