//! The schema's later migrations on a database that already holds rows (docs/design.md §5): a
//! win written before `participation.event_id` existed gets its event id from its outbox row,
//! the outbox index that served that lookup goes, and both come back on the way down; a row
//! already in backoff gets its due time into `lease_until` before `(status, available_at)` goes.

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

use crate::{db::scalar, spawn::test_settings};

/// How many migrations come before the one named `name` (the count to migrate up to so that it
/// is the next to run).
fn before(name: &str) -> u32 {
    let at = Migrator::migrations()
        .iter()
        .position(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no migration {name}"));
    u32::try_from(at).expect("count")
}

fn count() -> u32 {
    u32::try_from(Migrator::migrations().len()).expect("count")
}

#[tokio::test]
async fn a_win_from_before_the_event_id_column_gets_it_from_its_outbox_row() {
    let settings = test_settings().await;
    let db = Database::connect(settings.database.url.expose())
        .await
        .expect("connect");
    let before = before("m20261124_000033_participation_event_id");
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
    assert_eq!(index_count(&db, "ix_outbox_aggregate").await, 0, "dropped");

    Migrator::down(&db, Some(count() - before))
        .await
        .expect("migrate down");
    assert_eq!(index_count(&db, "ix_outbox_aggregate").await, 1, "back");
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

async fn index_count(db: &DatabaseConnection, index: &str) -> i64 {
    scalar(
        db,
        &format!(
            "SELECT COUNT(DISTINCT index_name) FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name = 'outbox_event' \
             AND index_name = '{index}'"
        ),
    )
    .await
}

/// A row in backoff (no lease, due in an hour) gets its due time into `lease_until`, so the
/// relay, which no longer has `(status, available_at)`, still sees it holding its key back; a
/// due row and a leased row are left as they were. Down, it is as before.
#[tokio::test]
async fn a_row_in_backoff_keeps_holding_its_key_once_its_index_is_gone() {
    let settings = test_settings().await;
    let db = Database::connect(settings.database.url.expose())
        .await
        .expect("connect");
    let before = before("m20261125_000036_outbox_backoff_in_lease");
    Migrator::up(&db, Some(before))
        .await
        .expect("migrate to before");
    let row = |id: i64, available: &str, owner: &str, until: &str| {
        format!(
            "INSERT INTO outbox_event (id, event_id, aggregate_type, aggregate_id, event_type, topic, \
             msg_key, payload, headers, status, attempts, available_at, lease_owner, lease_until, \
             created_at) VALUES ({id}, UUID(), 'participation', '{id}', 'ParticipationAccepted', 't', \
             '1', '{{}}', '{{}}', 'PENDING', 1, {available}, {owner}, {until}, UTC_TIMESTAMP(6))"
        )
    };
    let later = "UTC_TIMESTAMP(6) + INTERVAL 1 HOUR";
    for sql in [
        row(1, later, "NULL", "NULL"),
        row(2, "UTC_TIMESTAMP(6)", "NULL", "NULL"),
        row(3, "UTC_TIMESTAMP(6)", "'relay-a'", later),
    ] {
        db.execute_unprepared(&sql).await.expect(&sql);
    }
    Migrator::up(&db, None).await.expect("migrate");
    let leases = "SELECT CAST(GROUP_CONCAT(id, ':', COALESCE(lease_owner, '-'), ':', \
                  COALESCE(lease_until = available_at, '-') ORDER BY id) AS CHAR) FROM outbox_event";
    assert_eq!(text(&db, leases).await, "1:-:1,2:-:-,3:relay-a:0");
    assert_eq!(
        index_count(&db, "ix_outbox_status_available").await,
        0,
        "dropped"
    );

    Migrator::down(&db, Some(count() - before))
        .await
        .expect("migrate down");
    assert_eq!(text(&db, leases).await, "1:-:-,2:-:-,3:relay-a:0");
    assert_eq!(
        index_count(&db, "ix_outbox_status_available").await,
        1,
        "back"
    );
}

async fn text(db: &DatabaseConnection, sql: &str) -> String {
    use sea_orm::{DbBackend, Statement};
    db.query_one_raw(Statement::from_string(DbBackend::MySql, sql))
        .await
        .expect(sql)
        .expect("a row")
        .try_get_by_index(0)
        .expect("text")
}

/// On a server whose default character set is latin1 (issue 71), the tables created without one
/// were latin1 and a group named with a character outside latin1 failed in MySQL (1366). After
/// the migrations every table of the schema is utf8mb4 and such a name is stored.
#[tokio::test]
async fn on_a_latin1_server_every_table_ends_utf8mb4() {
    let url = crate::spawn::create_database_with("CHARACTER SET latin1").await;
    let db = Database::connect(&url).await.expect("connect");
    Migrator::up(&db, None).await.expect("migrate");
    let not_utf8mb4 = scalar(
        &db,
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
         AND TABLE_TYPE = 'BASE TABLE' AND TABLE_COLLATION NOT LIKE 'utf8mb4%'",
    )
    .await;
    assert_eq!(not_utf8mb4, 0, "every table is utf8mb4");
    db.execute_unprepared(
        "INSERT INTO campaign_group (name, per_user_limit, buckets, created_at) \
         VALUES ('\u{200b} zero width, \u{1F45F} sneaker', 1, 1, NOW(6))",
    )
    .await
    .expect("a name outside latin1 is stored");
}
