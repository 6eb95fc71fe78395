//! A TCP proxy in front of MySQL, so the nemesis can black-hole the database and then reset its
//! connections. Modes:
//! - forward: bytes pass both ways;
//! - black hole: bytes read from either side are dropped and new connections are held without
//!   an upstream, so every statement hangs until its deadline (a partition, not a refusal);
//! - reset: every open connection is closed with an RST (linger 0), then forwarding resumes.
//!
//! The harness's own reads of MySQL (settling, the final state) bypass the proxy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Handle of a running proxy; dropping it stops accepting and closes every connection.
pub struct Proxy {
    pub port: u16,
    black_hole: Arc<AtomicBool>,
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
        let black_hole = Arc::new(AtomicBool::new(false));
        let (resets, _) = watch::channel(0u64);
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            black_hole.clone(),
            resets.clone(),
        ));
        Ok(Self {
            port,
            black_hole,
            resets,
            accept,
        })
    }

    pub fn black_hole(&self) {
        self.black_hole.store(true, Ordering::SeqCst);
    }

    /// Closes every connection with an RST and forwards again.
    pub fn reset(&self) {
        self.resets.send_modify(|g| *g += 1);
        self.black_hole.store(false, Ordering::SeqCst);
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
    black_hole: Arc<AtomicBool>,
    resets: watch::Sender<u64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let resets = resets.subscribe();
        tokio::spawn(connection(
            client,
            upstream.clone(),
            black_hole.clone(),
            resets,
        ));
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
    black_hole: Arc<AtomicBool>,
    mut resets: watch::Receiver<u64>,
) {
    // A connection made during a black hole waits, without an upstream, for the reset.
    while black_hole.load(Ordering::SeqCst) {
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
                    if !black_hole.load(Ordering::SeqCst) && server.write_all(&a[..n]).await.is_err() {
                        return;
                    }
                }
            },
            r = server.read(&mut b) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if !black_hole.load(Ordering::SeqCst) && client.write_all(&b[..n]).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
}
