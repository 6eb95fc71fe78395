//! The test's own view of the app's Redis gate: a campaign's keys under the app's prefix, its
//! stock and winners, and stale or missing keys planted as an eviction or a reset would leave
//! them.

use redis::AsyncCommands;

use crate::spawn::TestApp;

impl TestApp {
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

    /// Every key of a campaign's gate gone, as a FLUSHALL or a Redis restart leaves them.
    pub async fn flush_gate_keys(&self, campaign_id: i64) {
        let pattern = format!("{}{{c:{campaign_id}}}:*", self.redis_prefix);
        let mut conn = self.redis.clone();
        let keys: Vec<String> = conn.keys(pattern).await.expect("KEYS");
        if !keys.is_empty() {
            let _: () = conn.del(keys).await.expect("DEL");
        }
    }
}

/// A gate of its own over the test Redis (a fresh key prefix), with `seed`'s campaign loaded:
/// for the tests that drive the Lua scripts step by step, without an application.
/// The gate state of an open, unbucketed campaign with `stock` units, one unit a user, nothing
/// sold, returned or controlled yet; a test changes the fields it is about.
pub fn open_seed(campaign_id: i64, epoch: i64, stock: i64) -> firstcome::gate::scripts::Seed {
    firstcome::gate::scripts::Seed {
        slot: firstcome::gate::Slot::solo(campaign_id),
        epoch,
        remaining_stock: stock,
        starts_at_ms: 0,
        ends_at_ms: 0,
        expire_at_ms: 0,
        per_user_limit: 1,
        max_sequence: 0,
        returned: Vec::new(),
        state: firstcome::gate::GateState::Open,
        control_seq: 0,
        gate_gen: 0,
    }
}

pub async fn loaded_gate(seed: &firstcome::gate::scripts::Seed) -> firstcome::gate::Gate {
    let mut settings = firstcome::config::Settings::from_pairs(&[]).expect("default settings");
    settings.redis.url = firstcome::config::Secret::new(crate::spawn::redis_url());
    settings.redis.key_prefix = format!("test:{}:", uuid::Uuid::now_v7().simple());
    let gate = firstcome::gate::Gate::new(&settings.redis).expect("gate");
    let token = firstcome::gate::scripts::RebuildToken::new();
    assert_eq!(
        gate.prepare(seed.slot, seed.epoch, &token)
            .await
            .expect("prepare"),
        firstcome::gate::scripts::Prepared::Load
    );
    assert_eq!(
        gate.load(seed, &token).await.expect("load"),
        firstcome::gate::scripts::Loaded::Written
    );
    gate
}
