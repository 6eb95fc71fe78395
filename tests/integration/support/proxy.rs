//! A TCP proxy the test controls, to put between the service and a dependency (Redis, MySQL) and
//! make that dependency stop answering or drop its connections mid-test.
//!
//! API:
//! - `Proxy::start(upstream).await`: listens on `127.0.0.1:0` and forwards every connection to
//!   `upstream` (one upstream connection per client connection, opened when forwarding).
//! - `addr()`: the address to give the service instead of the upstream's.
//! - `black_hole()`: a host that stopped answering. No byte moves in either direction any more,
//!   but every connection stays open, and new connections are still accepted (never connected
//!   upstream, nothing forwarded). Bytes sent meanwhile wait in the proxy and the kernel buffers.
//! - `resume()`: forwards again, as a healed network: connections that survived the black hole
//!   carry on (with what was held back), connections accepted during it are connected upstream
//!   now, new ones are forwarded at once.
//! - `reset().await`: closes every connection open at the call, client and upstream side, with
//!   an RST (`SO_LINGER` 0), and returns once they are all closed. The proxy keeps listening;
//!   what happens to new connections is decided by `black_hole()` / `resume()` as usual.
//! - `set_latency(d)`: every chunk of the upstream's answers is held `d` before it is passed on
//!   (a dependency that answers each request late; requests sent together share one wait).
//! - `live()`: client connections open now; `accepted()`: client connections accepted so far;
//!   `wait_for_live(|n| …).await`: waits (event-driven, no polling) until the live count fits.
//!   A client that hangs up during a black hole is counted until `resume()` or `reset()` (the
//!   proxy reads nothing from it meanwhile, so it cannot see the FIN).
//!
//! Dropping the proxy stops listening and closes every connection with an RST.
//!
//! `Proxy::in_front_of_mysql(&mut settings).await` puts one between the service and its MySQL and
//! returns it with the direct URL (for the test's own connection).

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Cancelled on drop: stops the accept loop and resets every connection.
    root: CancellationToken,
}

struct Shared {
    upstream: SocketAddr,
    /// `true` while forwarding; `false` while black-holed. Every pump watches it.
    forwarding: watch::Sender<bool>,
    /// Client connections open now.
    live: watch::Sender<usize>,
    accepted: AtomicU64,
    /// How long each chunk of the upstream's answers is held, in µs (0: not held).
    latency_us: AtomicU64,
    /// The connections a `reset()` will close: replaced by a fresh generation on each reset.
    generation: Mutex<Generation>,
}

#[derive(Clone)]
struct Generation {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Proxy {
    /// A proxy in front of `settings`' MySQL: the service's URL is pointed at it; the direct URL
    /// is returned for the test's own connection.
    pub async fn in_front_of_mysql(settings: &mut firstcome::config::Settings) -> (Proxy, String) {
        let direct_url = settings.database.url.expose().to_string();
        let mut url = reqwest::Url::parse(&direct_url).expect("database url");
        let upstream = format!(
            "{}:{}",
            url.host_str().expect("host"),
            url.port().unwrap_or(3306)
        );
        let upstream = tokio::net::lookup_host(&upstream)
            .await
            .expect("resolve")
            .next()
            .expect("an address");
        let proxy = Proxy::start(upstream).await;
        url.set_port(Some(proxy.addr().port())).expect("port");
        url.set_host(Some(&proxy.addr().ip().to_string()))
            .expect("host");
        settings.database.url = firstcome::config::Secret::new(url.to_string());
        (proxy, direct_url)
    }

    /// A proxy in front of the test Redis: `settings`' Redis URL is pointed at it (the test's
    /// own `app.redis` connection goes through it too).
    pub async fn in_front_of_redis(settings: &mut firstcome::config::Settings) -> Proxy {
        let url = crate::spawn::redis_url();
        let host_port = url
            .trim_start_matches("redis://")
            .split(['/', '?'])
            .next()
            .expect("host:port")
            .rsplit('@')
            .next()
            .expect("host:port")
            .to_string();
        let upstream = tokio::net::lookup_host(host_port)
            .await
            .expect("resolve Redis")
            .next()
            .expect("an address for Redis");
        let proxy = Proxy::start(upstream).await;
        settings.redis.url = firstcome::config::Secret::new(format!("redis://{}", proxy.addr()));
        proxy
    }

    /// The app on `settings`, whose MySQL [`Proxy::in_front_of_mysql`] put behind a proxy: the
    /// test's own connection goes straight to MySQL (`direct_url`), and its client waits longer
    /// than the service's request deadline (plus scheduling slack), so a request the service
    /// left hanging would fail the client's timeout rather than be answered.
    pub async fn spawn_app_behind(
        settings: firstcome::config::Settings,
        direct_url: &str,
    ) -> crate::spawn::TestApp {
        let patience = settings.http.request_timeout + std::time::Duration::from_secs(5);
        let mut app = crate::spawn::spawn_app_with(settings).await;
        app.db = sea_orm::Database::connect(direct_url)
            .await
            .expect("direct connection");
        app.client = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .timeout(patience)
            .build()
            .expect("client");
        app
    }

    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let root = CancellationToken::new();
        let shared = Arc::new(Shared {
            upstream,
            forwarding: watch::Sender::new(true),
            live: watch::Sender::new(0),
            accepted: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
            generation: Mutex::new(Generation {
                stop: root.child_token(),
                tasks: TaskTracker::new(),
            }),
        });
        tokio::spawn(accept_loop(listener, shared.clone(), root.clone()));
        Proxy { addr, shared, root }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn black_hole(&self) {
        self.shared.forwarding.send_replace(false);
    }

    pub fn resume(&self) {
        self.shared.forwarding.send_replace(true);
    }

    pub async fn reset(&self) {
        let old = {
            let mut generation = self.shared.generation.lock().expect("generation lock");
            std::mem::replace(
                &mut *generation,
                Generation {
                    stop: self.root.child_token(),
                    tasks: TaskTracker::new(),
                },
            )
        };
        old.stop.cancel();
        old.tasks.close();
        old.tasks.wait().await;
    }

    pub fn set_latency(&self, latency: std::time::Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.shared.latency_us.store(us, Ordering::SeqCst);
    }

    pub fn live(&self) -> usize {
        *self.shared.live.borrow()
    }

    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    pub async fn wait_for_live(&self, fits: impl FnMut(&usize) -> bool) {
        let mut live = self.shared.live.subscribe();
        live.wait_for(fits).await.expect("the proxy is alive");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.root.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, root: CancellationToken) {
    loop {
        let client = tokio::select! {
            _ = root.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                // e.g. EMFILE: keep serving the connections there are.
                Err(_) => continue,
            },
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        shared.live.send_modify(|n| *n += 1);
        let generation = shared.generation.lock().expect("generation lock").clone();
        let shared = shared.clone();
        generation.tasks.spawn(async move {
            connection(client, &shared, &generation.stop).await;
            shared.live.send_modify(|n| *n -= 1);
        });
    }
}

/// Until `stop`: connect upstream once forwarding, then pump bytes both ways.
async fn connection(client: TcpStream, shared: &Shared, stop: &CancellationToken) {
    let _ = client.set_nodelay(true);
    let mut forwarding = shared.forwarding.subscribe();
    let server = tokio::select! {
        _ = stop.cancelled() => return abort(&[&client]),
        server = async {
            let _ = forwarding.wait_for(|f| *f).await;
            TcpStream::connect(shared.upstream).await
        } => match server {
            Ok(server) => server,
            // The upstream refused: so does the proxy.
            Err(_) => return abort(&[&client]),
        },
    };
    let _ = server.set_nodelay(true);
    let (mut client, mut server) = (client, server);
    let failed = tokio::select! {
        _ = stop.cancelled() => true,
        done = async {
            let (mut client_read, mut client_write) = client.split();
            let (mut server_read, mut server_write) = server.split();
            tokio::try_join!(
                pump(&mut client_read, &mut server_write, shared.forwarding.subscribe(), None),
                pump(
                    &mut server_read,
                    &mut client_write,
                    shared.forwarding.subscribe(),
                    Some(&shared.latency_us)
                ),
            )
        } => done.is_err(),
    };
    if failed {
        // A reset, or one side reset: the other side sees a reset too.
        abort(&[&client, &server]);
    }
}

/// One direction: reads only while forwarding, and holds what it read while black-holed (and,
/// with a `latency`, for that long).
async fn pump(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    mut forwarding: watch::Receiver<bool>,
    latency_us: Option<&AtomicU64>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let _ = forwarding.wait_for(|f| *f).await;
        let n = tokio::select! {
            read = from.read(&mut buf) => read?,
            // Black-holed while waiting for bytes: stop reading (the read is cancel safe).
            _ = forwarding.wait_for(|f| !*f) => continue,
        };
        if n == 0 {
            return to.shutdown().await;
        }
        let held = latency_us.map_or(0, |l| l.load(Ordering::SeqCst));
        if held > 0 {
            tokio::time::sleep(std::time::Duration::from_micros(held)).await;
        }
        let _ = forwarding.wait_for(|f| *f).await;
        to.write_all(&buf[..n]).await?;
    }
}

/// Closes with an RST rather than a FIN.
fn abort(streams: &[&TcpStream]) {
    for stream in streams {
        let _ = stream.set_zero_linger();
    }
}

#[tokio::test]
async fn the_proxy_forwards_black_holes_resets_and_resumes() {
    // An echo server as the upstream.
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream_addr = upstream.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = upstream.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let proxy = Proxy::start(upstream_addr).await;
    let mut conn = TcpStream::connect(proxy.addr()).await.expect("connect");
    let mut byte = [0u8; 1];
    conn.write_all(b"a").await.expect("write");
    conn.read_exact(&mut byte).await.expect("echo");
    assert_eq!(&byte, b"a");
    assert_eq!(proxy.live(), 1);

    // Black-holed: the byte is held back (a bounded wait for something that must not happen).
    proxy.black_hole();
    conn.write_all(b"b").await.expect("write");
    let held = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        conn.read_exact(&mut byte),
    )
    .await;
    assert!(held.is_err(), "nothing comes back through a black hole");
    // New connections are still accepted.
    let mut second = TcpStream::connect(proxy.addr()).await.expect("connect");
    proxy.wait_for_live(|n| *n == 2).await;

    // Healed: the held byte arrives, the connection accepted meanwhile works.
    proxy.resume();
    conn.read_exact(&mut byte).await.expect("echo after resume");
    assert_eq!(&byte, b"b");
    second.write_all(b"c").await.expect("write");
    second.read_exact(&mut byte).await.expect("echo");
    assert_eq!(&byte, b"c");

    // Reset: both connections are gone when it returns, the client sees a reset.
    proxy.reset().await;
    assert_eq!(proxy.live(), 0);
    let read = conn.read(&mut byte).await;
    assert!(
        read.as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{read:?}"
    );
    // The proxy still serves new connections afterwards.
    let mut third = TcpStream::connect(proxy.addr()).await.expect("connect");
    third.write_all(b"d").await.expect("write");
    third.read_exact(&mut byte).await.expect("echo");
    assert_eq!(&byte, b"d");
    assert_eq!(proxy.accepted(), 3);
}
