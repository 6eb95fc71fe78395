//! Prometheus metrics (docs/design.md §12), served as text at `GET /metrics`.
//!
//! Each application owns one [`Metrics`]: its own `prometheus-client` registry, no process-global
//! recorder, so several applications in one process (the integration tests) each count only their
//! own work. Whoever records a metric holds a handle to it (cheap clones of the same atomics);
//! `/metrics` and the admin outbox summary read those same values.
//!
//! # Layout
//! - [`registry`]: [`Metrics`], every family declared once with its buckets, and [`NAMES`].
//! - [`labels`]: the families' label sets.
//! - [`pools`]: MySQL pool connections, read from the pools when scraped.
//! - [`http`]: the middleware counting requests and timing them by route template.
//! - [`outbox`]: the task that refreshes the outbox gauges from MySQL on a timer.
//! - [`exposition`]: the `/metrics` endpoint.

pub mod exposition;
pub mod http;
pub mod labels;
mod pools;
pub mod registry;

pub use exposition::Exposition;
pub use http::HttpMetrics;
pub use registry::{CampaignLabels, Metrics, ParticipationPath, NAMES};
