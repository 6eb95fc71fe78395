//! A relay worker: takes claimed rows from its bounded queue, produces them pipelined (every row
//! of a batch is enqueued before any delivery report is awaited), classifies each result, sends
//! dead letters, and records the outcomes in batches.
//!
//! Every key is always routed to the same worker, and the claim never hands out a row while an
//! older row of its key is in flight or in backoff, so a worker is the only place a key's rows
//! are being published.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use futures::future::join_all;
use rdkafka::{
    error::KafkaError,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
};
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, Notify};

use super::{
    classify::{classify, DeadReason, Outcome, RetryPolicy},
    store::{self, ClaimedRow},
};
use crate::kafka::{contract::Headers, Producers};

/// What every worker shares.
pub struct WorkerContext {
    pub db: DatabaseConnection,
    pub producers: Producers,
    pub owner: String,
    pub policy: RetryPolicy,
    pub batch_size: usize,
    /// Wakes the claimer when a batch is recorded: the next rows of its keys are claimable now.
    pub claimer_wakeup: Arc<Notify>,
    pub faults: Arc<Faults>,
    pub metrics: Arc<super::Metrics>,
}

/// Deliberate failure points for tests (inert unless set).
#[derive(Default)]
pub struct Faults {
    /// A worker panics once when it meets a row with this message key.
    pub panic_on_key: Mutex<Option<String>>,
}

/// How long a worker waits before re-enqueueing after librdkafka's queue was full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// Runs until its queue is closed (shutdown) and drained. `in_flight` holds the ids of the batch
/// being processed, so the supervisor can release them if this worker panics.
pub async fn run(
    ctx: Arc<WorkerContext>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<ClaimedRow>>>,
    in_flight: Arc<Mutex<Vec<i64>>>,
) {
    let mut rx = rx.lock().await;
    let mut batch = Vec::with_capacity(ctx.batch_size);
    while rx.recv_many(&mut batch, ctx.batch_size).await > 0 {
        *in_flight.lock().unwrap_or_else(|p| p.into_inner()) = batch.iter().map(|r| r.id).collect();
        process(&ctx, &batch).await;
        in_flight.lock().unwrap_or_else(|p| p.into_inner()).clear();
        batch.clear();
        ctx.claimer_wakeup.notify_one();
    }
}

fn kafka_headers(stored: &str, extra: &[(&str, String)]) -> OwnedHeaders {
    let parsed: Headers = serde_json::from_str(stored).unwrap_or_default();
    let mut headers = OwnedHeaders::new_with_capacity(parsed.len() + extra.len());
    for (k, v) in parsed.iter() {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    for (k, v) in extra {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    headers
}

/// Enqueues one message, waiting while librdkafka's local queue is full.
async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: OwnedHeaders,
) -> Result<rdkafka::producer::DeliveryFuture, KafkaError> {
    let mut record = FutureRecord::to(topic)
        .key(key)
        .payload(payload)
        .headers(headers);
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(QUEUE_FULL_PAUSE).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Awaits a delivery report.
async fn delivered(
    delivery: Result<rdkafka::producer::DeliveryFuture, KafkaError>,
) -> Result<(), KafkaError> {
    match delivery?.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        // The producer was dropped with the message queued (replaced after a fatal error).
        Err(_) => Err(KafkaError::Canceled),
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(rows = batch.len()))]
async fn process(ctx: &WorkerContext, batch: &[ClaimedRow]) {
    let producer = ctx.producers.main.get();
    let mut deliveries = Vec::with_capacity(batch.len());
    for row in batch {
        ctx.faults.trip(&row.msg_key);
        let headers = kafka_headers(&row.headers, &[]);
        deliveries.push(
            enqueue(
                &producer,
                &row.topic,
                &row.msg_key,
                row.payload.as_bytes(),
                headers,
            )
            .await,
        );
    }
    let results = join_all(deliveries.into_iter().map(delivered)).await;
    if results.iter().any(|r| r.is_err()) {
        ctx.producers.main.replace_if_fatal(&producer);
    }

    let mut published = Vec::with_capacity(batch.len());
    for (row, result) in batch.iter().zip(&results) {
        let attempts_before = u32::try_from(row.attempts).unwrap_or(0);
        match classify(result.as_ref().map(|_| ()), attempts_before, &ctx.policy) {
            Outcome::Published => published.push(row.id),
            Outcome::Retry { after, error } => {
                tracing::warn!(event_id = %row.event_id, attempts = attempts_before + 1, retry_in = ?after, %error,
                    "Publishing failed; will retry.");
                ctx.metrics
                    .retried
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                record(
                    store::mark_retry(&ctx.db, row.id, &ctx.owner, after, &error).await,
                    row,
                );
            }
            Outcome::DeadLetter { reason, error } => dead_letter(ctx, row, reason, &error).await,
        }
    }
    let count = published.len() as u64;
    if let Err(e) = store::mark_published(&ctx.db, &published).await {
        // The rows stay leased; when the lease expires they are published again (same event
        // ids): the documented duplicate window.
        tracing::error!(error = %e, rows = published.len(), "Could not mark published rows; they will be re-sent after their lease.");
    } else {
        ctx.metrics
            .published
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
    }
}

fn record(result: Result<(), sea_orm::DbErr>, row: &ClaimedRow) {
    if let Err(e) = result {
        tracing::error!(error = %e, event_id = %row.event_id, "Could not record a row's outcome; it is retried after its lease.");
    }
}

/// Publishes the row to `<topic>.dlq` with the `dlq_*` headers, then marks it DEAD. If the
/// dead-letter topic refuses the value for its size, the value is left out (the row keeps it);
/// if the DLQ cannot be reached, the row is retried later instead.
async fn dead_letter(ctx: &WorkerContext, row: &ClaimedRow, reason: DeadReason, error: &str) {
    let attempts = row.attempts + 1;
    let dlq_topic = format!("{}.dlq", row.topic);
    let mut extra = vec![
        ("dlq_reason", reason.as_str().to_string()),
        ("dlq_error", error.to_string()),
        ("dlq_attempts", attempts.to_string()),
        ("dlq_original_topic", row.topic.clone()),
        (
            "dlq_failed_at",
            Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
    ];
    let producer = ctx.producers.dlq.get();
    let mut result = delivered(
        enqueue(
            &producer,
            &dlq_topic,
            &row.msg_key,
            row.payload.as_bytes(),
            kafka_headers(&row.headers, &extra),
        )
        .await,
    )
    .await;
    if matches!(&result, Err(e) if !super::classify::is_retriable(e)) {
        extra.push(("dlq_value_omitted", "true".to_string()));
        result = delivered(
            enqueue(
                &producer,
                &dlq_topic,
                &row.msg_key,
                b"",
                kafka_headers(&row.headers, &extra),
            )
            .await,
        )
        .await;
    }
    match result {
        Ok(()) => {
            tracing::warn!(event_id = %row.event_id, reason = reason.as_str(), %error, "Row dead-lettered.");
            ctx.metrics
                .dead_lettered
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            record(
                store::mark_dead(&ctx.db, row.id, &ctx.owner, error).await,
                row,
            );
        }
        Err(dlq_error) => {
            ctx.producers.dlq.replace_if_fatal(&producer);
            let after = ctx.policy.delay(u32::try_from(attempts).unwrap_or(1));
            let text = format!("{error}; dead-letter publish failed: {dlq_error}");
            tracing::warn!(event_id = %row.event_id, %text, retry_in = ?after, "Could not dead-letter a row; will retry.");
            record(
                store::mark_retry(&ctx.db, row.id, &ctx.owner, after, &text).await,
                row,
            );
        }
    }
}

impl Faults {
    fn trip(&self, key: &str) {
        let mut slot = self.panic_on_key.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_deref() == Some(key) {
            *slot = None;
            drop(slot);
            panic!("injected relay worker panic at key {key}");
        }
    }
}
