//! Poison messages: a message that fails the contract check goes to `<topic>.<name>.dlq` with
//! its key, value and headers and the `dlq_*` headers, so it never blocks its partition.

use std::time::Duration;

use rdkafka::message::{Message, OwnedMessage};

use crate::{
    events::{dlq, headers, ContractError},
    kafka::producer::{Outgoing, ProducerSlot},
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
    let outgoing = Outgoing {
        topic: &topic,
        key: message.key(),
        payload: message.payload(),
        headers: kafka_headers,
    };
    let p = producer.get();
    match p.send_and_wait(outgoing, Some(timeout)).await {
        Ok(()) => Ok(()),
        Err(e) => {
            producer.replace_if_fatal(&p);
            Err(e)
        }
    }
}
