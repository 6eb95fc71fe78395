//! Kafka's live state as the producers see it, for `/health/ready` and the admin summary.
//!
//! Every producer is created with a [`ReportingContext`]: librdkafka calls its `error` callback
//! at once when all brokers are down (and on transport errors), and its `stats` callback every
//! `statistics.interval.ms` with each broker's connection state. Both write the one
//! [`KafkaReachability`] the service shares. Kafka is reachable while at least one producer has
//! a broker connection `UP`: an idle producer whose connection a broker closed (Kafka's
//! `connections.max.idle.ms`) reports all brokers down although the others publish fine.
//!
//! Nothing here changes how a message is produced; the callbacks only observe.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rdkafka::{
    client::ClientContext, config::RDKafkaLogLevel, error::KafkaError, types::RDKafkaErrorCode,
};
use serde::Deserialize;

/// How often librdkafka reports broker states (`statistics.interval.ms`).
pub const STATISTICS_INTERVAL_MS: u32 = 1_000;

/// Which Kafka the service talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaMode {
    /// The in-process mock cluster (`KAFKA_BOOTSTRAP_SERVERS` unset).
    Embedded,
    /// `KAFKA_BOOTSTRAP_SERVERS`.
    External,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// No broker has answered yet, and none has been reported down.
    Connecting,
    Reachable,
    Unreachable,
}

/// One reading of [`KafkaReachability`].
#[derive(Debug, Clone)]
pub struct ReachabilitySnapshot {
    pub mode: KafkaMode,
    pub bootstrap_servers: String,
    pub state: Reachability,
    /// When `state` last changed (the start, for `Connecting`).
    pub since: DateTime<Utc>,
    /// librdkafka's last error while not reachable.
    pub last_error: Option<String>,
}

/// Shared by every producer's context; read by the health and admin endpoints.
pub struct KafkaReachability {
    mode: KafkaMode,
    bootstrap_servers: String,
    inner: Mutex<Inner>,
    /// The service is stopping ([`Self::closing`]): brokers going away is expected.
    closing: std::sync::atomic::AtomicBool,
}

struct Inner {
    state: Reachability,
    since: DateTime<Utc>,
    last_error: Option<String>,
    /// Per producer: whether its latest report shows a broker connection up.
    up: Vec<(&'static str, bool)>,
}

impl KafkaReachability {
    pub fn new(mode: KafkaMode, bootstrap_servers: &str) -> Arc<Self> {
        Arc::new(Self {
            mode,
            bootstrap_servers: bootstrap_servers.into(),
            inner: Mutex::new(Inner {
                state: Reachability::Connecting,
                since: Utc::now(),
                last_error: None,
                up: Vec::new(),
            }),
            closing: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The service stops: the embedded broker closes while the producers' threads still run, and
    /// what they report from now on (all brokers down, failed connections) is the stop itself,
    /// not an outage. It is logged at debug and changes no state, so a clean stop ends on
    /// "Stopped." and no warning after it.
    pub fn closing(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Release);
    }

    fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn snapshot(&self) -> ReachabilitySnapshot {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ReachabilitySnapshot {
            mode: self.mode,
            bootstrap_servers: self.bootstrap_servers.clone(),
            state: inner.state,
            since: inner.since,
            last_error: inner.last_error.clone(),
        }
    }

    /// A context for one producer (`name` tells producers apart, e.g. `main`).
    pub fn context(self: &Arc<Self>, name: &'static str) -> ReportingContext {
        ReportingContext {
            reachability: self.clone(),
            producer: name,
        }
    }

    /// Records what one producer saw. `error` is set when librdkafka reported an error (which
    /// may end `Connecting`); statistics without a broker up do not, as a client that has not
    /// finished its first connection has none up either.
    fn observe(&self, producer: &'static str, up: bool, error: Option<String>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match inner.up.iter_mut().find(|(p, _)| *p == producer) {
            Some(entry) => entry.1 = up,
            None => inner.up.push((producer, up)),
        }
        let any_up = inner.up.iter().any(|(_, up)| *up);
        let next = if any_up {
            Reachability::Reachable
        } else if inner.state == Reachability::Connecting && error.is_none() {
            Reachability::Connecting
        } else {
            Reachability::Unreachable
        };
        if next != Reachability::Reachable {
            if let Some(e) = error {
                inner.last_error = Some(e);
            }
        }
        if next == inner.state {
            return;
        }
        match next {
            Reachability::Reachable => {
                tracing::info!(bootstrap_servers = %self.bootstrap_servers, "Kafka is reachable.");
                inner.last_error = None;
            }
            Reachability::Unreachable => {
                tracing::warn!(bootstrap_servers = %self.bootstrap_servers, error = ?inner.last_error,
                    "Kafka is unreachable; participations are kept in the outbox until it is back.");
            }
            Reachability::Connecting => {}
        }
        inner.state = next;
        inner.since = Utc::now();
    }
}

/// The `ClientContext` of the service's producers: reports broker reachability to
/// [`KafkaReachability`]; logging stays librdkafka's default.
#[derive(Clone)]
pub struct ReportingContext {
    reachability: Arc<KafkaReachability>,
    producer: &'static str,
}

/// The part of librdkafka's statistics JSON read here (the rest is skipped, not parsed).
#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    brokers: std::collections::HashMap<String, BrokerStats>,
}

#[derive(Deserialize)]
struct BrokerStats {
    state: String,
}

impl ClientContext for ReportingContext {
    /// librdkafka's own lines, as rdkafka logs them by default (target `librdkafka`), except
    /// while the service stops: a producer closing on its thread of its own may outlive the
    /// embedded broker and report its connection refused, which is the stop, not an outage (a
    /// full suite run saw one such ERROR after "Stopped.").
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if self.reachability.is_closing() {
            tracing::debug!(target: "librdkafka", "librdkafka: {fac} {message} (while the service stops)");
            return;
        }
        // Said at every start of every producer for a setting the relay's per-key order rests
        // on, chosen knowingly (`kafka::producer`): noise to an operator, kept for debugging.
        if fac == "CONFWARN" && message.contains("enable.gapless.guarantee is experimental") {
            tracing::debug!(target: "librdkafka", "librdkafka: {fac} {message}");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "librdkafka: {fac} {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "librdkafka: {fac} {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "librdkafka: {fac} {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", "librdkafka: {fac} {message}")
            }
        }
    }

    fn stats_raw(&self, statistics: &[u8]) {
        if self.reachability.is_closing() {
            return;
        }
        match serde_json::from_slice::<Stats>(statistics) {
            Ok(stats) => {
                let up = stats.brokers.values().any(|b| b.state == "UP");
                self.reachability.observe(self.producer, up, None);
            }
            Err(e) => {
                tracing::warn!(producer = self.producer, error = %e, "Could not read librdkafka's statistics.")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.reachability.is_closing() {
            tracing::debug!(producer = self.producer, error = %error, %reason, "Kafka client error while the service stops.");
            return;
        }
        let code = match &error {
            KafkaError::Global(code) => Some(*code),
            _ => None,
        };
        match code {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                tracing::warn!(producer = self.producer, %reason, "Kafka: all brokers are down.");
                self.reachability
                    .observe(self.producer, false, Some(format!("{error}: {reason}")));
            }
            Some(RDKafkaErrorCode::BrokerTransportFailure) => {
                // One connection failed; others may still be up (the statistics tell). While
                // Kafka is unreachable this repeats at every reconnection attempt: the change of
                // state was logged once, the repeats go to debug.
                let mut inner = self
                    .reachability
                    .inner
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if inner.state == Reachability::Reachable {
                    tracing::warn!(producer = self.producer, %reason, "Kafka: a broker connection failed.");
                } else {
                    tracing::debug!(producer = self.producer, %reason, "Kafka: a broker connection failed.");
                    inner.last_error = Some(format!("{error}: {reason}"));
                }
            }
            _ => {
                tracing::error!(producer = self.producer, error = %error, %reason, "Kafka client error.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(ctx: &ReportingContext) {
        ctx.error(
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
    }

    fn stats(ctx: &ReportingContext, state: &str) {
        let json =
            format!(r#"{{"name":"x","brokers":{{"b/1":{{"state":"{state}","nodeid":1}}}}}}"#);
        ctx.stats_raw(json.as_bytes());
    }

    #[test]
    fn once_the_service_stops_the_brokers_going_away_is_no_outage() {
        let r = KafkaReachability::new(KafkaMode::Embedded, "127.0.0.1:1");
        let main = r.context("main");
        stats(&main, "UP");
        r.closing();
        error(&main);
        stats(&main, "DOWN");
        let last = r.snapshot();
        assert_eq!(
            last.state,
            Reachability::Reachable,
            "as it was when the stop began"
        );
        assert_eq!(last.last_error, None);
    }

    /// librdkafka's ERROR lines are logged as such while the service runs, and at debug once it
    /// stops (a producer closing after the embedded broker reports its connection refused).
    #[test]
    fn librdkafkas_own_errors_are_the_stops_once_the_service_stops() {
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let r = KafkaReachability::new(KafkaMode::Embedded, "127.0.0.1:1");
        let main = r.context("main");
        tracing::subscriber::with_default(subscriber, || {
            main.log(
                RDKafkaLogLevel::Error,
                "FAIL",
                "running: connection refused",
            );
            r.closing();
            main.log(
                RDKafkaLogLevel::Error,
                "FAIL",
                "stopping: connection refused",
            );
        });
        let text = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
        assert!(
            text.contains("ERROR librdkafka: librdkafka: FAIL running"),
            "{text}"
        );
        assert!(!text.contains("stopping"), "{text}");
    }

    #[test]
    fn connecting_until_a_broker_is_up_or_all_are_reported_down() {
        let r = KafkaReachability::new(KafkaMode::Embedded, "127.0.0.1:1");
        let main = r.context("main");
        stats(&main, "CONNECT");
        assert_eq!(r.snapshot().state, Reachability::Connecting);
        stats(&main, "UP");
        assert_eq!(r.snapshot().state, Reachability::Reachable);
        error(&main);
        let down = r.snapshot();
        assert_eq!(down.state, Reachability::Unreachable);
        assert!(down
            .last_error
            .is_some_and(|e| e.contains("brokers are down")));
        stats(&main, "DOWN");
        assert_eq!(r.snapshot().since, down.since, "no change, same since");
        stats(&main, "UP");
        let back = r.snapshot();
        assert_eq!(back.state, Reachability::Reachable);
        assert!(back.last_error.is_none());
        assert!(back.since >= down.since);
    }

    #[test]
    fn one_producer_up_is_enough() {
        let r = KafkaReachability::new(KafkaMode::External, "k:9092");
        let (main, dlq) = (r.context("main"), r.context("dlq"));
        stats(&main, "UP");
        // The idle dead-letter producer lost its connection; the relay's still publishes.
        error(&dlq);
        assert_eq!(r.snapshot().state, Reachability::Reachable);
        error(&main);
        assert_eq!(r.snapshot().state, Reachability::Unreachable);
    }

    #[test]
    fn kafka_down_at_start_is_unreachable() {
        let r = KafkaReachability::new(KafkaMode::External, "k:9092");
        error(&r.context("main"));
        assert_eq!(r.snapshot().state, Reachability::Unreachable);
    }
}
