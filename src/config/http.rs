//! The `HTTP` settings: where the API listens and what one request may take.

use std::{net::SocketAddr, time::Duration};

use clap::Args;

use super::values::{millis, number};

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
}
