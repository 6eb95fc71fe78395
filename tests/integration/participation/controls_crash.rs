//! docs/design.md §15, a live control across a crash: the real binary commits a control (units
//! added, a pause) and is killed with SIGKILL before it gives the control to the gate (the test
//! hook `FIRSTCOME_TEST_CRASH_AT=before-gate-control` stops it exactly there). The commit is
//! whole (campaign row, audit row, outbox event, `gate_control` marker) and the gate lacks the
//! control; another instance gives it to the gate from the durable marker, exactly once (a
//! marker run again adds nothing), so a wave of new users wins exactly the units added, a pause
//! refuses joins on that instance and a resume opens the sale again; the gate shows no drift.
//! The marker gets there also from behind more waiting markers (campaigns whose keys Redis lost)
//! than the marker loop reads in one sweep.

use std::{os::unix::process::ExitStatusExt, time::Duration};

use futures::{stream, StreamExt};
use redis::{aio::MultiplexedConnection, AsyncCommands};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{json, Value};

use crate::{
    binary::{create_campaign, fixture, start, start_with, wait_for_exit, Service},
    db::scalar,
    drift::assert_no_drift_at,
    wait::wait_until,
};

const CRASH: [(&str, Option<&str>); 1] = [("FIRSTCOME_TEST_CRASH_AT", Some("before-gate-control"))];
/// How long the marker loop of a running instance (every 250 ms) may take to give the gate a
/// control a crash left: the contract says about a second; this leaves room for a loaded machine.
const MARKER_APPLIED_WITHIN: Duration = Duration::from_secs(5);

/// The `Idempotency-Key` of the control the first instance dies in: the admin's retry carries it.
const RETRY_KEY: &str = "control-the-first-instance-died-in";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn units_added_by_an_instance_killed_before_the_gate_reach_it_once_and_sell_exactly_once() {
    const STOCK: i64 = 10;
    const ADDED: i64 = 7;
    let t = Crash::start().await;
    let campaign = create_campaign(&t.client, &t.first, STOCK).await;
    assert_eq!(
        join_wave(&t.client, &t.first, campaign, 1..=2 * STOCK).await,
        [STOCK, STOCK],
        "the first sale sells out"
    );
    assert_eq!(t.gate_field(campaign, "stock").await.as_deref(), Some("0"));

    let t = t
        .kill_first_with(campaign, "stock", json!({"delta": ADDED}))
        .await;
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM gate_control WHERE campaign_id = {campaign} AND seq = 1 \
             AND kind = 'STOCK_CHANGED' AND delta = {ADDED}"
        ))
        .await,
        1,
        "the commit left its marker"
    );
    assert_eq!(
        t.stock_row(campaign).await,
        [STOCK + ADDED, ADDED, 1],
        "MySQL has the new totals (total, remaining, control_seq)"
    );
    t.assert_committed_once(campaign, "CampaignStockChanged")
        .await;
    assert_eq!(
        t.gate_field(campaign, "stock").await.as_deref(),
        Some("0"),
        "the gate lacks the units"
    );

    let second = t.start_second().await;
    t.wait_for_marker_applied(campaign, "stock", &ADDED.to_string())
        .await;
    // The admin heard nothing and retries with the key: answered, not applied a second time.
    let retried = t
        .client
        .post(format!(
            "{}/api/v1/admin/campaigns/{campaign}/stock",
            second.base
        ))
        .bearer_auth(&second.token)
        .header("Idempotency-Key", RETRY_KEY)
        .json(&json!({"delta": ADDED}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(retried.status().as_u16(), 200);
    let retried: Value = retried.json().await.expect("JSON");
    assert_eq!(retried["totalStock"], json!(STOCK + ADDED), "{retried}");
    assert_eq!(t.stock_row(campaign).await, [STOCK + ADDED, ADDED, 1]);
    // The same control run again (as two instances' loops running one marker at once would):
    // the gate already counts it.
    t.replant_marker(campaign, 1, "STOCK_CHANGED", ADDED).await;
    t.wait_for_marker_applied(campaign, "stock", &ADDED.to_string())
        .await;

    let users = 1_001..=1_000 + 5 * ADDED;
    assert_eq!(
        join_wave(&t.client, &second, campaign, users).await,
        [ADDED, 4 * ADDED],
        "exactly the units added sell, once"
    );
    assert_eq!(t.gate_field(campaign, "stock").await.as_deref(), Some("0"));
    assert_eq!(t.stock_row(campaign).await, [STOCK + ADDED, 0, 1]);
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}"
        ))
        .await,
        STOCK + ADDED
    );
    assert_no_drift_at(&t.client, &second.base, campaign).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pause_by_an_instance_killed_before_the_gate_reaches_it_from_the_marker_and_a_resume_reopens(
) {
    const STOCK: i64 = 20;
    const SOLD_FIRST: i64 = 5;
    let t = Crash::start().await;
    let campaign = create_campaign(&t.client, &t.first, STOCK).await;
    assert_eq!(
        join_wave(&t.client, &t.first, campaign, 1..=SOLD_FIRST).await,
        [SOLD_FIRST, 0]
    );

    let t = t.kill_first_with(campaign, "pause", json!({})).await;
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM gate_control WHERE campaign_id = {campaign} AND seq = 1 \
             AND kind = 'PAUSED'"
        ))
        .await,
        1,
        "the commit left its marker"
    );
    assert_eq!(
        t.count(&format!(
            "SELECT CAST(paused AS SIGNED) FROM campaign WHERE id = {campaign}"
        ))
        .await,
        1
    );
    assert_eq!(t.stock_row(campaign).await, [STOCK, STOCK - SOLD_FIRST, 1]);
    t.assert_committed_once(campaign, "CampaignPaused").await;
    assert_eq!(
        t.gate_field(campaign, "state").await.as_deref(),
        Some("open"),
        "the gate lacks the pause"
    );

    let second = t.start_second().await;
    t.wait_for_marker_applied(campaign, "state", "paused").await;
    let url = |path: &str| format!("{}/api/v1/campaigns/{campaign}/{path}", second.base);
    for (path, user) in [("participations", 101), ("participations/sync", 102)] {
        let reply = t
            .client
            .post(url(path))
            .json(&json!({"userId": user}))
            .send()
            .await
            .expect("an answer");
        let status = reply.status().as_u16();
        let body: Value = reply.json().await.expect("JSON");
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("CAMPAIGN_PAUSED")),
            "{path}: {body}"
        );
    }
    let shown = get_campaign(&t.client, &second, campaign).await;
    assert_eq!(
        (shown["state"].as_str(), shown["paused"].as_bool()),
        (Some("PAUSED"), Some(true))
    );

    let resumed = control(&t.client, &second, campaign, "resume", json!({})).await;
    assert_eq!(resumed.0, 200, "{}", resumed.1);
    assert_eq!(resumed.1["state"], "OPEN", "{}", resumed.1);
    assert_eq!(resumed.1["controlCount"], 2, "{}", resumed.1);
    assert_eq!(
        t.gate_field(campaign, "state").await.as_deref(),
        Some("open")
    );
    let rest = STOCK - SOLD_FIRST;
    assert_eq!(
        join_wave(&t.client, &second, campaign, 1_001..=1_000 + 3 * rest).await,
        [rest, 2 * rest],
        "after the resume the rest of the stock sells, exactly"
    );
    assert_no_drift_at(&t.client, &second.base, campaign).await;
}

/// Campaigns whose gate state Redis lost, each with a control since: their markers wait,
/// legitimately, for a rebuild to read MySQL. More than the marker loop reads in one sweep (200).
const UNLOADED_BACKLOG: i64 = 300;
/// How many of the quiet campaigns are set up at once.
const SETUP_AT_ONCE: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_marker_left_by_a_crash_reaches_the_gate_behind_more_waiting_markers_than_a_sweep_reads()
{
    const STOCK: i64 = 10;
    const ADDED: i64 = 3;
    let t = Crash::start().await;
    let second = t.start_second().await;
    // Quiet campaigns whose keys Redis lost (an eviction, a restart), then got units: each
    // control's marker waits for the campaign's next join to rebuild its gate state.
    // A few at a time: the backlog is the point, not a burst of controls (hundreds at once
    // can wait longer than the pool's acquire timeout on a loaded machine and answer 503).
    stream::iter(0..UNLOADED_BACKLOG)
        .map(|_| async {
            let id = create_campaign(&t.client, &second, 5).await;
            t.drop_gate_state(id).await;
            let added = control(&t.client, &second, id, "stock", json!({"delta": 1})).await;
            assert_eq!(added.0, 200, "{}", added.1);
        })
        .buffer_unordered(SETUP_AT_ONCE)
        .collect::<Vec<()>>()
        .await;
    assert_eq!(
        t.count("SELECT COUNT(*) FROM gate_control").await,
        UNLOADED_BACKLOG,
        "the quiet campaigns' markers wait for their gate state"
    );

    let campaign = create_campaign(&t.client, &t.first, STOCK).await;
    assert_eq!(
        join_wave(&t.client, &t.first, campaign, 1..=2 * STOCK).await,
        [STOCK, STOCK]
    );
    let t = t
        .kill_first_with(campaign, "stock", json!({"delta": ADDED}))
        .await;
    // The second instance's marker loop runs already: it may have applied the marker by now.
    // Either way the gate has the units once, never anything else.
    let now = t.gate_field(campaign, "stock").await;
    assert!(
        [Some("0"), Some(ADDED.to_string().as_str())].contains(&now.as_deref()),
        "the gate's stock right after the kill: {now:?}"
    );
    t.wait_for_marker_applied(campaign, "stock", &ADDED.to_string())
        .await;
    assert_eq!(
        join_wave(&t.client, &second, campaign, 1_001..=1_000 + 3 * ADDED).await,
        [ADDED, 2 * ADDED]
    );
    assert_no_drift_at(&t.client, &second.base, campaign).await;
}

/// One test's world: a broker, a database, a key prefix, the instance started with the crash
/// hook, and the test's own connections.
struct Crash {
    client: reqwest::Client,
    db: DatabaseConnection,
    /// One connection for the test: the waits poll the gate over it.
    redis: MultiplexedConnection,
    broker: firstcome::kafka::EmbeddedBroker,
    db_url: String,
    prefix: String,
    first: Service,
}

impl Crash {
    async fn start() -> Self {
        let (broker, db_url, prefix) = fixture().await;
        let first = start_with(&db_url, &prefix, broker.bootstrap_servers(), &CRASH, false).await;
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            db: sea_orm::Database::connect(db_url.as_str())
                .await
                .expect("db"),
            redis: redis::Client::open(crate::spawn::redis_url())
                .expect("redis")
                .get_multiplexed_async_connection()
                .await
                .expect("redis"),
            broker,
            db_url,
            prefix,
            first,
        }
    }

    /// Asks the first instance for control `path` of the campaign: it commits and dies by
    /// SIGKILL before the gate step, so the call gets no answer.
    async fn kill_first_with(mut self, campaign: i64, path: &str, body: Value) -> Self {
        let since = std::time::Instant::now();
        let sent = self
            .client
            .post(format!(
                "{}/api/v1/admin/campaigns/{campaign}/{path}",
                self.first.base
            ))
            .bearer_auth(&self.first.token)
            .header("Idempotency-Key", RETRY_KEY)
            .json(&body)
            .send()
            .await;
        assert!(sent.is_err(), "the killed instance answered: {sent:?}");
        let status = wait_for_exit(
            &mut self.first.child,
            since,
            Duration::from_secs(30),
            || "the instance reached no crash point".into(),
        )
        .await;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
        self
    }

    async fn start_second(&self) -> Service {
        start(&self.db_url, &self.prefix, self.broker.bootstrap_servers()).await
    }

    async fn count(&self, sql: &str) -> i64 {
        scalar(&self.db, sql).await
    }

    /// `[total_stock, remaining_stock, control_seq]` of the campaign in MySQL.
    async fn stock_row(&self, campaign: i64) -> [i64; 3] {
        let mut out = [0; 3];
        for (slot, column) in out
            .iter_mut()
            .zip(["total_stock", "remaining_stock", "control_seq"])
        {
            *slot = self
                .count(&format!(
                    "SELECT {column} FROM campaign WHERE id = {campaign}"
                ))
                .await;
        }
        out
    }

    /// The control's audit row and outbox event are in MySQL, once each, with one event id.
    async fn assert_committed_once(&self, campaign: i64, event_type: &str) {
        let sql = format!(
            "SELECT COUNT(*) FROM campaign_control c JOIN outbox_event o ON o.event_id = c.event_id \
             WHERE c.campaign_id = {campaign} AND o.event_type = '{event_type}' \
             AND o.msg_key = '{campaign}'"
        );
        assert_eq!(
            self.count(&sql).await,
            1,
            "{event_type}: audit row and event"
        );
        let all = format!(
            "SELECT COUNT(*) FROM outbox_event WHERE aggregate_type = 'campaign' \
             AND aggregate_id = '{campaign}'"
        );
        assert_eq!(self.count(&all).await, 1, "one control event");
    }

    /// A field of the campaign's gate hash, straight from Redis.
    async fn gate_field(&self, campaign: i64, field: &str) -> Option<String> {
        self.redis
            .clone()
            .hget(format!("{}{{c:{campaign}}}:meta", self.prefix), field)
            .await
            .expect("HGET")
    }

    /// Deletes the campaign's gate state, as Redis losing its keys would. Once it is there: a
    /// creation answers without waiting for its gates' priming past half a second, and a prime
    /// still on its way (300 creations at once under a full suite's load) would load the keys
    /// again after the delete, and its control would then reach the gate with no marker left.
    async fn drop_gate_state(&self, campaign: i64) {
        wait_until(
            "the new campaign's gate primed",
            Duration::from_secs(20),
            || async { self.gate_field(campaign, "stock").await.is_some() },
        )
        .await;
        let keys: Vec<String> = ["meta", "users", "pending", "returned", "controls"]
            .iter()
            .map(|k| format!("{}{{c:{campaign}}}:{k}", self.prefix))
            .collect();
        let _: () = self.redis.clone().del(keys).await.expect("DEL");
    }

    /// Waits until no marker of the campaign is left and the gate's `field` reads `value`.
    async fn wait_for_marker_applied(&self, campaign: i64, field: &str, value: &str) {
        let markers = format!("SELECT COUNT(*) FROM gate_control WHERE campaign_id = {campaign}");
        wait_until(
            &format!("the marker applied: no marker and the gate's {field} = {value}"),
            MARKER_APPLIED_WITHIN,
            || {
                let markers = markers.clone();
                async move {
                    self.count(&markers).await == 0
                        && self.gate_field(campaign, field).await.as_deref() == Some(value)
                }
            },
        )
        .await;
    }

    /// Writes the marker of control `seq` again, as it was committed.
    async fn replant_marker(&self, campaign: i64, seq: i64, kind: &str, delta: i64) {
        self.db
            .execute_unprepared(&format!(
                "INSERT INTO gate_control (campaign_id, seq, kind, delta, created_at) \
                 VALUES ({campaign}, {seq}, '{kind}', {delta}, UTC_TIMESTAMP(6))"
            ))
            .await
            .expect("marker");
    }
}

/// POST control `path` of the campaign with the service's admin token: status and body.
async fn control(
    client: &reqwest::Client,
    service: &Service,
    campaign: i64,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let reply = client
        .post(format!(
            "{}/api/v1/admin/campaigns/{campaign}/{path}",
            service.base
        ))
        .bearer_auth(&service.token)
        .json(&body)
        .send()
        .await
        .expect("an answer");
    (reply.status().as_u16(), reply.json().await.expect("JSON"))
}

async fn get_campaign(client: &reqwest::Client, service: &Service, campaign: i64) -> Value {
    client
        .get(format!("{}/api/v1/campaigns/{campaign}", service.base))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON")
}

/// `users` join at once; returns [wins (201), refusals (409 SOLD_OUT)]. Anything else fails.
async fn join_wave(
    client: &reqwest::Client,
    service: &Service,
    campaign: i64,
    users: std::ops::RangeInclusive<i64>,
) -> [i64; 2] {
    let (wins, refused) = crate::binary::join_wave(client, service, campaign, users).await;
    assert!(refused.iter().all(|c| c == "SOLD_OUT"), "{refused:?}");
    [wins.len() as i64, refused.len() as i64]
}
