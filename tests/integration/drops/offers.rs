//! Waitlist offers (docs/design.md §22): a user told a campaign with a waiting room is sold out
//! stays on its waitlist; each unit that comes back is offered to the next waitlisted user in
//! order, never to two at once; an offer not used in time passes to the next; the offer lives in
//! Redis, so it outlives the instance whose step made it.

use std::sync::Arc;

use serde_json::json;

use crate::{
    spawn::{two_instances, TestApp},
    waiting_room::{enqueue, join_with, poll, poll_until},
};

/// A waitlisted campaign: QUEUE, `stock` units, offers valid `offer_seconds`, wins held.
async fn waitlisted(app: &TestApp, stock: i64, offer_seconds: i32) -> i64 {
    app.open_campaign_with(
        stock,
        1,
        json!({"admission": "QUEUE", "admissionRatePerSecond": 50,
               "offerSeconds": offer_seconds, "confirmWithinSeconds": 600}),
    )
    .await
}

async fn ticket(app: &TestApp, campaign: i64, user: i64) -> String {
    let queued = enqueue(app, campaign, user).await;
    assert_eq!(queued.status, 202, "{queued:?}");
    queued.body["ticket"].as_str().expect("ticket").to_string()
}

fn state(reply: &crate::http::Reply) -> &str {
    reply.body["state"].as_str().unwrap_or("")
}

/// The room's offer counters (`offers`, `offers_taken`, `offers_passed`).
async fn offer_counts(app: &TestApp, campaign: i64) -> (i64, i64, i64) {
    let mut conn = app.redis.clone();
    let key = format!("{}{{c:{campaign}}}:qroom", app.redis_prefix);
    let counts: Vec<Option<i64>> = redis::cmd("HMGET")
        .arg(&key)
        .arg("offers")
        .arg("offers_taken")
        .arg("offers_passed")
        .query_async(&mut conn)
        .await
        .expect("HMGET");
    let n = |i: usize| counts[i].unwrap_or(0);
    (n(0), n(1), n(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offers_go_out_in_waitlist_order_pass_on_when_unused_and_outlive_their_instance() {
    let (a, b) = two_instances().await;
    let campaign = waitlisted(&a, 2, 2).await;
    let mut tickets = Vec::new();
    for user in 1..=5 {
        tickets.push(ticket(&a, campaign, user).await);
    }
    // Users 1 and 2 take the two units.
    for (i, user) in [(0, 1), (1, 2)] {
        let admitted = poll_until(&a, campaign, &tickets[i], &["ADMITTED"]).await;
        let token = admitted.body["admissionToken"].as_str().expect("token");
        assert_eq!(join_with(&a, campaign, user, Some(token)).await.status, 201);
    }
    // The others are told it is sold out and stay, in order, on the waitlist.
    let mut positions = Vec::new();
    for t in &tickets[2..] {
        let listed = poll_until(&a, campaign, t, &["WAITLISTED"]).await;
        positions.push(listed.body["position"].as_i64().expect("position"));
    }
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    // A cancel gives a unit back: it is offered to user 3, the head, and to nobody else.
    assert_eq!(a.act_on_win(campaign, 1, "cancel", false).await.status, 200);
    let fourth = poll(&b, campaign, &tickets[3]).await;
    assert_eq!(state(&fourth), "WAITLISTED", "{fourth:?}");
    let offered = poll(&b, campaign, &tickets[2]).await;
    assert_eq!(state(&offered), "ADMITTED", "{offered:?}");
    assert_eq!(
        state(&poll(&b, campaign, &tickets[3]).await),
        "WAITLISTED",
        "one unit, one offer"
    );
    let expires: chrono::DateTime<chrono::Utc> = offered.body["admissionExpiresAt"]
        .as_str()
        .expect("expiry")
        .parse()
        .expect("a time");
    assert!(
        expires <= chrono::Utc::now() + chrono::Duration::seconds(3),
        "offerSeconds, not the token lifetime"
    );

    // User 3 lets it lapse (the test waits for the offer's own deadline): it passes on to
    // user 4, made by instance a's step.
    let left = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + std::time::Duration::from_millis(50)).await;
    assert_eq!(state(&poll(&a, campaign, &tickets[2]).await), "EXPIRED");
    let passed = poll(&a, campaign, &tickets[3]).await;
    assert_eq!(state(&passed), "ADMITTED", "{passed:?}");
    assert_eq!(state(&poll(&a, campaign, &tickets[4]).await), "WAITLISTED");

    // Instance a goes; the offer lives on, the same, at instance b, and wins there.
    let a = Arc::try_unwrap(a).ok().expect("the only handle");
    a.stop().await.expect("stopped");
    let again = poll(&b, campaign, &tickets[3]).await;
    assert_eq!(state(&again), "ADMITTED", "{again:?}");
    assert_eq!(
        again.body["admissionExpiresAt"],
        passed.body["admissionExpiresAt"]
    );
    let token = again.body["admissionToken"].as_str().expect("token");
    assert_eq!(join_with(&b, campaign, 4, Some(token)).await.status, 201);
    // The step after the win counts the offer taken.
    assert_eq!(state(&poll(&b, campaign, &tickets[4]).await), "WAITLISTED");
    assert_eq!(offer_counts(&b, campaign).await, (2, 1, 1));
    assert_eq!(
        b.scalar(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign} \
             AND status <> 'CANCELLED'"
        ))
        .await,
        2,
        "exactly the stock is held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waitlist_needs_a_waiting_room() {
    let (a, _b) = two_instances().await;
    let open = a
        .post_json(
            "/api/v1/campaigns",
            &json!({"name": "x", "totalStock": 5, "offerSeconds": 60}),
            Some(crate::spawn::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(open.status, 400, "{open:?}");
    let campaign = waitlisted(&a, 1, 60).await;
    let read = a.get(&format!("/api/v1/campaigns/{campaign}")).await;
    assert_eq!(read.body["offerSeconds"], json!(60));
}

/// Issue 72's squatting: tickets that joined the waitlist once and never polled again held it,
/// so a unit that came back was offered to each of them in turn (offerSeconds apiece) before the
/// user who kept polling. A waitlisted ticket must show it is alive (design §16, §22): one not
/// polled for `QUEUE_TICKET_IDLE_MS` is dropped like a waiting one, and the offer goes to the
/// first ticket still polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_skips_waitlisted_tickets_that_stopped_polling() {
    let mut settings = crate::spawn::test_settings().await;
    let idle = std::time::Duration::from_millis(1_500);
    settings.waiting_room.idle_timeout = idle;
    // The polls below come from one address and one user at a time; the door's limits are
    // another test's subject.
    settings.rate_limits.user_per_second = Some(0);
    settings.rate_limits.ip_per_second = Some(0);
    let app = crate::spawn::spawn_app_with(settings).await;
    let campaign = waitlisted(&app, 1, 300).await;
    let buyer = ticket(&app, campaign, 1).await;
    let admitted = poll_until(&app, campaign, &buyer, &["ADMITTED"]).await;
    let token = admitted.body["admissionToken"].as_str().expect("token");
    assert_eq!(join_with(&app, campaign, 1, Some(token)).await.status, 201);

    // Ten tickets queue once, are told WAITLISTED, and never poll again; a user queues after
    // them and keeps polling, past the idle time of theirs.
    let mut bots = Vec::new();
    for user in 2..=11 {
        let t = ticket(&app, campaign, user).await;
        assert_eq!(state(&poll(&app, campaign, &t).await), "WAITLISTED");
        bots.push(t);
    }
    let patient = ticket(&app, campaign, 100).await;
    let started = std::time::Instant::now();
    while started.elapsed() < idle * 2 {
        assert_eq!(state(&poll(&app, campaign, &patient).await), "WAITLISTED");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // The buyer cancels: the unit is offered to the user who kept polling, not to a bot.
    assert_eq!(
        app.act_on_win(campaign, 1, "cancel", false).await.status,
        200
    );
    let offered = poll_until(&app, campaign, &patient, &["ADMITTED"]).await;
    let token = offered.body["admissionToken"].as_str().expect("token");
    assert_eq!(
        join_with(&app, campaign, 100, Some(token)).await.status,
        201
    );
    for t in &bots {
        assert_eq!(
            state(&poll(&app, campaign, t).await),
            "EXPIRED",
            "a silent ticket"
        );
    }
    assert_eq!(
        offer_counts(&app, campaign).await.0,
        1,
        "one offer, to the living"
    );
}
