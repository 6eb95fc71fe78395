//! The relay (docs/design.md §2.3–§2.5, §7): every row published, per-key order, failures,
//! dead letters, shard leadership.

mod faults;
mod order;
mod publish;
