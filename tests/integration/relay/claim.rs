//! The claim (`relay::store::claim`) and the outcome writes, called directly on a real MariaDB.
//! A claim writes nothing: it reads, in one snapshot, the due rows of the shards it leads, leaving
//! out the ids its relay holds (`relay::order`), its blocked keys and the keys held back by a row
//! in backoff; a backoff or DEAD mark is written only by the shard's leader (the fence).
//! Guarantees §2.5 (per-key order) and the relay's fencing (docs/design.md §7).

use std::{collections::BTreeSet, time::Duration};

use firstcome::{
    db::{pool, Db},
    relay::{
        held::HeldRuns,
        order::ClaimView,
        store::{self, ClaimedRow},
    },
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

use crate::spawn::{spawn_app_with, test_settings, TestApp};

const OWNER: &str = "claimtest001";

/// Every outbox column a claim might write, as one checksum: a claim must leave it as it was.
const STATE: &str =
    "SELECT CAST(CRC32(GROUP_CONCAT(id, status, attempts, COALESCE(lease_owner, '-'), \
     COALESCE(lease_until, '-'), available_at ORDER BY id)) AS SIGNED) FROM outbox_event";

async fn claim(db: &Db, view: &ClaimView) -> Vec<i64> {
    let rows = retry_deadlocks(|| store::claim(db, OWNER, 1, 100, view)).await;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {ids:?}");
    ids
}

fn held(ids: &[i64]) -> ClaimView {
    ClaimView {
        blocked: Vec::new(),
        held: HeldRuns::of(&ids.iter().copied().collect::<BTreeSet<i64>>()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_writes_nothing_and_leaves_out_exactly_the_rows_its_relay_holds() {
    let (app, db) = app_without_relay().await;
    app.insert_rows("key-a", &app.topic, 4).await;
    app.insert_rows("key-b", &app.topic, 3).await;
    app.insert_rows("key-a", &app.topic, 2).await;
    let (a, b) = (
        ids_of(&app.db, "key-a").await,
        ids_of(&app.db, "key-b").await,
    );
    let mut all = [a.clone(), b.clone()].concat();
    all.sort_unstable();

    assert!(
        claim(&db, &ClaimView::default()).await.is_empty(),
        "no shard led, nothing claimed"
    );
    lead_the_one_shard(&app.db).await;
    let before = app.scalar(STATE).await;
    // A committed row another transaction holds does not stop the claim: it takes no lock.
    let holder = app.db.begin().await.expect("begin");
    holder
        .execute_unprepared(&format!(
            "SELECT id FROM outbox_event WHERE id = {} FOR UPDATE",
            a[0]
        ))
        .await
        .expect("hold the oldest row");
    assert_eq!(
        claim(&db, &ClaimView::default()).await,
        all,
        "every due row"
    );
    holder.commit().await.expect("let the row go");

    // The relay holds a's first three rows and b's middle one: the rest is taken.
    let holding = [a[0], a[1], a[2], b[1]];
    let expected: Vec<i64> = all
        .iter()
        .copied()
        .filter(|id| !holding.contains(id))
        .collect();
    assert_eq!(claim(&db, &held(&holding)).await, expected);
    // Every row held: nothing.
    assert!(claim(&db, &held(&all)).await.is_empty());
    // A blocked key: none of its rows.
    let blocked = ClaimView {
        blocked: vec!["key-b".into()],
        ..held(&[a[0]])
    };
    assert_eq!(claim(&db, &blocked).await, a[1..].to_vec());
    assert_eq!(app.scalar(STATE).await, before, "no claim wrote anything");
    app.stop().await.expect("clean stop");
}

/// More runs of held ids than a statement names (`relay::held::MAX_HELD_RUNS`): the ids after
/// the last named run are left out by a bound, so a claim never takes a row the relay holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_more_held_runs_than_a_claim_names_it_takes_only_unheld_rows_below_them() {
    let (app, db) = app_without_relay().await;
    let runs = firstcome::relay::held::MAX_HELD_RUNS;
    app.insert_rows("many", &app.topic, 2 * runs + 20).await;
    lead_the_one_shard(&app.db).await;
    let ids = ids_of(&app.db, "many").await;
    // Every other row held: each held row is a run of its own.
    let holding: Vec<i64> = ids.iter().copied().step_by(2).collect();
    let taken = claim(&db, &held(&holding)).await;
    let bound = holding[runs];
    let expected: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !holding.contains(id) && *id < bound)
        .collect();
    assert_eq!(
        taken, expected,
        "the unheld rows below the first run not named"
    );
    app.stop().await.expect("clean stop");
}

/// The shard lease fences a row's outcome: a former leader that writes a backoff or a DEAD mark
/// late (it was paused with the row in flight) changes nothing once another instance leads the
/// shard, so it cannot put a row the new leader has in flight into backoff. The leader's own
/// backoff holds the key's younger rows back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_leaders_late_outcome_is_fenced_out_and_the_leaders_backoff_holds_its_key() {
    let (app, db) = app_without_relay().await;
    app.insert_rows("fence-key", &app.topic, 3).await;
    lead_the_one_shard(&app.db).await;
    let rows = store::claim(&db, OWNER, 1, 100, &ClaimView::default())
        .await
        .expect("claim");
    let row: &ClaimedRow = &rows[0];
    let before = app.scalar(STATE).await;
    let former = "formerleader";
    let wrote = store::back_off(&db, row, former, Duration::from_secs(3600), true, "late")
        .await
        .expect("a former leader's backoff");
    assert!(
        !wrote,
        "not written: the former leader does not lead the shard"
    );
    let wrote = store::mark_dead(&db, row, former, 9, "late")
        .await
        .expect("a former leader's DEAD mark");
    assert!(!wrote);
    assert_eq!(app.scalar(STATE).await, before, "nothing changed");

    let wrote = store::back_off(&db, row, OWNER, Duration::from_secs(3600), true, "refused")
        .await
        .expect("the leader's backoff");
    assert!(wrote);
    assert_eq!(
        app.scalar(&format!(
            "SELECT attempts FROM outbox_event WHERE id = {} AND status = 'PENDING' \
             AND lease_owner IS NULL AND lease_until > UTC_TIMESTAMP(6)",
            row.id
        ))
        .await,
        1,
        "in backoff, one attempt used"
    );
    assert!(
        claim(&db, &ClaimView::default()).await.is_empty(),
        "the row in backoff holds its younger rows back"
    );
    app.stop().await.expect("clean stop");
}

/// A row goes from "leased, lease expired" straight to "in backoff": what a former leader did,
/// writing its outcome late, when rows were leased one by one (a proof run's trace), and what a
/// relay of that earlier version can still do during an upgrade. A claim that saw it in the
/// first state in one read and in the second in another would find it neither holding its key
/// back nor claimable, and take the key's younger rows ahead of it (guarantee §2.5). Seen in a 30-minute proof run; here the
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

    // What an earlier version's backoff wrote, with its owner check.
    let backoff = format!(
        "UPDATE outbox_event SET attempts = attempts + 1, lease_owner = NULL, \
         lease_until = UTC_TIMESTAMP(6) + INTERVAL 1 HOUR, \
         available_at = UTC_TIMESTAMP(6) + INTERVAL 1 HOUR \
         WHERE id = {older} AND status = 'PENDING' AND lease_owner = '{former}'"
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let flipper = {
        let (db, stop) = (db.clone(), stop.clone());
        tokio::spawn(async move {
            let mut flips = 0u64;
            while !stop.is_cancelled() {
                retry_deadlocks(|| db.execute_unprepared(&backoff)).await;
                retry_deadlocks(|| db.execute_unprepared(&leased_expired)).await;
                flips += 1;
            }
            flips
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (mut claims, mut breaches) = (0u64, Vec::new());
    while claims < 1_000 && tokio::time::Instant::now() < deadline {
        let taken = claim(&db, &ClaimView::default()).await;
        if taken.contains(&younger) && !taken.contains(&older) {
            breaches.push(claims);
        }
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

/// A row in backoff holds back its own key and no other: the claim's quick read steps aside
/// while any row is in backoff (`relay::candidates`), and the full read still takes every other
/// key's due rows; once the backoff has run out, the row and its key's younger ones are taken
/// too, in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_in_backoff_holds_back_its_key_alone_and_is_taken_once_due() {
    let (app, db) = app_without_relay().await;
    app.insert_rows("key-a", &app.topic, 2).await;
    app.insert_rows("key-b", &app.topic, 2).await;
    lead_the_one_shard(&app.db).await;
    let (a, b) = (
        ids_of(&app.db, "key-a").await,
        ids_of(&app.db, "key-b").await,
    );
    // What `store::back_off` writes: the due time in `lease_until` too, no owner.
    let backoff = |due: &str| {
        format!(
            "UPDATE outbox_event SET attempts = 1, lease_owner = NULL, lease_until = {due}, \
             available_at = {due} WHERE id = {}",
            a[0]
        )
    };
    app.db
        .execute_unprepared(&backoff("UTC_TIMESTAMP(6) + INTERVAL 1 HOUR"))
        .await
        .expect("key-a's oldest row in backoff");
    assert_eq!(
        claim(&db, &ClaimView::default()).await,
        b,
        "key-b's rows, none of key-a's"
    );
    app.db
        .execute_unprepared(&backoff("UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"))
        .await
        .expect("key-a's backoff ran out");
    let mut all = [a.clone(), b.clone()].concat();
    all.sort_unstable();
    assert_eq!(claim(&db, &ClaimView::default()).await, all, "every row");
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
