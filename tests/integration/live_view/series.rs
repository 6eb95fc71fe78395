//! The chart's last five minutes come from the server (issue 73: the console's chart began when
//! the page opened, so a sale two minutes earlier showed as flat): a watcher that arrives after
//! a sale sees its wins and refusals in the snapshot's 5-second slots.

use std::time::Duration;

use serde_json::Value;

use super::stream::Watch;
use crate::spawn::{spawn_app_with, test_settings, with_relay};

/// The series' wins and refusals, summed over its slots.
fn sums(snapshot: &Value) -> (i64, i64) {
    let slots = snapshot["series"].as_array().expect("series");
    slots.iter().fold((0, 0), |(w, r), s| {
        (
            w + s["wins"].as_i64().expect("wins"),
            r + s["refused"].as_i64().expect("refused"),
        )
    })
}

#[tokio::test]
async fn a_watcher_that_arrives_after_the_sale_sees_its_last_five_minutes() {
    // The wins are the stats consumer's: the relay and the consumers run.
    let mut settings = crate::consumer_helpers::with_consumers(with_relay(test_settings().await));
    settings.live.interval = Duration::from_millis(100);
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(3, 1).await;
    let mut answers = Vec::new();
    for user in 1..=5 {
        answers.push(app.join(campaign, user, 1).await.status);
    }
    assert_eq!(answers, vec![201, 201, 201, 409, 409]);

    // Nobody watched the sale; the first watcher comes after it.
    let mut watch = Watch::open(&app, campaign).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let snapshot = loop {
        let s = watch.next().await.expect("a snapshot");
        if sums(&s) == (3, 2) {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "3 wins and 2 refusals in the series within 20 s: {s}"
        );
    };
    let at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time")).expect("a time")
    };
    let now = at(&snapshot["at"]);
    for slot in snapshot["series"].as_array().expect("series") {
        let start = at(&slot["at"]);
        assert_eq!(start.timestamp() % 5, 0, "a slot starts on 5 s: {slot}");
        let ago = (now - start).num_seconds();
        assert!(
            (0..=300).contains(&ago),
            "within the last five minutes: {slot}"
        );
    }
}
