//! A bucketed campaign's side of a crafted sale (§21), as a correct service would keep it:
//! stock dealt to buckets in slices and refilled from the pool in chunks, then from the fullest
//! sibling; returns to the win's bucket; added stock to the pool, withdrawn from the pool first.
//! Keys and home buckets are computed here, apart from the checker's own code.

use std::collections::{BTreeMap, HashMap};

use firstcome_proof_spec::final_state::{
    BucketGate, BucketRow, BucketState, CampaignBuckets, Gate, OutboxRow, ParticipationBucket,
    TopicRecord,
};

use super::{Win, CAMPAIGN};

/// FNV-1a 64 over the decimal user id, modulo `buckets` (design §21, D2).
pub fn home(user: i64, buckets: i64) -> i64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for byte in user.to_string().bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x100000001b3);
    }
    (h % buckets as u64) as i64
}

/// How many units a bucket takes from the pool at once.
const CHUNK: i64 = 2;

pub struct Bucketing {
    pub buckets: i64,
    pub pool: i64,
    /// Each bucket row's remaining stock.
    pub rows: Vec<i64>,
    accepted: Vec<i64>,
    next_sequence: Vec<i64>,
    pub outbox: Vec<OutboxRow>,
    offsets: BTreeMap<i32, i64>,
}

impl Bucketing {
    pub fn new(stock: i64, buckets: i64) -> Self {
        let slice = stock / (2 * buckets);
        let n = buckets as usize;
        Self {
            buckets,
            pool: stock - slice * buckets,
            rows: vec![slice; n],
            accepted: vec![0; n],
            next_sequence: vec![1; n],
            outbox: Vec::new(),
            offsets: BTreeMap::new(),
        }
    }

    /// The key an event goes to and the partition that key lives in: the campaign's key in
    /// partition 0, bucket `b`'s in partition `1 + b % 2`, so the topic read partition by
    /// partition interleaves the buckets otherwise than they committed.
    pub fn key(&self, payload: &serde_json::Value) -> (String, i32) {
        match payload["userId"].as_i64() {
            Some(user) => {
                let b = home(user, self.buckets);
                (format!("{CAMPAIGN}:{b}"), 1 + (b % 2) as i32)
            }
            None => (CAMPAIGN.to_string(), 0),
        }
    }

    /// A record of the event, its outbox row taken on its first publication.
    pub fn record(&mut self, payload: serde_json::Value) -> TopicRecord {
        let (key, partition) = self.key(&payload);
        let event_id = payload["eventId"].as_str().unwrap_or_default().to_owned();
        if !self.outbox.iter().any(|r| r.event_id == event_id) {
            let id = self.outbox.len() as i64 + 1;
            self.outbox.push(OutboxRow { id, event_id });
        }
        let offset = self.offsets.entry(partition).or_default();
        *offset += 1;
        TopicRecord {
            partition,
            offset: *offset - 1,
            key: Some(key),
            payload,
        }
    }

    /// A win of `user` takes `quantity` from its home bucket, refilled as needed; answers the
    /// win's sequence: its bucket's own count, made distinct across the campaign as the
    /// service writes it (docs/design.md §21: `local × buckets + bucket`).
    pub fn take(&mut self, user: i64, quantity: i64) -> i64 {
        let b = home(user, self.buckets) as usize;
        if self.rows[b] < quantity {
            let moved = self.pool.min(CHUNK.max(quantity - self.rows[b]));
            self.pool -= moved;
            self.rows[b] += moved;
        }
        while self.rows[b] < quantity {
            let (fullest, &units) = self
                .rows
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != b)
                .max_by_key(|&(_, &u)| u)
                .unwrap_or((b, &0));
            if units <= 0 {
                break; // an oversell planted by the test: the row goes below zero
            }
            let moved = units.min(quantity - self.rows[b]);
            self.rows[fullest] -= moved;
            self.rows[b] += moved;
        }
        self.rows[b] -= quantity;
        self.accepted[b] += 1;
        self.next_sequence[b] += 1;
        (self.next_sequence[b] - 1) * self.buckets + b as i64
    }

    /// A return goes back to the win's bucket.
    pub fn give(&mut self, user: i64, quantity: i64) {
        self.rows[home(user, self.buckets) as usize] += quantity;
    }

    /// Added stock goes to the pool; withdrawn stock comes from the pool, then the buckets.
    pub fn stock(&mut self, delta: i64) {
        let mut owed = -delta;
        if delta > 0 {
            self.pool += delta;
            return;
        }
        let from_pool = self.pool.min(owed);
        self.pool -= from_pool;
        owed -= from_pool;
        for row in &mut self.rows {
            let moved = (*row).min(owed);
            *row -= moved;
            owed -= moved;
        }
    }

    /// One gate per bucket, following its row.
    pub fn gates(&self, wins: &BTreeMap<i64, Win>) -> Vec<BucketGate> {
        let mut users: HashMap<i64, Vec<i64>> = HashMap::new();
        let mut returned: HashMap<i64, Vec<i64>> = HashMap::new();
        for (&user, w) in wins {
            let b = home(user, self.buckets);
            users.entry(b).or_default().push(user);
            if w.reason.is_some() {
                returned.entry(b).or_default().push(w.pid);
            }
        }
        (0..self.buckets)
            .map(|b| BucketGate {
                bucket: b,
                gate: Gate {
                    campaign: CAMPAIGN,
                    stock: Some(self.rows[b as usize]),
                    users: Some(users.remove(&b).unwrap_or_default()),
                    returned: Some(returned.remove(&b).unwrap_or_default()),
                    pending: Some(0),
                },
            })
            .collect()
    }

    pub fn state(&self, wins: &BTreeMap<i64, Win>) -> BucketState {
        BucketState {
            campaigns: vec![CampaignBuckets {
                id: CAMPAIGN,
                buckets: Some(self.buckets),
                pool: Some(self.pool),
            }],
            participations: wins
                .iter()
                .map(|(&user, w)| ParticipationBucket {
                    id: w.pid,
                    campaign: CAMPAIGN,
                    user,
                    bucket: home(user, self.buckets),
                })
                .collect(),
            gates: Some(self.gates(wins)),
            bucket_rows: Some(
                (0..self.buckets)
                    .map(|b| BucketRow {
                        campaign: CAMPAIGN,
                        bucket: b,
                        remaining_stock: self.rows[b as usize],
                        accepted_count: Some(self.accepted[b as usize]),
                    })
                    .collect(),
            ),
        }
    }
}
