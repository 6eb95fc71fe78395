//! Poison messages: a message that fails the contract check goes to `<topic>.<name>.dlq` with
//! its key, value and headers and the `dlq_*` headers, so it never blocks its partition.

use std::time::Duration;

use rdkafka::{
    message::{Message, OwnedMessage},
    producer::FutureRecord,
    util::Timeout,
};

use crate::{
    events::{dlq, headers, ContractError},
    kafka::producer::ProducerSlot,
};

/// Publishes `message` to the consumer's dead-letter topic and waits for the broker's ack.
pub async fn publish(
    producer: &ProducerSlot,
    consumer: &str,
    message: &OwnedMessage,
    error: &ContractError,
    timeout: Duration,
) -> Result<(), rdkafka::error::KafkaError> {
    let original = headers::from_kafka(message.headers());
    let mut extra = dlq::DeadLetter {
        reason: error.reason(),
        error: &error.to_string(),
        attempts: 1,
        original_topic: message.topic(),
        consumer: Some(consumer),
    }
    .headers();
    extra.push((
        dlq::ORIGINAL_POSITION,
        format!("{}:{}", message.partition(), message.offset()),
    ));
    let kafka_headers = headers::to_kafka(&original, &extra);
    let topic = dlq::consumer_topic(message.topic(), consumer);
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(kafka_headers);
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(value) = message.payload() {
        record = record.payload(value);
    }
    let p = producer.get();
    match p.send(record, Timeout::After(timeout)).await {
        Ok(_) => Ok(()),
        Err((e, _)) => {
            producer.replace_if_fatal(&p);
            Err(e)
        }
    }
}
