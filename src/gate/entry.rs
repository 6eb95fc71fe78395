//! [`Entry`]: who asks for how many units of which campaign. One typed value travels from the
//! request through the gate, the transaction and compensation, so the three numbers are never
//! passed (and swapped) positionally. [`AdmissionPass`]: the waiting room's admission it carries.

/// One user's entry into a campaign. The API layer has checked the ranges: ids ≥ 1, quantity ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub campaign_id: i64,
    pub user_id: i64,
    pub quantity: i32,
    /// The user's home bucket in a bucketed campaign (docs/design.md §21), set once the campaign
    /// is known; `None` for an unbucketed one.
    pub bucket: Option<u16>,
    /// The campaign's group (docs/design.md §22), set once the campaign is known: its keys take
    /// the group's hash tag.
    pub group: Option<i64>,
}

impl Entry {
    /// `user_id`'s entry for `quantity` units in `slot` (its campaign, bucket and group).
    pub fn in_slot(slot: super::Slot, user_id: i64, quantity: i32) -> Self {
        Self {
            campaign_id: slot.campaign_id,
            user_id,
            quantity,
            bucket: slot.bucket,
            group: slot.group,
        }
    }

    /// The gate state this entry's reservation lives in.
    pub fn slot(&self) -> super::Slot {
        super::Slot {
            campaign_id: self.campaign_id,
            group: self.group,
            bucket: self.bucket,
        }
    }
}

/// The waiting room's admission a join presents (docs/design.md §16): its ticket and the expiry
/// its token was signed with. The signature is checked before the gate; the gate checks that the
/// admission is live, this user's and unused, in the same step as the stock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AdmissionPass {
    pub ticket: String,
    pub expires_ms: i64,
}
