//! Carts (docs/design.md §22): a purchase of several campaigns of one group, every item won or
//! none. The same steps as a join, over all the items at once: the gate reserves them in one
//! atomic step ([`reserve`], `lua/cart.lua`), the join's settle step writes every item's win and
//! event with the purchase row in the one transaction every win takes
//! (`write::transaction::write_wins`), and the reservations are closed, or all given back as the
//! settle step maps the refusal ([`service`]).
//!
//! # Layout
//! - [`service`]: [`Carts`](service::Carts), the purchase composed of the steps, and what it
//!   answers.
//! - [`reserve`]: the gate's step for a cart: rebuilds, the in-flight wait, a dry bucket's search.
//! - [`store`]: the `purchase` table: its row written, a purchase read back.

pub mod reserve;
pub mod service;
pub mod store;

use crate::join::request::JoinError;

/// What a user asks for: units of several campaigns of a group, all or none.
#[derive(Debug, Clone)]
pub struct CartRequest {
    pub group_id: i64,
    pub user_id: i64,
    /// (campaign, quantity), distinct campaigns, in the order asked.
    pub items: Vec<(i64, i32)>,
    pub idempotency_key: Option<String>,
    pub trace: Option<crate::telemetry::trace::TraceContext>,
}

/// Why a purchase was refused. Nothing of it was written, and nothing stays reserved.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    #[error("group {0} does not exist")]
    GroupNotFound(i64),
    /// The request names no campaign of the group, the same campaign twice, or a campaign a cart
    /// cannot serve (one with a waiting room).
    #[error("{0}")]
    Invalid(String),
    /// One item could not be had: the refusal its join would have met.
    #[error("campaign {campaign_id}: {error}")]
    Item { campaign_id: i64, error: JoinError },
    /// Anything not about one item: the group's limit, a dependency down, a reused key.
    #[error(transparent)]
    Join(#[from] JoinError),
}

impl From<sea_orm::DbErr> for CartError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Join(e.into())
    }
}
