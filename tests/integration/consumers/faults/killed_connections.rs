//! The killed-connections run's pieces: rows the test locks so both consumers block
//! mid-transaction at a known event, finding the blocked consumer connections in PROCESSLIST,
//! killing them, and checking that exactly the events before the lock are applied.

use firstcome::config::consumers::ConsumerName;
use futures::future::join_all;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    Statement, TransactionTrait,
};
use serde_json::json;

use crate::{
    consumer_helpers::{applied_record, committed_offsets},
    spawn::TestApp,
    wait::wait_until,
};

use super::{applied_count, win, APPLIED};

/// Campaigns, one per round.
pub const ROUNDS: usize = 3;
/// Wins per campaign.
pub const WINS: i64 = 10;

/// A transaction of the test's own, on a connection of its own, holding the rows a consumer
/// must write for `campaign` (stats: its `campaign_stats` row) and `user` (rewards: their
/// `reward_account` row): uncommitted inserts, so the consumer's insert waits on the key lock
/// in the middle of its transaction (after its record: stats' inbox rows, rewards' grant).
/// Rolled back, it leaves nothing.
pub struct RowLock {
    /// The connection id, never killed.
    pub id: i64,
    txn: DatabaseTransaction,
    _conn: DatabaseConnection,
}

async fn lock_rows(url: &str, campaign: i64, user: i64) -> RowLock {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(1).sqlx_logging(false);
    let conn = Database::connect(opts).await.expect("connect");
    let txn = conn.begin().await.expect("begin");
    let id = txn
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT CAST(CONNECTION_ID() AS SIGNED)",
        ))
        .await
        .expect("connection id")
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .expect("an id");
    for sql in [
        format!(
            "INSERT INTO campaign_stats (campaign_id, accepted_count, accepted_quantity, first_accepted_at, \
             last_accepted_at, last_event_at, updated_at) VALUES ({campaign}, 0, 0, UTC_TIMESTAMP(6), \
             UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
        ),
        format!("INSERT INTO reward_account (user_id, points, updated_at) VALUES ({user}, 0, UTC_TIMESTAMP(6))"),
    ] {
        txn.execute_unprepared(&sql).await.expect(&sql);
    }
    RowLock {
        id,
        txn,
        _conn: conn,
    }
}

/// The two connections the consumers are blocked on, when both have applied exactly `applied`
/// events and are now waiting in the insert a [`RowLock`] holds: stats in `INSERT INTO
/// campaign_stats`, rewards in `INSERT INTO reward_account`. Only the consumers run those
/// statements (the API and relay pools never do; `exclude` has the test's own connections and
/// those already killed), so these are the consumer pool's connections, found by the test's
/// database in PROCESSLIST. With one event per batch, a consumer that applied exactly `applied`
/// and runs one of these inserts is in the batch of the locked event.
async fn blocked_consumers(app: &TestApp, applied: i64, exclude: &[i64]) -> Option<[i64; 2]> {
    for name in ConsumerName::ALL {
        if applied_count(app, name).await != applied {
            return None;
        }
    }
    let excluded: Vec<String> = exclude.iter().map(i64::to_string).collect();
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!(
                "SELECT CAST(ID AS SIGNED), LEFT(INFO, 60) FROM information_schema.PROCESSLIST \
                 WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND ID NOT IN ({}) \
                 AND COMMAND NOT IN ('Sleep', 'Killed') \
                 AND (INFO LIKE 'INSERT INTO campaign_stats %' OR INFO LIKE 'INSERT INTO reward_account %')",
                excluded.join(", ")
            ),
        ))
        .await
        .expect("processlist");
    let mut stats = Vec::new();
    let mut rewards = Vec::new();
    for row in rows {
        let id: i64 = row.try_get_by_index(0).expect("id");
        let info: String = row.try_get_by_index(1).expect("info");
        if info.starts_with("INSERT INTO campaign_stats") {
            stats.push(id);
        } else {
            rewards.push(id);
        }
    }
    match (stats.as_slice(), rewards.as_slice()) {
        (&[s], &[r]) => Some([s, r]),
        _ => None,
    }
}

impl RowLock {
    /// Rolls the transaction back: the rows are released and nothing is left.
    pub async fn release(self) {
        self.txn.rollback().await.expect("release the rows");
    }
}

/// `ROUNDS` campaigns with points. Campaign r's first win is user r*1000+1; a lock on that
/// campaign's stats row and that user's account stops both consumers at that event,
/// mid-transaction. Returns the campaigns and their locks, in order.
pub async fn open_campaigns_with_locked_rows(app: &TestApp, url: &str) -> (Vec<i64>, Vec<RowLock>) {
    let mut campaigns = Vec::new();
    let mut locks = Vec::new();
    for r in 1..=ROUNDS as i64 {
        let c = app
            .create_campaign(json!({"name": "c", "totalStock": WINS, "rewardPoints": r * 10}))
            .await["id"]
            .as_i64()
            .expect("id");
        locks.push(lock_rows(url, c, r * 1000 + 1).await);
        campaigns.push(c);
    }
    (campaigns, locks)
}

/// The backlog: each campaign's wins published before the next campaign's, its locked user's
/// win first.
pub async fn publish_the_backlog(app: &TestApp, campaigns: &[i64]) {
    for (r, c) in (1..).zip(campaigns) {
        win(app, *c, r * 1000 + 1).await;
        join_all((2..=WINS).map(|u| win(app, *c, r * 1000 + u))).await;
        app.wait_for_outbox_drained(APPLIED).await;
    }
}

/// Kills both consumers' connections while they are blocked mid-transaction at round `r`'s
/// locked event, twice; each time the retry must come back to the same event and block on it
/// again. Killed connections are added to `exclude`.
pub async fn kill_blocked_consumers_twice(
    app: &TestApp,
    r: usize,
    applied: i64,
    exclude: &mut Vec<i64>,
) {
    for kill in 0..=2 {
        let excluded: &[i64] = exclude;
        wait_until(
            &format!(
                "both consumers to block at campaign {}'s first event",
                r + 1
            ),
            APPLIED,
            || async { blocked_consumers(app, applied, excluded).await.is_some() },
        )
        .await;
        if kill == 2 {
            break;
        }
        let ids = blocked_consumers(app, applied, exclude)
            .await
            .expect("still blocked");
        for id in ids {
            match app
                .db
                .execute_unprepared(&format!("KILL CONNECTION {id}"))
                .await
            {
                Ok(_) => {}
                // It went away meanwhile (its lock wait timed out and the pool closed it):
                // the consumer failed and retries all the same.
                Err(e) if e.to_string().contains("Unknown thread id") => {}
                Err(e) => panic!("could not kill connection {id}: {e}"),
            }
            exclude.push(id);
        }
    }
}

/// Exactly the events of `earlier` campaigns (before the lock) are applied, each once; no offset
/// is committed past them.
pub async fn assert_exactly_the_earlier_campaigns_applied(
    app: &TestApp,
    earlier: &[i64],
    applied: i64,
) {
    let earlier: Vec<String> = earlier.iter().map(|c| format!("'{c}'")).collect();
    for name in ConsumerName::ALL {
        if !earlier.is_empty() {
            assert_eq!(
                app.scalar(&format!(
                    "SELECT COUNT(*) FROM {} r JOIN outbox_event o ON o.event_id = r.event_id \
                     WHERE o.msg_key IN ({})",
                    applied_record(name),
                    earlier.join(", ")
                ))
                .await,
                applied,
                "{name}: its record holds exactly the earlier campaigns' events"
            );
        }
        let committed = committed_offsets(&app.kafka_bootstrap, &name.group_id(), &app.topic).await;
        assert!(
            committed.get(&0).copied().unwrap_or(0) <= applied,
            "{name} committed {committed:?} with {applied} events applied"
        );
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM reward_grant").await,
        applied
    );
    assert_eq!(
        app.scalar("SELECT CAST(COALESCE(SUM(accepted_count), 0) AS SIGNED) FROM campaign_stats")
            .await,
        applied
    );
}
