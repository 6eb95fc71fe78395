//! Units coming back to a live sale under load (docs/design.md §14): a storm of cancellations
//! races a burst of joins on one campaign served by two instances, while a sampler reads MySQL
//! and Redis; at no sampled instant are more units held or confirmed than the stock, and at the
//! end every returned unit was sold again, exactly once.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::future::join_all;
use serde_json::json;

use crate::{
    spawn::{two_instances, TestApp},
    wait::wait_until,
};

const STOCK: i64 = 100;

/// Units held or confirmed in MySQL and the campaign's remaining stock, read by one statement
/// (one consistent snapshot), and the gate's stock.
async fn sample(app: &TestApp, campaign: i64) -> (i64, i64, Option<i64>) {
    let both = app
        .scalar(&format!(
            "SELECT (SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM participation \
             WHERE campaign_id = {campaign} AND status IN ('HELD', 'CONFIRMED')) * 1000000 \
             + (SELECT remaining_stock FROM campaign WHERE id = {campaign})"
        ))
        .await;
    let (active, remaining) = (both / 1_000_000, both % 1_000_000);
    (active, remaining, app.redis_stock(campaign).await)
}

/// Samples until `done`; returns every sample that broke a bound.
fn spawn_sampler(
    app: Arc<TestApp>,
    campaign: i64,
    done: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let (mut samples, mut broken) = (0, Vec::new());
        while !done.load(Ordering::Relaxed) {
            let (active, remaining, gate) = sample(&app, campaign).await;
            samples += 1;
            if active > STOCK || active + remaining != STOCK || remaining < 0 {
                broken.push(format!("active {active}, remaining {remaining}"));
            }
            if gate.is_some_and(|g| !(0..=STOCK).contains(&g)) {
                broken.push(format!("gate stock {gate:?}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (samples, broken)
    })
}

/// POST cancel for `user` on `app`, as a client does: a SERVICE_BUSY (every pooled connection
/// waited past `DB_ACQUIRE_TIMEOUT_MS`, which a storm on the one hot campaign row can cause on a
/// loaded machine; nothing was written) is sent again after its `Retry-After`, a few times.
async fn cancel(app: &TestApp, campaign: i64, user: i64) -> (u16, String) {
    let path = format!("/api/v1/campaigns/{campaign}/participations/{user}/cancel");
    for _ in 0..5 {
        let reply = app.post_json(&path, &json!({}), None).await;
        if (reply.status, reply.code()) != (503, "SERVICE_BUSY") {
            return (reply.status, reply.code().to_string());
        }
        let wait = reply
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(1);
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    (503, "SERVICE_BUSY".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_storm_racing_a_join_burst_never_oversells_and_resells_every_unit_once() {
    let (a, b) = two_instances().await;
    let campaign = a
        .open_campaign_with(STOCK, 1, json!({"confirmWithinSeconds": 600}))
        .await;
    let first: Vec<i64> = (1..=STOCK).collect();
    let firsts = join_all(first.iter().map(|&u| a.join(campaign, u, 1))).await;
    assert!(
        firsts.iter().all(|r| r.status == 201),
        "the first wave holds it all"
    );

    let done = Arc::new(AtomicBool::new(false));
    let sampler = spawn_sampler(a.clone(), campaign, done.clone());
    let cancels = first.iter().map(|&u| {
        let app = if u % 2 == 0 { a.clone() } else { b.clone() };
        async move { cancel(&app, campaign, u).await }
    });
    let second: Vec<i64> = (1_001..=1_400).collect();
    let joins = second.iter().map(|&u| {
        let app = if u % 2 == 0 { b.clone() } else { a.clone() };
        async move { (u, app.join(campaign, u, 1).await) }
    });
    let (cancelled, joined) = tokio::join!(join_all(cancels), join_all(joins));
    assert!(
        cancelled.iter().all(|(status, _)| *status == 200),
        "every cancel answered 200: {:?}",
        cancelled
            .iter()
            .filter(|(status, _)| *status != 200)
            .collect::<Vec<_>>()
    );

    // Units that came back after the burst's last join: more users until none is left.
    let mut next = 2_000;
    let mut late_wins = 0;
    while a.remaining_stock(campaign).await > 0
        || a.scalar("SELECT COUNT(*) FROM gate_return").await > 0
    {
        next += 1;
        if a.join(campaign, next, 1).await.status == 201 {
            late_wins += 1;
        }
        assert!(next < 3_000, "the returned units sell");
    }
    done.store(true, Ordering::Relaxed);
    let (samples, broken) = sampler.await.expect("sampler");
    assert!(
        broken.is_empty(),
        "{} of {samples} samples broke a bound: {broken:?}",
        broken.len()
    );

    let burst_wins = joined.iter().filter(|(_, r)| r.status == 201).count() as i64;
    assert_eq!(
        burst_wins + late_wins,
        STOCK,
        "every returned unit sold again, once"
    );
    assert_eq!(
        sample(&a, campaign).await.0,
        STOCK,
        "held + confirmed = stock"
    );
    wait_until(
        "the gate to hold nothing",
        Duration::from_secs(5),
        || async { a.redis_stock(campaign).await == Some(0) },
    )
    .await;
    let rows = a.scalar("SELECT COUNT(*) FROM participation").await;
    assert_eq!(rows, 2 * STOCK, "one row per win, the cancelled ones kept");
    let users = a
        .scalar("SELECT COUNT(DISTINCT user_id) FROM participation")
        .await;
    assert_eq!(users, rows, "nobody twice");
    a.assert_no_drift(campaign).await;
}

/// Two instances sweep the same expired holds: each expires exactly once (one event, one unit
/// back), and the gate ends with the whole stock again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sweeping_instances_expire_each_hold_once() {
    let (a, b) = two_instances().await;
    let holds = 40;
    let campaign = a
        .open_campaign_with(holds, 1, json!({"confirmWithinSeconds": 1}))
        .await;
    let joins = (1..=holds).map(|u| {
        let app = if u % 2 == 0 { a.clone() } else { b.clone() };
        async move { app.join(campaign, u, 1).await.status }
    });
    assert!(join_all(joins).await.iter().all(|&s| s == 201));
    wait_until("every hold expired", Duration::from_secs(15), || async {
        a.scalar("SELECT COUNT(*) FROM participation WHERE status = 'EXPIRED'")
            .await
            == holds
    })
    .await;
    let events = a
        .scalar("SELECT COUNT(*) FROM outbox_event WHERE event_type = 'ParticipationCancelled'")
        .await;
    assert_eq!(events, holds, "one expiry event per hold");
    assert_eq!(a.remaining_stock(campaign).await, holds);
    wait_until(
        "the gate to have every unit back",
        Duration::from_secs(5),
        || async { a.redis_stock(campaign).await == Some(holds) },
    )
    .await;
    a.assert_no_drift(campaign).await;
}
