//! A commit in doubt settled (docs/design.md §2.1, §18.1, `write::in_doubt`): the session
//! that sent the COMMIT is ended if it is still there, then the wins MySQL has are kept and
//! exactly the others' units go back to the gate, each once.

use std::time::Duration;

use firstcome::write::{
    in_doubt::{InDoubt, Member, Verdict},
    transaction::{self, Holds},
};
use sea_orm::{ConnectionTrait, DbErr, Statement, TransactionTrait};

use super::faults::{open_sale, reconciled_sale, reserve_directly};
use crate::spawn::TestApp;

#[tokio::test]
async fn a_commit_in_doubt_ends_its_session_keeps_the_wins_mysql_has_and_gives_back_the_rest() {
    // Five units, user 1's win in it; the app's own reconciler does not run during the test.
    let (app, campaign, epoch) = reconciled_sale().await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    // User 2's reservation, and its win committed in MySQL whose answer was lost.
    reserve_directly(&app, campaign, epoch, 2, now_ms).await;
    let mut committed = app.win_to_write(campaign, 2, 2, far_deadline()).await;
    committed.reserved_at_ms = now_ms;
    let db = app.probe.api_pool();
    transaction::write(
        &db,
        &committed,
        &Holds::default(),
        &firstcome::hooks::NoHooks,
    )
    .await
    .expect("user 2's win");
    // User 3's reservation, whose transaction never committed.
    reserve_directly(&app, campaign, epoch, 3, now_ms + 1).await;
    let mut lost = app.win_to_write(campaign, 3, 3, far_deadline()).await;
    lost.reserved_at_ms = now_ms + 1;
    // A session still in its transaction, holding the campaign's row as a COMMIT in flight does.
    let (held, session) = open_transaction_on(&app, campaign).await;

    let batch = InDoubt::new(session, DbErr::Custom("the COMMIT went unanswered".into()));
    batch.settle(
        db,
        gate_of(&app),
        [&committed, &lost]
            .iter()
            .map(|w| Member {
                entry: w.entry,
                event_id: w.event_id,
                reserved_at_ms: w.reserved_at_ms,
            })
            .collect(),
    );
    let within = Duration::from_secs(10);
    assert!(matches!(
        batch.verdict(campaign, 2, within).await,
        Some(Verdict::Committed(p)) if p.user_id == 2
    ));
    assert!(matches!(
        batch.verdict(campaign, 3, within).await,
        Some(Verdict::NotCommitted)
    ));

    // The session was ended: its transaction can do nothing more.
    let after = held.execute_unprepared("SELECT 1").await;
    assert!(after.is_err(), "the session in doubt was killed: {after:?}");
    // Nothing withheld, nothing given twice: the gate has MySQL's stock (5 − users 1 and 2), no
    // reservation open, user 2 still refused and user 3 free to win.
    assert_eq!(app.redis_stock(campaign).await, Some(3));
    assert_eq!(app.remaining_stock(campaign).await, 3);
    assert!(app.redis_has_user(campaign, 2).await);
    assert!(!app.redis_has_user(campaign, 3).await);
    assert_eq!(app.join(campaign, 3, 1).await.status, 201);
    app.assert_no_drift(campaign).await;
}

fn far_deadline() -> std::time::Instant {
    std::time::Instant::now() + Duration::from_secs(3_600)
}

/// A transaction of the service's own user, on its database, holding the campaign's row, and
/// the server's id of its session.
async fn open_transaction_on(app: &TestApp, campaign: i64) -> (sea_orm::DatabaseTransaction, u64) {
    let held = app.db.begin().await.expect("BEGIN");
    held.execute_unprepared(&format!(
        "UPDATE campaign SET updated_at = updated_at WHERE id = {campaign}"
    ))
    .await
    .expect("UPDATE");
    let row = held
        .query_one_raw(Statement::from_string(
            held.get_database_backend(),
            "SELECT CONNECTION_ID()",
        ))
        .await
        .expect("CONNECTION_ID")
        .expect("a row");
    (held, row.try_get_by_index::<u64>(0).expect("an id"))
}

/// A gate over the app's Redis and key prefix.
fn gate_of(app: &TestApp) -> firstcome::gate::Gate {
    let mut settings = firstcome::config::Settings::from_pairs(&[]).expect("default settings");
    settings.redis.url = firstcome::config::Secret::new(crate::spawn::redis_url());
    settings.redis.key_prefix = app.redis_prefix.clone();
    firstcome::gate::Gate::new(&settings.redis).expect("gate")
}

/// A purchase's items in doubt (docs/design.md §22): one user's wins of two campaigns in one
/// transaction are settled as a batch is, each by its own campaign: the one MySQL has is kept,
/// the other's unit goes back to its own gate.
#[tokio::test]
async fn a_commit_in_doubt_over_several_campaigns_settles_each_in_its_own() {
    let (app, kept, kept_epoch) = reconciled_sale().await;
    let (lost, lost_epoch) = open_sale(&app).await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    reserve_directly(&app, kept, kept_epoch, 2, now_ms).await;
    let mut committed = app.win_to_write(kept, 2, 2, far_deadline()).await;
    committed.reserved_at_ms = now_ms;
    let db = app.probe.api_pool();
    transaction::write(
        &db,
        &committed,
        &Holds::default(),
        &firstcome::hooks::NoHooks,
    )
    .await
    .expect("user 2's win in the first campaign");
    reserve_directly(&app, lost, lost_epoch, 2, now_ms + 1).await;
    let mut uncommitted = app.win_to_write(lost, 2, 3, far_deadline()).await;
    uncommitted.reserved_at_ms = now_ms + 1;
    let (held, session) = open_transaction_on(&app, lost).await;

    let batch = InDoubt::new(session, DbErr::Custom("the COMMIT went unanswered".into()));
    let members = [&committed, &uncommitted].map(|w| Member {
        entry: w.entry,
        event_id: w.event_id,
        reserved_at_ms: w.reserved_at_ms,
    });
    batch.settle(db, gate_of(&app), members.to_vec());
    let within = Duration::from_secs(10);
    assert!(matches!(
        batch.verdict(kept, 2, within).await,
        Some(Verdict::Committed(p)) if p.campaign_id == kept
    ));
    assert!(matches!(
        batch.verdict(lost, 2, within).await,
        Some(Verdict::NotCommitted)
    ));
    drop(held);
    assert_eq!(
        app.redis_stock(kept).await,
        Some(3),
        "users 1 and 2 hold two"
    );
    assert_eq!(
        app.redis_stock(lost).await,
        Some(4),
        "user 2's unit is back"
    );
    assert!(!app.redis_has_user(lost, 2).await);
    app.assert_no_drift(kept).await;
    app.assert_no_drift(lost).await;
}
