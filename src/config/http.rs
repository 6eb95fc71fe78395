//! The `HTTP` settings: where the API listens, what one request may take, and the deadlines and
//! caps that keep slow or idle clients from holding connections (docs/design.md §17).

use std::{net::SocketAddr, time::Duration};

use clap::Args;

use crate::config::{
    invalid,
    values::{millis, number},
    ConfigError,
};

#[derive(Debug, Clone, Args)]
pub struct HttpSettings {
    /// Address the HTTP API listens on (port 0 picks a free port)
    #[arg(
        id = "HTTP_ADDR",
        long = "http-addr",
        env,
        default_value = "127.0.0.1:8080"
    )]
    pub addr: SocketAddr,
    /// Largest request body; larger ones get 413 PAYLOAD_TOO_LARGE (256–16777216)
    #[arg(id = "HTTP_BODY_LIMIT_BYTES", long = "http-body-limit-bytes", env,
          default_value_t = 16_384, value_parser = number::<usize>(256..=16_777_216))]
    pub body_limit: usize,
    /// A request still running after this gets 503 (100–600000)
    #[arg(id = "HTTP_REQUEST_TIMEOUT_MS", long = "http-request-timeout-ms", env,
          default_value = "10000", value_parser = millis(100..=600_000))]
    pub request_timeout: Duration,
    /// A request's head (request line and headers) must arrive within this, on a fresh connection or between requests on a kept-alive one; otherwise the connection is closed (100–600000)
    #[arg(id = "HTTP_HEADER_TIMEOUT_MS", long = "http-header-timeout-ms", env,
          default_value = "10000", value_parser = millis(100..=600_000))]
    pub header_timeout: Duration,
    /// Public reads (a campaign, a group, a campaign's statistics) are answered from this instance's copy up to this old; 0: every read goes to MySQL (0–60000)
    // docs/design.md §17: a flood of reads costs MySQL one read per id per period per instance.
    #[arg(id = "PUBLIC_READ_CACHE_MS", long = "public-read-cache-ms", env,
          default_value = "500", value_parser = millis(0..=60_000))]
    pub public_read_cache: Duration,
    /// A connection on which no byte moves either way for this long is closed; must be longer than HTTP_REQUEST_TIMEOUT_MS (100–3600000)
    #[arg(id = "HTTP_IDLE_TIMEOUT_MS", long = "http-idle-timeout-ms", env,
          default_value = "60000", value_parser = millis(100..=3_600_000))]
    pub idle_timeout: Duration,
    /// Open connections in all; one more is answered 503 SERVICE_BUSY and closed (1–1000000)
    #[arg(id = "HTTP_MAX_CONNECTIONS", long = "http-max-connections", env,
          default_value_t = 10_000, value_parser = number::<usize>(1..=1_000_000))]
    pub max_connections: usize,
    /// Open connections per client address (an IPv6 client by its /64); one more is answered 503 SERVICE_BUSY and closed. TRUSTED_PROXIES are exempt (1–1000000)
    #[arg(id = "HTTP_MAX_CONNECTIONS_PER_CLIENT", long = "http-max-connections-per-client", env,
          default_value_t = 256, value_parser = number::<usize>(1..=1_000_000))]
    pub max_connections_per_client: usize,
    /// Also speak HTTP/2 (cleartext, prior knowledge) on HTTP_ADDR; off: HTTP/1.1 only, and an HTTP/2 preface is refused
    #[arg(id = "HTTP2_ENABLED", long = "http2-enabled", env, default_value_t = false,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub http2: bool,
    /// With HTTP2_ENABLED: streams one connection may have in flight at once; each counts against HTTP_MAX_CONNECTIONS_PER_CLIENT (1–1000)
    #[arg(id = "HTTP2_MAX_CONCURRENT_STREAMS", long = "http2-max-concurrent-streams", env,
          default_value_t = 8, value_parser = number::<u32>(1..=1_000))]
    pub http2_max_streams: u32,
    /// Serve the synchronous baseline `POST …/participations/sync` (for comparing designs); unset: only when HTTP_ADDR is loopback. Off, it answers 404
    // It passes the same door as a join (limits, bot check, room), yet it is a second way in
    // that no deployment needs: an exposed service does not offer it unless asked.
    #[arg(id = "SYNC_PATH_ENABLED", long = "sync-path-enabled", env,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub sync_path: Option<bool>,
    /// A second listener serving only /metrics, without a token (e.g. an internal network for Prometheus); unset: none, and /metrics on an HTTP_ADDR other hosts reach needs an admin token
    #[arg(id = "METRICS_ADDR", long = "metrics-addr", env)]
    pub metrics_addr: Option<SocketAddr>,
}

impl HttpSettings {
    /// The idle deadline must not cut a request short: a handler may be silent on the wire for
    /// up to `HTTP_REQUEST_TIMEOUT_MS` before its answer (the 503 of the request deadline
    /// included), and every request gets that answer (docs/design.md §2.9). Streams are not
    /// concerned: the live view writes every second.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.idle_timeout <= self.request_timeout {
            return Err(invalid(
                "HTTP_IDLE_TIMEOUT_MS",
                &self.idle_timeout.as_millis().to_string(),
                "must be longer than HTTP_REQUEST_TIMEOUT_MS",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    #[test]
    fn the_idle_deadline_must_outlast_the_request_deadline() {
        let mut http = Settings::from_pairs(&[]).expect("defaults").http;
        assert!(http.check().is_ok(), "the defaults hold");
        http.idle_timeout = http.request_timeout;
        let err = http
            .check()
            .expect_err("an idle deadline no longer than a request's");
        assert!(
            err.to_string().starts_with("HTTP_IDLE_TIMEOUT_MS="),
            "{err}"
        );
    }
}
