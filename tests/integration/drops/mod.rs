//! Drops (docs/design.md §22): groups of campaigns under one per-user limit.

mod groups;
mod support;
