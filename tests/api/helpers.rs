//! Test harness: `spawn_app()` starts the real application on port 0 against its own MariaDB
//! database (`test_<uuid>`) and its own Redis key prefix, so tests run in parallel.

use std::{collections::HashMap, time::Duration};

use firstcome::{config::Settings, startup::Application};
use redis::AsyncCommands;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// `TEST_DATABASE_URL`: a server URL without database; the user needs rights on `test\_%`.
fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "mysql://firstcome:firstcome@127.0.0.1:3306".into())
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// A connection to this test's own database, for assertions and fault injection.
    pub db: DatabaseConnection,
    pub redis: redis::aio::MultiplexedConnection,
    pub redis_prefix: String,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
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

/// Settings for a test: own database and key prefix, port 0, relay off unless a test turns it on.
pub async fn test_settings() -> Settings {
    let mut s = Settings::from_source(&[]).expect("default settings");
    s.http.addr = "127.0.0.1:0".parse().expect("addr");
    s.database.url = firstcome::config::Secret::new(create_database().await);
    s.database.max_connections = 32;
    s.redis.url = firstcome::config::Secret::new(redis_url());
    s.redis.key_prefix = format!("test:{}:", Uuid::now_v7().simple());
    s.admin_token = Some(firstcome::config::Secret::new(ADMIN_TOKEN));
    s.relay.enabled = false;
    s.shutdown_timeout = Duration::from_secs(10);
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
    let server = tokio::spawn(app.run_until_stopped());
    let db_url = settings.database.url.expose().to_string();
    let db = Database::connect(db_url.as_str())
        .await
        .expect("connect to test database");
    let redis = redis::Client::open(redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis (run scripts/services.sh)");
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
        let c = self
            .create_campaign(
                json!({"name": "flash", "totalStock": stock, "perUserLimit": per_user_limit}),
            )
            .await;
        c["id"].as_i64().expect("id")
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
        let row = self
            .db
            .query_one_raw(Statement::from_string(DbBackend::MySql, sql))
            .await
            .expect("query")
            .expect("one row");
        row.try_get_by_index::<i64>(0).expect("an integer")
    }

    pub async fn remaining_stock(&self, campaign_id: i64) -> i64 {
        self.scalar(&format!(
            "SELECT remaining_stock FROM campaign WHERE id = {campaign_id}"
        ))
        .await
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
            let headers: String = row.try_get_by_index(6).expect("headers");
            let headers: Value = serde_json::from_str(&headers).expect("headers are JSON");
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
            assert_eq!(headers["event_id"], json!(event_id));
            assert_eq!(key, campaign_id.to_string());
            assert!(seen.insert(event_id, id).is_none(), "event ids are unique");
        }
    }
}
