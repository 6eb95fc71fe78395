//! `HTTP_IDLE_TIMEOUT_MS`: a connection on which no byte has moved either way for that long is
//! closed, whatever HTTP state it is in (waiting for a body, a response the client does not read,
//! an HTTP/2 connection with nothing to do).
//!
//! [`Watched`] wraps the socket and notes when a read or a write last moved bytes; the
//! connection's task asks [`Activity::deadline`] when its idle timer fires and either closes the
//! connection or sets the timer again from the last activity. Noting is one relaxed atomic store,
//! so the hot path pays nothing more.

use std::{
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

/// When bytes last moved on one connection. Shared by its socket ([`Watched`]) and its task.
#[derive(Clone)]
pub struct Activity {
    /// Milliseconds from `start` to the last read or write that moved bytes.
    last: Arc<AtomicU64>,
    start: Instant,
}

impl Activity {
    pub fn new() -> Self {
        Self {
            last: Arc::new(AtomicU64::new(0)),
            start: Instant::now(),
        }
    }

    fn note(&self) {
        let millis = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(millis, Ordering::Relaxed);
    }

    /// When the connection becomes idle if nothing moves before: the last activity plus `idle`.
    pub fn deadline(&self, idle: Duration) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed)) + idle
    }
}

/// A socket that notes its [`Activity`].
pub struct Watched<T> {
    io: T,
    activity: Activity,
}

impl<T> Watched<T> {
    pub fn new(io: T, activity: Activity) -> Self {
        Self { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.note();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.note();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.note();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn bytes_moving_either_way_move_the_deadline_and_nothing_else_does() {
        let idle = Duration::from_secs(10);
        let (near, mut far) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut watched = Watched::new(near, activity.clone());
        let mut last = activity.deadline(idle);
        let step = Duration::from_millis(5);

        tokio::time::sleep(step).await;
        watched.write_all(b"x").await.expect("write");
        assert!(activity.deadline(idle) > last, "a write moves it");
        last = activity.deadline(idle);

        tokio::time::sleep(step).await;
        far.write_all(b"y").await.expect("far write");
        let mut byte = [0u8; 1];
        watched.read_exact(&mut byte).await.expect("read");
        assert!(activity.deadline(idle) > last, "a read moves it");
        last = activity.deadline(idle);

        tokio::time::sleep(step).await;
        drop(far);
        assert_eq!(watched.read(&mut byte).await.expect("eof"), 0);
        assert_eq!(
            activity.deadline(idle),
            last,
            "an end of file is no activity"
        );
    }
}
