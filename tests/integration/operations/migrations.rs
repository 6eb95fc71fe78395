//! The schema's later migrations on a database that already holds wins (docs/design.md §5): a
//! win written before `participation.event_id` existed gets its event id from its outbox row,
//! the outbox index that served that lookup goes, and both come back on the way down.

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

use crate::{db::scalar, spawn::test_settings};

/// The migrations this test is about: participation.event_id, its backfill, the index drop.
const LATER: u32 = 3;

#[tokio::test]
async fn a_win_from_before_the_event_id_column_gets_it_from_its_outbox_row() {
    let settings = test_settings().await;
    let db = Database::connect(settings.database.url.expose())
        .await
        .expect("connect");
    let before = u32::try_from(Migrator::migrations().len()).expect("count") - LATER;
    Migrator::up(&db, Some(before))
        .await
        .expect("migrate to before");
    wins_of_the_old_schema(&db).await;

    Migrator::up(&db, None).await.expect("migrate");
    let event_of = |user: i64| {
        format!(
            "SELECT COUNT(*) FROM participation WHERE user_id = {user} AND event_id {}",
            if user == 1 {
                "= '0190a8d2-0000-7000-8000-000000000001'"
            } else {
                "IS NULL"
            }
        )
    };
    assert_eq!(
        scalar(&db, &event_of(1)).await,
        1,
        "filled from its outbox row"
    );
    assert_eq!(scalar(&db, &event_of(2)).await, 1, "its row is gone: none");
    assert_eq!(index_count(&db).await, 0, "ix_outbox_aggregate dropped");

    Migrator::down(&db, Some(LATER))
        .await
        .expect("migrate down");
    assert_eq!(index_count(&db).await, 1, "ix_outbox_aggregate back");
    let column = scalar(
        &db,
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() \
         AND table_name = 'participation' AND column_name = 'event_id'",
    )
    .await;
    assert_eq!(column, 0, "participation.event_id gone");
}

/// A campaign with two wins: user 1's outbox row is still there, user 2's was cleaned up.
async fn wins_of_the_old_schema(db: &DatabaseConnection) {
    for sql in [
        "INSERT INTO campaign (id, name, total_stock, remaining_stock, per_user_limit, starts_at, \
         created_at, updated_at) VALUES (1, 'old', 10, 8, 1, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), \
         UTC_TIMESTAMP(6))",
        "INSERT INTO participation (id, campaign_id, user_id, quantity, sequence, created_at) \
         VALUES (7, 1, 1, 1, 1, UTC_TIMESTAMP(6)), (8, 1, 2, 1, 2, UTC_TIMESTAMP(6))",
        "INSERT INTO outbox_event (event_id, aggregate_type, aggregate_id, event_type, topic, \
         msg_key, payload, headers, status, attempts, available_at, created_at) VALUES \
         ('0190a8d2-0000-7000-8000-000000000001', 'participation', '7', 'ParticipationAccepted', \
         't', '1', '{}', '{}', 'PUBLISHED', 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    ] {
        db.execute_unprepared(sql).await.expect(sql);
    }
}

async fn index_count(db: &DatabaseConnection) -> i64 {
    scalar(
        db,
        "SELECT COUNT(DISTINCT index_name) FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND table_name = 'outbox_event' \
         AND index_name = 'ix_outbox_aggregate'",
    )
    .await
}
