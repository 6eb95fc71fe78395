//! A relay worker: takes claimed rows from its bounded queue and produces each one at once,
//! without waiting for earlier deliveries (a hot key's rows are pipelined: the next ones are in
//! flight while earlier ones await their acks), up to `RELAY_MAX_IN_FLIGHT` rows. Delivery
//! reports are settled as they arrive; published ids go to the recorder, which marks them in
//! batches off this path.
//!
//! The relay's producer never times a message out (see `kafka/producer.rs`), so a worker watches
//! for itself: when its oldest row has waited `KAFKA_MESSAGE_TIMEOUT_MS` for an answer (a broker
//! outage, a topic whose metadata never comes), it purges the producer. Every unacknowledged
//! message then fails at once (a suffix of each partition, never a gap) and goes back to the
//! outbox without using an attempt.
//!
//! Every key is always routed to the same worker, so a worker sees a key's rows in id order and
//! sends them in that order. Why that stays true through failures, lost leases and panics is
//! written down in `order.rs`: a row that leaves the pipeline unpublished blocks its key, rows of
//! a blocked key are dropped (unsent, unchanged in MySQL) instead of sent, and the key is claimed
//! again only when the pipeline holds none of its rows.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use futures::{FutureExt, StreamExt};
use rdkafka::error::KafkaError;
use sea_orm::DbErr;
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::hooks::Hooks;
use crate::{
    db::Db,
    events::{dlq, dlq::DeadReason},
    kafka::Producers,
    relay::{
        classify::{classify, Outcome, RetryPolicy},
        in_flight::{InFlight, SendStamp},
        leadership::Leadership,
        order::KeyOrder,
        produce::{enqueue, kafka_headers, prepared, produce_once},
        store::{self, ClaimedRow},
    },
};

/// What every worker shares.
pub struct WorkerContext {
    pub db: Db,
    pub producers: Producers,
    pub owner: String,
    pub policy: RetryPolicy,
    pub batch_size: usize,
    /// Rows one worker may have sent and not settled (bounds memory through a Kafka outage).
    pub max_in_flight: usize,
    /// How long the oldest row in flight may wait for an answer before the producer is purged.
    pub stuck_after: Duration,
    pub order: Arc<KeyOrder>,
    /// What this instance leads; checked before every send (fencing).
    pub leadership: watch::Receiver<Leadership>,
    /// Published ids, marked in MySQL by the recorder.
    pub recorder: mpsc::Sender<Vec<i64>>,
    /// Cancelled when the relay stops: outcomes that cannot be written are then given up
    /// instead of retried (the row stays PENDING and the next leader sends it).
    pub stop: CancellationToken,
    /// Test hooks (none in production).
    pub hooks: Arc<dyn Hooks>,
    pub metrics: Arc<crate::relay::Metrics>,
}

/// Rows a worker holds (taken from its queue, not settled): id → key. The supervisor settles
/// them if the worker panics.
pub type RowsInHand = Arc<Mutex<HashMap<i64, String>>>;

/// Writing an outcome to MySQL is retried from this delay...
const PERSIST_BASE: Duration = Duration::from_millis(50);
/// ...up to this one.
const PERSIST_CAP: Duration = Duration::from_secs(5);

/// Runs until its queue is closed (shutdown) and every row sent is settled.
pub async fn run(
    ctx: Arc<WorkerContext>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<ClaimedRow>>>,
    in_hand: RowsInHand,
) {
    let mut rx = rx.lock().await;
    let mut flying = InFlight::default();
    let mut batch = Vec::with_capacity(ctx.batch_size);
    let mut open = true;
    loop {
        let room = ctx
            .max_in_flight
            .saturating_sub(flying.len())
            .min(ctx.batch_size);
        let stuck_at = flying.stuck_at(ctx.stuck_after);
        let may_send = flying.may_send_on(ctx.producers.main.generation());
        tokio::select! {
            biased;
            Some(first) = flying.flights.next(), if flying.len() > 0 => {
                let mut done = vec![first];
                while let Some(Some(more)) = flying.flights.next().now_or_never() {
                    done.push(more);
                }
                for (row, sent, _) in &done {
                    flying.landed(sent.at, row.id, sent.generation);
                }
                settle(&ctx, &in_hand, done).await;
            }
            n = rx.recv_many(&mut batch, room), if open && room > 0 && may_send => {
                if n == 0 {
                    open = false;
                } else {
                    send_rows(&ctx, &in_hand, std::mem::take(&mut batch), &mut flying).await;
                }
            }
            _ = tokio::time::sleep_until(stuck_at.unwrap_or_else(Instant::now)), if stuck_at.is_some() => {
                tracing::warn!(rows = flying.len(), waited = ?ctx.stuck_after,
                    "Kafka has not acknowledged this worker's oldest row in time; purging the producer. \
                     Unacknowledged rows go back to the outbox without using an attempt.");
                flying.purge(ctx.stuck_after).await;
            }
            else => break,
        }
    }
}

/// Sends each row unless its key is blocked or its shard no longer led (then it is dropped, and
/// a lost lease blocks the key).
async fn send_rows(
    ctx: &WorkerContext,
    in_hand: &RowsInHand,
    rows: Vec<ClaimedRow>,
    flying: &mut InFlight,
) {
    {
        let mut hand = in_hand.lock().unwrap_or_else(|p| p.into_inner());
        hand.extend(rows.iter().map(|r| (r.id, r.msg_key.clone())));
    }
    let (producer, generation) = ctx.producers.main.current();
    let mut dropped = Vec::new();
    for row in rows {
        ctx.hooks.before_send(&row.msg_key);
        if ctx.order.is_blocked(&row.msg_key) {
            tracing::trace!(id = row.id, key = %row.msg_key, "Dropped: key blocked.");
            dropped.push(row);
            continue;
        }
        if !ctx.leadership.borrow().leads(row.shard) {
            tracing::debug!(event_id = %row.event_id, shard = row.shard, "Shard lease lost; dropping the row unsent.");
            ctx.order.block(&row.msg_key, row.id);
            dropped.push(row);
            continue;
        }
        let (headers, mut span) = prepared(&row);
        match enqueue(
            &producer,
            &row.topic,
            &row.msg_key,
            row.payload.as_bytes(),
            headers,
        )
        .await
        {
            Ok(delivery) => {
                tracing::trace!(id = row.id, key = %row.msg_key, generation, "Sent.");
                flying.add(row, &producer, generation, delivery, span);
            }
            // Refused before it was sent (too large, or the producer is in a fatal state):
            // settled now, before any younger row of its key is sent. A fatal producer refuses
            // every send from then on, so it is replaced here too, not only when a delivery
            // fails (measured: a producer that went fatal between deliveries refused the same
            // row forever).
            Err(e) => {
                span.set_error(e.to_string());
                span.end();
                if ctx.producers.main.replace_if_fatal(&producer) {
                    tracing::info!("Replaced the fatal producer on a refused send.");
                }
                settle_failed(ctx, &row, &e).await;
                settled(ctx, in_hand, &[row], Settled::InMysql);
            }
        }
    }
    settled(ctx, in_hand, &dropped, Settled::InMysql);
}

/// Records the outcomes of finished deliveries. Within a key, librdkafka reports in send order
/// (one partition); the first failure of a key blocks it, later ones go back with it.
async fn settle(
    ctx: &WorkerContext,
    in_hand: &RowsInHand,
    mut done: Vec<(ClaimedRow, SendStamp, Result<(), KafkaError>)>,
) {
    // Reports of one key in id order, so the oldest failure is the one that blocks.
    done.sort_by_key(|(row, _, _)| row.id);
    let mut published = Vec::new();
    let mut dropped = Vec::new();
    let mut failed = Vec::new();
    let mut replace = false;
    for (row, _, result) in done {
        tracing::trace!(id = row.id, key = %row.msg_key, ok = result.is_ok(), error = ?result.as_ref().err(), "Reported.");
        match result {
            Ok(()) => {
                if ctx
                    .order
                    .blocked_from(&row.msg_key)
                    .is_some_and(|from| row.id > from)
                {
                    // An older row of this key failed while this one was delivered: what the
                    // producer settings exist to prevent. Counted and logged, never hidden.
                    ctx.metrics.relay_order_violations.inc();
                    tracing::error!(event_id = %row.event_id, key = %row.msg_key,
                        "A row was delivered after an older row of its key failed.");
                }
                observe_lag(ctx, &row);
                published.push(row);
            }
            // The key already broke at an older row: this one goes back with it.
            Err(_) if ctx.order.is_blocked(&row.msg_key) => dropped.push(row),
            Err(e) => {
                replace = true;
                settle_failed(ctx, &row, &e).await;
                failed.push(row);
            }
        }
    }
    if replace {
        ctx.producers
            .main
            .replace_if_fatal(&ctx.producers.main.get());
    }
    if !published.is_empty() {
        ctx.metrics.relay_published.inc_by(published.len() as u64);
        let ids = published.iter().map(|r| r.id).collect();
        // The recorder marks them; a full recorder queue slows this worker down (backpressure).
        if ctx.recorder.send(ids).await.is_err() {
            tracing::warn!("The relay recorder is gone; published rows stay PENDING and are re-sent by the next leader.");
        }
    }
    settled(ctx, in_hand, &published, Settled::Published);
    settled(ctx, in_hand, &failed, Settled::InMysql);
    settled(ctx, in_hand, &dropped, Settled::InMysql);
}

/// Commit → ack of a row Kafka just acknowledged. `created_at` is the database's clock (UTC);
/// a clock behind it counts as no lag rather than a negative one.
fn observe_lag(ctx: &WorkerContext, row: &ClaimedRow) {
    let lag = (Utc::now().naive_utc() - row.created_at)
        .to_std()
        .unwrap_or_default();
    ctx.metrics.relay_publish_lag.observe(lag.as_secs_f64());
}

/// The first failure of a key in the pipeline: block the key, then write the row's outcome.
async fn settle_failed(ctx: &WorkerContext, row: &ClaimedRow, error: &KafkaError) {
    let attempts_before = u32::try_from(row.attempts).unwrap_or(0);
    let age = (Utc::now().naive_utc() - row.created_at)
        .to_std()
        .unwrap_or_default();
    match classify(Err(error), attempts_before, age, &ctx.policy) {
        Outcome::Published => {}
        Outcome::Wait { after, error } => {
            ctx.order.block(&row.msg_key, row.id);
            tracing::debug!(event_id = %row.event_id, retry_in = ?after, %error,
                "No broker answered; the row waits without using an attempt.");
            schedule_retry(ctx, row, after, false, &error).await;
        }
        Outcome::Retry { after, error } => {
            ctx.order.block(&row.msg_key, row.id);
            tracing::warn!(event_id = %row.event_id, attempts = attempts_before + 1, retry_in = ?after, %error,
                "Publishing failed; will retry.");
            ctx.metrics.relay_retried.inc();
            schedule_retry(ctx, row, after, true, &error).await;
        }
        Outcome::DeadLetter { reason, error } => {
            if !dead_letter(ctx, row, reason, &error).await {
                ctx.order.block(&row.msg_key, row.id);
            }
        }
    }
}

async fn schedule_retry(
    ctx: &WorkerContext,
    row: &ClaimedRow,
    after: Duration,
    attempt: bool,
    error: &str,
) {
    persist(ctx, "put a row in backoff", || {
        store::back_off(&ctx.db, row, &ctx.owner, after, attempt, error)
    })
    .await;
}

/// How a settled row's state stands in MySQL.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// Its outcome is written (backoff, DEAD), or there is none (dropped unsent: plain PENDING).
    InMysql,
    /// Published: the recorder writes its mark, and lets it go once that is committed.
    Published,
}

/// Takes settled rows out of the worker's hands and out of the pipeline (`order.rs`).
fn settled(ctx: &WorkerContext, in_hand: &RowsInHand, rows: &[ClaimedRow], how: Settled) {
    if rows.is_empty() {
        return;
    }
    {
        let mut hand = in_hand.lock().unwrap_or_else(|p| p.into_inner());
        for row in rows {
            hand.remove(&row.id);
        }
    }
    let rows = rows.iter().map(|r| (r.msg_key.as_str(), r.id));
    match how {
        Settled::InMysql => ctx.order.settled(rows),
        Settled::Published => ctx.order.published(rows),
    }
}

/// Retries a write of an outcome until it succeeds (MySQL may be failing over) or the relay
/// stops (then the row stays PENDING and the next leader claims it).
async fn persist<T, F, Fut>(ctx: &WorkerContext, what: &str, mut write: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbErr>>,
{
    let mut delay = PERSIST_BASE;
    loop {
        match write().await {
            Ok(_) => return,
            Err(e) if ctx.stop.is_cancelled() => {
                tracing::warn!(error = %e, what, "Could not write a relay outcome while stopping; the row stays PENDING for the next leader.");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, what, retry_in = ?delay, "Could not write a relay outcome; retrying.");
                tokio::select! {
                    _ = ctx.stop.cancelled() => {}
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(PERSIST_CAP);
            }
        }
    }
}

/// Publishes the row to `<topic>.dlq` with the `dlq_*` headers, then marks it DEAD. If the
/// dead-letter topic refuses the value for its size, the value is left out (the row keeps it);
/// if the DLQ cannot be reached, the row backs off instead (returns `false`).
async fn dead_letter(
    ctx: &WorkerContext,
    row: &ClaimedRow,
    reason: DeadReason,
    error: &str,
) -> bool {
    let attempts = row.attempts + 1;
    let dlq_topic = dlq::relay_topic(&row.topic);
    let mut extra = dlq::DeadLetter {
        reason: reason.as_str(),
        error,
        attempts: i64::from(attempts),
        original_topic: &row.topic,
        consumer: None,
    }
    .headers();
    let producer = ctx.producers.dlq.get();
    let key = row.msg_key.as_str();
    let mut result = produce_once(
        &producer,
        &dlq_topic,
        key,
        row.payload.as_bytes(),
        kafka_headers(row, &extra),
    )
    .await;
    if matches!(&result, Err(e) if !crate::relay::classify::is_retriable(e)) {
        extra.push((dlq::VALUE_OMITTED, "true".to_string()));
        let headers = kafka_headers(row, &extra);
        result = produce_once(&producer, &dlq_topic, key, b"", headers).await;
    }
    match result {
        Ok(()) => {
            tracing::warn!(event_id = %row.event_id, reason = reason.as_str(), %error, "Row dead-lettered.");
            ctx.metrics.relay_dead_lettered.inc();
            persist(ctx, "mark a row DEAD", || {
                store::mark_dead(&ctx.db, row, &ctx.owner, attempts, error)
            })
            .await;
            true
        }
        Err(dlq_error) => {
            ctx.producers.dlq.replace_if_fatal(&producer);
            let after = ctx.policy.delay(u32::try_from(attempts).unwrap_or(1));
            let text = format!("{error}; dead-letter publish failed: {dlq_error}");
            tracing::warn!(event_id = %row.event_id, %text, retry_in = ?after, "Could not dead-letter a row; will retry.");
            schedule_retry(ctx, row, after, false, &text).await;
            false
        }
    }
}
