//! Serving one connection: hyper-util's auto builder (HTTP/1.1, or HTTP/2 with prior knowledge,
//! as poem's own server offered), poem's endpoint as the service, and the client deadlines
//! around it (docs/design.md §17):
//!
//! - the request head: hyper's HTTP/1 `header_read_timeout`, which needs the timer poem's server
//!   does not give it, bounds each head from the moment hyper waits for one, between requests on
//!   a kept-alive connection included. Before hyper knows the protocol nothing of its own runs, so
//!   a fresh connection must also bring its first request within the same deadline;
//! - idleness: no byte moving either way for `HTTP_IDLE_TIMEOUT_MS` ([`super::idle`]);
//! - the body: within the request's deadline, which `api::guard` keeps.
//!
//! A connection past a deadline is dropped (closed) at once; a graceful shutdown would wait for
//! the very client that stalls.

use std::{
    convert::Infallible,
    error::Error,
    net::SocketAddr,
    pin::pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulConnection},
};
use poem::{
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
    Addr, Endpoint,
};
use tokio::{net::TcpStream, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    caps::Permit,
    idle::{Activity, Watched},
};
use crate::metrics::{registry::ReasonLabels, Metrics};

/// The client deadlines of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// `HTTP_HEADER_TIMEOUT_MS`.
    pub header: Duration,
    /// `HTTP_IDLE_TIMEOUT_MS`.
    pub idle: Duration,
}

/// What every connection of one server shares.
pub struct Serving<E> {
    endpoint: E,
    http: auto::Builder<TokioExecutor>,
    deadlines: Deadlines,
    metrics: Arc<Metrics>,
    /// The server's stop (the application's root token): each connection, seeing it, finishes
    /// its in-flight requests and closes; the accept loop bounds how long that may take.
    shutdown: CancellationToken,
}

/// How a connection ended: its log line and, for a deadline, `firstcome_connections_timed_out_total`.
enum Ended {
    Closed,
    Failed(Box<dyn Error + Send + Sync>),
    HeaderTimeout,
    Idle,
}

impl Ended {
    fn of(result: Result<(), Box<dyn Error + Send + Sync>>) -> Self {
        match result {
            Ok(()) => Self::Closed,
            Err(e)
                if e.downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_timeout) =>
            {
                Self::HeaderTimeout
            }
            Err(e) => Self::Failed(e),
        }
    }
}

impl<E: Endpoint + 'static> Serving<E> {
    pub fn new(
        endpoint: E,
        deadlines: Deadlines,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        // Exported at zero from the start, so that a rate over them is defined before the first.
        for reason in ["header", "idle"] {
            metrics
                .connections_timed_out
                .get_or_create(&ReasonLabels { reason })
                .inc_by(0);
        }
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(deadlines.header);
        Self {
            endpoint,
            http,
            deadlines,
            metrics,
            shutdown,
        }
    }

    /// Serves `stream` until it closes, fails, passes a deadline, or (after the shutdown) has
    /// finished its in-flight requests; `permit` holds its place under the caps until then.
    pub async fn serve(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, permit: Permit) {
        let _permit = permit;
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(error) => {
                tracing::debug!(%error, "A connection closed before it could be served.");
                return;
            }
        };
        let activity = Activity::new();
        let headed = Arc::new(AtomicBool::new(false));
        let service = {
            let this = self.clone();
            let headed = headed.clone();
            service_fn(move |req: hyper::Request<Incoming>| {
                headed.store(true, Ordering::Relaxed);
                let this = this.clone();
                async move {
                    let req = poem::Request::from((
                        req,
                        LocalAddr(Addr::SocketAddr(local)),
                        RemoteAddr(Addr::SocketAddr(peer)),
                        Scheme::HTTP,
                    ));
                    let response = this.endpoint.get_response(req).await;
                    Ok::<hyper::Response<_>, Infallible>(response.into())
                }
            })
        };
        let io = TokioIo::new(Watched::new(stream, activity.clone()));
        let conn = self.http.serve_connection(io, service);
        let ended = self.drive(conn, &activity, &headed).await;
        self.record(ended);
    }

    /// Polls the connection against its deadlines and the shutdown.
    async fn drive<C>(&self, conn: C, activity: &Activity, headed: &AtomicBool) -> Ended
    where
        C: GracefulConnection<Error = Box<dyn Error + Send + Sync>>,
    {
        let mut conn = pin!(conn);
        let mut idle = pin!(tokio::time::sleep(self.deadlines.idle));
        let mut first_head = pin!(tokio::time::sleep(self.deadlines.header));
        let mut first_head_due = true;
        let mut draining = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => return Ended::of(result),
                () = &mut idle => {
                    let deadline = activity.deadline(self.deadlines.idle);
                    if deadline <= Instant::now() {
                        return Ended::Idle;
                    }
                    idle.as_mut().reset(deadline);
                }
                () = &mut first_head, if first_head_due => {
                    if !headed.load(Ordering::Relaxed) {
                        return Ended::HeaderTimeout;
                    }
                    first_head_due = false;
                }
                () = self.shutdown.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }

    fn record(&self, ended: Ended) {
        let reason = match ended {
            Ended::Closed => {
                tracing::debug!("Connection closed.");
                return;
            }
            Ended::Failed(error) => {
                tracing::debug!(%error, "Connection ended with an error.");
                return;
            }
            Ended::HeaderTimeout => "header",
            Ended::Idle => "idle",
        };
        tracing::debug!(deadline = reason, "Connection closed by a client deadline.");
        self.metrics
            .connections_timed_out
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}
