//! Groups (docs/design.md §22): campaigns sold under one per-user limit — the sizes of one
//! sneaker, the days of one festival. A campaign joins a group at its creation and takes the
//! group's hash tag in Redis (`gate::Slot`), so the gate checks a user's units across the group
//! in the same atomic step as the stock (`gate::group`); MySQL guards the limit too, in the
//! win's own transaction ([`guard`]).
//!
//! # Layout
//! - [`repo`]: the `campaign_group` rows.
//! - [`directory`]: each group's limit and campaigns as a join needs them, kept a moment.
//! - [`guard`]: the MySQL guard of the limit (`group_holding`).
//! - [`service`]: creating and reading groups.

pub mod directory;
pub mod guard;
pub mod repo;
pub mod service;

use chrono::{DateTime, Utc};

pub use directory::{GroupDirectory, GroupMembers};
pub use service::GroupService;

/// A grouped win's limit: the group, and the units one user may hold across it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub group_id: i64,
    pub per_user: i32,
}

/// A group of campaigns and its per-user limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: i64,
    pub name: String,
    /// Units one user may hold across the group's campaigns, whatever became of them (a
    /// cancelled or expired win counts, as it does for a campaign's one win per user).
    pub per_user_limit: i32,
    /// Every campaign of the group has this many buckets (docs/design.md §21), so a user's home
    /// bucket is the same in each.
    pub buckets: u16,
    pub created_at: DateTime<Utc>,
}
