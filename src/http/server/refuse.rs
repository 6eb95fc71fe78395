//! The answer to a connection over a cap ([`crate::http::server::caps`]): a complete HTTP/1.1 503 in the API's
//! error shape, written at once, then the connection closed, all within [`REFUSAL_DEADLINE`].
//!
//! The answer is the same whatever was asked, but it waits for the request's first bytes: an
//! HTTP client (hyper's) that receives a response before it has sent its request takes it for a
//! broken connection. After it, the connection's write side is shut and what the client sends is
//! read and dropped until it closes: closing a socket with unread data sends a reset, which can
//! destroy the answer before the client has read it.

use std::{
    io,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, LazyLock,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// How long a refused connection may take of this server: a client that does not read its
/// answer or close within it is cut off.
pub const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);

/// Refused connections being answered at once, at most. Past this (a flood), a refused
/// connection is closed without its answer, so that refusing never holds more descriptors than
/// this above `HTTP_MAX_CONNECTIONS`.
pub const MAX_REFUSING: usize = 256;

/// Seconds a refused client should wait, as every SERVICE_BUSY of the API says.
const RETRY_AFTER_SECS: u32 = 1;

static ANSWER: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let body = r#"{"code":"SERVICE_BUSY","message":"too many open connections; retry shortly"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: {RETRY_AFTER_SECS}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Answers refused connections, each on a task of its own, [`MAX_REFUSING`] at a time.
#[derive(Clone, Default)]
pub struct Refuser {
    in_flight: Arc<AtomicUsize>,
}

impl Refuser {
    /// Answers `stream` with the 503 and closes it (or just closes it, past [`MAX_REFUSING`]).
    pub fn refuse(&self, stream: TcpStream) {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let in_flight = self.in_flight.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                if let Err(error) = answer(stream).await {
                    tracing::debug!(%error, "A refused connection did not take its answer.");
                }
                in_flight.fetch_sub(1, Ordering::AcqRel);
            },
            tracing::debug_span!("refused_connection"),
        ));
    }
}

async fn answer(mut stream: TcpStream) -> io::Result<()> {
    let exchange = async {
        let mut discard = [0u8; 1024];
        if stream.read(&mut discard).await? == 0 {
            return Ok(()); // gone without asking
        }
        stream.write_all(&ANSWER).await?;
        stream.shutdown().await?;
        while stream.read(&mut discard).await? > 0 {}
        Ok(())
    };
    tokio::time::timeout(REFUSAL_DEADLINE, exchange)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_a_complete_response_in_the_api_error_shape() {
        let text = String::from_utf8(ANSWER.clone()).expect("text");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(json["code"], "SERVICE_BUSY");
    }
}
