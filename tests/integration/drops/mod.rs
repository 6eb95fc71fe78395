//! Drops (docs/design.md §22): groups of campaigns under one per-user limit.

mod carts;
mod groups;
mod support;
