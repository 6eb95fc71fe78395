//! Drops (docs/design.md §22): groups of campaigns under one per-user limit, carts, waitlist
//! offers.

mod carts;
mod groups;
mod offers;
pub(crate) mod support;
