//! The pool's own checks (docs/design.md §2.9): a connection back in the pool for less than
//! `PINGED_RECENTLY` is handed out without a ping (it answered two on its way in); one idle
//! longer is pinged first, so a connection the server closed meanwhile is replaced, never handed
//! to a caller. A transaction that meets a connection the server closed within that moment
//! starts again on another.

use std::time::Duration;

use firstcome::db::{pool, Db};
use sea_orm::{sqlx, ConnectionTrait, Database, DatabaseConnection};

use crate::{db::scalar, spawn::test_settings, wait::wait_until};

/// The server-side id of the connection the pool hands out next.
async fn connection_id(db: &Db) -> Result<u64, sqlx::Error> {
    sqlx::query_scalar("SELECT CONNECTION_ID()")
        .fetch_one(db.mysql_pool())
        .await
}

/// The service's pool with a single connection, which the server has just closed (killed, and
/// gone from its process list): the pool does not know yet. Also the test's own connection.
async fn a_pool_whose_connection_the_server_closed() -> (Db, u64, DatabaseConnection) {
    let mut settings = test_settings().await;
    settings.database.max_connections = 1;
    let db = pool::connect(&settings.database).await.expect("pool");
    let first = connection_id(&db).await.expect("the first connection");
    let admin = Database::connect(settings.database.url.expose())
        .await
        .expect("a connection of the test's own");
    admin
        .execute_unprepared(&format!("KILL CONNECTION {first}"))
        .await
        .expect("KILL");
    wait_until(
        "the killed connection to leave the process list",
        Duration::from_secs(10),
        || {
            let admin = &admin;
            async move {
                scalar(
                    admin,
                    &format!(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {first}"
                    ),
                )
                .await
                    == 0
            }
        },
    )
    .await;
    (db, first, admin)
}

#[tokio::test]
async fn a_connection_the_server_closed_while_it_sat_idle_is_replaced_not_handed_out() {
    let (db, first, _admin) = a_pool_whose_connection_the_server_closed().await;
    // Idle past the threshold: that idleness is the condition under test, not a wait for an
    // event (the server's side is already closed).
    tokio::time::sleep(pool::PINGED_RECENTLY + Duration::from_millis(200)).await;
    let second = connection_id(&db)
        .await
        .expect("the pool pings an idle connection and opens a new one in place of a dead one");
    assert_ne!(first, second, "a new connection");
}

#[tokio::test]
async fn a_transaction_on_a_connection_the_server_closed_a_moment_ago_begins_on_another() {
    let (db, first, _admin) = a_pool_whose_connection_the_server_closed().await;
    let txn = db
        .begin()
        .await
        .expect("BEGIN finds the connection broken and starts on a new one");
    let row = txn
        .query_one_raw(firstcome::db::sql::stmt("SELECT CONNECTION_ID()", vec![]))
        .await
        .expect("a statement in the transaction")
        .expect("a row");
    let second: u64 = row.try_get_by_index(0).expect("an id");
    assert_ne!(first, second, "a new connection");
    txn.commit().await.expect("COMMIT");
}
