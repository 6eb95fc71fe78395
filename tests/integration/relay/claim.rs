//! The claim's two ways of leasing rows (`relay::store::claim`), called directly on a real
//! MariaDB: the one-UPDATE way the server allows (`LeaseMode::NoWait`) and the locking read first
//! (`LeaseMode::LockFirst`, MySQL's). Guarantee §2.5 (per-key order): whichever way, a row that
//! another transaction holds is passed over together with its key's younger rows, other keys'
//! rows are taken, and once the row is free the key is taken from its oldest row.

use std::time::Duration;

use firstcome::{
    db::{pool, Db},
    relay::store::{self, LeaseMode},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

use crate::spawn::{spawn_app_with, test_settings, TestApp};

const OWNER: &str = "claimtest001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_lease_modes_pass_over_a_held_row_with_its_younger_rows_and_take_them_once_free() {
    let (app, db) = app_without_relay().await;
    let held = app.insert_rows("held-key", &app.topic, 1).await;
    app.insert_rows("held-key", &app.topic, 2).await;
    app.insert_rows("free-key", &app.topic, 2).await;
    lead_the_one_shard(&app.db).await;
    let (held_ids, free_ids) = (
        ids_of(&app.db, "held-key").await,
        ids_of(&app.db, "free-key").await,
    );

    let server_mode = store::lease_mode(&db).await.expect("lease mode");
    assert_eq!(
        server_mode,
        LeaseMode::NoWait,
        "MariaDB allows the one-UPDATE claim, so this test covers it"
    );
    let holder = app.db.begin().await.expect("begin");
    holder
        .execute_unprepared(&format!(
            "SELECT id FROM outbox_event WHERE event_id = '{}' FOR UPDATE",
            held[0]
        ))
        .await
        .expect("hold the oldest row of held-key");
    for mode in [LeaseMode::NoWait, LeaseMode::LockFirst] {
        let (_, rows) = store::claim(&db, OWNER, 1, Duration::from_secs(60), 100, &[], mode)
            .await
            .expect("claim while a row is held");
        let taken: Vec<i64> = rows.iter().map(|r| r.id).collect();
        assert_eq!(
            taken, free_ids,
            "{mode:?}: only the free key's rows, none of the held key's younger rows"
        );
        assert_eq!(
            app.scalar(&format!(
                "SELECT COUNT(*) FROM outbox_event WHERE lease_owner = '{OWNER}' AND msg_key = 'held-key'"
            ))
            .await,
            0,
            "{mode:?}: nothing of the held key is leased"
        );
        store::release(&db, OWNER, None)
            .await
            .expect("give the leases back for the next mode");
    }
    holder.commit().await.expect("let the row go");

    for mode in [LeaseMode::NoWait, LeaseMode::LockFirst] {
        let (_, rows) = store::claim(&db, OWNER, 1, Duration::from_secs(60), 100, &[], mode)
            .await
            .expect("claim once the row is free");
        let mut taken: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut all = [held_ids.clone(), free_ids.clone()].concat();
        all.sort_unstable();
        assert!(
            taken.windows(2).all(|w| w[0] < w[1]),
            "{mode:?}: in id order"
        );
        taken.sort_unstable();
        assert_eq!(
            taken, all,
            "{mode:?}: every row, the held key from its oldest"
        );
        let again = store::claim(&db, OWNER, 1, Duration::from_secs(60), 100, &[], mode)
            .await
            .expect("claim again")
            .1;
        assert!(
            again.is_empty(),
            "{mode:?}: a leased row is not claimed twice"
        );
        store::release(&db, OWNER, None).await.expect("release");
    }
    app.stop().await.expect("clean stop");
}

/// A claim larger than one lease statement (`db::sql::MAX_IDS` ids): a held row in its second
/// statement fails that statement, and what the first one leased must go back with it, or those
/// rows would stay leased here, held by nothing, while the claim passed over their key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_row_past_the_first_lease_statement_leaves_nothing_leased_that_the_claim_does_not_return(
) {
    let (app, db) = app_without_relay().await;
    let rows = firstcome::db::sql::MAX_IDS + 100;
    let held_at = firstcome::db::sql::MAX_IDS + 20;
    let events = app.insert_rows("big-key", &app.topic, rows).await;
    lead_the_one_shard(&app.db).await;
    let ids = ids_of(&app.db, "big-key").await;
    let holder = app.db.begin().await.expect("begin");
    holder
        .execute_unprepared(&format!(
            "SELECT id FROM outbox_event WHERE event_id = '{}' FOR UPDATE",
            events[held_at]
        ))
        .await
        .expect("hold a row of the second lease statement");
    let (_, claimed) = store::claim(
        &db,
        OWNER,
        1,
        Duration::from_secs(60),
        2_000,
        &[],
        LeaseMode::NoWait,
    )
    .await
    .expect("claim while a row is held");
    let taken: Vec<i64> = claimed.iter().map(|r| r.id).collect();
    assert_eq!(
        taken,
        ids[..held_at],
        "the key's rows before the held one, in order"
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM outbox_event WHERE lease_owner = '{OWNER}'"
        ))
        .await,
        held_at as i64,
        "leased in MySQL: exactly the rows the claim returned"
    );
    holder.commit().await.expect("let the row go");
    app.stop().await.expect("clean stop");
}

/// The former leader of a shard writes its outcome for a row after its lease ran out (it was
/// paused with the row in flight, a proof run's trace): the row goes from "leased, lease
/// expired" straight to "in backoff". A claim that saw it in the first state in one read and in
/// the second in another would find it neither holding its key back nor claimable, and take the
/// key's younger rows ahead of it (guarantee §2.5). Seen in a 30-minute proof run; here the
/// former leader flips the row between the two states as fast as it can while this relay
/// claims: no claim may ever return the younger row without the older one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_leaders_late_backoff_never_lets_a_younger_row_of_its_key_ahead() {
    let (app, db) = app_without_relay().await;
    app.insert_rows("race-key", &app.topic, 2).await;
    lead_the_one_shard(&app.db).await;
    let ids = ids_of(&app.db, "race-key").await;
    let (older, younger) = (ids[0], ids[1]);
    let former = "formerleader";
    let leased_expired = format!(
        "UPDATE outbox_event SET lease_owner = '{former}', \
         lease_until = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND, \
         available_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND WHERE id = {older}"
    );
    app.db
        .execute_unprepared(&leased_expired)
        .await
        .expect("the former leader's expired lease");

    let stop = tokio_util::sync::CancellationToken::new();
    let flipper = {
        let (db, stop) = (db.clone(), stop.clone());
        tokio::spawn(async move {
            let mut flips = 0u64;
            while !stop.is_cancelled() {
                retry_deadlocks(|| {
                    store::back_off(
                        &db,
                        older,
                        former,
                        Duration::from_secs(3600),
                        false,
                        "purged",
                    )
                })
                .await;
                retry_deadlocks(|| db.execute_unprepared(&leased_expired)).await;
                flips += 1;
            }
            flips
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (mut claims, mut breaches) = (0u64, Vec::new());
    while claims < 1_000 && tokio::time::Instant::now() < deadline {
        let (_, rows) = retry_deadlocks(|| {
            store::claim(
                &db,
                OWNER,
                1,
                Duration::from_secs(60),
                100,
                &[],
                LeaseMode::NoWait,
            )
        })
        .await;
        let taken: Vec<i64> = rows.iter().map(|r| r.id).collect();
        if taken.contains(&younger) && !taken.contains(&older) {
            breaches.push(claims);
        }
        retry_deadlocks(|| store::release(&db, OWNER, None)).await;
        claims += 1;
    }
    stop.cancel();
    let flips = flipper.await.expect("flipper");
    assert!(
        flips > 100,
        "the race ran ({flips} flips in {claims} claims)"
    );
    assert!(
        breaches.is_empty(),
        "{} of {claims} claims took row {younger} without the older row {older} of its key \
         (first at claim {})",
        breaches.len(),
        breaches[0]
    );
    app.stop().await.expect("clean stop");
}

/// An app whose relay does not run (the test claims itself), and a pool of the service's own
/// kind on its database.
async fn app_without_relay() -> (TestApp, Db) {
    let mut settings = test_settings().await;
    settings.relay.enabled = false;
    let app = spawn_app_with(settings.clone()).await;
    let db = pool::connect(&settings.database).await.expect("pool");
    (app, db)
}

/// Runs `op` again while InnoDB picks it as a deadlock victim (it did nothing then).
async fn retry_deadlocks<T, F, Fut>(mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sea_orm::DbErr>>,
{
    loop {
        match op().await {
            Ok(value) => return value,
            Err(e) if e.to_string().contains("1213") => continue,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Makes [`OWNER`] the leader of the one shard for ten minutes, as its relay would be.
async fn lead_the_one_shard(db: &DatabaseConnection) {
    db.execute_unprepared(&format!(
        "INSERT INTO relay_shard (shard, owner, lease_until) \
         VALUES (0, '{OWNER}', UTC_TIMESTAMP(6) + INTERVAL 10 MINUTE)"
    ))
    .await
    .expect("lead the one shard");
}

/// The ids of `key`'s rows, in id order.
async fn ids_of(db: &DatabaseConnection, key: &str) -> Vec<i64> {
    db.query_all_raw(Statement::from_string(
        DbBackend::MySql,
        format!("SELECT id FROM outbox_event WHERE msg_key = '{key}' ORDER BY id"),
    ))
    .await
    .expect("ids")
    .iter()
    .map(|r| r.try_get_by_index::<i64>(0).expect("id"))
    .collect()
}
