//! What the final state says of buckets (design §21), read from the same document as
//! [`FinalState`](super::FinalState) but kept apart from it: the harness builds that struct
//! field by field, so the bucket fields live here, every one optional (absent: unbucketed).
//!
//! # Format (the additions)
//!
//! ```json
//! {
//!   "campaigns": [{"id": 1, …, "buckets": 4, "pool": 2}],
//!   "participations": [{"id": 7, "campaign": 1, "user": 42, …, "bucket": 3}],
//!   "gates": [{"campaign": 1, "bucket": 3, "stock": 1, "users": [42], "returned": [],
//!              "pending": 0}],
//!   "bucketRows": [{"campaign": 1, "bucket": 3, "remainingStock": 1, "acceptedCount": 2}]
//! }
//! ```
//!
//! `buckets` defaults to 1 (one bucket is today's campaign, unchanged), a participation's and a
//! gate's `bucket` to 0. A bucketed campaign has one gate entry per bucket. Its
//! `remainingStock` stays the whole campaign's: the `pool` not yet dealt plus every bucket row's
//! `remainingStock`. `bucketRows` is MySQL's per-bucket rows; absent: not taken.

use serde::{Deserialize, Serialize};

use super::Gate;

/// The bucket fields of the final state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketState {
    #[serde(default)]
    pub campaigns: Vec<CampaignBuckets>,
    #[serde(default)]
    pub participations: Vec<ParticipationBucket>,
    /// The gate entries with their bucket; absent: the gate was not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<Vec<BucketGate>>,
    /// MySQL's per-bucket rows; absent: not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_rows: Option<Vec<BucketRow>>,
}

impl BucketState {
    /// The campaign's bucket count: 1 unless the final state says otherwise.
    pub fn buckets(&self, campaign: i64) -> i64 {
        self.campaign(campaign).and_then(|c| c.buckets).unwrap_or(1)
    }

    pub fn campaign(&self, campaign: i64) -> Option<&CampaignBuckets> {
        self.campaigns.iter().find(|c| c.id == campaign)
    }
}

/// A campaign row's bucket fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignBuckets {
    pub id: i64,
    /// 1–1024; absent: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<i64>,
    /// Units not yet dealt to any bucket; absent: not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<i64>,
}

/// A participation row's bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipationBucket {
    pub id: i64,
    pub campaign: i64,
    pub user: i64,
    #[serde(default)]
    pub bucket: i64,
}

/// One bucket's gate in Redis, read once settled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketGate {
    #[serde(default)]
    pub bucket: i64,
    #[serde(flatten)]
    pub gate: Gate,
}

/// One bucket's MySQL row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketRow {
    pub campaign: i64,
    pub bucket: i64,
    pub remaining_stock: i64,
    /// Wins the bucket accepted; absent: not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_count: Option<i64>,
}
