//! The reconciler's pass is short whatever the campaign's size (docs/design.md §18.1): the units
//! of an instance that died come back `RESERVATION_TIMEOUT_MS` after their reservation plus at
//! most one period and one pass, so a pass reads a campaign's gates at once. Read one after
//! another, the 2 × 256 reads of a big bucketed campaign on a Redis answering each command a
//! few ms late (busy with a burst) took seconds: the proof run of seed 165 saw passes of 5–7 s
//! and a crashed writer's units back ~9 s late, while joins were refused SOLD_OUT.

use std::time::{Duration, Instant};

use super::at_rest::{bucketed_for_an_hour, leak_a_reservation};
use crate::{
    proxy::Proxy,
    spawn::{spawn_app_with, test_settings},
};

/// How late the Redis behind the proxy answers each command, or each batch sent together.
const LATENCY: Duration = Duration::from_millis(5);
const BUCKETS: u16 = 256;
/// A pass's bound here: a fraction of the production period (1.5 s). Read gate by gate, the
/// pass takes at least 2 × 256 × 5 ms = 2.56 s.
const PASS_WITHIN: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_over_a_big_campaign_on_a_slow_redis_reads_its_gates_at_once() {
    // The app's own reconciler runs every tenth of a day: the test's pass is the only one.
    let mut settings = test_settings().await;
    settings.redis.reservation_timeout = Duration::from_secs(24 * 3600);
    let proxy = Proxy::in_front_of_redis(&mut settings).await;
    let app = spawn_app_with(settings).await;
    let (campaign, epoch) = bucketed_for_an_hour(&app, 1_000, BUCKETS).await;
    // A join marks the campaign busy (its buckets are read); an instance that died left a
    // reservation an hour old in that join's bucket (loaded for sure: the creation's priming of
    // every bucket is best effort). Read one after another, every bucket costs the same.
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);
    let user = 7;
    let bucket = firstcome::bucket::home(1, BUCKETS);
    leak_a_reservation(&app, campaign, epoch, bucket, user).await;

    proxy.set_latency(LATENCY);
    let began = Instant::now();
    let given_back = app.reconcile(Duration::from_secs(1)).await;
    let took = began.elapsed();
    proxy.set_latency(Duration::ZERO);
    assert_eq!(given_back, 1, "the leaked reservation is given back");
    assert!(
        took < PASS_WITHIN,
        "a pass over {BUCKETS} buckets took {took:?} with Redis answering {LATENCY:?} late"
    );
    assert_eq!(
        app.join(campaign, user, 1).await.status,
        201,
        "its user joins again"
    );
}
