//! [`LiveHub`]: one feed per watched campaign on this instance, each a task that takes a
//! snapshot every `LIVE_INTERVAL_MS` and hands the same snapshot to every watcher.
//!
//! A watcher is a bounded channel of [`WATCHER_BUFFER`] snapshots. The feed never waits for a
//! watcher: one whose channel is full (it stopped reading, or reads slower than a snapshot a
//! second) is dropped there, its stream ends, and the gauge and counter say so. A feed ends with
//! its last watcher, when its campaign is gone, or at shutdown (which ends every stream, so that
//! open streams do not hold the shutdown up).
//!
//! Each watcher holds a [`Seat`]: one of `LIVE_MAX_WATCHERS` on the instance (an admin's is let
//! in past that total) and one of `LIVE_MAX_WATCHERS_PER_CLIENT` of its client IP. The feed's
//! entry and the watcher's stream share it, and whichever goes first gives it back: the feed
//! dropping a slow watcher, or the stream ending however it ends (the client hung up, the
//! response was dropped, the service stops).

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::Stream;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    config::LiveSettings,
    live::{reading::Reading, LiveSource, Snapshot},
    shutdown::running,
    telemetry::metrics::{registry::ReasonLabels, Metrics},
};

/// Snapshots that may wait for one watcher before it is dropped.
pub const WATCHER_BUFFER: usize = 4;

/// `reason` of `firstcome_live_streams_refused_total`: the client's own cap.
const PER_CLIENT: &str = "per_client";
/// `reason` of `firstcome_live_streams_refused_total`: the instance's cap in all.
const TOTAL: &str = "total";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error("this instance serves {0} live watchers already")]
    Busy(usize),
    #[error("this client holds {0} live streams on this instance already")]
    ClientBusy(usize),
    #[error("the service is shutting down")]
    ShuttingDown,
}

/// Whom a new watcher counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// Its client's key (`http::client_ip`): what the per-client cap counts by.
    pub client: String,
    /// An admin's stream: let in past `LIVE_MAX_WATCHERS`, never past its client's cap.
    pub admin: bool,
}

/// Cheap to clone; every clone is the same hub.
#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<Inner>,
}

struct Inner {
    source: LiveSource,
    interval: Duration,
    max_watchers: usize,
    max_per_client: usize,
    feeds: Mutex<HashMap<i64, Feed>>,
    seats: Mutex<Seats>,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

/// The seats taken: in all, and by client (a client without a seat has no entry).
#[derive(Default)]
struct Seats {
    total: usize,
    per_client: HashMap<String, usize>,
}

struct Feed {
    /// Each watcher's channel, and its seat: dropping a watcher here frees its seat at once,
    /// whatever its connection still holds (at most [`WATCHER_BUFFER`] snapshots).
    watchers: Vec<(mpsc::Sender<Arc<Snapshot>>, SeatHold)>,
    /// The latest snapshot, given at once to a watcher that joins between two.
    last: Option<Arc<Snapshot>>,
}

impl LiveHub {
    pub fn new(
        source: LiveSource,
        settings: &LiveSettings,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        // Exported at zero from the start, so that a rate over them is defined before the first.
        for reason in [PER_CLIENT, TOTAL] {
            metrics
                .live_streams_refused
                .get_or_create(&ReasonLabels { reason })
                .inc_by(0);
        }
        Self {
            inner: Arc::new(Inner {
                source,
                interval: settings.interval,
                max_watchers: settings.max_watchers as usize,
                max_per_client: settings.max_watchers_per_client as usize,
                feeds: Mutex::default(),
                seats: Mutex::default(),
                metrics,
                tasks,
                shutdown,
            }),
        }
    }

    /// A new watcher of `campaign_id` (which the caller found to exist) for `viewer`: its stream
    /// yields the latest snapshot at once when there is one, then each new one. Refused past
    /// the viewer's client's cap or the instance's (counted in
    /// `firstcome_live_streams_refused_total`).
    pub fn watch(&self, campaign_id: i64, viewer: &Viewer) -> Result<Watcher, WatchError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(WatchError::ShuttingDown);
        }
        let seat = Arc::new(Seat::take(&self.inner, viewer)?);
        let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
        let watcher = Watcher {
            rx,
            _seat: SeatHold(seat.clone()),
        };
        let seat = SeatHold(seat);
        let mut feeds = lock(&self.inner.feeds);
        match feeds.get_mut(&campaign_id) {
            Some(feed) => {
                if let Some(last) = &feed.last {
                    // A fresh channel has room.
                    let _ = tx.try_send(last.clone());
                }
                feed.watchers.push((tx, seat));
            }
            None => {
                feeds.insert(
                    campaign_id,
                    Feed {
                        watchers: vec![(tx, seat)],
                        last: None,
                    },
                );
                let inner = self.inner.clone();
                self.inner.tasks.spawn(running::track(
                    format!("live feed of campaign {campaign_id}"),
                    feed(inner, campaign_id)
                        .instrument(tracing::info_span!("live_feed", campaign_id)),
                ));
            }
        }
        Ok(watcher)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One campaign's feed: a snapshot every interval to its watchers, until none is left.
async fn feed(inner: Arc<Inner>, campaign_id: i64) {
    let mut ticker = tokio::time::interval(inner.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut before: Option<Reading> = None;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = inner.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let snapshot = match inner.source.read(campaign_id).await {
            Ok(Some(now)) => {
                if failing {
                    tracing::info!("The live view reads its campaign again.");
                    failing = false;
                }
                let snapshot = Arc::new(Snapshot::new(&now, before.as_ref()));
                before = Some(now);
                inner.metrics.live_snapshots.inc();
                Some(snapshot)
            }
            Ok(None) => break,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "Could not read the campaign for its live view; its watchers wait for the next snapshot.");
                    failing = true;
                }
                None
            }
        };
        let mut feeds = lock(&inner.feeds);
        let Some(feed) = feeds.get_mut(&campaign_id) else {
            return;
        };
        if let Some(snapshot) = snapshot {
            let dropped = &inner.metrics.live_watchers_dropped;
            feed.watchers
                .retain(|(tx, _)| match tx.try_send(snapshot.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_)) => {
                        dropped.inc();
                        tracing::debug!("A live watcher stopped reading; it is dropped.");
                        false
                    }
                    Err(TrySendError::Closed(_)) => false,
                });
            feed.last = Some(snapshot);
        } else {
            feed.watchers.retain(|(tx, _)| !tx.is_closed());
        }
        if feed.watchers.is_empty() {
            feeds.remove(&campaign_id);
            return;
        }
    }
    // Shutdown, or the campaign is gone: every watcher's stream ends.
    lock(&inner.feeds).remove(&campaign_id);
}

/// A watcher's place among `LIVE_MAX_WATCHERS` and among its client's
/// `LIVE_MAX_WATCHERS_PER_CLIENT`, given back once ([`Seat::free`]).
struct Seat {
    inner: Arc<Inner>,
    client: String,
    freed: AtomicBool,
}

impl Seat {
    fn take(inner: &Arc<Inner>, viewer: &Viewer) -> Result<Self, WatchError> {
        let mut seats = lock(&inner.seats);
        let refused = |reason: &'static str, e: WatchError| {
            inner
                .metrics
                .live_streams_refused
                .get_or_create(&ReasonLabels { reason })
                .inc();
            Err(e)
        };
        let held = seats.per_client.get(&viewer.client).copied().unwrap_or(0);
        if held >= inner.max_per_client {
            return refused(PER_CLIENT, WatchError::ClientBusy(inner.max_per_client));
        }
        if !viewer.admin && seats.total >= inner.max_watchers {
            return refused(TOTAL, WatchError::Busy(inner.max_watchers));
        }
        seats.total += 1;
        seats.per_client.insert(viewer.client.clone(), held + 1);
        inner.metrics.live_watchers.set(seats.total as i64);
        Ok(Self {
            inner: inner.clone(),
            client: viewer.client.clone(),
            freed: AtomicBool::new(false),
        })
    }

    /// Gives the seat back; only the first call counts.
    fn free(&self) {
        if self.freed.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut seats = lock(&self.inner.seats);
        seats.total = seats.total.saturating_sub(1);
        if let Some(held) = seats.per_client.get_mut(&self.client) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                seats.per_client.remove(&self.client);
            }
        }
        self.inner.metrics.live_watchers.set(seats.total as i64);
    }
}

/// One of a seat's two holders (the feed's entry, the watcher's stream): dropping either frees
/// the seat.
struct SeatHold(Arc<Seat>);

impl Drop for SeatHold {
    fn drop(&mut self) {
        self.0.free();
    }
}

/// One watcher's snapshots; ends when the feed drops it or stops. Dropping it (its client hung
/// up) gives its seat back at once; the feed lets its channel go at its next snapshot.
pub struct Watcher {
    rx: mpsc::Receiver<Arc<Snapshot>>,
    _seat: SeatHold,
}

impl Stream for Watcher {
    type Item = Arc<Snapshot>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
