//! Settling after the faults are healed and the clients stopped, read straight from MySQL and
//! the run's Redis (never through the proxy): every hold resolved (confirmed, cancelled or
//! expired by the sweeper), the outbox drained (no PENDING row), the consumers caught up (every
//! published event in both inboxes), the gate's markers applied and no reservation left open.
//! It also measures how long the consumers took after the outbox drained (issue 38 asks ≤ 10 s).

use std::time::{Duration, Instant};

use sqlx::MySqlPool;

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

/// Events published but not yet in `consumer`'s inbox.
async fn unapplied(pool: &MySqlPool, consumer: &str) -> Option<i64> {
    sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM outbox_event o WHERE o.status = 'PUBLISHED' AND NOT EXISTS \
         (SELECT 1 FROM consumer_inbox i WHERE i.consumer = ? AND i.event_id = o.event_id)",
    )
    .bind(consumer)
    .fetch_one(pool)
    .await
    .ok()
}

/// Open reservations in the gate of every campaign (`…:pending` entries).
async fn open_reservations(redis_url: &str, prefix: &str, campaigns: &[i64]) -> Option<i64> {
    let client = redis::Client::open(redis_url).ok()?;
    let mut c = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()?;
    let mut total = 0;
    for id in campaigns {
        let n: i64 = redis::cmd("HLEN")
            .arg(format!("{prefix}{{c:{id}}}:pending"))
            .query_async(&mut c)
            .await
            .ok()?;
        total += n;
    }
    Some(total)
}

/// Polls until settled or `limit` passes.
pub async fn wait(
    pool: &MySqlPool,
    redis_url: &str,
    prefix: &str,
    campaigns: &[i64],
    limit: Duration,
) -> Settled {
    let start = Instant::now();
    let deadline = start + limit;
    let mut s = Settled::default();
    let mut drained_at: Option<Instant> = None;
    loop {
        let held = count(
            pool,
            "SELECT COUNT(*) FROM participation WHERE status = 'HELD'",
        )
        .await;
        let pending = count(
            pool,
            "SELECT COUNT(*) FROM outbox_event WHERE status = 'PENDING'",
        )
        .await;
        let markers = count(
            pool,
            "SELECT (SELECT COUNT(*) FROM gate_return) + (SELECT COUNT(*) FROM gate_control)",
        )
        .await;
        let stats = unapplied(pool, "stats").await;
        let rewards = unapplied(pool, "rewards").await;
        let open = open_reservations(redis_url, prefix, campaigns).await;
        if held == Some(0) && s.holds_resolved.is_none() {
            s.holds_resolved = Some(start.elapsed());
        }
        let drained = held == Some(0) && pending == Some(0);
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
        let applied = stats == Some(0) && rewards == Some(0);
        if let (Some(at), true, None) = (drained_at, applied, s.consumers_after_drain) {
            s.consumers_after_drain = Some(at.elapsed());
        }
        if !applied {
            s.consumers_after_drain = None;
        }
        s.markers_applied = markers == Some(0);
        s.reservations_closed = open == Some(0);
        s.waiting_for.clear();
        let mut want = |ok: bool, what: String| {
            if !ok {
                s.waiting_for.push(what);
            }
        };
        want(held == Some(0), format!("held wins: {held:?}"));
        want(
            pending == Some(0),
            format!("PENDING outbox rows: {pending:?}"),
        );
        want(
            applied,
            format!("events not applied: stats {stats:?}, rewards {rewards:?}"),
        );
        want(s.markers_applied, format!("gate markers left: {markers:?}"));
        want(
            s.reservations_closed,
            format!("open reservations: {open:?}"),
        );
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
