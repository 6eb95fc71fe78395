//! What a join's transaction does before and while it holds its campaign's row (docs/design.md
//! §23 "The transaction", §10 "Serial sections"): the participations go in before the guarded
//! decrement, so the row is held only for the deadlines, the outbox rows and the COMMIT; the
//! outbox rows go in under the row's lock, which keeps a key's outbox ids in commit order
//! (§2.5), in one statement however many they are (staged before the lock); and the window's end
//! is judged under the lock, whenever the write began (§2.1).

use sea_orm::{ConnectionTrait, IsolationLevel, TransactionTrait};

use crate::spawn::{spawn_app, spawn_app_with, test_settings, with_relay, TestApp};

/// What the join's still-open transaction has written so far, read without waiting for it:
/// (participation rows, outbox rows) of the campaign.
async fn uncommitted_rows(app: &TestApp, campaign: i64) -> (i64, i64) {
    let peek = app
        .db
        .begin_with_config(Some(IsolationLevel::ReadUncommitted), None)
        .await
        .expect("begin a read-uncommitted transaction");
    let count = |sql: String| {
        let peek = &peek;
        async move {
            let row = peek
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::MySql,
                    sql,
                ))
                .await
                .expect("count")
                .expect("a row");
            row.try_get_by_index::<i64>(0).expect("a count")
        }
    };
    let participations = count(format!(
        "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}"
    ))
    .await;
    let events = count(format!(
        "SELECT COUNT(*) FROM outbox_event WHERE msg_key = '{campaign}' \
         AND event_type = 'ParticipationAccepted'"
    ))
    .await;
    peek.rollback().await.expect("end the peek");
    (participations, events)
}

#[tokio::test]
async fn a_win_waiting_for_its_row_has_inserted_its_participation_and_not_its_event() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(10, 1).await;
    let blocker = app.lock_campaign(campaign).await;
    let join = app.spawn_join(campaign, 1, 1);
    app.wait_for_blocked_stock_updates(1).await;

    // Blocked on the row: its participation is in (outside the lock), its outbox row is not
    // (its id is taken under the lock, so ids follow commits).
    assert_eq!(uncommitted_rows(&app, campaign).await, (1, 0));

    blocker.commit().await.expect("release the row");
    let reply = join.await.expect("join task");
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(uncommitted_rows(&app, campaign).await, (1, 1));
    assert_eq!(app.remaining_stock(campaign).await, 9);
}

#[tokio::test]
async fn a_win_whose_write_began_before_the_end_but_locked_its_row_after_is_not_written() {
    let mut settings = test_settings().await;
    // The join waits for the row past the end: longer than the statement deadline's default.
    settings.database.statement_timeout = std::time::Duration::from_secs(30);
    let app = spawn_app_with(settings).await;
    let (campaign, ends_at) = app.campaign_ending_soon(5).await;

    let blocker = app.lock_campaign(campaign).await;
    let join = app.spawn_join(campaign, 1, 1);
    app.wait_for_blocked_stock_updates(1).await;
    // Its participation went in before the end; it reaches the row's lock after it.
    assert_eq!(uncommitted_rows(&app, campaign).await, (1, 0));
    crate::wait::sleep_past(ends_at).await;
    blocker.commit().await.expect("release the row");

    let reply = join.await.expect("join task");
    assert_eq!(reply.code(), "CAMPAIGN_ENDED", "{reply:?}");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 0);
    assert_eq!(app.remaining_stock(campaign).await, 5);
    assert_eq!(app.redis_stock(campaign).await, Some(5));
}

#[tokio::test]
async fn two_lanes_of_one_row_overlap_their_inserts_and_publish_the_key_in_commit_order() {
    let mut settings = with_relay(test_settings().await);
    settings.database.group_commit.max_batch = 4;
    settings.database.group_commit.row_lanes = 2;
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(60, 1).await;

    // The first win's lane waits for the held row; a full batch behind it opens a second lane
    // of the same row, whose batch inserts its participations and waits for the row too.
    let blocker = app.lock_campaign(campaign).await;
    let first = app.spawn_join(campaign, 1, 1);
    app.wait_for_blocked_stock_updates(1).await;
    let mut joins: Vec<_> = (2..=5).map(|u| app.spawn_join(campaign, u, 1)).collect();
    app.wait_for_blocked_stock_updates(2).await;
    assert_eq!(uncommitted_rows(&app, campaign).await, (5, 0));
    joins.extend((6..=80).map(|u| app.spawn_join(campaign, u, 1)));
    blocker.commit().await.expect("release the row");

    // Exactly the stock is sold, and the key's events go out in outbox id order, none skipped.
    let mut codes = std::collections::BTreeMap::new();
    for reply in std::iter::once(first).chain(joins) {
        let reply = reply.await.expect("join task");
        *codes.entry(reply.status).or_insert(0) += 1;
    }
    assert_eq!(codes.get(&201), Some(&60), "{codes:?}");
    assert_eq!(app.remaining_stock(campaign).await, 0);
    app.wait_for_outbox_drained(std::time::Duration::from_secs(30))
        .await;
    let messages = crate::kafka::read_topic(
        &app.kafka_bootstrap,
        &app.topic,
        60,
        std::time::Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        crate::kafka::assert_first_deliveries_in_order(&messages, &app.outbox_ids().await),
        60
    );
}

#[tokio::test]
async fn a_batch_whose_events_take_several_statements_writes_them_under_the_row_in_one() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(100, 1).await;
    let blocker = app.lock_campaign(campaign).await;
    let first = app.spawn_join(campaign, 1, 1);
    app.wait_for_blocked_stock_updates(1).await;
    // A batch of 32 (a list size), whose events would take more than one INSERT of at most
    // 12 KiB were they sent under the lock.
    let rest: Vec<_> = (2..=33).map(|u| app.spawn_join(campaign, u, 1)).collect();
    app.wait_for_queued_wins(campaign, 32).await;
    blocker.commit().await.expect("release the row");
    for reply in std::iter::once(first).chain(rest) {
        let reply = reply.await.expect("join task");
        assert_eq!(reply.status, 201, "{reply:?}");
    }

    // One statement reads the clock once: the first win's time, then the batch's one.
    let times = "SELECT COUNT(DISTINCT created_at) FROM outbox_event \
                 WHERE event_type = 'ParticipationAccepted'";
    assert_eq!(app.scalar(times).await, 2);
    // In the batch's order: each event's participation id above the one before.
    let out_of_order = "SELECT COUNT(*) FROM outbox_event a JOIN outbox_event b \
                        ON b.id > a.id AND CAST(b.aggregate_id AS SIGNED) < CAST(a.aggregate_id AS SIGNED)";
    assert_eq!(app.scalar(out_of_order).await, 0);
    assert_eq!(app.remaining_stock(campaign).await, 67);
}

#[tokio::test]
async fn a_smaller_batch_after_a_bigger_one_on_a_session_writes_only_its_own_staged_events() {
    let settings = test_settings().await;
    let url = settings.database.url.expose().to_string();
    let app = spawn_app_with(settings).await;
    // One connection, so every batch uses one session's staging table.
    let mut options = sea_orm::ConnectOptions::new(url);
    options.max_connections(1).min_connections(1);
    let session = sea_orm::Database::connect(options).await.expect("connect");
    session
        .execute_unprepared(firstcome::outbox::table::STAGE_TABLE)
        .await
        .expect("the staging table");
    let mut written = Vec::new();
    for (batch, size) in [(1, 40), (2, 30), (3, 1)] {
        let rows: Vec<_> = (0..size)
            .map(|_| {
                crate::db::outbox_row(
                    uuid::Uuid::now_v7(),
                    &app.topic,
                    &batch.to_string(),
                    format!("{{\"pad\":\"{}\"}}", "x".repeat(700)),
                )
            })
            .collect();
        written.extend(rows.iter().map(|r| r.event_id.to_string()));
        let txn = session.begin().await.expect("begin");
        let staged = firstcome::outbox::table::stage(&txn, &rows)
            .await
            .expect("stage");
        staged.insert(&txn).await.expect("insert");
        txn.commit().await.expect("commit");
    }

    let mut stored: Vec<(String, i64)> = app.outbox_ids().await.into_iter().collect();
    stored.sort_by_key(|&(_, id)| id);
    let stored: Vec<String> = stored.into_iter().map(|(event, _)| event).collect();
    assert_eq!(stored, written);
}
