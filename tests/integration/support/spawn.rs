//! Spawning the application under test: `spawn_app()` starts the real application on port 0
//! against its own MariaDB database (`test_<uuid>`) and its own Redis key prefix, so tests run in
//! parallel; `TestApp` is what a test holds of it. Also the settings tests start from, a broker
//! of a test's own and two replicas sharing one.

use std::{sync::Arc, time::Duration};

use firstcome::{
    config::{RedisSettings, Settings},
    events::dlq,
    gate::connection::RedisConn,
    kafka::EmbeddedBroker,
    relay::RelayHandle,
    startup::testing::Probe,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::hooks::TestHooks;

pub const ADMIN_TOKEN: &str = "Tq7rV2xK9mLp4Wz8Hc3Nf6Bd1Js5Ay0e";

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
    /// The relay's failure points (inert unless a test sets them; `hooks.rs`).
    pub hooks: Arc<TestHooks>,
    pub shards: u32,
    /// Counters inside the application and its reconciler (`hooks.rs`).
    pub probe: Probe,
    /// The port of `METRICS_ADDR`, when the test configured one.
    pub metrics_port: Option<u16>,
}

/// A fresh, empty database for one test.
pub async fn create_database() -> String {
    create_database_with("").await
}

/// A fresh, empty database whose default is `options` (`CHARACTER SET latin1`: as on a server
/// whose default is latin1).
pub async fn create_database_with(options: &str) -> String {
    let name = format!("test_{}", Uuid::now_v7().simple());
    let server = Database::connect(server_url())
        .await
        .expect("connect to MariaDB (run scripts/services.sh)");
    server
        .execute_unprepared(&format!("CREATE DATABASE `{name}` {options}"))
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
    // The suite's bad-token cases (the boundary sweep) come from one address by design; the
    // door's own limit is tested on the binary (`http::door`).
    s.admin_door.burst = 10_000;
    s.relay.enabled = false;
    // Consumers on only where a test asks (`consumer_helpers::with_consumers`).
    s.consumers.enabled = Vec::new();
    s.shutdown_timeout = Duration::from_secs(10);
    // Every client of the suite is 127.0.0.1, hundreds at once in some tests: one client to the
    // per-client connection cap (its own tests set it).
    s.http.max_connections_per_client = 1_000_000;
    // The same for the waiting room's tickets per client (`waiting_room::rate_limits` and
    // `room_steps` test the cap).
    s.waiting_room.tickets_per_client = 0;
    // Tests read a campaign right after acting on it; the brief copy of public reads is tested
    // on its own (`api::campaigns::public_reads_…`).
    s.http.public_read_cache = Duration::ZERO;
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

/// Two instances on one database and one Redis key prefix (without relays), as two replicas of
/// the service serve one sale.
pub async fn two_instances() -> (Arc<TestApp>, Arc<TestApp>) {
    let settings = test_settings().await;
    let a = spawn_app_with(settings.clone()).await;
    let mut second = settings;
    second.migrate_on_start = false;
    let b = spawn_app_with(second).await;
    (Arc::new(a), Arc::new(b))
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    // Logs only when asked for: `TEST_LOG=1 scripts/test.sh name_of_test`.
    if std::env::var_os("TEST_LOG").is_some() {
        firstcome::telemetry::init(settings.log_format, settings.rust_log.as_deref());
    }
    let (app, inside) = crate::hooks::build(settings.clone()).await;
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_port = app.metrics_port();
    let shutdown = app.shutdown_token();
    let broker = inside.broker;
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
        relay: inside.relay,
        hooks: inside.hooks,
        shards: settings.relay.shards,
        probe: inside.probe,
        metrics_port,
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
    spawn_pair_with(|_| {}).await
}

/// [`spawn_pair`] with `change` made to both instances' settings.
pub async fn spawn_pair_with(
    change: impl Fn(&mut Settings),
) -> (TestApp, TestApp, Arc<EmbeddedBroker>) {
    let broker = Arc::new(start_broker());
    let mut a = with_relay(test_settings().await);
    change(&mut a);
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

impl TestApp {
    /// Stops the application as SIGTERM would and waits for it to exit.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.server.await.expect("server task")
    }
}
