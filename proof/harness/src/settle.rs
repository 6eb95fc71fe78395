//! Settling after the faults are healed and the clients stopped, read straight from MySQL and
//! the run's Redis (never through the proxy): every hold resolved (confirmed, cancelled or
//! expired by the sweeper), the outbox drained (no PENDING row), the consumers caught up (every
//! published event in the stats consumer's inbox, every one that moves points granted), the
//! gate's markers applied (returns, controls and the transfers a bucket's gate may still lack,
//! §21; those of a gate whose keys are gone wait for its next load, which reads MySQL, and are
//! not waited for) and no reservation nor take left open in any
//! gate (a bucket's take holds units out of its gate until the reconciler settles it, so its
//! gate would not match its row).
//! It also measures how long the consumers took after the outbox drained (issue 38 asks ≤ 10 s).

use std::time::{Duration, Instant};

use sqlx::MySqlPool;

use super::slots::Slot;

/// What settling found; a part not reached within the limit is `None`.
#[derive(Debug, Default)]
pub struct Settled {
    pub holds_resolved: Option<Duration>,
    pub outbox_drained: Option<Duration>,
    /// From the outbox drained to both consumers having applied every published event.
    pub consumers_after_drain: Option<Duration>,
    pub markers_applied: bool,
    pub reservations_closed: bool,
    pub dead_rows: i64,
    /// What was still missing when the limit passed, for people.
    pub waiting_for: Vec<String>,
}

impl Settled {
    pub fn is_settled(&self) -> bool {
        self.waiting_for.is_empty()
    }
}

async fn count(pool: &MySqlPool, sql: &'static str) -> Option<i64> {
    sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.ok()
}

/// Events published but not yet in the stats consumer's inbox.
async fn unapplied_by_stats(pool: &MySqlPool) -> Option<i64> {
    count(
        pool,
        "SELECT COUNT(*) FROM outbox_event o WHERE o.status = 'PUBLISHED' AND NOT EXISTS \
         (SELECT 1 FROM consumer_inbox i WHERE i.consumer = 'stats' AND i.event_id = o.event_id)",
    )
    .await
}

/// Published events that move points (design §11, §14: a final win, a confirmation, a refund)
/// and have no grant yet. The rewards consumer keeps no inbox row: its grant, keyed by the event
/// id, is its record, and an event that moves nothing leaves nothing to wait for.
async fn ungranted(pool: &MySqlPool) -> Option<i64> {
    count(
        pool,
        "SELECT COUNT(*) FROM outbox_event o WHERE o.status = 'PUBLISHED' \
         AND (o.event_type = 'ParticipationConfirmed' \
           OR (o.event_type = 'ParticipationAccepted' \
               AND COALESCE(JSON_VALUE(o.payload, '$.status'), 'CONFIRMED') = 'CONFIRMED') \
           OR (o.event_type = 'ParticipationCancelled' \
               AND JSON_VALUE(o.payload, '$.previousStatus') = 'CONFIRMED')) \
         AND NOT EXISTS (SELECT 1 FROM reward_grant g WHERE g.event_id = o.event_id)",
    )
    .await
}

/// A connection to the run's Redis, or `None` within 2 s.
async fn connect(redis_url: &str) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(redis_url).ok()?;
    tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()
}

/// Open reservations and takes in every gate (`…:pending` and `…:takes` entries; only a
/// bucket's gate has takes).
async fn open_reservations(redis_url: &str, prefix: &str, slots: &[Slot]) -> Option<i64> {
    let mut c = connect(redis_url).await?;
    let mut total = 0;
    for slot in slots {
        for part in ["pending", "takes"] {
            let n: i64 = redis::cmd("HLEN")
                .arg(slot.key(prefix, part))
                .query_async(&mut c)
                .await
                .ok()?;
            total += n;
        }
    }
    Some(total)
}

/// Markers a loaded gate is still owed: `gate_return` and `gate_transfer` rows of a loaded
/// slot, `gate_control` rows of a campaign whose every slot is loaded. A gate whose keys are
/// gone (a flush no join came after: a quiet bucket, a paused campaign) keeps its markers until
/// its keys are back, as design §14 says, and its next load reads MySQL, where the units are;
/// the checker judges no such gate either.
async fn markers_owed(
    pool: &MySqlPool,
    redis_url: &str,
    prefix: &str,
    slots: &[Slot],
) -> Option<i64> {
    let loaded = loaded_slots(redis_url, prefix, slots).await?;
    let rows = |sql: &'static str| async move {
        sqlx::query_as::<_, (i64, i64)>(sql)
            .fetch_all(pool)
            .await
            .ok()
    };
    let returns = rows("SELECT campaign_id, CAST(bucket AS SIGNED) FROM gate_return").await?;
    let transfers = rows("SELECT campaign_id, CAST(bucket AS SIGNED) FROM gate_transfer").await?;
    let controls = rows("SELECT campaign_id, 0 FROM gate_control").await?;
    let owed = returns
        .iter()
        .chain(&transfers)
        .filter(|key| loaded.contains(key))
        .count()
        + controls
            .iter()
            .filter(|(c, _)| {
                slots
                    .iter()
                    .filter(|s| s.campaign == *c)
                    .all(|s| loaded.contains(&(s.campaign, s.bucket_or_zero())))
            })
            .count();
    i64::try_from(owed).ok()
}

/// The slots whose gate keys are loaded (their hash exists), as (campaign, bucket or 0).
async fn loaded_slots(
    redis_url: &str,
    prefix: &str,
    slots: &[Slot],
) -> Option<std::collections::HashSet<(i64, i64)>> {
    let mut c = connect(redis_url).await?;
    let mut loaded = std::collections::HashSet::new();
    for slot in slots {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(slot.key(prefix, "meta"))
            .query_async(&mut c)
            .await
            .ok()?;
        if exists == 1 {
            loaded.insert((slot.campaign, slot.bucket_or_zero()));
        }
    }
    Some(loaded)
}

/// One look at everything settling waits for; `None`: could not be read this time.
struct Poll {
    held: Option<i64>,
    pending: Option<i64>,
    markers: Option<i64>,
    stats: Option<i64>,
    rewards: Option<i64>,
    open: Option<i64>,
}

impl Poll {
    async fn read(pool: &MySqlPool, redis_url: &str, prefix: &str, slots: &[Slot]) -> Self {
        Self {
            held: count(
                pool,
                "SELECT COUNT(*) FROM participation WHERE status = 'HELD'",
            )
            .await,
            pending: count(
                pool,
                "SELECT COUNT(*) FROM outbox_event WHERE status = 'PENDING'",
            )
            .await,
            markers: markers_owed(pool, redis_url, prefix, slots).await,
            stats: unapplied_by_stats(pool).await,
            rewards: ungranted(pool).await,
            open: open_reservations(redis_url, prefix, slots).await,
        }
    }

    fn applied(&self) -> bool {
        self.stats == Some(0) && self.rewards == Some(0)
    }

    /// What is still missing, for people; empty once settled.
    fn missing(&self) -> Vec<String> {
        let Self {
            held,
            pending,
            markers,
            stats,
            rewards,
            open,
        } = self;
        [
            (*held == Some(0), format!("held wins: {held:?}")),
            (
                *pending == Some(0),
                format!("PENDING outbox rows: {pending:?}"),
            ),
            (
                self.applied(),
                format!("events not applied: stats {stats:?}, rewards {rewards:?}"),
            ),
            (
                *markers == Some(0),
                format!("gate markers left: {markers:?}"),
            ),
            (
                *open == Some(0),
                format!("open reservations and takes: {open:?}"),
            ),
        ]
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| what)
        .collect()
    }
}

/// Polls until settled or `limit` passes.
pub async fn wait(
    pool: &MySqlPool,
    redis_url: &str,
    prefix: &str,
    slots: &[Slot],
    limit: Duration,
) -> Settled {
    let start = Instant::now();
    let deadline = start + limit;
    let mut s = Settled::default();
    let mut drained_at: Option<Instant> = None;
    loop {
        let poll = Poll::read(pool, redis_url, prefix, slots).await;
        if poll.held == Some(0) && s.holds_resolved.is_none() {
            s.holds_resolved = Some(start.elapsed());
        }
        let drained = poll.held == Some(0) && poll.pending == Some(0);
        match (drained, drained_at) {
            (true, None) => {
                drained_at = Some(Instant::now());
                s.outbox_drained = Some(start.elapsed());
            }
            // New rows after a drain (a late expiry): measure from the next drain.
            (false, Some(_)) => {
                drained_at = None;
                s.outbox_drained = None;
            }
            _ => {}
        }
        let applied = poll.applied();
        if let (Some(at), true, None) = (drained_at, applied, s.consumers_after_drain) {
            s.consumers_after_drain = Some(at.elapsed());
        }
        if !applied {
            s.consumers_after_drain = None;
        }
        s.markers_applied = poll.markers == Some(0);
        s.reservations_closed = poll.open == Some(0);
        s.waiting_for = poll.missing();
        if s.waiting_for.is_empty() || Instant::now() >= deadline {
            s.dead_rows = count(
                pool,
                "SELECT COUNT(*) FROM outbox_event WHERE status = 'DEAD'",
            )
            .await
            .unwrap_or(-1);
            return s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
