//! Serving one connection: hyper-util's auto builder, HTTP/1.1 only unless `HTTP2_ENABLED` (then
//! HTTP/2 with prior knowledge too, its concurrent streams capped at
//! `HTTP2_MAX_CONCURRENT_STREAMS`), poem's endpoint as the service, and the client deadlines
//! around it (docs/design.md §17):
//!
//! - the request head: hyper's HTTP/1 `header_read_timeout`, which needs the timer poem's server
//!   does not give it, bounds each head from the moment hyper waits for one, between requests on
//!   a kept-alive connection included. And whatever the protocol, a connection with no request in
//!   flight for the same deadline is closed ([`crate::http::server::streams`]): a fresh one that never brings
//!   its first head, and an HTTP/2 one that only sends PINGs, which are no request;
//! - idleness: no byte moving either way for `HTTP_IDLE_TIMEOUT_MS` ([`crate::http::server::idle`]);
//! - a stall: requests in flight none of which progressed for that same deadline (a response
//!   held by HTTP/2 flow control while PINGs move bytes; [`crate::http::server::streams`]);
//! - the body: within the request's deadline, which `http::door` keeps.
//!
//! Each HTTP/2 stream beyond a connection's first takes a place under the per-client cap
//! ([`crate::http::server::caps`]); one past it is answered 503 `SERVICE_BUSY` alone.
//!
//! A connection past a deadline is dropped (closed) at once; a graceful shutdown would wait for
//! the very client that stalls.

use std::{
    convert::Infallible, error::Error, net::SocketAddr, pin::pin, sync::Arc, time::Duration,
};

use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulConnection},
};
use poem::{
    http::{uri::Scheme, Version},
    web::{LocalAddr, RemoteAddr},
    Addr, Endpoint, IntoResponse,
};
use tokio::{net::TcpStream, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    http::{
        error::ApiError,
        server::{
            caps::{Caps, Permit},
            idle::{Activity, Watched},
            streams::{Streams, Tracked},
        },
    },
    telemetry::metrics::{registry::ReasonLabels, Metrics},
};

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
    /// The per-client cap, which each HTTP/2 stream beyond a connection's first also meets.
    caps: Caps,
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
    /// Requests in flight, none of which progressed for the idle deadline (a response held by
    /// flow control while PINGs keep bytes moving).
    Stalled,
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
        http2_streams: Option<u32>,
        caps: Caps,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        // Exported at zero from the start, so that a rate over them is defined before the first.
        for reason in ["header", "idle", "stalled"] {
            metrics
                .connections_timed_out
                .get_or_create(&ReasonLabels { reason })
                .inc_by(0);
        }
        let mut http = auto::Builder::new(TokioExecutor::new());
        match http2_streams {
            // HTTP/2's PINGs and streams escape a deadline on heads; nothing asks for it by
            // default (a proxy in front speaks HTTP/1.1 to its upstreams).
            None => http = http.http1_only(),
            Some(streams) => {
                http.http2()
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(streams);
            }
        }
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(deadlines.header);
        Self {
            endpoint,
            http,
            deadlines,
            caps,
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
        let streams = Streams::new();
        let service = {
            let this = self.clone();
            let streams = streams.clone();
            service_fn(move |req: hyper::Request<Incoming>| {
                let this = this.clone();
                // Counted before anything awaits: the head deadline stops at once.
                let already = streams.in_flight();
                let in_flight = streams.begin();
                async move {
                    let extra = if req.version() == Version::HTTP_2 && already > 0 {
                        match this.caps.admit_stream(peer.ip()) {
                            Ok(place) => Some(place),
                            Err(_) => {
                                let busy = ApiError::busy().into_response();
                                let busy: hyper::Response<_> = busy.into();
                                return Ok(busy.map(|body| Tracked::new(body, in_flight, None)));
                            }
                        }
                    } else {
                        None
                    };
                    let req = poem::Request::from((
                        req,
                        LocalAddr(Addr::SocketAddr(local)),
                        RemoteAddr(Addr::SocketAddr(peer)),
                        Scheme::HTTP,
                    ));
                    let response: hyper::Response<_> = this.endpoint.get_response(req).await.into();
                    Ok::<_, Infallible>(response.map(|body| Tracked::new(body, in_flight, extra)))
                }
            })
        };
        let io = TokioIo::new(Watched::new(stream, activity.clone()));
        let conn = self.http.serve_connection(io, service);
        let ended = self.drive(conn, &activity, &streams).await;
        self.record(ended);
    }

    /// Polls the connection against its deadlines and the shutdown.
    async fn drive<C>(&self, conn: C, activity: &Activity, streams: &Streams) -> Ended
    where
        C: GracefulConnection<Error = Box<dyn Error + Send + Sync>>,
    {
        let mut conn = pin!(conn);
        let mut idle = pin!(tokio::time::sleep(self.deadlines.idle));
        let mut no_request = pin!(tokio::time::sleep(self.deadlines.header));
        let mut stalled = pin!(tokio::time::sleep(self.deadlines.idle));
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
                () = &mut no_request => {
                    // While a request is in flight, look again a deadline later.
                    let deadline = streams.head_deadline(self.deadlines.header);
                    if passed(deadline, self.deadlines.header, no_request.as_mut()) {
                        return Ended::HeaderTimeout;
                    }
                }
                () = &mut stalled => {
                    // With no response owed, look again a deadline later.
                    let deadline = streams.stall_deadline(self.deadlines.idle);
                    if passed(deadline, self.deadlines.idle, stalled.as_mut()) {
                        return Ended::Stalled;
                    }
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
            Ended::Stalled => "stalled",
        };
        tracing::debug!(deadline = reason, "Connection closed by a client deadline.");
        self.metrics
            .connections_timed_out
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}

/// Whether `deadline` (one that runs now, or `None`: not now) has passed; if not, `timer` is set
/// to it, or to `every` from now when none runs.
fn passed(
    deadline: Option<Instant>,
    every: Duration,
    timer: std::pin::Pin<&mut tokio::time::Sleep>,
) -> bool {
    let now = Instant::now();
    match deadline {
        Some(deadline) if deadline <= now => true,
        Some(deadline) => {
            timer.reset(deadline);
            false
        }
        None => {
            timer.reset(now + every);
            false
        }
    }
}
