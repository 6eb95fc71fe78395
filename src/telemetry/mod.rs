//! Telemetry (docs/design.md §12): logs, metrics and traces in one room.
//! - this module: the tracing subscriber (logs) and the trace exporter's set-up;
//! - [`metrics`]: Prometheus metrics, one registry per application, served at `GET /metrics`;
//! - [`trace`]: W3C trace context (request → outbox row → Kafka → consumers) and OTLP export.
//!
//! Logs: `RUST_LOG` filters (default `info`); `LOG_FORMAT` picks pretty lines for people or JSON
//! lines for log shippers. Every line logged while a request runs carries its `request_id` and
//! `trace_id` (the request span of `http/request_span.rs`); a request's own completion line is at
//! `debug` unless it failed with a 5xx (`RUST_LOG=info,firstcome::http=debug` shows them all).
//! Secrets stay out of both: a request's path is logged and exported with a waiting-room ticket
//! replaced (`http::request_span::loggable_path`), its query string not at all.
//!
//! Traces: `OTEL_EXPORTER_OTLP_ENDPOINT` installs the OTLP exporter of `telemetry/trace/export.rs`;
//! [`shutdown`] flushes it.

pub mod metrics;
pub mod trace;

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// The filter when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn";

/// Installs the global subscriber with `filter` (`RUST_LOG` or `--rust-log`, already checked by
/// the configuration; the default when `None`). Safe to call more than once (tests): later calls
/// do nothing.
pub fn init(format: LogFormat, filter: Option<&str>) {
    let filter = filter
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    // Colours only for a terminal: a log file or a pipe gets plain text.
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Starts exporting spans to `endpoint` over OTLP/HTTP; without one, nothing is exported (the
/// `traceparent` is propagated all the same).
pub fn init_traces(
    endpoint: Option<&url::Url>,
) -> Result<(), crate::telemetry::trace::export::ExportError> {
    let Some(endpoint) = endpoint else {
        return Ok(());
    };
    crate::telemetry::trace::export::install(endpoint)?;
    tracing::info!(endpoint = %crate::telemetry::trace::export::traces_url(endpoint),
        "Exporting traces over OTLP/HTTP.");
    Ok(())
}

/// Flushes and stops the span exporter (the last step of a shutdown). The flush blocks (at most
/// the exporter's own timeout), so it runs off the async workers.
pub async fn shutdown() {
    if crate::telemetry::trace::export::enabled() {
        let flushed = crate::shutdown::off_runtime::run(
            "OTLP exporter: last spans",
            crate::telemetry::trace::export::SHUTDOWN_TIMEOUT + std::time::Duration::from_secs(1),
            crate::telemetry::trace::export::shutdown,
        )
        .await;
        if let Err(e) = flushed {
            tracing::warn!(error = %e, "Could not flush the OTLP span exporter at shutdown.");
        }
    }
}

/// A WARN that would otherwise repeat on every failure (Redis unreachable behind every call,
/// descriptors short on every accept) is written at most once per interval, and says how many
/// occurrences it stands for. Cheap to share (one uncontended lock per occurrence).
#[derive(Debug)]
pub struct Throttle {
    every: std::time::Duration,
    /// When the last line was written, and the occurrences counted since.
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl Throttle {
    pub const fn new(every: std::time::Duration) -> Self {
        Self {
            every,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// Counts one occurrence; `Some(n)` when a line is due now, `n` the occurrences it stands
    /// for (this one included).
    pub fn hit(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last, count) = &mut *state;
        *count += 1;
        let now = std::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < self.every) {
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_writes_the_first_line_then_counts_until_the_interval_passes() {
        let throttle = Throttle::new(std::time::Duration::from_secs(3600));
        assert_eq!(throttle.hit(), Some(1));
        assert_eq!(throttle.hit(), None);
        assert_eq!(throttle.hit(), None);
        let now = Throttle::new(std::time::Duration::ZERO);
        assert_eq!(now.hit(), Some(1));
        assert_eq!(now.hit(), Some(1));
    }
}
