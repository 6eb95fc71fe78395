//! Tracing subscriber set-up: `RUST_LOG` filters (default `info`, per-request lines off: turn
//! them on with `RUST_LOG=info,poem=info`), `LOG_FORMAT` picks pretty
//! lines for people or JSON lines for log shippers.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// Installs the global subscriber. Safe to call more than once (tests): later calls do nothing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,sea_orm=warn,poem::middleware::tracing_mw=warn")
    });
    let builder = fmt().with_env_filter(filter).with_target(true);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
