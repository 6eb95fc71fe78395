//! The inbox's retention (docs/design.md §11): the cleanup walks the primary key by the event
//! id's time (the table has no index on `processed_at`) and deletes a consumer's row only once
//! the event is older than the retention by its UUIDv7 and was applied that long ago.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use firstcome::{consumer::inbox, db::Db};
use sea_orm::ConnectionTrait;
use uuid::{NoContext, Timestamp, Uuid};

use crate::spawn::spawn_app;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A UUIDv7 of `ago` before now.
fn id_from(ago: Duration) -> Uuid {
    let at = SystemTime::now() - ago;
    let since = at.duration_since(UNIX_EPOCH).expect("after 1970");
    Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        since.as_secs(),
        since.subsec_nanos(),
    ))
}

#[tokio::test]
async fn the_inbox_cleanup_deletes_only_rows_created_and_applied_past_the_retention() {
    let app = spawn_app().await;
    // (consumer, event created days ago, applied days ago, deleted by a retention of one day)
    let rows = [
        ("stats", 3, 3, true),
        ("stats", 4, 2, true),
        ("stats", 5, 5, true),
        ("stats", 3, 0, false), // applied late (a consumer outage): kept for the whole retention
        ("stats", 0, 0, false),
        ("rewards", 3, 3, false), // another consumer's row
    ];
    let ids: Vec<Uuid> = rows.iter().map(|r| id_from(DAY * r.1)).collect();
    let mut values = Vec::new();
    for ((consumer, _, applied, _), id) in rows.iter().zip(&ids) {
        values.push(format!(
            "('{consumer}', '{id}', UTC_TIMESTAMP(6) - INTERVAL {applied} DAY)"
        ));
    }
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO consumer_inbox (consumer, event_id, processed_at) VALUES {}",
            values.join(", ")
        ))
        .await
        .expect("inbox rows");
    let db = Db::new(app.db.clone(), Duration::from_secs(10));

    let first = inbox::clean(&db, "stats", DAY, 2).await.expect("clean");
    assert_eq!(first, 2, "one batch at a time");
    let second = inbox::clean(&db, "stats", DAY, 2).await.expect("clean");
    assert_eq!(second, 1);
    assert_eq!(inbox::clean(&db, "stats", DAY, 2).await.expect("clean"), 0);

    for ((consumer, created, applied, deleted), id) in rows.iter().zip(&ids) {
        let found = inbox::applied(&db, consumer, &[*id]).await.expect("read");
        assert_eq!(
            found.is_empty(),
            *deleted,
            "{consumer}'s row of an event created {created} and applied {applied} days ago"
        );
    }
}
