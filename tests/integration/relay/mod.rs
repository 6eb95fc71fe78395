//! The relay (docs/design.md §2.3–§2.5, §7): every row published, per-key order, failures,
//! dead letters, shard leadership; a win's later events after it, and a campaign's live
//! controls among its wins, through an outage.

mod claim;
mod cleanup;
mod controls_order;
mod faults;
mod lifecycle_order;
mod order;
mod partitions;
mod publish;
