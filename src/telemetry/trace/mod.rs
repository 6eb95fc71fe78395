//! Distributed tracing (docs/design.md §12): every request gets a server span in a W3C trace (the
//! caller's, or a new one); that span's `traceparent` is stored with the outbox row, published
//! with the Kafka message, and continued by the relay and the consumers.
//!
//! - [`context`]: the W3C `traceparent` and the ids of new spans; always on, and cheap.
//! - [`export`]: OTLP export of those spans, only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! Why not `tracing-opentelemetry`: it would give every `tracing` span an OpenTelemetry span
//! (an allocation and a sampler call each, with or without an exporter) and tie propagation to
//! the SDK. Here propagation needs no SDK at all, the SDK is touched only when exporting, and
//! only the spans that matter across processes are exported. The price: the `tracing` spans
//! inside a request (database, Redis) are logs, not exported spans.

pub mod context;
pub mod export;

pub use context::TraceContext;
