//! Group commit (docs/design.md §6 step 3) keeps every guarantee of §2: Exactly-N (§2.1) and the
//! atomic event (§2.2) with many wins per transaction, the guard's fallback when MySQL has less
//! stock than Redis, nothing half-done when a batch fails (§2.6), and per-key order (§2.5) with
//! batches of two instances.
//!
//! Batches are made on purpose: the test holds the campaign row, so the first win's transaction
//! waits for it and the wins behind it queue; the test waits until they have queued, then lets go.

use std::{collections::HashSet, time::Duration};

use futures::{stream, StreamExt};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::{
    http::{burst_users, winners, Reply},
    kafka::{assert_first_deliveries_in_order, read_topic},
    spawn::{spawn_app, spawn_pair_with, TestApp},
};

/// Joins `users` (one unit each) with the campaign's row held by the test until `queued` wins
/// wait behind the first, blocked one; returns the replies in the order of `users`.
async fn burst_behind_a_held_row(
    app: &TestApp,
    campaign: i64,
    users: &[i64],
    queued: usize,
) -> Vec<Reply> {
    let blocker = app.lock_campaign(campaign).await;
    let first = app.spawn_join(campaign, users[0], 1);
    app.wait_for_blocked_stock_updates(1).await;
    let rest: Vec<_> = users[1..]
        .iter()
        .map(|&u| app.spawn_join(campaign, u, 1))
        .collect();
    app.wait_for_queued_wins(campaign, queued).await;
    blocker.commit().await.expect("release the row");
    let mut replies = vec![first.await.expect("join task")];
    for reply in rest {
        replies.push(reply.await.expect("join task"));
    }
    replies
}

/// Each 201 carries its own participation id, sequence and event id.
fn assert_distinct_wins(replies: &[Reply]) {
    let won: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
    for field in ["participationId", "sequence", "eventId"] {
        let distinct: HashSet<String> = won.iter().map(|r| r.body[field].to_string()).collect();
        assert_eq!(distinct.len(), won.len(), "{field} is not unique per win");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_n_with_batched_wins_stock_50_burst_of_400_from_300_users() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(50, 1).await;
    let users = burst_users();

    // The first win waits on the held row; the other 49 winners queue behind it.
    let replies = burst_behind_a_held_row(&app, campaign, &users, 49).await;

    let winners = winners(&replies, &users);
    assert_eq!(winners.len(), 50, "exactly the stock is accepted");
    assert_distinct_wins(&replies);
    assert_eq!(
        app.group_commits(),
        (3, 50),
        "one transaction alone, then 48 of the 49 queued (the largest list size of db::sql), \
         then the last one"
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 50);
    assert_eq!(app.remaining_stock(campaign).await, 0);
    assert_eq!(app.redis_stock(campaign).await, Some(0));
    let status = app.get(&format!("/api/v1/campaigns/{campaign}")).await;
    assert_eq!(status.body["acceptedCount"], json!(50));
    app.assert_outbox_matches_participations().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_n_with_batched_wins_stock_5000_and_6000_distinct_users() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5_000, 1).await;

    // A first batch is made on purpose; after it, 200 requests in flight at a time form
    // batches as they come.
    let opening: Vec<i64> = (1..=101).collect();
    let mut replies = burst_behind_a_held_row(&app, campaign, &opening, 100).await;
    let rest: Vec<i64> = (102..=6_000).collect();
    replies.extend(
        stream::iter(rest.iter().map(|&u| app.join(campaign, u, 1)))
            .buffered(200)
            .collect::<Vec<_>>()
            .await,
    );
    let users: Vec<i64> = opening.into_iter().chain(rest).collect();

    let winners = winners(&replies, &users);
    assert_eq!(winners.len(), 5_000, "exactly the stock is accepted");
    assert_distinct_wins(&replies);
    let (transactions, wins) = app.group_commits();
    assert_eq!(wins, 5_000);
    assert!(
        transactions < 5_000,
        "wins shared transactions: {transactions} for 5,000"
    );
    assert_eq!(
        app.scalar("SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM participation")
            .await,
        5_000
    );
    assert_eq!(app.remaining_stock(campaign).await, 0);
    assert_eq!(app.redis_stock(campaign).await, Some(0));
    app.assert_outbox_matches_participations().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_the_guard_refuses_is_written_one_win_at_a_time() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(10, 1).await;

    // MySQL has 3 units while Redis believes 10 (e.g. a sale finished on MySQL by an operator).
    let blocker = app.lock_campaign(campaign).await;
    blocker
        .execute_unprepared(&format!(
            "UPDATE campaign SET remaining_stock = 3 WHERE id = {campaign}"
        ))
        .await
        .expect("lower MySQL's stock");
    let first = app.spawn_join(campaign, 1, 1);
    app.wait_for_blocked_stock_updates(1).await;
    let queued: Vec<_> = (2..=7).map(|u| app.spawn_join(campaign, u, 1)).collect();
    app.wait_for_queued_wins(campaign, 6).await;
    blocker.commit().await.expect("release the row");

    let first = first.await.expect("join task");
    assert_eq!(first.status, 201, "{first:?}");
    let mut codes = Vec::new();
    for reply in queued {
        let reply = reply.await.expect("join task");
        codes.push(match reply.status {
            201 => "CREATED".to_string(),
            _ => reply.code().to_string(),
        });
    }
    codes.sort();
    // The batch of 6 needed 6 of the 2 units left: refused, then one transaction per win.
    assert_eq!(
        codes,
        ["CREATED", "CREATED", "SOLD_OUT", "SOLD_OUT", "SOLD_OUT", "SOLD_OUT"],
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM participation").await,
        3,
        "exactly MySQL's stock won"
    );
    assert_eq!(app.remaining_stock(campaign).await, 0);
    // Compensated: Redis has MySQL's stock and none of the refused users.
    assert_eq!(app.redis_stock(campaign).await, Some(0));
    let won: HashSet<i64> = app
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::MySql,
            "SELECT user_id FROM participation",
        ))
        .await
        .expect("winners")
        .iter()
        .map(|row| row.try_get_by_index::<i64>(0).expect("user_id"))
        .collect();
    for user in 1..=7 {
        assert_eq!(
            app.redis_has_user(campaign, user).await,
            won.contains(&user),
            "user {user}"
        );
    }
    assert_eq!(
        app.metric("firstcome_group_commit_fallbacks_total"),
        1,
        "the fallback is counted"
    );
    app.assert_outbox_matches_participations().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_mid_batch_writes_no_member_and_releases_every_reservation() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(10, 1).await;
    // The outbox insert fails for user 666's event, inside the batch's transaction, after the
    // stock UPDATE and the participation insert ran.
    crate::db::fail_outbox_inserts_for(&app, 666).await;

    let blocker = app.lock_campaign(campaign).await;
    let first = app.spawn_join(campaign, 1, 1);
    app.wait_for_blocked_stock_updates(1).await;
    // Six members: a list size of db::sql, so the lane takes them as one batch.
    let members = [2, 3, 666, 4, 5, 6];
    let batch: Vec<_> = members
        .iter()
        .map(|&u| app.spawn_join(campaign, u, 1))
        .collect();
    app.wait_for_queued_wins(campaign, members.len()).await;
    blocker.commit().await.expect("release the row");

    assert_eq!(first.await.expect("join task").status, 201);
    for (reply, user) in batch.into_iter().zip(members) {
        let reply = reply.await.expect("join task");
        assert_eq!(
            (reply.status, reply.code()),
            (503, "DEPENDENCY_UNAVAILABLE"),
            "user {user}: {reply:?}"
        );
        assert!(!app.redis_has_user(campaign, user).await, "user {user}");
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM participation").await,
        1,
        "no member of the failed batch was written"
    );
    assert_eq!(app.remaining_stock(campaign).await, 9);
    assert_eq!(
        app.redis_stock(campaign).await,
        Some(9),
        "every reservation was released"
    );
    app.assert_outbox_matches_participations().await;

    // The members may try again: the units are still for sale.
    app.db
        .execute_unprepared("DROP TRIGGER inject_outbox_failure")
        .await
        .expect("drop trigger");
    assert_eq!(app.join(campaign, 666, 1).await.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_of_two_instances_publish_a_key_in_commit_order() {
    // Two writers of one campaign: what every instance writing its own wins gives, and what one
    // writer per campaign gives while two instances' views of the writer differ (design §21).
    let (a, b, broker) =
        spawn_pair_with(|s| s.database.group_commit.writer_per_campaign = false).await;
    let campaign = a.open_campaign(400, 1).await;

    // Both instances form batches behind the held row, then race for it; more joins keep
    // arriving at both while they commit.
    let blocker = a.lock_campaign(campaign).await;
    let firsts = [a.spawn_join(campaign, 1, 1), b.spawn_join(campaign, 2, 1)];
    a.wait_for_blocked_stock_updates(2).await;
    let queued: Vec<_> = (3..=102)
        .map(|u| {
            let app = if u % 2 == 0 { &a } else { &b };
            app.spawn_join(campaign, u, 1)
        })
        .collect();
    a.wait_for_queued_wins(campaign, 50).await;
    b.wait_for_queued_wins(campaign, 50).await;
    blocker.commit().await.expect("release the row");
    let more = stream::iter((103..=400).map(|u| {
        let app = if u % 2 == 0 { &a } else { &b };
        app.join(campaign, u, 1)
    }))
    .buffer_unordered(100)
    .collect::<Vec<_>>();
    for reply in more.await {
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    for reply in firsts.into_iter().chain(queued) {
        assert_eq!(reply.await.expect("join task").status, 201);
    }
    for app in [&a, &b] {
        let (transactions, wins) = app.group_commits();
        assert!(
            transactions < wins,
            "batches formed: {transactions} for {wins}"
        );
    }

    // Within the campaign, each transaction took its outbox ids under the row's lock, so they
    // commit in id order: the relays of both instances publish the campaign's first deliveries
    // in exactly that order, none skipped. (Participation ids are taken before the lock, so
    // two writers' batches may interleave them; docs/design.md §23 "The transaction".)
    let events = a
        .scalar("SELECT COUNT(*) FROM outbox_event WHERE event_type = 'ParticipationAccepted'")
        .await;
    assert_eq!(events, 400);
    a.wait_for_outbox_drained(Duration::from_secs(60)).await;
    let messages = read_topic(
        broker.bootstrap_servers(),
        &a.topic,
        400,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        assert_first_deliveries_in_order(&messages, &a.outbox_ids().await),
        400
    );
}

/// A batch's participation ids go to the right users whether the server returns them with the
/// insert (MariaDB's `INSERT … RETURNING`, what the suite's server answers) or they are read back
/// in the transaction (MySQL's way, forced here): each win's id is its user's row, and its outbox
/// event names that id (§2.2). The users come in no sorted order, so ids handed out in the
/// order of the users (or with the returned columns confused) would fail.
#[tokio::test]
async fn a_batchs_ids_are_each_users_own_whether_returned_or_read_back() {
    use firstcome::write::transaction::{self, Holds};
    let settings = crate::spawn::test_settings().await;
    let app = crate::spawn::spawn_app_with(settings.clone()).await;
    let db = firstcome::db::pool::connect(&settings.database)
        .await
        .expect("pool");
    assert!(db.insert_returning(), "MariaDB answers INSERT … RETURNING");
    let campaign = app.open_campaign(20, 1).await;
    for (db, users) in [
        (db.clone(), [105, 101, 104, 100, 103, 102]),
        (
            db.with_insert_returning(false),
            [205, 201, 204, 200, 203, 202],
        ),
    ] {
        let commit_by = std::time::Instant::now() + Duration::from_secs(60);
        let mut wins = Vec::with_capacity(users.len());
        for (i, &user) in users.iter().enumerate() {
            wins.push(
                app.win_to_write(campaign, user, user + i as i64, commit_by)
                    .await,
            );
        }
        let holds = Holds::default();
        let written = transaction::write_all(&db, &wins, &holds, &firstcome::hooks::NoHooks)
            .await
            .expect("the batch is written");
        assert_eq!(written.len(), wins.len());
        assert!(holds.get() > 0.0, "the rows' hold is measured");
        for (w, win) in written.iter().zip(&wins) {
            let user = win.entry.user_id;
            let row = app
                .scalar(&format!(
                    "SELECT id FROM participation WHERE campaign_id = {campaign} AND user_id = {user}"
                ))
                .await;
            assert_eq!(w.participation_id, row, "user {user}'s id");
            let event = app
                .scalar(&format!(
                    "SELECT CAST(JSON_VALUE(payload, '$.participationId') AS SIGNED) \
                     FROM outbox_event WHERE event_id = '{}'",
                    win.event_id
                ))
                .await;
            assert_eq!(event, row, "user {user}'s event names its participation");
        }
    }
}

/// A burst longer than a lane commits in one transaction queues instead of answering 503 (issue
/// 68: 5,000 joins at once on a 64-bucket campaign answered some SERVICE_BUSY on a slow machine):
/// a win waits in its lane as long as the lane keeps taking batches, and only a lane that took
/// none for `DB_ACQUIRE_TIMEOUT_MS` sends its wins away. Here every batch is held 150 ms at its
/// COMMIT, two wins a batch, with a 400 ms timeout: the last of ten queued wins waits ~750 ms,
/// and every one of them wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_behind_batches_that_commit_waits_instead_of_answering_busy() {
    let mut settings = crate::spawn::test_settings().await;
    settings.database.acquire_timeout = Duration::from_millis(400);
    settings.database.group_commit.max_batch = 2;
    settings.database.group_commit.window = Duration::ZERO;
    let app = crate::spawn::spawn_app_with(settings).await;
    let campaign = app.open_campaign(20, 1).await;
    let held = &app.hooks.commit;
    held.arm();
    let first = app.spawn_join(campaign, 1, 1);
    held.wait_reached().await;
    let queued: Vec<_> = (2..=11).map(|u| app.spawn_join(campaign, u, 1)).collect();
    app.wait_for_queued_wins(campaign, 10).await;
    // Each batch spends 150 ms at its COMMIT (the duration under test), then the next is held.
    // A win sent away as busy leaves its batch untaken: the wait for it fails the test.
    for batch in 2..=6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        held.arm();
        held.release();
        tokio::time::timeout(Duration::from_secs(20), held.wait_reached())
            .await
            .unwrap_or_else(|_| panic!("batch {batch} never reached its COMMIT"));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    held.release();
    let mut replies = vec![first.await.expect("join task")];
    for reply in queued {
        replies.push(reply.await.expect("join task"));
    }
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![201; 11], "{replies:?}");
    assert_eq!(app.remaining_stock(campaign).await, 9);
    app.assert_outbox_matches_participations().await;
}
