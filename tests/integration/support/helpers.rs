//! Test harness: `spawn_app()` starts the real application on port 0 against its own MariaDB
//! database (`test_<uuid>`) and its own Redis key prefix, so tests run in parallel.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use firstcome::{
    config::{RedisSettings, Settings},
    gate::connection::RedisConn,
    kafka::EmbeddedBroker,
    outbox::{
        self, dlq,
        event::{AGGREGATE_PARTICIPATION, PARTICIPATION_ACCEPTED},
        headers, NewOutboxEvent, OutboxStatus,
    },
    relay::RelayHandle,
    startup::Application,
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::Message,
    ClientConfig, Offset, TopicPartitionList,
};
use redis::AsyncCommands;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

// The suite's own servers (scripts/test-services.sh sets these variables; the defaults are its
// ports, never the machine's 3306 and 6379).

/// `TEST_DATABASE_URL`: a server URL without database; the user needs rights on `test\_%`.
fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "mysql://firstcome:firstcome@127.0.0.1:23306".into())
}

/// `TEST_REDIS_URL`: the suite's Redis.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:26379".into())
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// A connection to this test's own database, for assertions and fault injection.
    pub db: DatabaseConnection,
    /// Straight to the app's Redis (not through a test's proxy): one node or its cluster.
    pub redis: RedisConn,
    pub redis_prefix: String,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The app's embedded broker (absent when the test gave it KAFKA_BOOTSTRAP_SERVERS).
    pub broker: Option<Arc<EmbeddedBroker>>,
    pub kafka_bootstrap: String,
    pub topic: String,
    pub relay: Option<RelayHandle>,
    pub shards: u32,
    /// The application's shared state (to drive background work, e.g. the reconciler).
    pub state: Arc<firstcome::state::AppState>,
}

/// A fresh, empty database for one test.
pub async fn create_database() -> String {
    let name = format!("test_{}", Uuid::now_v7().simple());
    let server = Database::connect(server_url())
        .await
        .expect("connect to MariaDB (run scripts/services.sh)");
    server
        .execute_unprepared(&format!("CREATE DATABASE `{name}`"))
        .await
        .expect("create test database");
    server.close().await.ok();
    format!("{}/{name}", server_url())
}

/// Settings for a test: own database and key prefix, port 0, relay and consumers off unless a test
/// turns them on.
pub async fn test_settings() -> Settings {
    let mut s = Settings::from_pairs(&[]).expect("default settings");
    s.http.addr = "127.0.0.1:0".parse().expect("addr");
    s.database.url = firstcome::config::Secret::new(create_database().await);
    s.database.max_connections = 32;
    s.redis.url = firstcome::config::Secret::new(redis_url());
    s.redis.key_prefix = format!("test:{}:", Uuid::now_v7().simple());
    s.admin_token = Some(firstcome::config::Secret::new(ADMIN_TOKEN));
    s.relay.enabled = false;
    // Consumers on only where a test asks (`consumer_helpers::with_consumers`).
    s.consumers.enabled = Vec::new();
    s.shutdown_timeout = Duration::from_secs(10);
    s
}

/// Relay settings for tests: fast polls and retries, a short delivery timeout.
pub fn with_relay(mut s: Settings) -> Settings {
    s.relay.enabled = true;
    s.relay.poll_interval = Duration::from_millis(50);
    s.relay.backoff_base = Duration::from_millis(50);
    s.relay.backoff_cap = Duration::from_millis(400);
    s.kafka.message_timeout = Duration::from_millis(1_000);
    s.relay.lease = Duration::from_secs(3);
    s.kafka.partitions = 4;
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_settings().await).await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    // Logs only when asked for: `TEST_LOG=1 scripts/test.sh name_of_test`.
    if std::env::var_os("TEST_LOG").is_some() {
        firstcome::telemetry::init(settings.log_format);
    }
    let app = Application::build(settings.clone())
        .await
        .expect("build application");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    let broker = app.embedded_broker();
    let relay = app.relay();
    let state = app.state();
    let kafka_bootstrap = match (&broker, &settings.kafka.bootstrap_servers) {
        (Some(b), _) => b.bootstrap_servers().to_string(),
        (None, Some(servers)) => servers.clone(),
        (None, None) => unreachable!("either embedded or configured"),
    };
    let server = tokio::spawn(app.run_until_stopped());
    let db_url = settings.database.url.expose().to_string();
    let db = Database::connect(db_url.as_str())
        .await
        .expect("connect to test database");
    let redis = helper_redis(&settings.redis);
    TestApp {
        address,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client"),
        db,
        redis,
        redis_prefix: settings.redis.key_prefix.clone(),
        shutdown,
        server,
        broker,
        kafka_bootstrap,
        topic: settings.kafka.topic.clone(),
        relay,
        shards: settings.relay.shards,
        state,
    }
}

/// What the real binary did: its exit status, stdout (where its log goes) and stderr.
pub struct BinaryRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `firstcome` binary with `args` and only `env`; it must exit by itself within
/// 30 s.
pub async fn run_firstcome(args: &[&str], env: &[(&str, &str)]) -> BinaryRun {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_firstcome"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the firstcome binary");
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("firstcome exits by itself")
        .expect("its output");
    BinaryRun {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A connection for the test's own reads and writes: to the app's Redis Cluster or TLS Redis as
/// configured, or else straight to the test Redis (the app may be behind a test's proxy).
fn helper_redis(app: &RedisSettings) -> RedisConn {
    let mut settings = app.clone();
    if !(app.cluster || app.url.expose().starts_with("rediss://")) {
        settings.url = firstcome::config::Secret::new(redis_url());
    }
    settings.timeout = Duration::from_secs(5);
    RedisConn::new(&settings).expect("the test's Redis connection")
}

/// A broker of its own (it outlives the apps that use it) with the default topic and that
/// topic's dead-letter topic, 4 partitions each.
pub fn start_broker() -> EmbeddedBroker {
    let topic = Settings::from_pairs(&[])
        .expect("default settings")
        .kafka
        .topic;
    EmbeddedBroker::start(&[&topic, &dlq::relay_topic(&topic)], 4).expect("broker")
}

/// Two instances with relays sharing one database, one Redis key prefix and one external broker,
/// as two replicas of the service run.
pub async fn spawn_pair() -> (TestApp, TestApp, Arc<EmbeddedBroker>) {
    let broker = Arc::new(start_broker());
    let mut a = with_relay(test_settings().await);
    a.kafka.bootstrap_servers = Some(broker.bootstrap_servers().to_string());
    // Migrated once up front, so both can start at the same moment and race for the shards.
    let db = Database::connect(a.database.url.expose())
        .await
        .expect("connect to test database");
    <migration::Migrator as migration::MigratorTrait>::up(&db, None)
        .await
        .expect("migrate");
    db.close().await.ok();
    a.migrate_on_start = false;
    let b = a.clone();
    let (a, b) = tokio::join!(spawn_app_with(a), spawn_app_with(b));
    (a, b, broker)
}

/// 400 requests from 300 distinct users: users 1..=300 once, and 100 of them a second time.
pub fn burst_users() -> Vec<i64> {
    (1..=300).chain((1..=100).map(|i| i * 3)).collect()
}

/// The users that won, checking every reply is a win or a documented 409 and nobody won twice.
pub fn winners(replies: &[Reply], users: &[i64]) -> std::collections::HashSet<i64> {
    let mut winners = std::collections::HashSet::new();
    for (reply, user) in replies.iter().zip(users) {
        match reply.status {
            201 => assert!(winners.insert(*user), "user {user} won twice"),
            409 => assert!(
                matches!(reply.code(), "SOLD_OUT" | "ALREADY_PARTICIPATED"),
                "{reply:?}"
            ),
            _ => panic!("unexpected reply {reply:?}"),
        }
    }
    winners
}

/// Polls `check` every 20 ms until it holds; panics after `timeout` naming `what`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A message read back from Kafka.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub key: String,
    pub payload: String,
    pub headers: BTreeMap<String, String>,
    pub partition: i32,
    pub offset: i64,
}

impl Consumed {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.payload).expect("payload is JSON")
    }
    pub fn event_id(&self) -> &str {
        self.headers
            .get(headers::EVENT_ID)
            .map(String::as_str)
            .expect("event_id header")
    }
}

/// Reads every message of `topic` from the beginning, until at least `expected` were read and
/// every partition reached its end (so duplicates beyond `expected` are seen too).
pub async fn read_topic(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    let bootstrap = bootstrap.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("test-{}", Uuid::now_v7().simple()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("metadata");
        let partitions = metadata.topics()[0].partitions().len();
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            assignment
                .add_partition_offset(&topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&assignment).expect("assign");
        let deadline = std::time::Instant::now() + timeout;
        let mut out = Vec::new();
        let mut at_end = std::collections::HashSet::new();
        while std::time::Instant::now() < deadline
            && !(out.len() >= expected && at_end.len() == partitions)
        {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    at_end.remove(&m.partition());
                    out.push(Consumed {
                        key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                        payload: String::from_utf8_lossy(m.payload().unwrap_or_default())
                            .into_owned(),
                        headers: headers::from_kafka(m.headers()),
                        partition: m.partition(),
                        offset: m.offset(),
                    });
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => panic!("consumer error: {e}"),
                None => {}
            }
        }
        out
    })
    .await
    .expect("consumer task")
}

/// Per-key order of first deliveries (docs/design.md §2.5): reading each partition from its start, the
/// first time each event appears its outbox id is above every event of its key seen before.
/// Later copies (duplicates) are allowed. Returns how many distinct events were read.
pub fn assert_first_deliveries_in_order(
    messages: &[Consumed],
    outbox_ids: &HashMap<String, i64>,
) -> usize {
    let mut sorted: Vec<&Consumed> = messages.iter().collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    let mut seen = std::collections::HashSet::new();
    let mut last: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut inversions = Vec::new();
    for m in sorted {
        if !seen.insert(m.event_id().to_string()) {
            continue;
        }
        let id = outbox_ids[m.event_id()];
        if let Some((prev, prev_offset)) = last.insert(&m.key, (id, m.offset)) {
            if prev > id {
                inversions.push(format!(
                    "key {}: outbox id {id} (offset {}) first delivered after {prev} (offset {prev_offset})",
                    m.key, m.offset
                ));
            }
        }
    }
    assert!(
        inversions.is_empty(),
        "{} inversions: {inversions:#?}",
        inversions.len()
    );
    seen.len()
}

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
        headers: headers::to_stored(&headers::build(event_id, PARTICIPATION_ACCEPTED, None)),
        status: OutboxStatus::Pending,
    }
}

/// A response reduced to what tests look at.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    /// Stops the application as SIGTERM would and waits for it to exit.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.server.await.expect("server task")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        reply(req).await
    }

    /// GET with the admin token.
    pub async fn admin_get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path)).bearer_auth(ADMIN_TOKEN))
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Reply {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// Creates a campaign through the admin API; panics unless 201.
    pub async fn create_campaign(&self, body: Value) -> Value {
        let reply = self
            .post_json("/api/v1/campaigns", &body, Some(ADMIN_TOKEN))
            .await;
        assert_eq!(reply.status, 201, "create campaign: {reply:?}");
        reply.body
    }

    /// An open campaign with `stock` units and the given per-user limit.
    pub async fn open_campaign(&self, stock: i64, per_user_limit: i32) -> i64 {
        self.open_campaign_with(stock, per_user_limit, json!({}))
            .await
    }

    /// `open_campaign` with more fields of the create request, e.g. `{"rewardPoints": 5}`.
    pub async fn open_campaign_with(&self, stock: i64, per_user_limit: i32, extra: Value) -> i64 {
        let mut body =
            json!({"name": "flash", "totalStock": stock, "perUserLimit": per_user_limit});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let c = self.create_campaign(body).await;
        c["id"].as_i64().expect("id")
    }

    /// `join` in a task of its own: the request goes on while the test does something else.
    pub fn spawn_join(
        &self,
        campaign_id: i64,
        user_id: i64,
        quantity: i32,
    ) -> tokio::task::JoinHandle<Reply> {
        let req = self
            .client
            .post(self.url(&format!("/api/v1/campaigns/{campaign_id}/participations")))
            .json(&json!({"userId": user_id, "quantity": quantity}));
        tokio::spawn(reply(req))
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
        let sql = "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                   WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND COMMAND <> 'Sleep' \
                   AND INFO LIKE 'UPDATE campaign SET remaining_stock = remaining_stock - %'";
        wait_until(
            &format!("{n} participation UPDATEs to block on the campaign row"),
            Duration::from_secs(20),
            || async { self.scalar(sql).await == n },
        )
        .await;
    }

    /// Waits until `n` wins are queued in the app's group commit for `campaign_id`.
    pub async fn wait_for_queued_wins(&self, campaign_id: i64, n: usize) {
        wait_until(
            &format!("{n} wins to queue for the next group commit"),
            Duration::from_secs(20),
            || async { self.state.participations.group_commit_queued(campaign_id) == n },
        )
        .await;
    }

    /// Transactions and wins the outbox path committed through group commit
    /// (`firstcome_group_commit_batch_size` count and sum).
    pub fn group_commits(&self) -> (u64, u64) {
        let text = self.state.metrics.encode();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .map_or(0.0, |v| v.parse::<f64>().expect("a number")) as u64
        };
        (
            value("firstcome_group_commit_batch_size_count"),
            value("firstcome_group_commit_batch_size_sum"),
        )
    }

    pub async fn join(&self, campaign_id: i64, user_id: i64, quantity: i32) -> Reply {
        self.post_json(
            &format!("/api/v1/campaigns/{campaign_id}/participations"),
            &json!({"userId": user_id, "quantity": quantity}),
            None,
        )
        .await
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

    pub fn gate_keys(&self, campaign_id: i64) -> (String, String) {
        let base = format!("{}{{c:{campaign_id}}}", self.redis_prefix);
        (format!("{base}:meta"), format!("{base}:users"))
    }

    /// The gate's stock for a campaign, `None` when its keys are not loaded.
    pub async fn redis_stock(&self, campaign_id: i64) -> Option<i64> {
        let (meta, _) = self.gate_keys(campaign_id);
        let mut conn = self.redis.clone();
        conn.hget(meta, "stock").await.expect("HGET")
    }

    pub async fn redis_has_user(&self, campaign_id: i64, user_id: i64) -> bool {
        let (_, users) = self.gate_keys(campaign_id);
        let mut conn = self.redis.clone();
        conn.sismember(users, user_id).await.expect("SISMEMBER")
    }

    /// Gate keys under `campaign_id` as a sold-out earlier campaign with that id left them (ids
    /// start again after a database reset): no stock, `winner` among its winners. `epoch` is that
    /// campaign's; `None` writes keys as versions without epochs did.
    pub async fn plant_stale_gate_state(&self, campaign_id: i64, winner: i64, epoch: Option<i64>) {
        let (meta, users) = self.gate_keys(campaign_id);
        let mut fields: Vec<(&str, String)> = [
            ("stock", "0"),
            ("starts_ms", "0"),
            ("ends_ms", "0"),
            ("limit", "1"),
            ("seq", "9"),
            ("expire_ms", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        if let Some(epoch) = epoch {
            fields.push(("epoch", epoch.to_string()));
        }
        let mut redis = self.redis.clone();
        let _: () = redis
            .hset_multiple(&meta, &fields)
            .await
            .expect("stale hash");
        let _: () = redis.sadd(&users, winner).await.expect("stale winner");
    }

    /// Deletes a campaign's gate keys, as an eviction or a Redis restart would.
    pub async fn drop_gate_keys(&self, campaign_id: i64) {
        let (meta, users) = self.gate_keys(campaign_id);
        let mut conn = self.redis.clone();
        let _: () = conn.del(&[meta, users]).await.expect("DEL");
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
            let stored = headers::from_stored(&stored);
            let event_id: String = row.try_get_by_index(7).expect("event_id");
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
            assert_eq!(stored[headers::EVENT_ID], event_id);
            assert_eq!(key, campaign_id.to_string());
            assert!(seen.insert(event_id, id).is_none(), "event ids are unique");
        }
    }
}

/// Sends `req` and reads the reply (JSON body, or the text as a string).
pub async fn reply(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body read");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        body,
        headers,
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
