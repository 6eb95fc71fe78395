//! The consumers (docs/design.md §2.8, §11): effectively once through redeliveries, kills,
//! rebalances, poison and database outages.

mod controls;
mod dropped;
mod end_to_end;
mod faults;
mod group;
mod hot_campaign;
mod lifecycle;
mod redelivery;
mod retention;
