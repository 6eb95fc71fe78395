//! The requests of one connection in flight (HTTP/2: its streams), and since when it has had
//! none: what the head deadline is measured from (docs/design.md §17).
//!
//! Bytes moving are no proof of a client at work: an HTTP/2 connection can send a PING every
//! second and never a request, and every byte of those resets the idle deadline. So the head
//! deadline holds whenever no request is in flight, whatever else moves: a connection without
//! a request for `HTTP_HEADER_TIMEOUT_MS` is closed, on HTTP/1 (where hyper keeps the same
//! deadline on each head) as on HTTP/2. A request is in flight from its head until its response
//! body ends, so a long response (the live stream) holds its connection open.
//!
//! While a request is in flight, its progress is what counts: the response's frames as hyper
//! takes them. An HTTP/2 client can open a stream with a flow-control window of 0, so that its
//! response's body can never be sent, and keep the connection's bytes moving with PINGs (or
//! WINDOW_UPDATEs on another stream): no byte deadline would ever pass. So a connection whose
//! requests in flight have made no progress for `HTTP_IDLE_TIMEOUT_MS` is closed as stalled
//! ([`Streams::stall_deadline`]); a request's head counts as its first progress, and the request's
//! own deadline bounds the time before its response (`http::door`).

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// Shared by a connection's service (each request) and its task (the deadline).
pub struct Streams {
    in_flight: AtomicUsize,
    /// Milliseconds from `start` to when the last request in flight ended.
    idle_since: AtomicU64,
    /// Milliseconds from `start` to the last progress of a request: its head, or a frame of its
    /// response taken by hyper.
    progress: AtomicU64,
    start: Instant,
}

impl Streams {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            start: Instant::now(),
        })
    }

    /// A request begins; it is in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.note_progress();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            streams: self.clone(),
        }
    }

    /// How many requests are in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// When the head deadline passes if no request begins before: `None` while one is in flight.
    pub fn head_deadline(&self, header: Duration) -> Option<Instant> {
        if self.in_flight() > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since.load(Ordering::Acquire));
        Some(self.start + since + header)
    }

    /// When the requests in flight count as stalled if none progresses before: the last
    /// progress plus `idle`; `None` while none is in flight (the head deadline runs then).
    pub fn stall_deadline(&self, idle: Duration) -> Option<Instant> {
        if self.in_flight() == 0 {
            return None;
        }
        let since = Duration::from_millis(self.progress.load(Ordering::Acquire));
        Some(self.start + since + idle)
    }

    fn note_progress(&self) {
        let millis = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.progress.store(millis, Ordering::Release);
    }
}

/// One request in flight; dropped when its response body ends (or is dropped unfinished).
pub struct InFlight {
    streams: Arc<Streams>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let millis = u64::try_from(self.streams.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The time first: a deadline read between the two sees the request still in flight.
        self.streams.idle_since.store(millis, Ordering::Release);
        self.streams.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight (and whatever else `hold` holds: an HTTP/2
/// stream's place under the per-client cap) until hyper has sent its end or dropped it, and
/// notes each frame hyper takes as the connection's progress.
pub struct Tracked<B, H> {
    pub body: B,
    pub in_flight: InFlight,
    /// Never read: held only so that dropping the body drops it.
    #[allow(dead_code)]
    pub hold: H,
}

impl<B: Body + Unpin, H: Unpin> Body for Tracked<B, H> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(Some(Ok(_)))) {
            self.in_flight.streams.note_progress();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_head_deadline_runs_only_while_no_request_is_in_flight() {
        let header = Duration::from_secs(10);
        let streams = Streams::new();
        let first = streams
            .head_deadline(header)
            .expect("none in flight at the start");
        let a = streams.begin();
        let b = streams.begin();
        assert_eq!(streams.head_deadline(header), None);
        drop(a);
        assert_eq!(streams.head_deadline(header), None, "one still in flight");
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(b);
        let after = streams.head_deadline(header).expect("none in flight");
        assert!(after > first, "measured from the last request's end");
    }

    #[tokio::test]
    async fn a_stall_is_measured_from_the_last_progress_only_while_a_request_is_in_flight() {
        let idle = Duration::from_secs(10);
        let streams = Streams::new();
        assert_eq!(streams.stall_deadline(idle), None, "nothing in flight");
        let a = streams.begin();
        let from_head = streams.stall_deadline(idle).expect("in flight");
        tokio::time::sleep(Duration::from_millis(5)).await;
        streams.note_progress();
        let from_frame = streams.stall_deadline(idle).expect("in flight");
        assert!(from_frame > from_head, "a frame is progress");
        drop(a);
        assert_eq!(streams.stall_deadline(idle), None);
    }
}
