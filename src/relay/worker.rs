//! A relay worker: takes claimed rows from its bounded queue, produces them pipelined (every row
//! of a batch is enqueued before any delivery report is awaited), classifies each result, sends
//! dead letters, and records the outcomes in batches.
//!
//! Every key is always routed to the same worker, so a worker sees a key's rows in id order.
//! When one of them fails (retry), the younger rows of that key already queued behind it must
//! not overtake it: the worker holds the key back, releasing those rows unsent, until the failed
//! row comes back from the claim (its backoff over) or a lease's time has passed (by then the
//! claim itself holds the key back, since the row's backoff is in the database).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
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
    /// How long a held-back key stays held in the worker (the row lease).
    pub hold_for: Duration,
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

/// Keys a worker holds back: key → (the smallest id that failed or was released, since when).
/// Owned by the worker slot; the supervisor seeds it when a worker crashes with rows in hand.
pub type Held = Arc<Mutex<HashMap<String, (i64, Instant)>>>;

/// Rows in a worker's hands: (id, key).
pub type InFlight = Arc<Mutex<Vec<(i64, String)>>>;

/// Holds `key` back from `id` on (keeping the smallest id already held).
pub fn hold(held: &Held, key: &str, id: i64) {
    let mut held = held.lock().unwrap_or_else(|p| p.into_inner());
    let entry = held.entry(key.to_string()).or_insert((id, Instant::now()));
    entry.0 = entry.0.min(id);
}

/// How long a worker waits before re-enqueueing after librdkafka's queue was full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// Runs until its queue is closed (shutdown) and drained. `in_flight` holds the batch being
/// processed, so the supervisor can release it if this worker panics.
pub async fn run(
    ctx: Arc<WorkerContext>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<ClaimedRow>>>,
    in_flight: InFlight,
    held: Held,
) {
    let mut rx = rx.lock().await;
    let mut batch = Vec::with_capacity(ctx.batch_size);
    while rx.recv_many(&mut batch, ctx.batch_size).await > 0 {
        *in_flight.lock().unwrap_or_else(|p| p.into_inner()) =
            batch.iter().map(|r| (r.id, r.msg_key.clone())).collect();
        let (send, release) = sort_out(&batch, &held, ctx.hold_for);
        if !release.is_empty() {
            if let Err(e) = store::release(&ctx.db, &ctx.owner, Some(&release)).await {
                tracing::error!(error = %e, "Could not release held-back rows; they return after their lease.");
            }
        }
        process(&ctx, &send, &held).await;
        in_flight.lock().unwrap_or_else(|p| p.into_inner()).clear();
        batch.clear();
        ctx.claimer_wakeup.notify_one();
    }
}

/// Splits a batch into rows to send and ids to release unsent (their key is held back).
fn sort_out(batch: &[ClaimedRow], held: &Held, hold_for: Duration) -> (Vec<ClaimedRow>, Vec<i64>) {
    let mut held = held.lock().unwrap_or_else(|p| p.into_inner());
    let mut send = Vec::with_capacity(batch.len());
    let mut release = Vec::new();
    for row in batch {
        match held.get(&row.msg_key) {
            Some(&(from, since)) if row.id > from && since.elapsed() < hold_for => {
                release.push(row.id)
            }
            Some(_) => {
                // The held-back row is back (or the hold is over): the key goes on.
                held.remove(&row.msg_key);
                send.push(row.clone());
            }
            None => send.push(row.clone()),
        }
    }
    (send, release)
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
async fn process(ctx: &WorkerContext, batch: &[ClaimedRow], held: &Held) {
    if batch.is_empty() {
        return;
    }
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
                hold(held, &row.msg_key, row.id);
                record(
                    store::mark_retry(&ctx.db, row.id, &ctx.owner, after, &error).await,
                    row,
                );
            }
            Outcome::DeadLetter { reason, error } => {
                if !dead_letter(ctx, row, reason, &error).await {
                    hold(held, &row.msg_key, row.id);
                }
            }
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
/// if the DLQ cannot be reached, the row is retried later instead (returns `false`).
async fn dead_letter(
    ctx: &WorkerContext,
    row: &ClaimedRow,
    reason: DeadReason,
    error: &str,
) -> bool {
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
            true
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
            false
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
