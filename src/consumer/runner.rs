//! The consumer loop: read a batch, dead-letter poison, apply the rest in one transaction (retried
//! until it commits), then store the batch's offsets; commit offsets on a timer, on a rebalance
//! (`context.rs`) and at shutdown; say loudly what the broker dropped before it was read
//! (`continuity.rs`). No call here blocks an async worker: the blocking ones (the last commit,
//! leaving the group, a partition's committed offset) run off the runtime, bounded (`close`).

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use backoff::{backoff::Backoff, ExponentialBackoff};
use futures::FutureExt;
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    error::KafkaResult,
    message::Message,
    Offset, TopicPartitionList,
};
use tokio::time::Instant;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    config::{consumers::ConsumerName, ConsumerSettings, GroupProtocol, KafkaProperties},
    consumer::{
        apply::Applier,
        client,
        context::{self, GroupContext},
        continuity::{self, Continuity},
        dead_letter, inbox,
        read::{read, Read},
        ConsumerReport, ConsumerStatus, Delivered, Handler,
    },
    db::Db,
    kafka::producer::ProducerSlot,
    shutdown::{off_runtime, running},
    telemetry::{
        metrics::Metrics,
        trace::export::{self, ExportSpan, KeyValue, SpanKind},
    },
};

/// How often old inbox rows are cleaned (one bounded DELETE each time).
const CLEAN_EVERY: Duration = Duration::from_secs(60);
const CLEAN_BATCH: u32 = 5_000;

/// What every consumer of this process shares.
#[derive(Clone)]
pub struct ConsumerDeps {
    /// The consumers' own pool.
    pub db: Db,
    /// Publishes poison messages (the dead-letter producer: it has a delivery deadline).
    pub dlq: ProducerSlot,
    pub dlq_timeout: Duration,
    pub bootstrap: String,
    /// `KAFKA_PROPERTIES` (TLS, SASL, ...), set on every consumer.
    pub properties: KafkaProperties,
    pub topic: String,
    pub settings: ConsumerSettings,
    pub group_protocol: GroupProtocol,
    /// `fetch.wait.max.ms` (see `CONSUMER_FETCH_WAIT_MS`).
    pub fetch_wait: Duration,
    /// The application's metrics; each consumer's report records into them.
    pub metrics: Arc<Metrics>,
    /// How long the last offset commit and leaving the group may take at shutdown (half of
    /// `SHUTDOWN_TIMEOUT_MS`): a coordinator that does not answer is not waited for beyond it.
    pub close_timeout: Duration,
}

/// A running consumer, as the rest of the application sees it.
#[derive(Clone)]
pub struct ConsumerHandle {
    pub report: Arc<ConsumerReport>,
}

/// Starts consumer `name` as a tracked task that runs until `stop` is cancelled.
pub fn start(
    name: ConsumerName,
    deps: &ConsumerDeps,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> KafkaResult<ConsumerHandle> {
    let report = Arc::new(ConsumerReport::new(name, &deps.metrics));
    let consumer = client::subscribe(name, deps, report.clone())?;
    let runner = Runner {
        name,
        handler: crate::consumer::handler(name),
        consumer: Arc::new(consumer),
        continuity: Mutex::new(Continuity::default()),
        deps: deps.clone(),
        report: report.clone(),
        stop,
    };
    tasks.spawn(running::track(
        format!("consumer {name}"),
        runner
            .run()
            .instrument(tracing::info_span!("consumer", consumer = name.as_str())),
    ));
    tracing::info!(consumer = name.as_str(), group = %name.group_id(), topic = %deps.topic,
        "Consumer started.");
    Ok(ConsumerHandle { report })
}

/// Shutdown was asked for while a batch was still being retried; its offsets are not stored.
struct Stopped;

struct Runner {
    name: ConsumerName,
    handler: Arc<dyn Handler>,
    consumer: Arc<StreamConsumer<GroupContext>>,
    deps: ConsumerDeps,
    /// The offsets expected next, for the events the broker dropped before they were read.
    continuity: Mutex<Continuity>,
    report: Arc<ConsumerReport>,
    /// Cancelled once, at shutdown (the application's root token).
    stop: CancellationToken,
}

impl Runner {
    async fn run(self) {
        self.report.set_status(ConsumerStatus::Running);
        let interval = self.deps.settings.commit_interval;
        let mut uncommitted = false;
        let mut last_commit = Instant::now();
        let mut last_clean = Instant::now();
        loop {
            let first = tokio::select! {
                biased;
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep_until(last_commit + interval), if uncommitted => {
                    self.commit_async();
                    uncommitted = false;
                    last_commit = Instant::now();
                    continue;
                }
                m = self.consumer.recv() => m.map(|m| read(&m)),
            };
            let first = match first {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka reported an error while consuming; continuing.");
                    continue;
                }
            };
            let batch = self.collect(first);
            if self.process(batch).await.is_err() {
                break;
            }
            uncommitted = true;
            if last_commit.elapsed() >= interval {
                self.commit_async();
                uncommitted = false;
                last_commit = Instant::now();
            }
            if last_clean.elapsed() >= CLEAN_EVERY {
                last_clean = Instant::now();
                self.clean_inbox().await;
            }
        }
        self.close().await;
    }

    /// `first` and whatever else is already waiting, up to the batch size, each read where
    /// librdkafka holds it ([`read`]).
    fn collect(&self, first: Read) -> Vec<Read> {
        let mut batch = vec![first];
        while batch.len() < self.deps.settings.batch_size {
            match self.consumer.recv().now_or_never() {
                Some(Ok(m)) => batch.push(read(&m)),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Kafka reported an error while consuming; continuing.");
                    break;
                }
                None => break,
            }
        }
        batch
    }

    /// Dead-letters poison, applies the rest, then stores the batch's offsets.
    async fn process(&self, batch: Vec<Read>) -> Result<(), Stopped> {
        let context = self.consumer.context();
        let batch: Vec<Read> = batch
            .into_iter()
            .filter(|m| context.holds(m.position().0))
            .collect();
        let positions: Vec<(i32, i64)> = batch.iter().map(Read::position).collect();
        self.follow(&positions).await;
        let mut events = Vec::with_capacity(batch.len());
        for read in batch {
            match read {
                Read::Event(delivered) => events.push(delivered),
                Read::Poison { message, error } => {
                    self.retry("dead-letter a poison message", || {
                        dead_letter::publish(
                            &self.deps.dlq,
                            self.name.as_str(),
                            &message,
                            &error,
                            self.deps.dlq_timeout,
                        )
                    })
                    .await?;
                    ConsumerReport::add(&self.report.dead_lettered, 1);
                    tracing::warn!(partition = message.partition(), offset = message.offset(),
                        reason = error.reason(), %error, "Poison message dead-lettered.");
                }
            }
        }
        if !events.is_empty() {
            let spans = self.apply_spans(&events);
            let applier = self.applier();
            let (applied, duplicates) = self
                .retry("apply a batch", || applier.apply(&events))
                .await?;
            spans.into_iter().for_each(ExportSpan::end);
            ConsumerReport::add(&self.report.applied, applied);
            ConsumerReport::add(&self.report.duplicates, duplicates);
        }
        self.store(&positions);
        Ok(())
    }

    /// Says loudly which offsets of a partition the broker dropped before this consumer read
    /// them ([`continuity`]): they can never be applied.
    async fn follow(&self, positions: &[(i32, i64)]) {
        let context = self.consumer.context();
        for &(partition, offset) in positions {
            let Some(assignment) = context.assignment(partition) else {
                continue;
            };
            // One lock a message; the committed offset is read once an assignment, unlocked.
            let known = {
                let mut continuity = self.lock_continuity();
                (continuity.knows(partition, assignment))
                    .then(|| continuity.read(partition, assignment, offset))
            };
            let skipped = match known {
                Some(skipped) => skipped,
                None => {
                    let committed =
                        continuity::committed(&self.consumer, &self.deps.topic, partition).await;
                    let mut continuity = self.lock_continuity();
                    continuity.start(partition, assignment, committed);
                    continuity.read(partition, assignment, offset)
                }
            };
            if let Some(skipped) = skipped {
                ConsumerReport::add(&self.report.skipped, skipped.count() as usize);
                tracing::error!(partition, from = skipped.from, to = skipped.to, skipped = skipped.count(),
                    topic = %self.deps.topic,
                    "Events skipped: the broker dropped offsets [from, to) before this consumer read \
                     them (its retention passed a consumer that lagged); they are never applied here. \
                     Their outbox rows stay in MySQL for OUTBOX_RETENTION_HOURS (docs/operations.md).");
            }
        }
    }

    fn lock_continuity(&self) -> std::sync::MutexGuard<'_, Continuity> {
        self.continuity.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One span per event, from now to the batch's commit, each a child of the request span the
    /// message's `traceparent` names. Only when spans are exported (otherwise empty and free).
    fn apply_spans(&self, events: &[Delivered]) -> Vec<ExportSpan> {
        if !export::enabled() {
            return Vec::new();
        }
        events
            .iter()
            .map(|d| {
                export::start_child_of(
                    d.traceparent.as_deref(),
                    "process",
                    SpanKind::Consumer,
                    || {
                        vec![
                            KeyValue::new("messaging.system", "kafka"),
                            KeyValue::new("messaging.operation.type", "process"),
                            KeyValue::new("messaging.destination.name", self.deps.topic.clone()),
                            KeyValue::new("messaging.consumer.group.name", self.name.group_id()),
                            KeyValue::new(
                                "messaging.destination.partition.id",
                                d.partition.to_string(),
                            ),
                            KeyValue::new("messaging.kafka.offset", d.offset),
                            KeyValue::new("messaging.message.id", d.event.event_id().to_string()),
                            KeyValue::new("firstcome.consumer", self.name.as_str()),
                        ]
                    },
                )
            })
            .collect()
    }

    fn applier(&self) -> Applier<'_> {
        Applier {
            db: &self.deps.db,
            consumer: self.name.as_str(),
            handler: &*self.handler,
            report: &self.report,
        }
    }

    /// Runs `attempt` until it succeeds, with exponential backoff; never gives up, except for
    /// shutdown.
    async fn retry<T, E, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, Stopped>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut policy = ExponentialBackoff {
            initial_interval: self.deps.settings.backoff_base,
            max_interval: self.deps.settings.backoff_cap,
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        let mut failures = 0u32;
        loop {
            match attempt().await {
                Ok(value) => {
                    if failures > 0 {
                        tracing::info!(what, failures, "Succeeded after retrying.");
                        self.report.set_status(ConsumerStatus::Running);
                    }
                    return Ok(value);
                }
                Err(e) => {
                    failures += 1;
                    ConsumerReport::add(&self.report.retries, 1);
                    self.report.set_status(ConsumerStatus::Retrying);
                    let delay = policy
                        .next_backoff()
                        .unwrap_or(self.deps.settings.backoff_cap);
                    tracing::warn!(what, failures, retry_in = ?delay, error = %e,
                        "Could not {what}; retrying the same messages (nothing is skipped).");
                    tokio::select! {
                        _ = self.stop.cancelled() => return Err(Stopped),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Stores the offset after each partition's last message of a batch (its messages'
    /// `(partition, offset)`), for the next commit.
    fn store(&self, positions: &[(i32, i64)]) {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for &(partition, offset) in positions {
            let entry = next.entry(partition).or_insert(0);
            *entry = (*entry).max(offset + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in next {
            if let Err(e) =
                tpl.add_partition_offset(&self.deps.topic, partition, Offset::Offset(offset))
            {
                tracing::warn!(partition, error = %e, "Could not record an offset to store.");
            }
        }
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            // A partition revoked meanwhile: its new owner starts from the committed offset.
            tracing::debug!(error = %e, "Could not store offsets (partition revoked?).");
        }
    }

    /// Never blocks: an asynchronous commit only hands the offsets to librdkafka's thread.
    fn commit_async(&self) {
        commit(&self.consumer, CommitMode::Async);
    }

    async fn clean_inbox(&self) {
        match inbox::clean(
            &self.deps.db,
            self.name.as_str(),
            self.deps.settings.inbox_retention,
            CLEAN_BATCH,
        )
        .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "Old inbox rows deleted."),
            Err(e) => tracing::warn!(error = %e, "Could not clean old inbox rows; trying later."),
        }
    }

    /// Commits what was applied and leaves the group, off the async workers and within
    /// `close_timeout`: librdkafka's synchronous commit and close wait for the group coordinator,
    /// without a deadline of their own. Offsets that could not be committed are harmless: the
    /// events after the last commit are delivered again after a restart, and the inbox skips them.
    async fn close(self) {
        self.report.set_status(ConsumerStatus::Stopped);
        let consumer = self.consumer;
        let limit = self.deps.close_timeout;
        let closed = off_runtime::run(
            format!(
                "consumer {}: last offset commit, leaving the group",
                self.name
            ),
            limit,
            move || {
                let committed = commit(&consumer, CommitMode::Sync);
                consumer.unsubscribe();
                // The last handle but for a committed-offset read that outlived its wait.
                drop(consumer);
                committed
            },
        )
        .await;
        match closed {
            Ok(true) => tracing::info!("Consumer stopped; its offsets are committed."),
            Ok(false) => tracing::warn!(
                "Consumer stopped without committing its last offsets; the events applied since the \
                 last commit are delivered again after a restart and skipped (consumer_inbox)."
            ),
            Err(e) => tracing::warn!(error = %e,
                "Consumer stopped without its last offset commit and without leaving the group (Kafka \
                 did not answer); the events applied since the last commit are delivered again after a \
                 restart and skipped (consumer_inbox)."),
        }
    }
}

/// Commits the stored offsets (see [`context::commit_stored`]); `false` when Kafka refused or
/// could not be reached.
fn commit(consumer: &StreamConsumer<GroupContext>, mode: CommitMode) -> bool {
    match context::commit_stored(consumer, mode) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "Could not commit offsets; they are committed later.");
            false
        }
    }
}
