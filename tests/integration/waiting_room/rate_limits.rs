//! Per-client limits at the door (docs/design.md §16): a user's bucket is shared by two
//! instances; `Retry-After` is honest (waiting that long is let through); a campaign with a
//! waiting room is limited by default and an `OPEN` one is not; a configured per-IP limit covers
//! every public call and trusts the proxy header only when told to.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{enqueue, room_campaign};
use crate::{
    http::Reply,
    spawn::{spawn_app_with, test_settings},
};

fn retry_after(reply: &Reply) -> u64 {
    reply.headers["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds")
}

#[tokio::test]
async fn a_users_bucket_is_shared_by_two_instances_and_retry_after_is_honest() {
    let mut settings = test_settings().await;
    settings.rate_limits.user_per_second = Some(1);
    settings.rate_limits.user_burst = Some(2);
    let a = spawn_app_with(settings.clone()).await;
    settings.migrate_on_start = false;
    let b = spawn_app_with(settings).await;
    let campaign = a.open_campaign(5, 1).await;
    assert_eq!(a.join(campaign, 5, 1).await.status, 201);
    assert_eq!(a.join(campaign, 5, 1).await.code(), "ALREADY_PARTICIPATED");
    let refused = b.join(campaign, 5, 1).await;
    assert_eq!(
        (refused.status, refused.code()),
        (429, "RATE_LIMITED"),
        "{refused:?}"
    );
    let wait = retry_after(&refused);
    assert!((1..=2).contains(&wait), "{wait}");
    // Another user is not limited by this one's bucket.
    assert_eq!(b.join(campaign, 6, 1).await.status, 201);
    // Waiting what Retry-After said is enough: the call is let through (to its own answer).
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let again = b.join(campaign, 5, 1).await;
    assert_eq!(again.code(), "ALREADY_PARTICIPATED", "{again:?}");
}

#[tokio::test]
async fn a_campaign_with_a_waiting_room_is_limited_by_default_and_an_open_one_is_not() {
    let app = spawn_app_with(test_settings().await).await;
    let open = app.open_campaign(5, 1).await;
    for _ in 0..30 {
        let reply = app.join(open, 3, 1).await;
        assert_ne!(reply.status, 429, "{reply:?}");
    }
    let queued = room_campaign(&app, "QUEUE", 5, 100, json!({})).await;
    // The default user bucket holds 10 and refills 5 a second: 30 calls within 4 s cannot all
    // pass, and no more pass than the bucket allows in the time they took.
    let started = Instant::now();
    let mut passed = 0;
    for _ in 0..30 {
        let reply = enqueue(&app, queued, 3).await;
        match reply.status {
            202 => passed += 1,
            429 => assert_eq!(reply.code(), "RATE_LIMITED"),
            _ => panic!("{reply:?}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        f64::from(passed) <= 10.0 + 5.0 * elapsed + 1.0,
        "{passed} in {elapsed} s"
    );
    if elapsed < 4.0 {
        assert!(passed < 30, "{passed} in {elapsed} s");
    }
}

#[tokio::test]
async fn a_configured_ip_limit_covers_public_calls_and_trusts_only_the_named_proxy_header() {
    let mut settings = test_settings().await;
    settings.rate_limits.ip_per_second = Some(1);
    settings.rate_limits.ip_burst = Some(1);
    settings.rate_limits.trusted_proxy_header = Some("x-forwarded-for".into());
    // The test's own client, on loopback, is the proxy in front.
    settings.rate_limits.trusted_proxies = vec!["127.0.0.1".parse().expect("a CIDR")];
    let app = spawn_app_with(settings).await;
    let get = |from: &'static str| {
        app.send(
            app.client
                .get(app.url("/api/v1/campaigns"))
                .header("x-forwarded-for", from),
        )
    };
    assert_eq!(get("203.0.113.9, 10.0.0.1").await.status, 200);
    let refused = get("198.51.100.7, 10.0.0.1").await;
    assert_eq!(
        (refused.status, refused.code()),
        (429, "RATE_LIMITED"),
        "{refused:?}"
    );
    assert_eq!(get("10.0.0.2").await.status, 200, "another client address");
    // Health and admin calls are not public calls.
    assert_eq!(app.get("/health/live").await.status, 200);
    assert_eq!(app.admin_get("/api/v1/admin/outbox").await.status, 200);

    // Without TRUSTED_PROXY_HEADER the header is anyone's to write: the peer address counts.
    let mut settings = test_settings().await;
    settings.rate_limits.ip_per_second = Some(1);
    settings.rate_limits.ip_burst = Some(1);
    let app = spawn_app_with(settings).await;
    let first = app
        .send(
            app.client
                .get(app.url("/api/v1/campaigns"))
                .header("x-forwarded-for", "10.0.0.3"),
        )
        .await;
    assert_eq!(first.status, 200);
    let second = app
        .send(
            app.client
                .get(app.url("/api/v1/campaigns"))
                .header("x-forwarded-for", "10.0.0.4"),
        )
        .await;
    assert_eq!(second.status, 429, "{second:?}");
}

/// `QUEUE_TICKETS_PER_CLIENT` (issue 72): one client address holds at most that many live
/// tickets in a room, whatever user ids it names; another address (behind the trusted proxy)
/// is another client; a user who holds a ticket gets it again. The room's own step is tested in
/// `room_steps::the_room_caps_…`.
#[tokio::test]
async fn a_client_address_holds_at_most_its_cap_of_tickets_in_a_room() {
    let mut settings = super::room_settings().await;
    settings.waiting_room.tickets_per_client = 2;
    settings.rate_limits.trusted_proxy_header = Some("x-forwarded-for".into());
    settings.rate_limits.trusted_proxies = vec!["127.0.0.1".parse().expect("a CIDR")];
    let app = spawn_app_with(settings).await;
    let campaign = room_campaign(&app, "QUEUE", 1, 1, json!({})).await;
    let queue = |user: i64, from: &'static str| {
        let req = (app
            .client
            .post(app.url(&format!("/api/v1/campaigns/{campaign}/queue"))))
        .header("x-forwarded-for", from)
        .json(&json!({"userId": user}));
        app.send(req)
    };
    assert_eq!(queue(1, "203.0.113.9").await.status, 202);
    assert_eq!(queue(2, "203.0.113.9").await.status, 202);
    let refused = queue(3, "203.0.113.9").await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "TICKET_LIMIT_REACHED"),
        "{refused:?}"
    );
    assert_eq!(
        queue(1, "203.0.113.9").await.status,
        202,
        "a held ticket again"
    );
    assert_eq!(queue(3, "198.51.100.7").await.status, 202, "another client");
}
