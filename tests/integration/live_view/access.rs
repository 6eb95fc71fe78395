//! Who may watch what (docs/design.md §20): the sale's figures are public, the service's own
//! (`operations`: relay and consumer lag, dead events) come only with an admin token in the
//! `Authorization` header, and any other `Authorization` is a failed admin attempt (401). Streams
//! are capped per client IP below the cap in all, a stream's end gives its seat back, and an
//! admin's stream is let in past the cap in all.

use std::time::Duration;

use serde_json::Value;

use super::stream::{app_with_interval, Watch};
use crate::{
    operations::metrics::exposition::{scrape, sum},
    spawn::{spawn_app_with, test_settings, TestApp, ADMIN_TOKEN},
    wait::wait_until,
};

/// The fields of the service's own figures, as they were (top level) and are (`operations`).
const OPERATIONAL: [&str; 4] = [
    "relayLagMs",
    "deadEvents",
    "consumerLagEvents",
    "consumerLagMs",
];

async fn metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    sum(&scrape(app).await, name, labels)
}

/// The status and error code of a refused stream.
async fn refusal(refused: reqwest::Response) -> (u16, String, Option<String>) {
    let status = refused.status().as_u16();
    let retry_after = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: Value = refused.json().await.unwrap_or_default();
    (
        status,
        body["code"].as_str().unwrap_or("").to_string(),
        retry_after,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operational_figures_need_an_admin_token_and_any_other_authorization_is_refused() {
    let app = app_with_interval("50").await;
    let id = app.open_campaign(10, 1).await;
    app.join(id, 1, 1).await;

    let mut public = Watch::open_with(&app, id, &[])
        .await
        .expect("a public stream");
    let seen = public.next().await.expect("a snapshot");
    assert_eq!(seen["acceptedCount"], 1, "the sale is public: {seen}");
    assert_eq!(seen["freeStock"], 9, "{seen}");
    assert!(seen.get("operations").is_none(), "{seen}");
    for field in OPERATIONAL {
        assert!(
            seen.get(field).is_none(),
            "{field} in a public snapshot: {seen}"
        );
    }

    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let mut admin = Watch::open_with(&app, id, &[("authorization", &bearer)])
        .await
        .expect("an admin's stream");
    let seen = admin.next().await.expect("a snapshot");
    assert_eq!(seen["acceptedCount"], 1, "{seen}");
    let operations = seen["operations"]
        .as_object()
        .unwrap_or_else(|| panic!("no operations for an admin: {seen}"));
    for field in OPERATIONAL {
        assert!(operations.contains_key(field), "{field}: {seen}");
    }
    assert_eq!(operations["deadEvents"], 0, "{seen}");
    assert!(operations["relayLagMs"].as_i64().is_some(), "{seen}");
    assert!(operations.get("buckets").is_none(), "unbucketed: {seen}");
    // Both streams share one feed: the public one still has none of it.
    let seen = public.next().await.expect("a snapshot");
    assert!(seen.get("operations").is_none(), "{seen}");

    let failures = metric(&app, "firstcome_admin_auth_failures_total", &[]).await;
    let wrong = format!("Bearer {ADMIN_TOKEN}x");
    for authorization in [
        wrong.as_str(),
        "Bearer ",
        "Basic YWRtaW46YWRtaW4=",
        "a.user.jwt",
    ] {
        let refused = Watch::open_with(&app, id, &[("authorization", authorization)])
            .await
            .err()
            .unwrap_or_else(|| panic!("{authorization:?} was let in"));
        let (status, code, _) = refusal(refused).await;
        assert_eq!(
            (status, code.as_str()),
            (401, "UNAUTHORIZED"),
            "{authorization:?}"
        );
    }
    assert_eq!(
        metric(&app, "firstcome_admin_auth_failures_total", &[]).await,
        failures + 4.0,
        "each is a failed admin attempt"
    );
}

/// A bucketed campaign's balance (docs/design.md §21) is among an admin's figures: each bucket's
/// row beside its gate, and the pool, summing to the campaign's free units.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucketed_campaigns_balance_is_an_admins_to_see() {
    let app = app_with_interval("50").await;
    let id = app
        .open_campaign_with(40, 1, serde_json::json!({"buckets": 4}))
        .await;
    assert_eq!(app.join(id, 1, 1).await.status, 201);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let mut admin = Watch::open_with(&app, id, &[("authorization", &bearer)])
        .await
        .expect("an admin's stream");
    let seen = admin.next().await.expect("a snapshot");
    let buckets = &seen["operations"]["buckets"];
    let items = buckets["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no buckets for an admin: {seen}"));
    assert_eq!(items.len(), 4, "{seen}");
    let rows: i64 = items
        .iter()
        .filter_map(|b| b["remainingStock"].as_i64())
        .sum();
    let pool = buckets["pool"].as_i64().expect("the pool");
    assert_eq!(rows + pool, 39, "{seen}");
    assert_eq!(seen["freeStock"], 39, "{seen}");
    let wins: i64 = items
        .iter()
        .filter_map(|b| b["acceptedCount"].as_i64())
        .sum();
    assert_eq!(wins, 1, "{seen}");
    assert!(
        items.iter().all(|b| b["gateStock"].as_i64().is_some()),
        "{seen}"
    );
    let mut public = Watch::open_with(&app, id, &[])
        .await
        .expect("a public stream");
    let seen = public.next().await.expect("a snapshot");
    assert!(seen.get("operations").is_none(), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_is_capped_below_the_total_another_is_still_served_and_an_ended_stream_frees_its_seat(
) {
    let mut settings = test_settings().await;
    settings.live.interval = Duration::from_millis(50);
    settings.live.max_watchers_per_client = 2;
    settings.live.max_watchers = 4;
    // Every client of a test is 127.0.0.1: the trusted proxy's header tells them apart.
    settings.rate_limits.trusted_proxy_header = Some("x-forwarded-for".into());
    settings.rate_limits.trusted_proxies = vec!["127.0.0.1".parse().expect("a CIDR")];
    let app = spawn_app_with(settings).await;
    let id = app.open_campaign(10, 1).await;
    let open = |client: &'static str, admin: bool| {
        let app = &app;
        async move {
            let bearer = format!("Bearer {ADMIN_TOKEN}");
            let mut headers = vec![("x-forwarded-for", client)];
            if admin {
                headers.push(("authorization", bearer.as_str()));
            }
            Watch::open_with(app, id, &headers).await
        }
    };
    let refused_by = |reason: &'static str| {
        let app = &app;
        async move {
            metric(
                app,
                "firstcome_live_streams_refused_total",
                &[("reason", reason)],
            )
            .await
        }
    };

    let mut a1 = open("203.0.113.1", false).await.expect("a's first");
    let _a2 = open("203.0.113.1", false).await.expect("a's second");
    let (status, code, retry_after) = refusal(
        open("203.0.113.1", false)
            .await
            .err()
            .expect("a's third is over its cap"),
    )
    .await;
    assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"));
    assert!(
        retry_after.and_then(|s| s.parse::<u32>().ok()).is_some(),
        "a Retry-After"
    );
    assert_eq!(refused_by("per_client").await, 1.0);
    // An admin is capped per client too (only the total lets an admin in).
    assert!(open("203.0.113.1", true).await.is_err());
    assert_eq!(refused_by("per_client").await, 2.0);

    // Another client is served meanwhile, and a's streams go on.
    let mut b = open("203.0.113.2", false).await.expect("b is served");
    assert!(b.next().await.is_some());
    assert!(a1.next().await.is_some());

    // The cap in all: 4 seats, 3 taken; c takes the last, d is refused, an admin from d is not.
    let _c = open("203.0.113.3", false)
        .await
        .expect("c takes the last seat");
    let (status, code, _) = refusal(
        open("203.0.113.4", false)
            .await
            .err()
            .expect("no seat left"),
    )
    .await;
    assert_eq!((status, code.as_str()), (503, "SERVICE_BUSY"));
    assert_eq!(refused_by("total").await, 1.0);
    let mut admin = open("203.0.113.4", true)
        .await
        .expect("an admin's stream past the total");
    assert!(admin.next().await.is_some());
    assert_eq!(metric(&app, "firstcome_live_watchers", &[]).await, 5.0);

    // The admin's stream and one of a's end (their clients hang up): their seats are free again.
    drop(admin);
    drop(a1);
    wait_until("the seats to be free", Duration::from_secs(5), || async {
        metric(&app, "firstcome_live_watchers", &[]).await == 3.0
    })
    .await;
    let mut again = open("203.0.113.1", false)
        .await
        .expect("a's freed seat is taken again");
    assert!(again.next().await.is_some());
    assert_eq!(refused_by("per_client").await, 2.0);
}
