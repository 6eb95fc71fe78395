//! Helpers of the consumer tests: consumer settings, producing raw messages, reading a group's
//! committed offsets, and the check that every consumer's tables agree with `participation`.

use std::{collections::BTreeMap, time::Duration};

use firstcome::{
    config::{GroupProtocol, Settings},
    consumer::{ConsumerName, ConsumerReport},
    outbox::{headers, Headers},
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Offset, TopicPartitionList,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::{kafka::Consumed, spawn::TestApp, wait::wait_until};

/// A child process of a test (`firstcome consume`, a broker host, ...). Dropping it kills and
/// reaps the process, so a failed assertion leaves nothing running on the test's database or ports.
pub struct ChildProcess {
    pub child: std::process::Child,
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // Errors mean it already exited and was reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both consumers on, KIP-848 groups, fast retries, offsets committed after every batch.
pub fn with_consumers(mut s: Settings) -> Settings {
    s.consumers.enabled = ConsumerName::ALL.to_vec();
    s.consumers.group_protocol = Some(GroupProtocol::Consumer);
    s.consumers.backoff_base = Duration::from_millis(20);
    s.consumers.backoff_cap = Duration::from_millis(200);
    s.consumers.commit_interval = Duration::ZERO;
    s
}

/// A message to produce as is (key, value, headers).
#[derive(Debug, Clone)]
pub struct Raw {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
}

impl From<&Consumed> for Raw {
    fn from(m: &Consumed) -> Self {
        Self {
            key: Some(m.key.clone().into_bytes()),
            value: Some(m.payload.clone().into_bytes()),
            headers: m.headers.clone(),
        }
    }
}

/// Produces `messages` in order (an idempotent producer: per-partition order kept) and waits for
/// every ack.
pub async fn produce(bootstrap: &str, topic: &str, messages: &[Raw]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut acks = Vec::with_capacity(messages.len());
    for m in messages {
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).headers(headers::to_kafka(&m.headers, &[]));
        if let Some(k) = &m.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &m.value {
            record = record.payload(v.as_slice());
        }
        acks.push(producer.send_result(record).expect("enqueued"));
    }
    for ack in acks {
        ack.await
            .expect("delivery report")
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
}

/// The offsets `group` committed for `topic` (partition → next offset; absent when none).
pub async fn committed_offsets(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let (bootstrap, group, topic) = (bootstrap.to_string(), group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("metadata");
        let mut tpl = TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            tpl.add_partition(&topic, p.id());
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    })
    .await
    .expect("committed offsets task")
}

/// The end offset of every partition of `topic`.
pub async fn end_offsets(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("metadata");
        metadata.topics()[0]
            .partitions()
            .iter()
            .map(|p| {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, p.id(), Duration::from_secs(10))
                    .expect("watermarks");
                (p.id(), high)
            })
            .collect()
    })
    .await
    .expect("watermarks task")
}

impl TestApp {
    /// The report of a consumer running in this app.
    pub fn consumer(&self, name: ConsumerName) -> std::sync::Arc<ConsumerReport> {
        self.probe
            .consumer(name)
            .expect("the consumer runs in this app")
    }

    /// Waits until both consumers applied every participation (by inbox rows).
    pub async fn wait_for_consumers(&self, timeout: Duration) {
        Tables(&self.db).wait_for_consumers(timeout).await
    }

    /// See [`Tables::assert_consumers_match_participations`].
    pub async fn assert_consumers_match_participations(&self) {
        Tables(&self.db)
            .assert_consumers_match_participations()
            .await
    }

    pub async fn int_rows(&self, sql: &str) -> Vec<Vec<Option<i64>>> {
        Tables(&self.db).int_rows(sql).await
    }
}

/// A test database's tables, read for assertions (an in-process app's or a child process's).
pub struct Tables<'a>(pub &'a sea_orm::DatabaseConnection);

impl Tables<'_> {
    async fn scalar(&self, sql: &str) -> i64 {
        crate::db::scalar(self.0, sql).await
    }

    /// Rows of `sql` as vectors of integers (NULL as `None`), for comparing tables.
    pub async fn int_rows(&self, sql: &str) -> Vec<Vec<Option<i64>>> {
        let rows = self
            .0
            .query_all_raw(Statement::from_string(DbBackend::MySql, sql))
            .await
            .expect("query");
        rows.iter()
            .map(|r| {
                let n = r.column_names().len();
                (0..n)
                    .map(|i| r.try_get_by_index::<Option<i64>>(i).expect("an integer"))
                    .collect()
            })
            .collect()
    }

    /// Waits until both consumers applied every participation (by inbox rows).
    pub async fn wait_for_consumers(&self, timeout: Duration) {
        let wins = self.scalar("SELECT COUNT(*) FROM participation").await;
        wait_until("both consumers to apply every win", timeout, || async {
            self.scalar("SELECT COUNT(*) FROM consumer_inbox WHERE consumer = 'stats'")
                .await
                == wins
                && self
                    .scalar("SELECT COUNT(*) FROM consumer_inbox WHERE consumer = 'rewards'")
                    .await
                    == wins
        })
        .await;
    }

    /// docs/design.md §2.8: every consumer table equals what `participation` says, exactly.
    /// - `campaign_stats`: count, quantity, first and last win per campaign;
    /// - `campaign_daily_stats`: count and quantity per campaign and UTC day;
    /// - `reward_grant`: one row per participation, with `rewardPoints × quantity`;
    /// - `reward_account`: each user's sum of grants;
    /// - `consumer_inbox`: one row per event per consumer.
    pub async fn assert_consumers_match_participations(&self) {
        let stats = self
            .int_rows(
                "SELECT campaign_id, accepted_count, accepted_quantity, \
                 TIMESTAMPDIFF(MICROSECOND, '2000-01-01', first_accepted_at), TIMESTAMPDIFF(MICROSECOND, '2000-01-01', last_accepted_at) \
                 FROM campaign_stats ORDER BY campaign_id",
            )
            .await;
        let truth = self
            .int_rows(
                "SELECT campaign_id, COUNT(*), CAST(SUM(quantity) AS SIGNED), \
                 TIMESTAMPDIFF(MICROSECOND, '2000-01-01', MIN(created_at)), TIMESTAMPDIFF(MICROSECOND, '2000-01-01', MAX(created_at)) \
                 FROM participation GROUP BY campaign_id ORDER BY campaign_id",
            )
            .await;
        assert_eq!(stats, truth, "campaign_stats differs from participation");
        let daily = self
            .int_rows(
                "SELECT campaign_id, TO_DAYS(day), accepted_count, accepted_quantity \
                 FROM campaign_daily_stats ORDER BY campaign_id, day",
            )
            .await;
        let truth = self
            .int_rows(
                "SELECT campaign_id, TO_DAYS(created_at), COUNT(*), CAST(SUM(quantity) AS SIGNED) \
                 FROM participation GROUP BY campaign_id, TO_DAYS(created_at) ORDER BY 1, 2",
            )
            .await;
        assert_eq!(
            daily, truth,
            "campaign_daily_stats differs from participation"
        );
        let grants = self
            .int_rows("SELECT g.campaign_id, g.user_id, g.points FROM reward_grant g ORDER BY 1, 2")
            .await;
        let truth = self
            .int_rows(
                "SELECT p.campaign_id, p.user_id, p.quantity * c.reward_points FROM participation p \
                 JOIN campaign c ON c.id = p.campaign_id ORDER BY 1, 2",
            )
            .await;
        assert_eq!(grants, truth, "reward_grant is not one row per win");
        let accounts = self
            .int_rows("SELECT user_id, points FROM reward_account ORDER BY user_id")
            .await;
        let truth = self
            .int_rows(
                "SELECT p.user_id, CAST(SUM(p.quantity * c.reward_points) AS SIGNED) FROM participation p \
                 JOIN campaign c ON c.id = p.campaign_id GROUP BY p.user_id ORDER BY p.user_id",
            )
            .await;
        assert_eq!(accounts, truth, "reward_account differs from the wins");
        let wins = self.scalar("SELECT COUNT(*) FROM participation").await;
        for consumer in ["stats", "rewards"] {
            assert_eq!(
                self.scalar(&format!(
                    "SELECT COUNT(*) FROM consumer_inbox WHERE consumer = '{consumer}'"
                ))
                .await,
                wins,
                "{consumer}: one inbox row per event"
            );
        }
    }
}
