//! The HTTP server (docs/design.md §17): accepts connections, admits each under the connection
//! caps or answers it 503 at once ([`caps`], [`refuse`]), and serves it on a task of its own
//! with the client deadlines ([`connection`], [`idle`]).
//!
//! poem's own `Server` cannot do this: it builds hyper without a timer, so hyper's deadline on a
//! request head never fires, and it has no caps. The endpoint is poem's all the same.
//!
//! Shutdown (the application's root token): stop accepting and close the listener; every
//! connection finishes its in-flight requests and closes (an idle one at once); those still open
//! after the shutdown timeout are dropped.

mod caps;
mod connection;
mod idle;
mod open_files;
mod refuse;
mod streams;

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use poem::Endpoint;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use crate::http::server::{connection::Deadlines, open_files::raise_open_files_limit};
use crate::{
    config::HttpSettings,
    http::{
        client_ip::TrustedProxies,
        server::{caps::Caps, connection::Serving, refuse::Refuser},
    },
    telemetry::{metrics::Metrics, Throttle},
};

/// What the server takes of the settings.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    pub deadlines: Deadlines,
    /// `HTTP_MAX_CONNECTIONS`.
    pub max_connections: usize,
    /// `HTTP_MAX_CONNECTIONS_PER_CLIENT`.
    pub max_connections_per_client: usize,
    /// `HTTP2_MAX_CONCURRENT_STREAMS` with `HTTP2_ENABLED`; `None`: HTTP/1.1 only.
    pub http2_streams: Option<u32>,
}

impl ServerSettings {
    pub fn of(http: &HttpSettings) -> Self {
        Self {
            deadlines: Deadlines {
                header: http.header_timeout,
                idle: http.idle_timeout,
            },
            max_connections: http.max_connections,
            max_connections_per_client: http.max_connections_per_client,
            http2_streams: http.http2.then_some(http.http2_max_streams),
        }
    }
}

/// A bound listener and what serving on it needs.
pub struct Server {
    listener: TcpListener,
    settings: ServerSettings,
    /// Their connections meet only the total cap.
    proxies: TrustedProxies,
    metrics: Arc<Metrics>,
}

impl Server {
    pub fn new(
        listener: TcpListener,
        settings: ServerSettings,
        proxies: TrustedProxies,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            listener,
            settings,
            proxies,
            metrics,
        }
    }

    /// Serves `endpoint` until `shutdown` is cancelled, then shuts down as the module says,
    /// within `shutdown_timeout`.
    pub async fn run<E: Endpoint + 'static>(
        self,
        endpoint: E,
        shutdown: CancellationToken,
        shutdown_timeout: Duration,
    ) {
        let Self {
            listener,
            settings,
            proxies,
            metrics,
        } = self;
        let caps = Caps::new(
            settings.max_connections,
            settings.max_connections_per_client,
            proxies,
            metrics.clone(),
        );
        let serving = Arc::new(Serving::new(
            endpoint,
            settings.deadlines,
            settings.http2_streams,
            caps.clone(),
            metrics,
            shutdown.clone(),
        ));
        let refuser = Refuser::default();
        let mut connections = JoinSet::new();
        let mut backoff = AcceptBackoff::default();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(error) = joined {
                        tracing::error!(%error, "A connection's task failed.");
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        backoff.succeeded();
                        match caps.admit(peer.ip()) {
                            Ok(permit) => {
                                let serve = serving.clone().serve(stream, peer, permit);
                                connections.spawn(serve.instrument(span(peer)));
                            }
                            Err(refusal) => {
                                tracing::debug!(%peer, cap = refusal.label(), "Connection refused: over a cap.");
                                refuser.refuse(stream);
                            }
                        }
                    }
                    Err(error) => backoff.failed(error, &shutdown).await,
                },
            }
        }
        drop(listener);
        drain(connections, shutdown_timeout).await;
    }
}

fn span(peer: SocketAddr) -> tracing::Span {
    tracing::debug_span!("connection", %peer)
}

/// Waits for the connections to finish (they have seen the shutdown), up to `timeout`; then
/// drops those left, which closes them.
async fn drain(mut connections: JoinSet<()>, timeout: Duration) {
    if connections.is_empty() {
        return;
    }
    tracing::debug!(
        open = connections.len(),
        "Waiting for open connections to finish their requests."
    );
    let finished = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(timeout, finished).await.is_err() {
        tracing::warn!(
            still_open = connections.len(),
            ?timeout,
            "Connections still busy at the shutdown deadline are closed."
        );
        connections.shutdown().await;
    }
}

/// After an accept error that is not one connection's (out of descriptors, EMFILE/ENFILE, or
/// of buffers), accepting again at once would fail again at once: wait, doubling from
/// [`AcceptBackoff::FIRST`] to [`AcceptBackoff::MAX`], and warn at most once per
/// [`AcceptBackoff::WARN_EVERY`] with how many failed since.
struct AcceptBackoff {
    delay: Option<Duration>,
    warnings: Throttle,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            delay: None,
            warnings: Throttle::new(Self::WARN_EVERY),
        }
    }
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);
    const WARN_EVERY: Duration = Duration::from_secs(10);

    fn succeeded(&mut self) {
        self.delay = None;
    }

    async fn failed(&mut self, error: io::Error, shutdown: &CancellationToken) {
        // The client gave up before it was accepted: nothing is short, carry on.
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
        ) {
            tracing::debug!(%error, "A connection went away before it was accepted.");
            return;
        }
        let delay = self.delay.map_or(Self::FIRST, |d| (d * 2).min(Self::MAX));
        self.delay = Some(delay);
        if let Some(failures) = self.warnings.hit() {
            tracing::warn!(%error, failures, retry_in = ?delay,
                "Could not accept connections; retrying after a pause.");
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => {}
        }
    }
}
