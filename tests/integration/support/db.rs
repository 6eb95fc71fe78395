//! The test's own view of the app's MariaDB database: one-integer queries, outbox rows written
//! by hand, row locks and triggers that inject faults, and the check that every participation
//! has exactly its outbox row.

use std::{collections::HashMap, time::Duration};

use firstcome::{
    events::{
        accepted::{AGGREGATE_PARTICIPATION, PARTICIPATION_ACCEPTED},
        headers,
    },
    outbox::{self, NewOutboxEvent, OutboxStatus},
    write::rows::NewParticipation,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{spawn::TestApp, wait::wait_until};

/// A PENDING outbox row written by hand, with the headers the service writes and a
/// test-specific `payload` (the relay sends whatever the row holds). Write it with
/// `outbox::table::insert`.
pub fn outbox_row(event_id: Uuid, topic: &str, key: &str, payload: String) -> NewOutboxEvent {
    NewOutboxEvent {
        event_id,
        aggregate_type: AGGREGATE_PARTICIPATION.into(),
        aggregate_id: "0".into(),
        event_type: PARTICIPATION_ACCEPTED.into(),
        topic: topic.into(),
        msg_key: key.into(),
        payload,
        headers: headers::stored(None),
        status: OutboxStatus::Pending,
    }
}

impl TestApp {
    /// A win as the group commit hands it to `write::transaction::write_all`: one unit
    /// of `campaign_id` for `user_id`, confirmed at once, on the app's topic, to be written
    /// before `commit_by`, as the campaign's gate of now would have reserved it (its
    /// generation).
    pub async fn win_to_write(
        &self,
        campaign_id: i64,
        user_id: i64,
        sequence: i64,
        commit_by: std::time::Instant,
    ) -> NewParticipation {
        let gate_gen = self
            .scalar(&format!(
                "SELECT gate_gen FROM campaign WHERE id = {campaign_id}"
            ))
            .await;
        NewParticipation {
            entry: firstcome::gate::Entry {
                campaign_id,
                user_id,
                quantity: 1,
                bucket: None,
                group: None,
            },
            sequence,
            gate_gen,
            reward_points: 0,
            event_id: Uuid::now_v7(),
            topic: self.topic.as_str().into(),
            traceparent: None,
            idempotency_key: None,
            confirm_within_seconds: 0,
            commit_by,
            ends_at: None,
            reserved_at_ms: chrono::Utc::now().timestamp_millis(),
            group: None,
        }
    }
    /// Locks the campaign's row in a transaction of the test's own, so the service's guarded
    /// stock UPDATEs wait for it until it ends.
    pub async fn lock_campaign(&self, campaign_id: i64) -> sea_orm::DatabaseTransaction {
        use sea_orm::TransactionTrait;
        let blocker = self.db.begin().await.expect("begin");
        blocker
            .execute_unprepared(&format!(
                "SELECT id FROM campaign WHERE id = {campaign_id} FOR UPDATE"
            ))
            .await
            .expect("lock the campaign row");
        blocker
    }

    /// Waits until `n` of the app's guarded stock UPDATEs run on this test's own database
    /// (blocked on a campaign row the test holds). Filtered by database, so another test's
    /// UPDATE on the same server cannot end the wait, and by the statement's exact opening.
    pub async fn wait_for_blocked_stock_updates(&self, n: i64) {
        self.wait_for_blocked("campaign", n).await;
    }

    /// As [`Self::wait_for_blocked_stock_updates`], for a bucketed campaign's guarded UPDATEs of
    /// a bucket row (docs/design.md §21).
    pub async fn wait_for_blocked_stock_updates_on_buckets(&self, n: i64) {
        self.wait_for_blocked("campaign_bucket", n).await;
    }

    async fn wait_for_blocked(&self, table: &str, n: i64) {
        let sql = format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND COMMAND <> 'Sleep' \
             AND INFO LIKE 'UPDATE {table} SET remaining_stock = remaining_stock - %'"
        );
        wait_until(
            &format!("{n} participation UPDATEs to block on a {table} row"),
            Duration::from_secs(20),
            || async { self.scalar(&sql).await == n },
        )
        .await;
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        scalar(&self.db, sql).await
    }

    pub async fn remaining_stock(&self, campaign_id: i64) -> i64 {
        self.scalar(&format!(
            "SELECT remaining_stock FROM campaign WHERE id = {campaign_id}"
        ))
        .await
    }

    /// `RELAY_SHARDS` of this app.
    pub fn settings_shards(&self) -> i64 {
        i64::from(self.shards)
    }

    /// Outbox rows by status.
    pub async fn outbox_count(&self, status: &str) -> i64 {
        self.scalar(&format!(
            "SELECT COUNT(*) FROM outbox_event WHERE status = '{status}'"
        ))
        .await
    }

    /// Waits until no outbox row is PENDING.
    pub async fn wait_for_outbox_drained(&self, timeout: Duration) {
        wait_until("every outbox row to leave PENDING", timeout, || async {
            self.outbox_count("PENDING").await == 0
        })
        .await;
    }

    /// Writes `count` outbox rows of one key by hand, committed together (the relay publishes
    /// whatever the outbox holds). Returns their event ids in id order.
    pub async fn insert_rows(&self, key: &str, topic: &str, count: usize) -> Vec<String> {
        self.insert_rows_as(key, topic, count, OutboxStatus::Pending)
            .await
    }

    /// `insert_rows` with another status (e.g. DEAD rows no relay must touch).
    pub async fn insert_rows_as(
        &self,
        key: &str,
        topic: &str,
        count: usize,
        status: OutboxStatus,
    ) -> Vec<String> {
        let rows: Vec<NewOutboxEvent> = (0..count)
            .map(|n| {
                let event_id = Uuid::now_v7();
                NewOutboxEvent {
                    status,
                    ..outbox_row(
                        event_id,
                        topic,
                        key,
                        json!({"eventId": event_id, "n": n}).to_string(),
                    )
                }
            })
            .collect();
        outbox::table::insert(&self.db, &rows)
            .await
            .expect("insert outbox rows");
        rows.iter().map(|r| r.event_id.to_string()).collect()
    }

    /// Outbox id of every event id (to check Kafka order against outbox order).
    pub async fn outbox_ids(&self) -> HashMap<String, i64> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                DbBackend::MySql,
                "SELECT event_id, id FROM outbox_event",
            ))
            .await
            .expect("query");
        rows.iter()
            .map(|r| {
                (
                    r.try_get_by_index::<String>(0).expect("event_id"),
                    r.try_get_by_index::<i64>(1).expect("id"),
                )
            })
            .collect()
    }
    /// Guarantee 2 (atomic event): every participation has exactly one outbox row, and every
    /// outbox row belongs to a participation, with a payload that matches it field by field.
    pub async fn assert_outbox_matches_participations(&self) {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                DbBackend::MySql,
                "SELECT p.id, p.campaign_id, p.user_id, p.quantity, p.sequence, o.payload, o.headers, o.event_id, \
                 o.msg_key, o.status \
                 FROM participation p LEFT JOIN outbox_event o \
                   ON o.aggregate_type = 'participation' AND o.aggregate_id = CAST(p.id AS CHAR)",
            ))
            .await
            .expect("join");
        let participations = self.scalar("SELECT COUNT(*) FROM participation").await;
        let outbox = self.scalar("SELECT COUNT(*) FROM outbox_event").await;
        assert_eq!(outbox, participations, "one outbox row per participation");
        assert_eq!(
            rows.len() as i64,
            participations,
            "no participation with two outbox rows"
        );
        let mut seen = HashMap::new();
        for row in rows {
            let id: i64 = row.try_get_by_index(0).expect("id");
            let payload: Option<String> = row.try_get_by_index(5).expect("payload");
            let payload: Value = serde_json::from_str(&payload.expect("outbox row exists"))
                .expect("payload is JSON");
            let stored: String = row.try_get_by_index(6).expect("headers");
            let event_id: String = row.try_get_by_index(7).expect("event_id");
            // Stored: only what the columns do not say; sent: every header, from both.
            let sent = headers::of_row(&event_id, "ParticipationAccepted", &stored);
            let stored = headers::from_stored(&stored);
            let key: String = row.try_get_by_index(8).expect("msg_key");
            let campaign_id: i64 = row.try_get_by_index(1).expect("campaign_id");
            assert_eq!(payload["participationId"], json!(id));
            assert_eq!(payload["campaignId"], json!(campaign_id));
            assert_eq!(
                payload["userId"],
                json!(row.try_get_by_index::<i64>(2).expect("user"))
            );
            assert_eq!(
                payload["quantity"],
                json!(row.try_get_by_index::<i32>(3).expect("quantity"))
            );
            assert_eq!(
                payload["sequence"],
                json!(row.try_get_by_index::<i64>(4).expect("sequence"))
            );
            assert_eq!(payload["eventType"], json!("ParticipationAccepted"));
            assert_eq!(payload["eventId"], json!(event_id));
            assert!(
                !stored.contains_key(headers::EVENT_ID),
                "the column says it"
            );
            assert_eq!(sent[headers::EVENT_ID], event_id);
            // A bucketed campaign's wins are keyed `<campaign>:<bucket>` (docs/design.md §21).
            let campaign_key = campaign_id.to_string();
            assert!(
                key == campaign_key || key.starts_with(&format!("{campaign_key}:")),
                "{key} is not campaign {campaign_id}'s"
            );
            assert!(seen.insert(event_id, id).is_none(), "event ids are unique");
        }
    }
}

/// The one integer `sql` returns.
pub async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::MySql, sql))
        .await
        .expect("query")
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("an integer")
}

/// Makes every outbox insert for `user_id` fail inside the participation transaction, after the
/// participation row was written: the transaction must roll back as a whole.
pub async fn fail_outbox_inserts_for(app: &TestApp, user_id: i64) {
    app.db
        .execute_unprepared(&format!(
            "CREATE TRIGGER inject_outbox_failure BEFORE INSERT ON outbox_event FOR EACH ROW \
             BEGIN IF NEW.payload LIKE '%\"userId\":{user_id},%' THEN \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'; END IF; END"
        ))
        .await
        .expect("create trigger");
}
