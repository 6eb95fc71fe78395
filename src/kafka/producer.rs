//! The Kafka producers: idempotent (`enable.idempotence=true`, `acks=all`), batching, replaced
//! when librdkafka reports a fatal error (after which every send fails).
//!
//! - **main** (the relay): no message timeout (`message.timeout.ms=0`) and the gap-less guarantee
//!   (`enable.gapless.guarantee=true`). Together they make every failure in a partition a
//!   suffix: a message never fails while a later one of the same partition is written, which
//!   is what per-key order rests on (see `relay/order.rs`). librdkafka documents that timed-out
//!   queued messages leave gaps (1, 4, 5 written after 2 and 3 timed out), hence no timeout; and
//!   that without the gap-less guarantee a batch failing permanently lets later batches through.
//!   librdkafka's own retries stay unlimited (its default): a batch whose retries run out fails
//!   alone, a gap the gap-less guarantee does not cover (it covers permanent errors only; read
//!   in librdkafka's `rd_kafka_handle_Produce_error`, and measured here: three rows of a key
//!   failed with `NOT_ENOUGH_REPLICAS` after their retries while the next batch was written).
//!   So a broker's retriable error (`NOT_ENOUGH_REPLICAS`, a leader moving) is retried in order
//!   inside librdkafka; only a permanent refusal reaches the relay, and it fails the whole
//!   series (a fatal error; the producer is replaced after every message it holds is reported).
//!   One produce request in flight per broker (`max.in.flight.requests.per.connection=1`): with
//!   several, a retried request can land after a later one that succeeded, and only the broker's
//!   sequence check stops that; librdkafka's mock broker does not check sequences of
//!   non-transactional producers (measured: an older row written right after a younger one), and
//!   other Kafka-compatible brokers may not either. Batching keeps throughput: one request
//!   carries every partition's batch.
//! - **dlq**: allows the largest message Kafka clients accept, so that a row refused for its
//!   size can still reach the DLQ; has a delivery deadline (`KAFKA_MESSAGE_TIMEOUT_MS`).
//! - **sync** (the synchronous baseline): a delivery deadline, as a request must answer.
//!
//! Each producer reports broker reachability through its context (`kafka/health.rs`): librdkafka
//! statistics every [`STATISTICS_INTERVAL_MS`] and its error callback. Only observation; no
//! setting that decides how a message is sent depends on it. Every producer partitions by
//! campaign ([`ByCampaign`]), and each message's delivery report comes back as a [`Delivery`].

use std::{
    future::Future,
    ops::Deref,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    task::{Context, Poll},
    thread::JoinHandle,
    time::Duration,
};

use futures::{channel::oneshot, FutureExt};
use rdkafka::{
    config::ClientConfig,
    error::{KafkaError, KafkaResult},
    message::OwnedHeaders,
    producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig},
    types::RDKafkaErrorCode,
};

use crate::{
    config::KafkaSettings,
    kafka::{
        health::{KafkaReachability, ReportingContext, STATISTICS_INTERVAL_MS},
        partition::ByCampaign,
    },
    shutdown::off_runtime,
};

/// The partitioner of every producer of the service.
static BY_CAMPAIGN: ByCampaign = ByCampaign::new();

/// How long a sender waits before handing a message to librdkafka again after its queue was
/// full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// One call of a producer's polling thread. rdkafka 0.39's `BaseProducer::poll` serves events
/// until its deadline and hands librdkafka the time left in whole milliseconds, rounded down, so
/// in the last millisecond of every call it polls without waiting, over and over: its
/// `ThreadedProducer`, calling it every 100 ms, spun up to 1 % of a core per producer (an idle
/// service's three polling threads: 2.4 % of a core, `clock_gettime` its first symbol;
/// docs/benchmarks.md "CPU per win"). A call of a second spins a tenth as much. Events (delivery
/// reports, statistics) are served as they come whatever the call's length; only a producer's
/// close waits for the call to end.
const POLL_CALL: Duration = Duration::from_secs(1);

/// Each message's delivery report goes to the [`Delivery`] its send returned.
impl ProducerContext<ByCampaign> for ReportingContext {
    type DeliveryOpaque = Box<oneshot::Sender<Result<(), KafkaError>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, report: Self::DeliveryOpaque) {
        let _ = report.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }

    fn get_custom_partitioner(&self) -> Option<&ByCampaign> {
        Some(&BY_CAMPAIGN)
    }
}

/// A sent message's delivery report: `Err(Canceled)` if its producer went without reporting it.
pub struct Delivery(oneshot::Receiver<Result<(), KafkaError>>);

impl Future for Delivery {
    type Output = Result<(), KafkaError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0
            .poll_unpin(cx)
            .map(|report| report.unwrap_or(Err(KafkaError::Canceled)))
    }
}

/// A message to send.
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub headers: OwnedHeaders,
}

/// The service's producer: librdkafka's, with a polling thread of its own ([`POLL_CALL`]), a
/// context that reports reachability and partitions by campaign. Closing it blocks (the polling
/// thread ends its call; librdkafka's destructor purges, flushes for up to 500 ms and joins its
/// threads), and the last handle may go on an async worker (a relay worker letting go of a
/// replaced producer, the application at shutdown), so it is closed on a thread of its own.
pub struct KafkaProducer {
    /// Always `Some` until dropped.
    inner: Option<Polled>,
    name: &'static str,
}

/// A producer and the thread that serves its events. Dropped in this order: the thread is told
/// to stop and joined, then the producer's last handle goes.
struct Polled {
    /// Held for its `Drop`: it stops and joins the thread before `producer` goes.
    _polling: Polling,
    producer: Arc<BaseProducer<ReportingContext, ByCampaign>>,
}

struct Polling {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Polling {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A panic in the context's callbacks ended the thread early; nothing to add.
            let _ = thread.join();
        }
    }
}

impl KafkaProducer {
    fn create(
        config: &ClientConfig,
        context: ReportingContext,
        name: &'static str,
    ) -> KafkaResult<Self> {
        let producer: Arc<BaseProducer<ReportingContext, ByCampaign>> =
            Arc::new(config.create_with_context(context)?);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (producer, stop) = (Arc::clone(&producer), Arc::clone(&stop));
            std::thread::Builder::new()
                .name(format!("kafka poll {name}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(POLL_CALL);
                    }
                })
                .map_err(|e| KafkaError::ClientCreation(format!("a polling thread: {e}")))?
        };
        Ok(Self {
            inner: Some(Polled {
                _polling: Polling {
                    stop,
                    thread: Some(thread),
                },
                producer,
            }),
            name,
        })
    }

    /// Hands `message` to librdkafka, waiting while its queue is full (for `queue_wait` at most,
    /// or for as long as it takes); its report comes to the returned [`Delivery`].
    pub async fn enqueue(
        &self,
        message: Outgoing<'_>,
        queue_wait: Option<Duration>,
    ) -> Result<Delivery, KafkaError> {
        let deadline = queue_wait.map(|wait| tokio::time::Instant::now() + wait);
        let mut headers = message.headers;
        loop {
            let (report, delivery) = oneshot::channel();
            let mut record =
                BaseRecord::with_opaque_to(message.topic, Box::new(report)).headers(headers);
            record.key = message.key;
            record.payload = message.payload;
            match self.send(record) {
                Ok(()) => return Ok(Delivery(delivery)),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if deadline.is_none_or(|d| tokio::time::Instant::now() < d) =>
                {
                    headers = back.headers.unwrap_or_default();
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// [`Self::enqueue`]s `message` and awaits its delivery report.
    pub async fn send_and_wait(
        &self,
        message: Outgoing<'_>,
        queue_wait: Option<Duration>,
    ) -> Result<(), KafkaError> {
        self.enqueue(message, queue_wait).await?.await
    }
}

/// Fails every message `producer` holds, queued or in flight (each is reported as purged), and
/// returns when librdkafka's threads have done so. `rd_kafka_purge` blocks until each broker
/// thread of the client has purged its queues (its own threads, not the network), so it runs off
/// the async workers; the caller awaits it, because sending more before the purge is done could
/// let a younger message through while an older one fails (see `relay/order.rs`).
pub async fn purge(producer: Arc<KafkaProducer>) {
    let what = format!("Kafka producer {}: purge", producer.name);
    let purged = off_runtime::run(what, Duration::MAX, move || {
        producer.purge(PurgeConfig::default().queue().inflight());
    })
    .await;
    if let Err(e) = purged {
        tracing::error!(error = %e, "Could not purge a Kafka producer.");
    }
}

impl Deref for KafkaProducer {
    type Target = BaseProducer<ReportingContext, ByCampaign>;

    fn deref(&self) -> &Self::Target {
        &self
            .inner
            .as_ref()
            .expect("a KafkaProducer holds its producer until it is dropped")
            .producer
    }
}

impl Drop for KafkaProducer {
    fn drop(&mut self) {
        if let Some(polled) = self.inner.take() {
            off_runtime::drop_detached(format!("Kafka producer {}: close", self.name), polled);
        }
    }
}

/// The dead-letter producer's `message.max.bytes` (the broker may still refuse less).
const DLQ_MESSAGE_MAX_BYTES: usize = 100_000_000;

/// What a producer is for; it decides the settings that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Relay,
    DeadLetter,
    Sync,
}

fn config(bootstrap: &str, settings: &KafkaSettings, role: Role) -> ClientConfig {
    let mut c = ClientConfig::new();
    // `acks` is a topic-level property, and one must be set: with a custom partitioner, rdkafka
    // 0.39 hands its context to the default topic configuration, which only a topic-level
    // property creates (without one, creating the producer dereferences a null pointer).
    c.set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.type", "lz4")
        .set("log_level", "4");
    // Tuning and security from KAFKA_PROPERTIES (compression, linger, client.id, TLS, SASL);
    // then what the guarantees rest on, which KAFKA_PROPERTIES may not set.
    settings.properties.apply(&mut c);
    c.set("statistics.interval.ms", STATISTICS_INTERVAL_MS.to_string());
    let max_bytes = match role {
        Role::DeadLetter => DLQ_MESSAGE_MAX_BYTES,
        Role::Relay | Role::Sync => settings.message_max_bytes,
    };
    c.set("message.max.bytes", max_bytes.to_string());
    match role {
        Role::Relay => {
            c.set("message.timeout.ms", "0")
                .set("enable.gapless.guarantee", "true")
                .set("max.in.flight.requests.per.connection", "1");
        }
        Role::DeadLetter | Role::Sync => {
            c.set(
                "message.timeout.ms",
                settings.message_timeout.as_millis().to_string(),
            );
        }
    }
    c
}

/// A producer that can be swapped for a new one; cloning the handle shares the slot.
#[derive(Clone)]
pub struct ProducerSlot {
    /// The producer and its generation (incremented by each replacement).
    current: Arc<RwLock<(Arc<KafkaProducer>, u64)>>,
    config: Arc<ClientConfig>,
    /// Given to each producer of the slot, replacements included.
    context: ReportingContext,
    name: &'static str,
}

impl ProducerSlot {
    fn new(
        config: ClientConfig,
        reachability: &Arc<KafkaReachability>,
        name: &'static str,
    ) -> KafkaResult<Self> {
        let context = reachability.context(name);
        let producer = KafkaProducer::create(&config, context.clone(), name)?;
        Ok(Self {
            current: Arc::new(RwLock::new((Arc::new(producer), 0))),
            config: Arc::new(config),
            context,
            name,
        })
    }

    pub fn get(&self) -> Arc<KafkaProducer> {
        self.current().0
    }

    /// The producer with its generation. A producer replaced after a fatal error lives on until
    /// the last handle to it is dropped, so the relay keeps one with each message in flight:
    /// every message it was given is reported before it goes.
    pub fn current(&self) -> (Arc<KafkaProducer>, u64) {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn generation(&self) -> u64 {
        self.current.read().unwrap_or_else(|p| p.into_inner()).1
    }

    /// Replaces `seen` if it is in a fatal state (and still the current producer: several
    /// workers may notice the same failure). Returns whether it replaced it.
    pub fn replace_if_fatal(&self, seen: &Arc<KafkaProducer>) -> bool {
        let Some((code, reason)) = seen.client().fatal_error() else {
            return false;
        };
        let mut slot = self.current.write().unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&slot.0, seen) {
            return false;
        }
        match KafkaProducer::create(&self.config, self.context.clone(), self.name) {
            Ok(fresh) => {
                tracing::warn!(producer = self.name, ?code, %reason, "The Kafka producer hit a fatal error; replaced it.");
                *slot = (Arc::new(fresh), slot.1 + 1);
                true
            }
            Err(e) => {
                tracing::error!(producer = self.name, error = %e, "Could not replace a fatal Kafka producer.");
                false
            }
        }
    }
}

/// The relay's, the dead-letter and the sync path's producers.
#[derive(Clone)]
pub struct Producers {
    pub main: ProducerSlot,
    pub dlq: ProducerSlot,
    pub sync: ProducerSlot,
}

impl Producers {
    /// Creating a producer does not connect: this succeeds while Kafka is down, and the relay's
    /// rows wait in the outbox until it is back. Each reports to `reachability`.
    pub fn new(
        bootstrap: &str,
        settings: &KafkaSettings,
        reachability: &Arc<KafkaReachability>,
    ) -> KafkaResult<Self> {
        let slot =
            |role, name| ProducerSlot::new(config(bootstrap, settings, role), reachability, name);
        Ok(Self {
            main: slot(Role::Relay, "main")?,
            dlq: slot(Role::DeadLetter, "dlq")?,
            sync: slot(Role::Sync, "sync")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Weak;

    use super::*;
    use crate::kafka::health::KafkaMode;

    /// Closing a producer ends its polling thread, which holds a handle to librdkafka's client:
    /// a thread left polling would keep the client, its broker threads and their connections for
    /// good (a replaced producer, each instance a test starts).
    #[test]
    fn closing_a_producer_ends_its_polling_thread_and_lets_the_client_go() {
        // Creating a producer connects nowhere yet: no broker is needed.
        let reachability = KafkaReachability::new(KafkaMode::External, "127.0.0.1:1");
        let mut config = ClientConfig::new();
        // `acks` is a topic-level property, as in `config` (see there).
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("acks", "all");
        let mut producer =
            KafkaProducer::create(&config, reachability.context("test"), "test").unwrap();
        let polled = producer.inner.take().unwrap();
        let client: Weak<_> = Arc::downgrade(&polled.producer);
        assert_eq!(
            Arc::strong_count(&polled.producer),
            2,
            "the thread holds one handle"
        );
        // What the close thread does: stop and join the polling thread, then drop the client. A
        // thread that never stopped would hold the close forever: given ten seconds here.
        let (closed, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(polled);
            let _ = closed.send(());
        });
        done.recv_timeout(Duration::from_secs(10))
            .expect("the close waited on a polling thread that did not stop");
        assert!(client.upgrade().is_none(), "the client outlived its close");
    }
}
