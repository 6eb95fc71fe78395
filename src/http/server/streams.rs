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
//! While a request is in flight, each response is judged on its own. An HTTP/2 client can open a
//! stream with a flow-control window of 0, so that its response's body can never be sent, and
//! keep the connection's bytes moving with PINGs, or with other streams whose windows it opens:
//! no byte deadline would ever pass, nor one judged on the connection's progress as a whole (30
//! such connections held ~0.32 MB a stalled stream for good). So each response whose next frame
//! waits for hyper to take it (the client's window, or its socket, holds it) is *owed* since the
//! moment it had that frame ready, and a connection with a response owed for
//! `HTTP_IDLE_TIMEOUT_MS` is closed as stalled ([`Streams::stall_deadline`]). A response whose body
//! has nothing ready (a handler still working, the live stream between events) owes nothing: the
//! server is what it waits for, and the request's own deadline bounds the time before a
//! response (`http::door`).

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
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
    /// Each response owed a turn by hyper, by request: milliseconds from `start` to when it had
    /// its next frame ready.
    owed: Mutex<HashMap<u64, u64>>,
    next_request: AtomicU64,
    start: Instant,
}

impl Streams {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            owed: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(0),
            start: Instant::now(),
        })
    }

    /// A request begins; it is in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            streams: self.clone(),
            request: self.next_request.fetch_add(1, Ordering::Relaxed),
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

    /// When the connection counts as stalled if the response owed longest is not taken before:
    /// the moment it was owed plus `idle`; `None` while no response is owed.
    pub fn stall_deadline(&self, idle: Duration) -> Option<Instant> {
        let oldest = self.owed().values().min().copied()?;
        Some(self.start + Duration::from_millis(oldest) + idle)
    }

    fn owed(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        // A panic while the map is held cannot leave it half-changed (an insert or a remove).
        self.owed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `request`'s response has its next frame ready for hyper, from now.
    fn owe(&self, request: u64) {
        let now = self.millis();
        self.owed().insert(request, now);
    }

    /// `request`'s response owes nothing to hyper: it has nothing ready, or it ended.
    fn settle(&self, request: u64) {
        self.owed().remove(&request);
    }
}

/// One request in flight; dropped when its response body ends (or is dropped unfinished).
pub struct InFlight {
    streams: Arc<Streams>,
    request: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.streams.settle(self.request);
        // The time first: a deadline read between the two sees the request still in flight.
        let millis = self.streams.millis();
        self.streams.idle_since.store(millis, Ordering::Release);
        self.streams.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight (and whatever else `hold` holds: an HTTP/2
/// stream's place under the per-client cap) until hyper has sent its end or dropped it, and
/// tells its connection whether hyper owes it a turn: from when the response is ready and after
/// each frame it hands over, until hyper asks again.
pub struct Tracked<B, H> {
    body: B,
    in_flight: InFlight,
    /// Never read: held only so that dropping the body drops it.
    #[allow(dead_code)]
    hold: H,
}

impl<B, H> Tracked<B, H> {
    /// The response `body` of the request `in_flight`, ready for hyper now.
    pub fn new(body: B, in_flight: InFlight, hold: H) -> Self {
        in_flight.streams.owe(in_flight.request);
        Self {
            body,
            in_flight,
            hold,
        }
    }
}

impl<B: Body + Unpin, H: Unpin> Body for Tracked<B, H> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        let (streams, request) = (&self.in_flight.streams, self.in_flight.request);
        match &polled {
            // Taken: hyper owes it the next turn, from now.
            Poll::Ready(Some(Ok(_))) => streams.owe(request),
            // Nothing ready (the body wakes hyper when it has), or the end.
            _ => streams.settle(request),
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
    async fn a_stall_is_measured_from_the_response_owed_longest() {
        let idle = Duration::from_secs(10);
        let streams = Streams::new();
        assert_eq!(streams.stall_deadline(idle), None, "nothing in flight");
        // A request whose handler works owes nothing: the server is what it waits for.
        let held = streams.begin();
        assert_eq!(streams.stall_deadline(idle), None);
        // Its response is ready: owed from now, until hyper takes a frame.
        let held = Tracked::new((), held, ());
        let from_ready = streams.stall_deadline(idle).expect("owed");
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Other responses of the connection come and go; the held one stays the oldest.
        let other = Tracked::new((), streams.begin(), ());
        streams.settle(other.in_flight.request);
        drop(other);
        assert_eq!(streams.stall_deadline(idle), Some(from_ready));
        // Hyper takes the held one's frame: owed again from that moment.
        streams.owe(held.in_flight.request);
        let from_frame = streams.stall_deadline(idle).expect("owed");
        assert!(
            from_frame > from_ready,
            "a frame taken starts its turn again"
        );
        drop(held);
        assert_eq!(streams.stall_deadline(idle), None);
    }
}
