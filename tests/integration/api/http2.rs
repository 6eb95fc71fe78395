//! HTTP/2 on the public port (issue 57, docs/design.md §17), on raw sockets: refused unless
//! `HTTP2_ENABLED`; with it on, the head deadline holds whenever no stream is in flight, so a
//! connection that only sends PINGs (bytes, but no request) is closed at that deadline, long
//! before the idle deadline its PINGs keep resetting; and a response its client's flow control
//! holds closes its connection at the idle deadline, whatever else the connection does.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::spawn::{spawn_app_with, test_settings, TestApp};

/// The client connection preface of RFC 9113 §3.4, then an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// A SETTINGS frame with the ACK flag.
const SETTINGS_ACK: &[u8] = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00";
/// A PING frame (8 bytes of opaque data).
const PING: &[u8] = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00pingping";

async fn app(http2: bool, header_ms: u64) -> TestApp {
    let mut s = test_settings().await;
    s.http.http2 = http2;
    s.http.header_timeout = Duration::from_millis(header_ms);
    s.http.request_timeout = Duration::from_millis(1_000);
    s.http.idle_timeout = Duration::from_secs(20);
    spawn_app_with(s).await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .expect("connect")
}

#[tokio::test]
async fn an_http2_prior_knowledge_connection_is_refused_by_default() {
    let app = app(false, 5_000).await;
    let mut stream = connect(&app).await;
    stream.write_all(PREFACE).await.expect("preface");
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("closed at once, not at a deadline");
    // A server speaking HTTP/2 answers with its SETTINGS frame (type 4 at byte 3); this one
    // answers as HTTP/1.1 does to a head it cannot read, or not at all.
    let settings = answer.len() >= 9 && answer[3] == 0x04;
    assert!(!settings, "an HTTP/2 answer: {answer:?} ({closed:?})");
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn with_http2_on_a_ping_only_connection_is_closed_at_the_head_deadline() {
    let header = Duration::from_millis(1_500);
    let app = app(true, 1_500).await;
    let mut stream = connect(&app).await;
    stream.write_all(PREFACE).await.expect("preface");
    let (reader, mut writer) = stream.into_split();
    let started = Instant::now();
    // The server's answer proves it speaks HTTP/2 here; read until it closes.
    let read = tokio::spawn(read_until_closed(reader));
    writer.write_all(SETTINGS_ACK).await.expect("ack");
    // A PING every 300 ms: bytes both ways (the server answers each), never a request.
    let pings = tokio::spawn(ping_every_300_ms(writer));
    let seen = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("closed before the idle deadline (20 s) and the test's bound")
        .expect("reader");
    let lasted = started.elapsed();
    pings.abort();
    assert!(
        seen.len() >= 9 && seen[3] == 0x04,
        "it spoke HTTP/2: {seen:?}"
    );
    assert!(
        lasted >= header - Duration::from_millis(200) && lasted < header * 4,
        "closed after {lasted:?}, the head deadline is {header:?}"
    );
}

/// A SETTINGS frame setting SETTINGS_INITIAL_WINDOW_SIZE (0x4) to 0: no stream's response may
/// send a byte of its body until the client opens its window, which this client never does.
const SETTINGS_WINDOW_0: &[u8] = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00";
/// A HEADERS frame on stream 1 (END_STREAM, END_HEADERS): `GET /health/live`, HPACK-coded
/// (:method GET and :scheme http indexed, :path and :authority literals).
const GET_LIVE: &[u8] =
    b"\x00\x00\x1b\x01\x05\x00\x00\x00\x01\x82\x86\x44\x0c/health/live\x41\x09localhost";

/// The idle deadline of the flow-control tests.
const IDLE: Duration = Duration::from_millis(2_500);

/// An app with HTTP/2 on and an idle deadline of [`IDLE`], and a connection to it whose client
/// set every stream's window to 0: the task reading every byte until the server closes, the
/// writer, and when it began.
async fn window_0_connection() -> (
    TestApp,
    tokio::task::JoinHandle<Vec<u8>>,
    tokio::net::tcp::OwnedWriteHalf,
    Instant,
) {
    let mut s = test_settings().await;
    s.http.http2 = true;
    s.http.header_timeout = Duration::from_millis(1_000);
    s.http.request_timeout = Duration::from_millis(1_000);
    s.http.idle_timeout = IDLE;
    let app = spawn_app_with(s).await;
    let stream = connect(&app).await;
    let (reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let read = tokio::spawn(read_until_closed(reader));
    writer.write_all(&PREFACE[..24]).await.expect("preface");
    writer.write_all(SETTINGS_WINDOW_0).await.expect("settings");
    writer.write_all(SETTINGS_ACK).await.expect("ack");
    (app, read, writer, started)
}

/// The finding of issue 71 #1: a stream whose response flow control holds, and PINGs every few
/// hundred milliseconds, kept a connection open for good (its head deadline stops while a request
/// is in flight; its PINGs kept the idle one young). It is closed once the request has made no
/// progress for the idle deadline.
#[tokio::test]
async fn a_response_held_by_flow_control_while_pings_flow_is_closed_at_the_idle_deadline() {
    let (_app, read, mut writer, started) = window_0_connection().await;
    writer.write_all(GET_LIVE).await.expect("request");
    let pings = tokio::spawn(ping_every_300_ms(writer));
    let seen = closed_at_idle(read, started, "the PINGs").await;
    pings.abort();
    assert!(
        frames(&seen).contains(&(0x01, 1)),
        "the response's HEADERS on stream 1 came, its body could not: {seen:?}"
    );
}

/// Every byte the server sent before it closed the connection, once it did: within four idle
/// deadlines of `started` (not held open by `what`), and not before one.
async fn closed_at_idle(
    read: tokio::task::JoinHandle<Vec<u8>>,
    started: Instant,
    what: &str,
) -> Vec<u8> {
    let seen = tokio::time::timeout(IDLE * 4, read)
        .await
        .unwrap_or_else(|_| panic!("closed by the server, not held open by {what}"))
        .expect("reader");
    let lasted = started.elapsed();
    assert!(
        lasted >= IDLE - Duration::from_millis(200),
        "closed after {lasted:?}, before the idle deadline {IDLE:?}"
    );
    seen
}

/// `GET /health/live` as [`GET_LIVE`] on stream `id` (odd), then, if `open`, a WINDOW_UPDATE
/// that opens that stream's window so its response can be sent.
fn get_live_on(id: u32, open: bool) -> Vec<u8> {
    let mut frames = GET_LIVE.to_vec();
    frames[5..9].copy_from_slice(&id.to_be_bytes());
    if open {
        frames.extend_from_slice(b"\x00\x00\x04\x08\x00");
        frames.extend_from_slice(&id.to_be_bytes());
        frames.extend_from_slice(&65_535u32.to_be_bytes());
    }
    frames
}

/// Issue 90 #6: the stall was judged on the connection's progress as a whole, so one stream held
/// by flow control stayed open for good while other streams of the connection, their windows
/// opened, kept answering. Each response is judged on its own now: the held one closes the
/// connection at the idle deadline, whatever the others do.
#[tokio::test]
async fn a_stream_held_by_flow_control_closes_its_connection_while_other_streams_answer() {
    let (_app, read, mut writer, started) = window_0_connection().await;
    writer
        .write_all(&get_live_on(1, false))
        .await
        .expect("the held request");
    // A request every 400 ms whose window is opened: each is answered in full.
    let others = tokio::spawn(async move {
        let mut id = 3;
        while writer.write_all(&get_live_on(id, true)).await.is_ok() {
            id += 2;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    });
    let seen = closed_at_idle(read, started, "the other streams").await;
    others.abort();
    let frames = frames(&seen);
    assert!(
        frames.contains(&(0x00, 3)),
        "another stream's body (DATA on stream 3) came: {frames:?}"
    );
    assert!(
        !frames.contains(&(0x00, 1)),
        "the held stream's body could not come: {frames:?}"
    );
}

/// A PING every 300 ms until the connection fails: bytes both ways, never a request.
async fn ping_every_300_ms(mut writer: tokio::net::tcp::OwnedWriteHalf) {
    while writer.write_all(PING).await.is_ok() {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Every byte the server sends until it closes the connection.
async fn read_until_closed(mut reader: tokio::net::tcp::OwnedReadHalf) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    while let Ok(n) = reader.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&chunk[..n]);
    }
    seen
}

/// The (type, stream) of each whole frame in `bytes`.
fn frames(bytes: &[u8]) -> Vec<(u8, u32)> {
    let mut found = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = usize::from(bytes[at]) << 16
            | usize::from(bytes[at + 1]) << 8
            | usize::from(bytes[at + 2]);
        let stream =
            u32::from_be_bytes([bytes[at + 5], bytes[at + 6], bytes[at + 7], bytes[at + 8]])
                & 0x7fff_ffff;
        found.push((bytes[at + 3], stream));
        at += 9 + len;
    }
    found
}
