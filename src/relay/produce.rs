//! Producing one outbox row: its publish span, its Kafka headers, enqueueing it (waiting while
//! librdkafka's local queue is full) and awaiting its delivery report.

use rdkafka::{error::KafkaError, message::OwnedHeaders};

use crate::{
    events,
    kafka::{
        producer::{Delivery, Outgoing},
        KafkaProducer,
    },
    relay::store::ClaimedRow,
    telemetry::trace::export::{self, ExportSpan, KeyValue, SpanKind},
};

/// The row's publish span, from send to the broker's report: a child of the request span whose
/// `traceparent` the row carries. Built only when spans are exported and the trace is sampled;
/// otherwise inert and free (no span per row at 20k rows/s for nobody to see).
pub fn publish_span(row: &ClaimedRow, traceparent: Option<&str>) -> ExportSpan {
    export::start_child_of(traceparent, "publish", SpanKind::Producer, || {
        vec![
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "send"),
            KeyValue::new("messaging.destination.name", row.topic.clone()),
            KeyValue::new("messaging.kafka.message.key", row.msg_key.clone()),
            KeyValue::new("messaging.message.id", row.event_id.to_string()),
            KeyValue::new("firstcome.outbox_id", row.id),
        ]
    })
}

/// The row's Kafka headers and its publish span: straight from the columns when the row stored
/// the usual (`events::headers::kafka_of_row`), else through the map.
pub fn prepared(row: &ClaimedRow) -> (OwnedHeaders, ExportSpan) {
    let (event_id, event_type) = (&row.event_id, &row.event_type);
    if let Some((headers, tp)) = events::headers::kafka_of_row(event_id, event_type, &row.headers) {
        return (headers, publish_span(row, tp));
    }
    let map = message_headers(row);
    let traceparent = map.get(events::headers::TRACEPARENT).map(String::as_str);
    let span = publish_span(row, traceparent);
    (events::headers::to_kafka(&map, &[]), span)
}

/// The row's message headers plus `extra`, as Kafka headers.
pub fn kafka_headers(row: &ClaimedRow, extra: &[(&str, String)]) -> OwnedHeaders {
    events::headers::to_kafka(&message_headers(row), extra)
}

/// The row's message headers ([`events::headers::of_row`]).
pub fn message_headers(row: &ClaimedRow) -> events::headers::Headers {
    events::headers::of_row(&row.event_id, &row.event_type, &row.headers)
}

/// Enqueues one message, waiting while librdkafka's local queue is full.
pub async fn enqueue(
    producer: &KafkaProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: OwnedHeaders,
) -> Result<Delivery, KafkaError> {
    let message = Outgoing {
        topic,
        key: Some(key.as_bytes()),
        payload: Some(payload),
        headers,
    };
    producer.enqueue(message, None).await
}

/// Sends one message and awaits its delivery report.
pub async fn produce_once(
    producer: &KafkaProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: OwnedHeaders,
) -> Result<(), KafkaError> {
    enqueue(producer, topic, key, payload, headers).await?.await
}
