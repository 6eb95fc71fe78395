//! The live view of a running sale (docs/design.md §20): a snapshot of one campaign a second,
//! streamed to its watchers as Server-Sent Events (`GET /api/v1/campaigns/{id}/live`) and drawn by
//! the console (`/console`).
//!
//! Each instance takes one snapshot per watched campaign per `LIVE_INTERVAL_MS` and hands the
//! same snapshot to every watcher of that campaign, so a thousand watchers cost MySQL what one
//! does. A watcher that stops reading is dropped once a few snapshots wait for it: nothing is
//! buffered for it without bound. Watchers are capped per instance and per client IP, so one
//! client cannot take every seat; the service's own figures go to admins only.
//!
//! # Layout
//! - [`reading`]: what one snapshot reads (MySQL, and Redis for a waiting room), counted.
//! - [`snapshot`]: [`Snapshot`], a reading with the rates since the one before it.
//! - [`group`]: a grouped campaign's group, its campaigns side by side.
//! - [`hub`]: [`LiveHub`], the feeds (one task per watched campaign) and their watchers.

pub mod group;
pub mod hub;
pub mod reading;
pub mod snapshot;

pub use hub::{LiveHub, Viewer, WatchError, Watcher};
pub use reading::LiveSource;
pub use snapshot::{Operations, QueueFigures, Slot, Snapshot};
