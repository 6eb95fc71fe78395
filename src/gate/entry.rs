//! [`Entry`]: who asks for how many units of which campaign. One typed value travels from the
//! request through the gate, the transaction and compensation, so the three numbers are never
//! passed (and swapped) positionally.

/// One user's entry into a campaign. The API layer has checked the ranges: ids ≥ 1, quantity ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    pub campaign_id: i64,
    pub user_id: i64,
    pub quantity: i32,
}
