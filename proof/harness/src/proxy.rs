//! A TCP proxy in front of MySQL, so the nemesis can black-hole the database and then reset its
//! connections, as in a failover. Modes:
//! - forward: bytes pass both ways;
//! - armed: forward until the COMMIT of a transaction that inserted participations goes by
//!   ([`CommitWatch`]), then answers lost, from that very COMMIT on;
//! - answers lost: bytes from MySQL are dropped, bytes to it still pass, so a COMMIT sent now
//!   commits and its answer never arrives (the outcome the service cannot know);
//! - black hole: bytes read from either side are dropped and new connections are held without
//!   an upstream, every connection kept open, so every statement hangs until its deadline (a
//!   partition, not a refusal);
//! - reset: every open connection is closed with an RST (linger 0), then forwarding resumes.
//!
//! The harness's own reads of MySQL (settling, the final state) bypass the proxy.

use std::{
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

use super::commit_watch::CommitWatch;

const FORWARD: u8 = 0;
const ANSWERS_LOST: u8 = 1;
const BLACK_HOLE: u8 = 2;
const ARMED: u8 = 3;

/// Handle of a running proxy; dropping it stops accepting and closes every connection.
pub struct Proxy {
    pub port: u16,
    /// [`FORWARD`], [`ARMED`], [`ANSWERS_LOST`] or [`BLACK_HOLE`]; read by every connection
    /// per chunk, and moved from armed to answers lost by the connection a COMMIT goes through.
    mode: Arc<AtomicU8>,
    /// Bumped by [`Proxy::reset`]; every connection task watches it and closes on a change.
    resets: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: String) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the MySQL proxy")?;
        let port = listener.local_addr()?.port();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let (resets, _) = watch::channel(0u64);
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            mode.clone(),
            resets.clone(),
        ));
        Ok(Self {
            port,
            mode,
            resets,
            accept,
        })
    }

    /// MySQL's answers are dropped from the next COMMIT of a batch of wins on.
    pub fn arm_commit_cut(&self) {
        self.mode.store(ARMED, Ordering::SeqCst);
    }

    /// Whether MySQL's answers are no longer forwarded (an armed cut has happened).
    pub fn answers_lost(&self) -> bool {
        matches!(self.mode.load(Ordering::SeqCst), ANSWERS_LOST | BLACK_HOLE)
    }

    /// MySQL's answers are dropped; what is sent to it still arrives.
    pub fn lose_answers(&self) {
        self.mode.store(ANSWERS_LOST, Ordering::SeqCst);
    }

    pub fn black_hole(&self) {
        self.mode.store(BLACK_HOLE, Ordering::SeqCst);
    }

    /// Closes every connection with an RST and forwards again.
    pub fn reset(&self) {
        self.resets.send_modify(|g| *g += 1);
        self.mode.store(FORWARD, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.resets.send_modify(|g| *g += 1);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    mode: Arc<AtomicU8>,
    resets: watch::Sender<u64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let resets = resets.subscribe();
        tokio::spawn(connection(client, upstream.clone(), mode.clone(), resets));
    }
}

/// RST rather than FIN: the peer sees a reset connection, as after a network failure.
#[allow(deprecated)] // set_linger: deprecated only in favour of socket2, which is not built here
fn rst(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

async fn connection(
    mut client: TcpStream,
    upstream: String,
    mode: Arc<AtomicU8>,
    mut resets: watch::Receiver<u64>,
) {
    // A connection made while MySQL is cut off waits, without an upstream, for the reset.
    while matches!(mode.load(Ordering::SeqCst), ANSWERS_LOST | BLACK_HOLE) {
        tokio::select! {
            _ = resets.changed() => { rst(&client); return; }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let Ok(Ok(mut server)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&upstream)).await
    else {
        rst(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut watch = CommitWatch::default();
    let (mut a, mut b) = ([0u8; 16 * 1024], [0u8; 16 * 1024]);
    loop {
        tokio::select! {
            _ = resets.changed() => {
                rst(&client);
                rst(&server);
                return;
            }
            r = client.read(&mut a) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if mode.load(Ordering::SeqCst) != BLACK_HOLE && server.write_all(&a[..n]).await.is_err() {
                        return;
                    }
                    if watch.client(&a[..n]) {
                        let _ = mode.compare_exchange(ARMED, ANSWERS_LOST, Ordering::SeqCst, Ordering::SeqCst);
                    }
                }
            },
            r = server.read(&mut b) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    watch.server(&b[..n]);
                    if matches!(mode.load(Ordering::SeqCst), FORWARD | ARMED) && client.write_all(&b[..n]).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
}
