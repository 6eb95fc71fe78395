//! What one snapshot reads: the campaign row, its held units and the holds about to expire, its
//! refusals, its dead-lettered events, what the stats consumer has applied, and the waiting
//! room's figures from Redis, a bucketed campaign's balance (rows, gates, pool), and a grouped
//! campaign's group (its campaigns side by side), and its last five minutes in 5-second slots. The relay's lag is the outbox gauges' (all campaigns, refreshed
//! every `METRICS_OUTBOX_REFRESH_MS`): a campaign's own oldest PENDING row has no index to find
//! it by, and a backlog of a million rows must not cost a scan a second per watched campaign. Every query is counted (`firstcome_live_queries_total`), so a test can
//! show that watchers do not multiply them. A part that cannot be read is `None`; the snapshot
//! still goes out (Redis restarting blanks the queue's figures, not the stream).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{DbErr, FromQueryResult};

use crate::{
    bucket::view::{self, Balance},
    campaign::{repo, Campaign},
    consumer::stats::{
        self,
        series::{self, Point},
    },
    db::{sql::stmt, Db},
    events::accepted::message_key,
    gate::{queue::RoomFigures, Gate},
    live::group::{self, GroupFigures, GROUP_QUERIES},
    refusal::{store, RefusalTotals},
    telemetry::metrics::Metrics,
};

/// Holds that run out within this many seconds count as "expiring soon".
pub const EXPIRING_SOON_SECS: i64 = 60;

/// One read of a campaign, as it is now.
#[derive(Debug, Clone)]
pub struct Reading {
    pub at: DateTime<Utc>,
    pub campaign: Campaign,
    pub accepted_count: i64,
    pub held: HeldUnits,
    pub refusals: RefusalTotals,
    /// The campaign's DEAD events; `None` when they could not be read.
    pub dead_events: Option<i64>,
    /// Seconds the outbox's oldest due event (any campaign's) has waited, from the gauges.
    pub relay_lag_seconds: f64,
    /// `None` when it could not be read.
    pub applied: Option<Applied>,
    /// `None` for a campaign without a waiting room, or when Redis did not answer.
    pub room: Option<RoomFigures>,
    /// A bucketed campaign's rows beside their gates and its pool (docs/design.md §21); `None`
    /// for an unbucketed campaign, or when it could not be read.
    pub buckets: Option<Balance>,
    /// The campaign's group, its campaigns side by side (docs/design.md §22); `None` for a
    /// campaign in no group, or when it could not be read.
    pub group: Option<GroupFigures>,
    /// Wins and refusals of the last [`SERIES_SPAN`] in 5-second slots, oldest first (empty
    /// when they could not be read).
    pub series: Vec<Point>,
}

/// How far back a snapshot's series reaches: the console's chart.
pub const SERIES_SPAN: chrono::Duration = chrono::Duration::minutes(5);

#[derive(Debug, Clone, Default, FromQueryResult)]
pub struct HeldUnits {
    /// Units held now.
    pub held: i64,
    /// Holds running out within [`EXPIRING_SOON_SECS`].
    pub expiring_soon: i64,
    /// When the first hold runs out; `None` with no hold.
    pub next_expiry: Option<chrono::NaiveDateTime>,
}

#[derive(Debug, Clone, Default, FromQueryResult)]
struct DeadEvents {
    dead: i64,
}

/// What the stats consumer has applied of the campaign (zeros before its first event).
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub accepted_count: i64,
    /// What became of the wins: confirmed (at acceptance or later), cancelled (by the user or an
    /// admin, refunds among them), holds that ran out.
    pub confirmed_count: i64,
    pub cancelled_count: i64,
    pub expired_count: i64,
    /// Confirmed wins cancelled since (refunds), among the cancelled.
    pub refunded_count: i64,
    /// Commit → applied of its latest event.
    pub lag_ms: i64,
}

/// The sources a snapshot reads: the API's pool and the gate.
#[derive(Clone)]
pub struct LiveSource {
    db: Db,
    gate: Gate,
    metrics: Arc<Metrics>,
}

/// Queries one reading runs against MySQL (the Redis figures come on top, for a waiting room).
pub const QUERIES_PER_READING: u64 = 6;

/// Queries a bucketed campaign's reading runs on top: its rows, its pool, the transfers owed.
pub const BALANCE_QUERIES: u64 = 3;

impl LiveSource {
    pub fn new(db: Db, gate: Gate, metrics: Arc<Metrics>) -> Self {
        Self { db, gate, metrics }
    }

    /// The campaign as it is now; `Ok(None)` when it does not exist (any more).
    pub async fn read(&self, campaign_id: i64) -> Result<Option<Reading>, DbErr> {
        self.metrics.live_queries.inc_by(QUERIES_PER_READING);
        let at = Utc::now();
        let Some(found) = repo::find(&self.db, campaign_id).await? else {
            return Ok(None);
        };
        let ids = [campaign_id];
        let (held, refusals, dead, applied, recent) = tokio::join!(
            held_units(&self.db, campaign_id),
            store::totals(&self.db, &ids),
            dead_events(&self.db, campaign_id),
            stats::campaign(&self.db, campaign_id),
            series::recent(&self.db, campaign_id, at - SERIES_SPAN),
        );
        let room = match found.campaign.admission.queued() {
            true => self
                .gate
                .room_figures(found.campaign.room_slot())
                .await
                .ok(),
            false => None,
        };
        let buckets = match found.campaign.buckets {
            0 | 1 => None,
            _ => {
                self.metrics.live_queries.inc_by(BALANCE_QUERIES);
                view::read(
                    &self.db,
                    &self.gate,
                    (campaign_id, found.campaign.group_id, found.campaign.buckets),
                )
                .await
                .ok()
            }
        };
        let group = match found.campaign.group_id {
            Some(group_id) => {
                self.metrics.live_queries.inc_by(GROUP_QUERIES);
                group::read(&self.db, &self.gate, group_id, at)
                    .await
                    .ok()
                    .flatten()
            }
            None => None,
        };
        Ok(Some(Reading {
            at,
            accepted_count: found.accepted_count,
            campaign: found.campaign,
            held: held?,
            refusals: refusals?.remove(&campaign_id).unwrap_or_default(),
            dead_events: dead.ok(),
            relay_lag_seconds: self.metrics.outbox_oldest_due_age.get(),
            applied: match applied {
                Ok(Some(s)) => Some(Applied {
                    accepted_count: s.accepted_count,
                    confirmed_count: s.confirmed_count,
                    cancelled_count: s.cancelled_count,
                    expired_count: s.expired_count,
                    refunded_count: s.refunded_count,
                    lag_ms: s.lag_ms,
                }),
                Ok(None) => Some(Applied::default()),
                Err(_) => None,
            },
            room,
            buckets,
            group,
            series: recent.unwrap_or_default(),
        }))
    }
}

/// Held units, the holds about to run out and the first to, from the hold index (a short range:
/// holds only).
async fn held_units(db: &Db, campaign_id: i64) -> Result<HeldUnits, DbErr> {
    Ok(HeldUnits::find_by_statement(stmt(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) AS held, \
         CAST(COALESCE(SUM(hold_expires_at < UTC_TIMESTAMP(6) + INTERVAL ? SECOND), 0) AS SIGNED) AS expiring_soon, \
         MIN(hold_expires_at) AS next_expiry \
         FROM participation FORCE INDEX (ix_participation_hold) \
         WHERE status = 'HELD' AND campaign_id = ?",
        vec![EXPIRING_SOON_SECS.into(), campaign_id.into()],
    ))
    .one(db)
    .await?
    .unwrap_or_default())
}

/// The campaign's DEAD rows, from the status index (dead letters are few: each is an operator's
/// to redrive).
async fn dead_events(db: &Db, campaign_id: i64) -> Result<i64, DbErr> {
    Ok(DeadEvents::find_by_statement(stmt(
        "SELECT CAST(COUNT(*) AS SIGNED) AS dead FROM outbox_event FORCE INDEX (ix_outbox_status_lease) \
         WHERE status = 'DEAD' AND msg_key = ?",
        vec![message_key(campaign_id).into()],
    ))
    .one(db)
    .await?
    .unwrap_or_default()
    .dead)
}
