//! One writer per campaign (docs/design.md §23): two instances agree on a campaign's writer and
//! every win of it commits there, wherever it was reserved; a win the writer never takes is
//! taken back and written where it was reserved; a win the writer took and never answered is
//! answered 503 and its unit comes back through the reconciler (§2.1: no unit lost, none sold
//! twice); one it committed without answering is answered from its row.
//!
//! The writer that never takes or never answers is a heartbeat the test writes for an instance
//! that does not exist, chosen to be the campaign's writer.

use std::time::{Duration, Instant};

use firstcome::write::writer::{directory::writer_among, forward::PATIENCE};
use futures::StreamExt;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use firstcome::{
    config::{RedisSettings, Settings},
    gate::{
        mailbox::{Mailbox, MailboxWait},
        Gate,
    },
};

use crate::{
    http::Reply,
    operations::redis_cluster::cluster_url,
    spawn::{spawn_app_with, test_settings, two_instances, TestApp},
    wait::wait_until,
};

/// A mark's life in these tests: longer than any of them.
const MARK_LIFE: Duration = Duration::from_secs(120);

/// The value of `name{reason="<reason>"}` among the app's metrics (0 before any).
fn handovers(app: &TestApp, reason: &str) -> u64 {
    let series = format!("firstcome_writer_handovers_total{{reason=\"{reason}\"}} ");
    (app.probe.metrics_text().lines())
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0.0, |v| v.parse::<f64>().expect("a number")) as u64
}

/// Waits until both instances name the same writer of `campaign`; returns (writer, other).
async fn agreed<'a>(a: &'a TestApp, b: &'a TestApp, campaign: i64) -> (&'a TestApp, &'a TestApp) {
    let seen = || (a.probe.writer_seen(campaign), b.probe.writer_seen(campaign));
    wait_until(
        "both instances name one writer",
        Duration::from_secs(10),
        || {
            let (sa, sb) = seen();
            async move { matches!((sa, sb), (Some(x), Some(y)) if x.0 == y.0 && x.1 != y.1) }
        },
    )
    .await;
    let (Some((writer, a_id)), _) = seen() else {
        unreachable!("routing is on");
    };
    match writer == a_id {
        true => (a, b),
        false => (b, a),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_win_of_a_campaign_commits_on_its_one_writer() {
    let (a, b) = two_instances().await;
    one_writer_sells_the_stock(&a, &b).await;
}

/// The same on a Redis Cluster: the mailboxes' scripts and blocking waits on its masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_win_of_a_campaign_commits_on_its_one_writer_over_a_redis_cluster() {
    let mut settings = test_settings().await;
    settings.redis.url = firstcome::config::Secret::new(cluster_url());
    settings.redis.cluster = true;
    let a = spawn_app_with(settings.clone()).await;
    settings.migrate_on_start = false;
    let b = spawn_app_with(settings).await;
    one_writer_sells_the_stock(&a, &b).await;
}

/// 200 users join a campaign of 100 over both instances: every win commits on the writer.
async fn one_writer_sells_the_stock(a: &TestApp, b: &TestApp) {
    let stock = 100;
    let campaign = a.open_campaign(stock, 1).await;
    let (writer, other) = agreed(a, b, campaign).await;

    let replies: Vec<Reply> = futures::stream::iter(1..=200i64)
        .map(|u| match u % 2 {
            0 => a.join(campaign, u, 1),
            _ => b.join(campaign, u, 1),
        })
        .buffered(50)
        .collect()
        .await;
    let wins = replies.iter().filter(|r| r.status == 201).count();
    assert!(
        (replies.iter()).all(|r| r.status == 201 || r.code() == "SOLD_OUT"),
        "{replies:?}"
    );
    assert_eq!(wins, stock as usize, "exactly the stock is sold");
    a.assert_outbox_matches_participations().await;
    // Every win committed in the writer's group commit; the other handed its wins over.
    assert_eq!(writer.group_commits().1, stock as u64);
    assert_eq!(other.group_commits(), (0, 0));
    assert!(handovers(other, "answered") > 0);
    assert_eq!(
        handovers(other, "taken_back") + handovers(other, "unanswered"),
        0
    );
}

/// An app whose campaign's writer is a heartbeat this test keeps fresh for an instance that does
/// not exist (the app's own view refreshes every second); the heartbeat stops with its token.
async fn app_behind_a_ghost(settings: Settings) -> (TestApp, i64, Ghost) {
    let gate = Gate::new(&settings.redis).expect("a gate");
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(1, 1).await;
    let (_, me) = app.probe.writer_seen(campaign).expect("routing is on");
    let ghost = (0..)
        .map(|i| format!("ghost{i}"))
        .find(|g| writer_among(campaign, &[g.as_str(), me.as_str()]) == Some(&g.as_str()))
        .expect("some ghost outranks the app");
    let writers = format!("{}writers", app.redis_prefix);
    let stop = CancellationToken::new();
    let (mut conn, beat, until) = (app.redis.clone(), ghost.clone(), stop.clone());
    tokio::spawn(async move {
        while !until.is_cancelled() {
            let now = chrono::Utc::now().timestamp_millis();
            let _: () = conn.hset(&writers, &beat, now).await.expect("HSET");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    wait_until(
        "the app names the ghost its writer",
        Duration::from_secs(10),
        || {
            let seen = app.probe.writer_seen(campaign);
            let ghost = ghost.clone();
            async move { seen.is_some_and(|(w, _)| w == ghost) }
        },
    )
    .await;
    (
        app,
        campaign,
        Ghost {
            id: ghost,
            gate,
            stop,
        },
    )
}

/// An instance that does not exist but for its heartbeat; its gate reaches the app's Redis.
struct Ghost {
    id: String,
    gate: Gate,
    stop: CancellationToken,
}

#[tokio::test]
async fn a_win_its_writer_never_takes_is_taken_back_and_written_where_it_was_reserved() {
    let (app, campaign, ghost) = app_behind_a_ghost(test_settings().await).await;
    let started = Instant::now();
    let reply = app.join(campaign, 7, 1).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert!(
        started.elapsed() >= PATIENCE,
        "it waited for the writer first"
    );
    assert_eq!(handovers(&app, "taken_back"), 1);
    assert_eq!(app.group_commits().1, 1, "written here");
    let inbox = format!("{}{{i:{}}}:inbox", app.redis_prefix, ghost.id);
    let left: i64 = app.redis.clone().llen(&inbox).await.expect("LLEN");
    assert_eq!(left, 0, "nothing left in the ghost's inbox");
    app.assert_outbox_matches_participations().await;
    ghost.stop.cancel();
}

#[tokio::test]
async fn a_win_its_writer_took_and_never_answered_comes_back_through_the_reconciler() {
    let mut settings = test_settings().await;
    settings.http.request_timeout = Duration::from_millis(1_000);
    settings.redis.reservation_timeout = Duration::from_millis(2_000);
    settings.database.statement_timeout = Duration::from_millis(1_000);
    let (app, campaign, ghost) = app_behind_a_ghost(settings).await;
    // The ghost takes the win as a writer does (its mark says taken) and never writes it.
    let (gate, id) = (ghost.gate.clone(), ghost.id.clone());
    let taken = tokio::spawn(async move {
        loop {
            let took = gate
                .take_handed(&id, Vec::new(), 16, MARK_LIFE)
                .await
                .expect("take");
            if !took.wins.is_empty() {
                return took.wins;
            }
            tokio::task::yield_now().await;
        }
    });
    let reply = app.join(campaign, 7, 1).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(taken.await.expect("the ghost took the win").len(), 1);
    wait_until(
        "the origin gives up on the writer",
        Duration::from_secs(10),
        || async { handovers(&app, "unanswered") == 1 },
    )
    .await;
    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 0);
    assert_eq!(app.group_commits(), (0, 0), "nothing was written here");
    // The reservation stayed open for the reconciler (its own pass runs every 200 ms here, with
    // the 2 s timeout; this one makes sure): the unit is back, and it sells once.
    app.reconcile(Duration::ZERO).await;
    ghost.stop.cancel();
    wait_until(
        "the app writes its own campaign again",
        Duration::from_secs(10),
        || {
            let seen = app.probe.writer_seen(campaign);
            async move { seen.is_some_and(|(w, me)| w == me) }
        },
    )
    .await;
    assert_eq!(app.join(campaign, 8, 1).await.status, 201);
    assert_eq!(app.join(campaign, 9, 1).await.code(), "SOLD_OUT");
}

/// Redis lost a handed-over win's mark (a restart without persistence, a failover before the
/// replica had it) after its writer took the win and before it answered: the origin takes the
/// win back as never taken and writes it too. MySQL refuses that second write (the user's key
/// with stock left, the stock itself with none), and the join is answered 201 from the writer's
/// row, which carries this win's event id, not ALREADY_PARTICIPATED or SOLD_OUT for the user's
/// own win (the 30-minute proof run of seed 159 found the first).
#[tokio::test]
async fn a_win_whose_mark_redis_lost_after_its_writer_took_it_is_answered_as_written() {
    let (a, b) = two_instances().await;
    for stock in [2, 1] {
        answered_as_written_after_a_lost_mark(&a, &b, stock).await;
    }
}

async fn answered_as_written_after_a_lost_mark(a: &TestApp, b: &TestApp, stock: i64) {
    let campaign = a.open_campaign(stock, 1).await;
    let (writer, origin) = agreed(a, b, campaign).await;
    let (writer_id, _) = writer.probe.writer_seen(campaign).expect("routing is on");
    let taken_back = handovers(origin, "taken_back");
    let hold = &writer.hooks.commit;
    hold.arm();
    let (reply, ()) = tokio::join!(origin.join(campaign, 7, 1), async {
        // The writer took the win (its mark says so) and holds its batch before the COMMIT.
        tokio::time::timeout(Duration::from_secs(20), hold.wait_reached())
            .await
            .expect("the writer writes the handed-over win");
        let mut redis = a.redis.clone();
        let marks = format!("{}{{i:{writer_id}}}:m:*", a.redis_prefix);
        let mut taken = Vec::new();
        for key in redis.keys::<_, Vec<String>>(&marks).await.expect("KEYS") {
            let mark: String = redis.get(&key).await.expect("GET");
            if mark == "taken" {
                taken.push(key);
            }
        }
        assert_eq!(taken.len(), 1, "the win's mark: {taken:?}");
        let _: () = redis.del(&taken).await.expect("DEL");
        wait_until(
            "the origin takes the win back",
            Duration::from_secs(10),
            || async { handovers(origin, "taken_back") == taken_back + 1 },
        )
        .await;
        hold.release();
    });
    assert_eq!(reply.status, 201, "stock {stock}: {reply:?}");
    let row =
        format!("SELECT id FROM participation WHERE campaign_id = {campaign} AND user_id = 7");
    assert_eq!(reply.body["participationId"], a.scalar(&row).await);
    let wins = format!("SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}");
    assert_eq!(a.scalar(&wins).await, 1);
    a.assert_outbox_matches_participations().await;
}

/// The writer committed a handed-over win and did not answer (it stopped after its COMMIT, or
/// Redis lost its reply; here the reply is held): the origin finds the win's row and answers 201
/// from it, instead of waiting out the win's deadline and answering 503 at the request's timeout
/// (the 30-minute proof run of seed 160 left 14 joins of writers killed or stopped to 503s).
#[tokio::test]
async fn a_win_its_writer_committed_without_answering_is_answered_from_its_row() {
    let (a, b) = two_instances().await;
    let campaign = a.open_campaign(1, 1).await;
    let (writer, origin) = agreed(&a, &b, campaign).await;
    let hold = &writer.hooks.handover_reply;
    hold.arm();
    let (reply, ()) = tokio::join!(origin.join(campaign, 7, 1), async {
        tokio::time::timeout(Duration::from_secs(20), hold.wait_reached())
            .await
            .expect("the writer writes the handed-over win");
    });
    assert_eq!(reply.status, 201, "{reply:?}");
    let row =
        format!("SELECT id FROM participation WHERE campaign_id = {campaign} AND user_id = 7");
    assert_eq!(reply.body["participationId"], a.scalar(&row).await);
    assert_eq!(handovers(origin, "found_written"), 1);
    assert_eq!(
        handovers(origin, "answered") + handovers(origin, "unanswered"),
        0
    );
    // The writer's late reply answers nobody; the unit stays sold once.
    hold.release();
    assert_eq!(origin.join(campaign, 8, 1).await.code(), "SOLD_OUT");
    assert_eq!(writer.join(campaign, 9, 1).await.code(), "SOLD_OUT");
    a.assert_outbox_matches_participations().await;
}

/// The hand-over's crux on Redis itself: a win is written by exactly one side. Taken by the
/// writer, it cannot be taken back; taken back first, it is dropped by the writer even when its
/// push lands only afterwards (a push delayed by a Redis stall).
#[tokio::test]
async fn a_handed_over_win_is_either_the_writers_or_its_origins_never_both() {
    let mut settings = test_settings().await;
    either_side_never_both(&settings.redis).await;
    settings.redis.url = firstcome::config::Secret::new(cluster_url());
    settings.redis.cluster = true;
    either_side_never_both(&settings.redis).await;
}

async fn either_side_never_both(redis: &RedisSettings) {
    let gate = &Gate::new(redis).expect("a gate");
    let wait = MailboxWait::new(redis).expect("a connection for the wait");
    let item = |t: u32| format!("origin:{t}|{{}}");

    gate.post("w", Mailbox::Inbox, &[item(1)])
        .await
        .expect("post");
    let took = gate
        .take_handed("w", Vec::new(), 16, MARK_LIFE)
        .await
        .expect("take");
    assert_eq!(took.wins, vec![item(1)]);
    let back = gate.take_back(("w", "origin:1"), &item(1), MARK_LIFE).await;
    assert!(!back.expect("take back"), "the writer has it");

    gate.post("w", Mailbox::Inbox, &[item(2)])
        .await
        .expect("post");
    let back = gate.take_back(("w", "origin:2"), &item(2), MARK_LIFE).await;
    assert!(back.expect("take back"), "still in the inbox: back");
    let took = gate
        .take_handed("w", Vec::new(), 16, MARK_LIFE)
        .await
        .expect("take");
    assert!(took.wins.is_empty(), "{took:?}");

    let back = gate.take_back(("w", "origin:3"), &item(3), MARK_LIFE).await;
    assert!(back.expect("take back"), "never arrived: back");
    gate.post("w", Mailbox::Inbox, &[item(3), item(4)])
        .await
        .expect("post");
    // Popped by the writer's blocking wait (item 3), then marked with the rest; the replies
    // waiting come with them.
    gate.post("w", Mailbox::Replies, &["reply".to_string()])
        .await
        .expect("post a reply");
    let keys = [gate.mailbox_key("w", Mailbox::Inbox)];
    let (_, popped) = (wait.next(&keys, 1).await).expect("pop").expect("an item");
    assert_eq!(popped, vec![item(3)]);
    let took = (gate.take_handed("w", popped, 16, MARK_LIFE).await).expect("take");
    assert_eq!(
        took.wins,
        vec![item(4)],
        "the late push is dropped, the next one taken"
    );
    assert_eq!(took.replies, vec!["reply".to_string()]);
}
