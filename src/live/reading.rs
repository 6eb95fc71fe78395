//! What one snapshot reads: the campaign row, its held units and the holds about to expire, its
//! refusals, its outbox backlog, what the stats consumer has applied, and the waiting room's
//! figures from Redis. Every query is counted (`firstcome_live_queries_total`), so a test can
//! show that watchers do not multiply them. A part that cannot be read is `None`; the snapshot
//! still goes out (Redis restarting blanks the queue's figures, not the stream).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{DbErr, FromQueryResult};

use crate::{
    campaign::{repo, Campaign},
    consumer::stats,
    db::{sql::stmt, Db},
    gate::{queue::RoomFigures, Gate},
    metrics::Metrics,
    outbox::event::message_key,
    refusal::{store, RefusalTotals},
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
    pub outbox: Option<OutboxFigures>,
    /// `None` when it could not be read.
    pub applied: Option<Applied>,
    /// `None` for a campaign without a waiting room, or when Redis did not answer.
    pub room: Option<RoomFigures>,
}

#[derive(Debug, Clone, Default, FromQueryResult)]
pub struct HeldUnits {
    /// Units held now.
    pub held: i64,
    /// Holds running out within [`EXPIRING_SOON_SECS`].
    pub expiring_soon: i64,
}

/// The campaign's outbox rows still to publish, and the dead ones.
#[derive(Debug, Clone, Default, FromQueryResult)]
pub struct OutboxFigures {
    pub dead: i64,
    /// Milliseconds since the oldest PENDING row was committed; `None` when none is pending.
    pub oldest_pending_ms: Option<i64>,
}

/// What the stats consumer has applied of the campaign (zeros before its first event).
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub accepted_count: i64,
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
pub const QUERIES_PER_READING: u64 = 5;

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
        let (held, refusals, outbox, applied) = tokio::join!(
            held_units(&self.db, campaign_id),
            store::totals(&self.db, &ids),
            outbox_figures(&self.db, campaign_id),
            stats::campaign(&self.db, campaign_id),
        );
        let room = match found.campaign.admission.queued() {
            true => self.gate.room_figures(campaign_id).await.ok(),
            false => None,
        };
        Ok(Some(Reading {
            at,
            accepted_count: found.accepted_count,
            campaign: found.campaign,
            held: held?,
            refusals: refusals?.remove(&campaign_id).unwrap_or_default(),
            outbox: outbox.ok(),
            applied: match applied {
                Ok(Some(s)) => Some(Applied {
                    accepted_count: s.accepted_count,
                    lag_ms: s.lag_ms,
                }),
                Ok(None) => Some(Applied::default()),
                Err(_) => None,
            },
            room,
        }))
    }
}

/// Held units and the holds about to run out, from the hold index (a short range: holds only).
async fn held_units(db: &Db, campaign_id: i64) -> Result<HeldUnits, DbErr> {
    Ok(HeldUnits::find_by_statement(stmt(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) AS held, \
         CAST(COALESCE(SUM(hold_expires_at < UTC_TIMESTAMP(6) + INTERVAL ? SECOND), 0) AS SIGNED) AS expiring_soon \
         FROM participation FORCE INDEX (ix_participation_hold) \
         WHERE status = 'HELD' AND campaign_id = ?",
        vec![EXPIRING_SOON_SECS.into(), campaign_id.into()],
    ))
    .one(db)
    .await?
    .unwrap_or_default())
}

/// The campaign's PENDING and DEAD rows, from the status index (what is left to publish).
async fn outbox_figures(db: &Db, campaign_id: i64) -> Result<OutboxFigures, DbErr> {
    Ok(OutboxFigures::find_by_statement(stmt(
        "SELECT CAST(COALESCE(SUM(status = 'DEAD'), 0) AS SIGNED) AS dead, \
         CAST(TIMESTAMPDIFF(MICROSECOND, MIN(CASE WHEN status = 'PENDING' THEN created_at END), \
              UTC_TIMESTAMP(6)) DIV 1000 AS SIGNED) AS oldest_pending_ms \
         FROM outbox_event FORCE INDEX (ix_outbox_status_lease) \
         WHERE status IN ('PENDING', 'DEAD') AND msg_key = ?",
        vec![message_key(campaign_id).into()],
    ))
    .one(db)
    .await?
    .unwrap_or_default())
}
