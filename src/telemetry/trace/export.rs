//! OTLP export of the service's spans, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! Three kinds of span are exported, each with the ids `context.rs` made (so the ids in a
//! collector are the ids Kafka carried):
//! - `SERVER`, one per HTTP request (`http/request_span.rs`), child of the caller's span when
//!   the request carried a `traceparent`;
//! - `PRODUCER`, one per outbox row the relay publishes, from send to the broker's
//!   acknowledgement, child of the request's span (the `traceparent` stored in the row);
//! - `CONSUMER`, one per event a consumer applies, from the start of its batch to the commit,
//!   child of the same request span (the message's `traceparent`).
//!
//! Only sampled traces are exported (the caller's `sampled` flag; a new trace is sampled when an
//! exporter is installed). Without an exporter nothing here runs: `start` returns an inert span
//! and the relay and consumers build none.
//!
//! Transport: OTLP over HTTP with protobuf bodies (`opentelemetry-otlp`'s `http-proto`, reqwest's
//! blocking client on the batch processor's own thread), the lightest of its transports to build
//! (gRPC would add tonic's transport and hyper's HTTP/2 server stack). Spans go through the SDK's
//! batch processor: a bounded queue, exported off the request path, dropped (and counted by the
//! SDK) when the collector cannot keep up. The standard `OTEL_BSP_*` variables tune it, and
//! `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TIMEOUT` are honoured.

use std::{borrow::Cow, sync::OnceLock, time::Duration};

use opentelemetry::{
    trace::{
        SamplingDecision, SamplingResult, Span as _, SpanBuilder, SpanContext, SpanId,
        TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
    },
    Context,
};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::{
    trace::{SdkTracer, SdkTracerProvider},
    Resource,
};

pub use opentelemetry::{trace::SpanKind, KeyValue};

use crate::telemetry::trace::TraceContext;

/// How long shutdown waits for the last spans to reach the collector.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The installed exporter; set once per process, never unset (shutdown only stops it).
static EXPORTER: OnceLock<Exporter> = OnceLock::new();

struct Exporter {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("could not build the OTLP exporter: {0}")]
    Build(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("an OTLP exporter is already installed in this process")]
    AlreadyInstalled,
}

/// Where spans are POSTed: the OTLP/HTTP rule for `OTEL_EXPORTER_OTLP_ENDPOINT` is the base URL
/// plus `v1/traces`.
pub fn traces_url(endpoint: &url::Url) -> String {
    format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'))
}

/// Installs the exporter for this process. Must run inside a Tokio runtime or not (the batch
/// processor has its own thread).
pub fn install(endpoint: &url::Url) -> Result<(), ExportError> {
    if EXPORTER.get().is_some() {
        return Err(ExportError::AlreadyInstalled);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("firstcome")
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build();
    let tracer = provider.tracer("firstcome");
    EXPORTER
        .set(Exporter { provider, tracer })
        .map_err(|_| ExportError::AlreadyInstalled)
}

/// Whether spans are exported (decides whether a new trace is sampled).
pub fn enabled() -> bool {
    EXPORTER.get().is_some()
}

/// Exports what is queued now. Blocks until the collector answered (or the export timed out).
pub fn flush() {
    if let Some(e) = EXPORTER.get() {
        if let Err(error) = e.provider.force_flush() {
            tracing::warn!(%error, "Could not flush the OTLP span exporter.");
        }
    }
}

/// Exports what is queued and stops the exporter; spans started later are not exported.
/// Blocks up to a few seconds: call it on a blocking thread.
pub fn shutdown() {
    if let Some(e) = EXPORTER.get() {
        if let Err(error) = e.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(%error, "Could not flush the OTLP span exporter at shutdown.");
        }
    }
}

/// A span being recorded for export, or nothing (no exporter, trace not sampled). Ends when
/// `end` is called or when dropped.
pub struct ExportSpan(Option<opentelemetry_sdk::trace::Span>);

impl ExportSpan {
    /// A span that records nothing.
    pub fn inert() -> Self {
        Self(None)
    }

    /// Whether anything is recorded (attributes that cost something to build can be skipped).
    pub fn is_recording(&self) -> bool {
        self.0.is_some()
    }

    pub fn set_attribute(&mut self, attribute: KeyValue) {
        if let Some(span) = &mut self.0 {
            span.set_attribute(attribute);
        }
    }

    pub fn update_name(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(span) = &mut self.0 {
            span.update_name(name);
        }
    }

    /// Marks the span failed, with a short description (never a secret or a payload).
    pub fn set_error(&mut self, description: impl Into<Cow<'static, str>>) {
        if let Some(span) = &mut self.0 {
            span.set_status(opentelemetry::trace::Status::error(description));
        }
    }

    pub fn end(mut self) {
        if let Some(span) = &mut self.0 {
            span.end();
        }
    }
}

/// Starts span `ctx` (its ids are used as they are) with `parent` as its parent, when an
/// exporter is installed and the trace is sampled.
pub fn start(
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    ctx: TraceContext,
    parent: Option<TraceContext>,
    attributes: Vec<KeyValue>,
) -> ExportSpan {
    let Some(exporter) = EXPORTER.get() else {
        return ExportSpan(None);
    };
    if !ctx.sampled() {
        return ExportSpan(None);
    }
    let parent_cx = match parent {
        Some(p) => Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(p.trace_id()),
            SpanId::from(p.span_id()),
            TraceFlags::new(p.flags()),
            true,
            TraceState::default(),
        )),
        None => Context::new(),
    };
    let span = SpanBuilder::from_name(name)
        .with_kind(kind)
        .with_trace_id(TraceId::from(ctx.trace_id()))
        .with_span_id(SpanId::from(ctx.span_id()))
        .with_attributes(attributes)
        // The decision is the trace's `sampled` flag, already taken; the SDK's sampler is not
        // asked again.
        .with_sampling_result(SamplingResult {
            decision: SamplingDecision::RecordAndSample,
            attributes: Vec::new(),
            trace_state: TraceState::default(),
        })
        .start_with_context(&exporter.tracer, &parent_cx);
    ExportSpan(Some(span))
}

/// Starts a child span of the span a `traceparent` header names (the relay's publish, a
/// consumer's apply). Costs nothing without an exporter: `traceparent` is not even parsed.
/// `attributes` is only called when the span is recorded.
pub fn start_child_of(
    traceparent: Option<&str>,
    name: &'static str,
    kind: SpanKind,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> ExportSpan {
    if !enabled() {
        return ExportSpan(None);
    }
    let Some(parent) = traceparent.and_then(TraceContext::parse) else {
        return ExportSpan(None);
    };
    if !parent.sampled() {
        return ExportSpan(None);
    }
    start(name, kind, parent.child(), Some(parent), attributes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_go_to_the_traces_path_under_the_endpoint() {
        let base = url::Url::parse("http://collector:4318").expect("url");
        assert_eq!(traces_url(&base), "http://collector:4318/v1/traces");
        let nested = url::Url::parse("https://otel.example/prefix/").expect("url");
        assert_eq!(traces_url(&nested), "https://otel.example/prefix/v1/traces");
    }

    #[test]
    fn without_an_exporter_spans_are_inert() {
        // No test in this binary installs one.
        let span = start(
            "x",
            SpanKind::Internal,
            TraceContext::new_root(true),
            None,
            vec![],
        );
        assert!(!span.is_recording());
    }
}
