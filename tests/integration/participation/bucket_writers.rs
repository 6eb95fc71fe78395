//! Two writers of one bucketed campaign (docs/design.md §23 "Writers on one row"): a group-commit
//! batch over several buckets takes the bucket rows no other transaction holds and leaves its
//! wins of the others for its lane's next batch, instead of waiting on another writer's row.

use serde_json::json;

use sea_orm::DatabaseTransaction;
use tokio::task::JoinHandle;

use super::buckets::{bucketed_campaign, hold_bucket_row, mysql_remaining, users_of};
use crate::{
    http::Reply,
    spawn::{spawn_app, TestApp},
};

/// Another writer (the test's own transaction, returned) holds bucket 2's row while joins of
/// buckets 1, 2 and 3 form one batch of `campaign`'s one lane (4 buckets): bucket 0's row is
/// held too until they queue behind a join waiting on it, which then wins.
async fn batch_beside_a_held_row(
    app: &TestApp,
    campaign: i64,
) -> (DatabaseTransaction, [JoinHandle<Reply>; 3]) {
    let other_writer = hold_bucket_row(app, campaign, 2).await;
    let blocker = hold_bucket_row(app, campaign, 0).await;
    let first = app.spawn_join(campaign, users_of(0, 4, 1, 1)[0], 1);
    app.wait_for_blocked_stock_updates_on_buckets(1).await;
    let joins = [1, 2, 3].map(|b| app.spawn_join(campaign, users_of(b, 4, 1, 1)[0], 1));
    app.wait_for_queued_wins(campaign, 3).await;
    blocker.commit().await.expect("release bucket 0's row");
    assert_eq!(first.await.expect("join task").status, 201);
    (other_writer, joins)
}

/// Another writer (here the test's own transaction) holds bucket 2's row while a batch of
/// buckets 1, 2 and 3 commits: buckets 1 and 3 are answered at once, in one transaction, and
/// bucket 2's win waits for its row in the lane's next batch. Before, the whole batch waited on
/// bucket 2's row (until the lock wait timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_takes_the_rows_no_other_writer_holds_and_leaves_the_rest_for_the_next() {
    let app = spawn_app().await;
    let campaign = bucketed_campaign(&app, 400, 4, json!({})).await;
    let (other_writer, [one, two, three]) = batch_beside_a_held_row(&app, campaign).await;

    let (one, three) = (
        one.await.expect("join task"),
        three.await.expect("join task"),
    );
    assert_eq!(one.status, 201, "{one:?}");
    assert_eq!(three.status, 201, "{three:?}");
    assert_eq!(
        one.body["acceptedAt"], three.body["acceptedAt"],
        "buckets 1 and 3 in one transaction"
    );
    assert!(!two.is_finished(), "bucket 2's win waits for its row");
    assert_eq!(
        app.metric("firstcome_group_commit_deferred_total"),
        1,
        "one win was left for the next batch"
    );

    other_writer.commit().await.expect("release bucket 2's row");
    let two = two.await.expect("join task");
    assert_eq!(two.status, 201, "{two:?}");
    assert_eq!(mysql_remaining(&app, campaign).await, 396);
    app.assert_outbox_matches_participations().await;
}

/// The rows a batch took refuse it (bucket 3's row has no unit while its gate has dozens): the
/// wins of those rows are written one by one, each judged alone and answered, and the held
/// bucket's win is not among them: it waits for its row in the lane's next batch. (Written one
/// by one with the others, it would have waited on the held row, and the batch's answers with
/// it, until the lock wait timed out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_batch_falls_back_for_the_rows_it_took_and_leaves_the_held_one_waiting() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    let campaign = bucketed_campaign(&app, 400, 4, json!({})).await;
    app.db
        .execute_unprepared(&format!(
            "UPDATE campaign_bucket SET remaining_stock = 0 WHERE campaign_id = {campaign} AND bucket = 3"
        ))
        .await
        .expect("empty bucket 3's row");
    let (other_writer, [one, two, three]) = batch_beside_a_held_row(&app, campaign).await;

    let one = one.await.expect("join task");
    assert_eq!(one.status, 201, "{one:?}");
    assert!(!two.is_finished(), "bucket 2's win waits for its row");
    assert_eq!(app.metric("firstcome_group_commit_fallbacks_total"), 1);
    assert_eq!(app.metric("firstcome_group_commit_deferred_total"), 1);

    // Bucket 3's win, refused by its row, takes a unit from the pool and is written after
    // bucket 2's, in the same lane.
    other_writer.commit().await.expect("release bucket 2's row");
    for join in [two, three] {
        let reply = join.await.expect("join task");
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}"
        ))
        .await,
        4
    );
    app.assert_outbox_matches_participations().await;
}
