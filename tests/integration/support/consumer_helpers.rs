//! Helpers of the consumer tests: consumer settings, producing raw messages, reading a group's
//! committed offsets, and the check that every consumer's tables agree with `participation`.

use std::{collections::BTreeMap, time::Duration};

use firstcome::{
    config::{consumers::ConsumerName, GroupProtocol, Settings},
    consumer::ConsumerReport,
    events::{headers, lifecycle::ParticipationMessage, Headers},
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

impl Raw {
    /// The message the relay would send for `event`.
    pub fn of<E: ParticipationMessage>(event: &E) -> Self {
        Self {
            key: Some(event.key().into_bytes()),
            value: Some(event.json().into_bytes()),
            headers: event.message_headers(None),
        }
    }
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
    (watermarks(bootstrap, topic).await.into_iter())
        .map(|(p, (_, high))| (p, high))
        .collect()
}

/// The low and high watermarks of every partition of `topic`: the first offset the broker still
/// holds and the next one it will write.
pub async fn watermarks(bootstrap: &str, topic: &str) -> BTreeMap<i32, (i64, i64)> {
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
                let marks = consumer
                    .fetch_watermarks(&topic, p.id(), Duration::from_secs(10))
                    .expect("watermarks");
                (p.id(), marks)
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

    /// Waits (up to 30 s) until the stats consumer has `applied` inbox rows and counted
    /// `duplicates` duplicates, and the rewards consumer has read as many (its applied and
    /// duplicates together: it keeps no inbox, so a repeat of an event that moves no points is
    /// applied again, harmlessly, docs/design.md §11), each with `dead` dead letters.
    pub async fn wait_for_both_consumers(&self, applied: i64, duplicates: u64, dead: u64) {
        wait_until(
            "both consumers to apply the events",
            Duration::from_secs(30),
            || async move {
                let stats = self.consumer(ConsumerName::Stats);
                let rewards = self.consumer(ConsumerName::Rewards);
                let read = ConsumerReport::get(&rewards.applied)
                    + ConsumerReport::get(&rewards.duplicates);
                Tables(&self.db).inbox_rows("stats").await == applied
                    && ConsumerReport::get(&stats.duplicates) == duplicates
                    && ConsumerReport::get(&stats.dead_lettered) == dead
                    && i64::try_from(read).ok() == Some(applied + duplicates as i64)
                    && ConsumerReport::get(&rewards.dead_lettered) == dead
            },
        )
        .await;
        let inbox = Tables(&self.db).inbox_rows("rewards").await;
        assert_eq!(inbox, 0, "rewards: no inbox row");
    }

    /// See [`Tables::wait_for_consumers`].
    pub async fn wait_for_consumers(&self, timeout: Duration) {
        Tables(&self.db).wait_for_consumers(timeout).await
    }

    /// See [`Tables::events`].
    pub async fn participation_events(&self) -> i64 {
        Tables(&self.db).events().await
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

/// A `participation` row's win was confirmed, at acceptance (no window: no deadline) or later
/// (`confirmed_at`, set only when a held win is confirmed). Such a win earned its points; a
/// refund (the only way out of CONFIRMED) keeps it counted as confirmed.
const EVER_CONFIRMED: &str = "(p.hold_expires_at IS NULL OR p.confirmed_at IS NOT NULL)";

/// The events a `participation` row stands for: its acceptance, its later confirmation, and its
/// closing (cancelled or expired). Each is one outbox row, in the transaction that changed the row.
const EVENTS_OF_A_WIN: &str =
    "(1 + (p.confirmed_at IS NOT NULL) + (p.status IN ('CANCELLED', 'EXPIRED')))";

/// A consumer's record of the events it applied (docs/design.md §11), as a derived table of
/// `(event_id, at)`: the stats consumer's inbox rows, the rewards consumer's grants (it keeps no
/// inbox; only an event that moves points leaves a row, as every event does where every win is
/// final at once).
pub fn applied_record(consumer: ConsumerName) -> String {
    match consumer {
        ConsumerName::Rewards => "(SELECT event_id, granted_at AS at FROM reward_grant)".into(),
        ConsumerName::Stats => format!(
            "(SELECT event_id, processed_at AS at FROM consumer_inbox WHERE consumer = '{consumer}')"
        ),
    }
}

/// The grants `participation` implies (campaign, user, points): `rewardPoints × quantity` for
/// each win ever confirmed (`ParticipationAccepted` CONFIRMED or `ParticipationConfirmed`), and
/// its negation for each of those now cancelled (`ParticipationCancelled` with `previousStatus`
/// CONFIRMED). Held wins cancelled or expired moved no points.
fn implied_grants() -> String {
    let confirmed = format!(
        "SELECT p.campaign_id, p.user_id, p.status, p.quantity * c.reward_points AS points \
         FROM participation p JOIN campaign c ON c.id = p.campaign_id WHERE {EVER_CONFIRMED}"
    );
    format!(
        "SELECT campaign_id, user_id, points FROM ({confirmed}) granted UNION ALL \
         SELECT campaign_id, user_id, -points FROM ({confirmed}) refunded WHERE status = 'CANCELLED'"
    )
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

    /// Waits until both consumers applied every event `participation` implies, as it stands
    /// when called (a hold expiring meanwhile adds an event not waited for): the stats consumer
    /// by its inbox rows, the rewards consumer by its grants (it keeps no inbox; an event that
    /// moves no points leaves nothing to wait for).
    pub async fn wait_for_consumers(&self, timeout: Duration) {
        let (events, grants) = (self.events().await, self.implied_grants().await);
        wait_until("both consumers to apply every event", timeout, || {
            self.caught_up(events, grants)
        })
        .await;
    }

    /// Whether the stats consumer has `events` inbox rows and the rewards consumer `grants`
    /// grants (its record: it keeps no inbox).
    pub async fn caught_up(&self, events: i64, grants: i64) -> bool {
        self.inbox_rows("stats").await == events
            && self.scalar("SELECT COUNT(*) FROM reward_grant").await == grants
    }

    /// How many grants `participation` implies (see [`implied_grants`]).
    pub async fn implied_grants(&self) -> i64 {
        self.scalar(&format!("SELECT COUNT(*) FROM ({}) g", implied_grants()))
            .await
    }

    /// The events `participation` implies, over every campaign (see [`EVENTS_OF_A_WIN`]).
    pub async fn events(&self) -> i64 {
        self.scalar(&format!(
            "SELECT CAST(COALESCE(SUM({EVENTS_OF_A_WIN}), 0) AS SIGNED) FROM participation p"
        ))
        .await
    }

    async fn inbox_rows(&self, consumer: &str) -> i64 {
        self.scalar(&format!(
            "SELECT COUNT(*) FROM consumer_inbox WHERE consumer = '{consumer}'"
        ))
        .await
    }

    /// docs/design.md §2.8, §11, §14: every consumer table equals what `participation` says,
    /// exactly, whatever happened to the wins since (confirmed, cancelled, expired):
    /// - `campaign_stats`: per campaign, wins and units, wins ever confirmed, cancelled, expired,
    ///   refunded (cancelled after a confirmation),
    ///   units held or confirmed now, events applied ([`EVENTS_OF_A_WIN`]), first and last win;
    /// - `campaign_daily_stats`: wins and units per campaign and UTC day (of the win);
    /// - `reward_grant`: `rewardPoints × quantity` for each win ever confirmed, and its negation
    ///   for each of those cancelled since (a refund);
    /// - `reward_account`: each user's sum of grants;
    /// - `consumer_inbox`: one row per event for the stats consumer, none for the rewards
    ///   consumer (its grants are its record, §11).
    pub async fn assert_consumers_match_participations(&self) {
        self.assert_campaign_stats().await;
        self.assert_daily_stats().await;
        self.assert_rewards().await;
        let events = self.events().await;
        assert_eq!(
            self.inbox_rows("stats").await,
            events,
            "stats: one inbox row per event"
        );
        assert_eq!(self.inbox_rows("rewards").await, 0, "rewards: no inbox row");
    }

    async fn assert_campaign_stats(&self) {
        let stats = self
            .int_rows(
                "SELECT campaign_id, accepted_count, accepted_quantity, confirmed_count, \
                 cancelled_count, expired_count, refunded_count, active_quantity, events_applied, \
                 TIMESTAMPDIFF(MICROSECOND, '2000-01-01', first_accepted_at), TIMESTAMPDIFF(MICROSECOND, '2000-01-01', last_accepted_at) \
                 FROM campaign_stats ORDER BY campaign_id",
            )
            .await;
        let truth = self
            .int_rows(&format!(
                "SELECT campaign_id, COUNT(*), CAST(SUM(quantity) AS SIGNED), \
                 CAST(SUM({EVER_CONFIRMED}) AS SIGNED), CAST(SUM(status = 'CANCELLED') AS SIGNED), \
                 CAST(SUM(status = 'EXPIRED') AS SIGNED), \
                 CAST(SUM(status = 'CANCELLED' AND {EVER_CONFIRMED}) AS SIGNED), \
                 CAST(SUM(IF(status IN ('HELD', 'CONFIRMED'), quantity, 0)) AS SIGNED), \
                 CAST(SUM({EVENTS_OF_A_WIN}) AS SIGNED), \
                 TIMESTAMPDIFF(MICROSECOND, '2000-01-01', MIN(created_at)), TIMESTAMPDIFF(MICROSECOND, '2000-01-01', MAX(created_at)) \
                 FROM participation p GROUP BY campaign_id ORDER BY campaign_id"
            ))
            .await;
        assert_eq!(stats, truth, "campaign_stats differs from participation");
    }

    /// Wins per day, whatever became of them: the stats consumer counts only acceptances per day.
    async fn assert_daily_stats(&self) {
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
    }

    async fn assert_rewards(&self) {
        let grants = self
            .int_rows("SELECT campaign_id, user_id, points FROM reward_grant ORDER BY 1, 2, 3")
            .await;
        let truth = self
            .int_rows(&format!(
                "SELECT * FROM ({}) g ORDER BY 1, 2, 3",
                implied_grants()
            ))
            .await;
        assert_eq!(
            grants, truth,
            "reward_grant is not a grant per confirmed win and a refund per cancelled one"
        );
        let accounts = self
            .int_rows("SELECT user_id, points FROM reward_account ORDER BY user_id")
            .await;
        let truth = self
            .int_rows(&format!(
                "SELECT user_id, CAST(SUM(points) AS SIGNED) FROM ({}) g \
                 GROUP BY user_id ORDER BY user_id",
                implied_grants()
            ))
            .await;
        assert_eq!(accounts, truth, "reward_account differs from the grants");
    }
}
