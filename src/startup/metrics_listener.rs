//! `METRICS_ADDR`: a second listener that serves `/metrics` alone, without a token, for a
//! Prometheus on an internal network (docs/design.md §17). The API's port keeps its own
//! `/metrics`, which on an exposed address needs an admin token. Same server as the API's (the
//! client deadlines, the connection caps); bound at build, like `HTTP_ADDR`, so a taken port
//! fails the start and tests can ask for port 0.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use poem::{get, Route};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    http::{
        client_ip::TrustedProxies,
        server::{Server, ServerSettings},
    },
    shutdown::running,
    telemetry::metrics::{Exposition, Metrics},
};

/// The bound `METRICS_ADDR`.
pub struct MetricsListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MetricsListener {
    /// Binds `addr`, if one is configured.
    pub async fn bind(addr: Option<SocketAddr>) -> anyhow::Result<Option<Self>> {
        let Some(addr) = addr else {
            return Ok(None);
        };
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not bind METRICS_ADDR={addr}"))?;
        let addr = listener.local_addr()?;
        Ok(Some(Self { listener, addr }))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `/metrics` on a task of `tasks` until `shutdown`.
    pub fn serve(
        self,
        server: ServerSettings,
        proxies: TrustedProxies,
        metrics: Arc<Metrics>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
        shutdown_timeout: Duration,
    ) {
        let addr = self.addr;
        let routes = Route::new().at("/metrics", get(Exposition::new(metrics.clone())));
        let http = Server::new(self.listener, server, proxies, metrics);
        tracing::info!(%addr, "Serving /metrics on METRICS_ADDR.");
        tasks.spawn(running::track(
            "metrics listener",
            http.run(routes, shutdown, shutdown_timeout)
                .instrument(tracing::info_span!("metrics_http", %addr)),
        ));
    }
}
