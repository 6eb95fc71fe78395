//! What the final state says of groups and carts (design §22), read from the same document as
//! [`FinalState`](super::FinalState) but kept apart from it, as the bucket fields are: every
//! field optional, so a final state of a run without groups reads as one without any.
//!
//! # Format (the additions)
//!
//! ```json
//! {
//!   "campaigns": [{"id": 1, …, "group": 4}],
//!   "participations": [{"id": 7, "campaign": 1, "user": 42, …, "purchase": 12}],
//!   "groups": [{"id": 4, "perUserLimit": 2, "buckets": 1}],
//!   "purchases": [{"id": 12, "group": 4, "user": 42, "idempotencyKey": "c3-17"}],
//!   "groupHoldings": [{"group": 4, "user": 42, "units": 2}]
//! }
//! ```
//!
//! A campaign's `group` is `campaign.group_id` (absent: in no group); a participation's
//! `purchase` is `participation.purchase_id` (absent: a single join). `groups` is MySQL's
//! `campaign_group`, `purchases` its `purchase` rows of the run's groups, `groupHoldings` its
//! `group_holding` rows; each absent: not taken (the checks that need it say so).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The group and cart fields of the final state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupState {
    #[serde(default)]
    pub campaigns: Vec<CampaignGroup>,
    #[serde(default)]
    pub participations: Vec<ParticipationPurchase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Group>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchases: Option<Vec<Purchase>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_holdings: Option<Vec<GroupHolding>>,
}

impl GroupState {
    /// Each campaign's group, for the campaigns in one.
    pub fn group_of(&self) -> HashMap<i64, i64> {
        (self.campaigns.iter())
            .filter_map(|c| c.group.map(|g| (c.id, g)))
            .collect()
    }

    /// Each participation's purchase, for the participations of a cart.
    pub fn purchase_of(&self) -> HashMap<i64, i64> {
        (self.participations.iter())
            .filter_map(|p| p.purchase.map(|x| (p.id, x)))
            .collect()
    }
}

/// A campaign row's group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignGroup {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<i64>,
}

/// A participation row's purchase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipationPurchase {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase: Option<i64>,
}

/// One `campaign_group` row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: i64,
    pub per_user_limit: i64,
    #[serde(default = "one")]
    pub buckets: i64,
}

fn one() -> i64 {
    1
}

/// One `purchase` row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Purchase {
    pub id: i64,
    pub group: i64,
    pub user: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// One `group_holding` row: the units MySQL counts against the user's limit in the group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupHolding {
    pub group: i64,
    pub user: i64,
    pub units: i64,
}
