//! The outbox's cleanup (docs/design.md §5, §7): PUBLISHED rows past `OUTBOX_RETENTION_HOURS`
//! are deleted in batches, DEAD and PENDING rows stay, and a statement reads the rows it deletes,
//! not every PUBLISHED row.

use std::time::Duration;

use firstcome::{db::Db, relay::store};
use sea_orm::{ConnectionTrait, Statement};

use crate::spawn::{spawn_app, TestApp};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Rows as the relay's mark leaves them, published `ago` (the publish time in `lease_until`
/// too), the first `n` PENDING rows by id.
async fn publish(app: &TestApp, n: u32, ago: &str) {
    app.db
        .execute_unprepared(&format!(
            "UPDATE outbox_event SET status = 'PUBLISHED', published_at = UTC_TIMESTAMP(6) - {ago}, \
             lease_until = UTC_TIMESTAMP(6) - {ago} WHERE status = 'PENDING' ORDER BY id LIMIT {n}"
        ))
        .await
        .expect("publish rows");
}

/// An app (no relay) whose outbox holds the PENDING rows of `wins` wins.
async fn app_with_wins(wins: i64) -> TestApp {
    let app = spawn_app().await;
    let campaign = app.open_campaign(10, 1).await;
    for u in 1..=wins {
        assert_eq!(app.join(campaign, u, 1).await.status, 201);
    }
    app
}

/// The relay's own statements, on the test's connection with a statement deadline.
fn db(app: &TestApp) -> Db {
    Db::new(app.db.clone(), Duration::from_secs(10))
}

#[tokio::test]
async fn cleanup_deletes_only_published_rows_past_the_retention_in_batches() {
    let app = app_with_wins(7).await;
    // Three rows published two days ago; one published two days ago by a relay that did not
    // stamp `lease_until` yet; one published just now; one DEAD; the last PENDING.
    publish(&app, 3, "INTERVAL 2 DAY").await;
    app.db
        .execute_unprepared(
            "UPDATE outbox_event SET status = 'PUBLISHED', published_at = UTC_TIMESTAMP(6) - INTERVAL 2 DAY \
             WHERE status = 'PENDING' ORDER BY id LIMIT 1",
        )
        .await
        .expect("an unstamped row");
    publish(&app, 1, "INTERVAL 0 SECOND").await;
    app.db
        .execute_unprepared(
            "UPDATE outbox_event SET status = 'DEAD' WHERE status = 'PENDING' ORDER BY id LIMIT 1",
        )
        .await
        .expect("dead row");
    let db = db(&app);
    let deleted = store::delete_published(&db, DAY, 3).await.expect("cleanup");
    assert_eq!(deleted, 3, "one batch at a time");
    let deleted = store::delete_published(&db, DAY, 3).await.expect("cleanup");
    assert_eq!(deleted, 1);
    assert_eq!(
        store::delete_published(&db, DAY, 3).await.expect("cleanup"),
        0
    );
    assert_eq!(
        app.outbox_count("PUBLISHED").await,
        1,
        "the fresh row stays"
    );
    assert_eq!(
        app.outbox_count("DEAD").await,
        1,
        "DEAD rows stay until redriven"
    );
    assert_eq!(app.outbox_count("PENDING").await, 1, "PENDING rows stay");
}

/// A cleanup statement reads the rows past the retention, not the PUBLISHED rows inside it:
/// with `ORDER BY id` it read and sorted every PUBLISHED row, each batch, and a pass every
/// minute read the whole retained outbox.
#[tokio::test]
async fn a_cleanup_statement_reads_the_rows_it_deletes_not_the_retained_ones() {
    let app = app_with_wins(3).await;
    publish(&app, 3, "INTERVAL 2 DAY").await;
    // 500 rows inside the retention, published just now.
    app.db
        .execute_unprepared(
            "INSERT INTO outbox_event (event_id, aggregate_type, aggregate_id, event_type, topic, \
             msg_key, payload, headers, status, available_at, created_at, published_at, lease_until) \
             SELECT UUID(), 'participation', '0', 'ParticipationAccepted', 'retained', '0', '{}', '', \
             'PUBLISHED', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) \
             FROM seq_1_to_500",
        )
        .await
        .expect("retained rows");
    let delete = store::delete_published_statement(DAY, 100);
    let analyzed = app
        .db
        .query_one_raw(Statement::from_sql_and_values(
            delete.db_backend,
            format!("ANALYZE FORMAT=JSON {}", delete.sql),
            delete.values.map(|v| v.0).unwrap_or_default(),
        ))
        .await
        .expect("analyze")
        .expect("a plan");
    let plan: String = analyzed.try_get_by_index(0).expect("the plan's text");
    let plan: serde_json::Value = serde_json::from_str(&plan).expect("JSON");
    let table = &plan["query_block"]["table"];
    assert!(
        !plan.to_string().contains("filesort"),
        "the statement sorts what it read: {plan:#}"
    );
    assert!(
        table["r_rows"].as_f64().is_some_and(|r| r <= 3.0),
        "read more than the 3 rows past the retention: {plan:#}"
    );
    assert_eq!(app.outbox_count("PUBLISHED").await, 500, "the 3 deleted");
}
