//! The AsyncAPI 3.0 document of the topic, the relay's dead-letter topic and each consumer's
//! dead-letter topic. `firstcome asyncapi` prints it; it is committed as `docs/asyncapi.yaml` and a
//! test fails when that file drifts from this generator.
//!
//! Generated, not hand-written, so it cannot promise what the code does not do: the payloads of
//! the three event types come from their field lists ([`payloads`]), the header names from [`headers`] and [`dlq`], the dead-letter reasons
//! from the relay's and the contract check's own reason words, the consumers from
//! [`ConsumerName::ALL`]. Descriptions repeat the doc comments of those items.
//!
//! serde_json keeps object keys sorted, so every map in the document is in alphabetical order.

mod payloads;

use serde_json::{json, Value};

use super::{dlq, headers, lifecycle::ParticipationMessage, ContractError};
use crate::{consumer::ConsumerName, relay::classify::DeadReason};

/// Version of the AsyncAPI Kafka bindings used below.
const KAFKA_BINDINGS: &str = "0.5.0";

/// What each consumer does (the doc comments of [`ConsumerName`]).
fn consumer_description(name: ConsumerName) -> &'static str {
    match name {
        ConsumerName::Stats => {
            "Campaign statistics: campaign_stats (wins, confirmed, cancelled, \
                                expired, units held or confirmed now) and campaign_daily_stats \
                                (wins per day)."
        }
        ConsumerName::Rewards => {
            "Points for winners: rewardPoints × quantity when a win is final \
                                  (an accepted CONFIRMED win, or its confirmation), taken back \
                                  when a CONFIRMED win is cancelled."
        }
    }
}

/// The headers every message carries.
fn headers_schema() -> Value {
    json!({
        "type": "object",
        "description": "Header values are UTF-8 strings. Header order is not part of the contract.",
        "required": [headers::EVENT_ID, headers::EVENT_TYPE, headers::CONTENT_TYPE],
        "properties": {
            (headers::EVENT_ID): { "type": "string", "format": "uuid",
                "description": "The event's id (UUIDv7), equal to the value's eventId: the dedupe key." },
            (headers::EVENT_TYPE): { "type": "string",
                "enum": payloads::ALL.map(|p| p.event_type),
                "description": "The value's eventType." },
            (headers::CONTENT_TYPE): { "type": "string", "const": headers::APPLICATION_JSON,
                "description": "The only content type in v1." },
            (headers::TRACEPARENT): { "type": "string",
                "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "W3C trace context of the service's own span for the request that \
                                produced the event: the caller's trace when the request carried a \
                                valid traceparent, a new trace otherwise. A consumer continues the \
                                trace with a child span of it. Set on every event the API writes; \
                                read it as optional." },
        },
    })
}

/// The `dlq_*` headers every dead letter carries.
const DLQ_REQUIRED: [&str; 5] = [
    dlq::REASON,
    dlq::ERROR,
    dlq::ATTEMPTS,
    dlq::ORIGINAL_TOPIC,
    dlq::FAILED_AT,
];

/// Their schemas; `reasons` are the `dlq_reason` words, `attempts` the `dlq_attempts` schema.
fn dlq_properties(reasons: &[&str], attempts: Value) -> Value {
    json!({
        (dlq::REASON): { "type": "string", "enum": reasons,
            "description": "Why the message was dead-lettered (a stable, snake_case word)." },
        (dlq::ERROR): { "type": "string",
            "description": "The error, as text, for people (not a stable format)." },
        (dlq::ATTEMPTS): attempts,
        (dlq::ORIGINAL_TOPIC): { "type": "string",
            "description": "The topic the message was meant for, or read from." },
        (dlq::FAILED_AT): { "type": "string", "format": "date-time",
            "description": "When it was dead-lettered: RFC 3339, UTC, milliseconds." },
    })
}

/// The relay's dead letters: the original headers plus the `dlq_*` ones.
fn relay_dlq_headers_schema() -> Value {
    let reasons = [
        DeadReason::NonRetriable,
        DeadReason::AttemptsExhausted,
        DeadReason::RetryAgeExceeded,
    ]
    .map(DeadReason::as_str);
    let attempts = json!({ "type": "string", "pattern": "^[0-9]+$",
        "description": "Produce attempts made, decimal." });
    let mut properties = dlq_properties(&reasons, attempts);
    properties[dlq::VALUE_OMITTED] = json!({ "type": "string", "const": "true",
        "description": "Only when the dead-letter topic refused the value for its size: the \
                        message then has an empty value (the outbox row keeps it)." });
    json!({ "allOf": [
        { "$ref": "#/components/schemas/Headers" },
        { "type": "object", "required": DLQ_REQUIRED, "properties": properties },
    ]})
}

/// A consumer's dead letters: the original headers, unchanged (poison may lack them), plus the
/// `dlq_*` ones.
fn consumer_dlq_headers_schema() -> Value {
    let reasons = [
        ContractError::NotJson(String::new()),
        ContractError::UnknownEventType(String::new()),
        ContractError::Invalid(String::new()),
    ]
    .map(|e| e.reason());
    let attempts = json!({ "type": "string", "const": "1",
        "description": "Always 1: a contract failure is not retried." });
    let mut properties = dlq_properties(&reasons, attempts);
    let names = ConsumerName::ALL.map(ConsumerName::as_str);
    properties[dlq::CONSUMER] = json!({ "type": "string", "enum": names,
        "description": "The consumer that gave up." });
    properties[dlq::ORIGINAL_POSITION] = json!({ "type": "string", "pattern": "^[0-9]+:[0-9]+$",
        "description": "Where the message came from: <partition>:<offset> of the original topic." });
    let mut required = DLQ_REQUIRED.to_vec();
    required.extend([dlq::CONSUMER, dlq::ORIGINAL_POSITION]);
    json!({
        "type": "object",
        "description": "The original message's headers, unchanged (a poison message may lack or \
                        mangle them), plus these.",
        "required": required,
        "properties": properties,
    })
}

fn key_binding(description: &str) -> Value {
    json!({ "kafka": { "bindingVersion": KAFKA_BINDINGS,
        "key": { "type": "string", "pattern": "^[0-9]+$", "description": description } } })
}

/// A sample message of `event`, with the headers the writer builds.
fn example<E: ParticipationMessage>(name: &str, event: &E) -> Value {
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    json!({
        "name": name,
        "headers": event.message_headers(Some(traceparent)),
        "payload": serde_json::to_value(event).unwrap_or_default(),
    })
}

/// The message key of every event type.
const KEY: &str = "The campaign id as a decimal string (UTF-8): a campaign's events share a \
                   partition, in order, so a win's later events always follow it.";

/// The component message of one event type.
fn event_message(payload: &payloads::Payload, title: &str, example: Value) -> Value {
    json!({
        "name": payload.event_type,
        "title": title,
        "summary": format!("{} Published at least once, in order per campaign: dedupe on \
                            event_id.", payload.summary),
        "contentType": headers::APPLICATION_JSON,
        "correlationId": { "location": "$message.header#/event_id",
            "description": "The dedupe key; the same in every copy of the event." },
        "headers": { "$ref": "#/components/schemas/Headers" },
        "payload": { "$ref": format!("#/components/schemas/{}", payload.event_type) },
        "bindings": key_binding(KEY),
        "examples": [example],
    })
}

fn messages() -> Value {
    let any_event: Vec<Value> = payloads::ALL
        .iter()
        .map(|p| json!({ "$ref": format!("#/components/schemas/{}", p.event_type) }))
        .collect();
    json!({
        (payloads::ACCEPTED.event_type): event_message(&payloads::ACCEPTED, "A win",
            example("aHeldWin", &payloads::accepted())),
        (payloads::CONFIRMED.event_type): event_message(&payloads::CONFIRMED,
            "A held win confirmed", example("itsConfirmation", &payloads::confirmed())),
        (payloads::CANCELLED.event_type): event_message(&payloads::CANCELLED,
            "A win cancelled or expired", example("itsRefund", &payloads::cancelled())),
        "RelayDeadLetter": {
            "name": "RelayDeadLetter",
            "title": "An event the relay gave up on",
            "summary": "The original key, value and headers plus the dlq_* headers; the outbox \
                        row is marked DEAD. The value is empty when dlq_value_omitted is true.",
            "contentType": headers::APPLICATION_JSON,
            "headers": { "$ref": "#/components/schemas/RelayDeadLetterHeaders" },
            "payload": { "oneOf": any_event },
            "bindings": key_binding(KEY),
        },
        "ConsumerDeadLetter": {
            "name": "ConsumerDeadLetter",
            "title": "A message a consumer could not read",
            "summary": "The original key, value and headers, byte for byte, plus the dlq_* \
                        headers. It failed the contract check, so the value may be anything.",
            "headers": { "$ref": "#/components/schemas/ConsumerDeadLetterHeaders" },
            "payload": { "description": "The original value, unchanged (possibly not JSON, or absent)." },
            "bindings": key_binding("The original key, unchanged (possibly absent or not the campaign id)."),
        },
    })
}

/// The channel's messages, by their names in the channel.
const CHANNEL_MESSAGES: [(&str, &str); 3] = [
    ("participationAccepted", "ParticipationAccepted"),
    ("participationConfirmed", "ParticipationConfirmed"),
    ("participationCancelled", "ParticipationCancelled"),
];

/// `$ref`s to each event type of the participation channel, for an operation.
fn participation_messages() -> Vec<Value> {
    CHANNEL_MESSAGES
        .iter()
        .map(|(name, _)| message_ref("participation", name))
        .collect()
}

/// A `$ref` to a channel.
fn channel_ref(channel: &str) -> Value {
    json!({ "$ref": format!("#/channels/{channel}") })
}

/// A `$ref` to a channel's message (operations must name messages of their channel).
fn message_ref(channel: &str, message: &str) -> Value {
    json!({ "$ref": format!("#/channels/{channel}/messages/{message}") })
}

/// The channels and operations of the main topic, the relay's dead letters, and each consumer
/// (its receive and its own dead-letter topic).
fn channels_and_operations(topic: &str) -> (Value, Value) {
    let messages: serde_json::Map<String, Value> = CHANNEL_MESSAGES
        .iter()
        .map(|(name, component)| {
            let r = json!({ "$ref": format!("#/components/messages/{component}") });
            ((*name).to_string(), r)
        })
        .collect();
    let mut channels = json!({
        "participation": {
            "address": topic,
            "title": "Participations and their lifecycle",
            "description": "A win (ParticipationAccepted), then, for a win, at most a \
                            ParticipationConfirmed and at most one ParticipationCancelled, in \
                            that order. Key: the campaign id, so a win's events share a \
                            partition and arrive in the order they were committed.",
            "messages": messages,
        },
        "relayDlq": {
            "address": dlq::relay_topic(topic),
            "title": "The relay's dead letters",
            "description": format!("Events the relay could not publish to {topic}. An admin can \
                                    redrive them to {topic}."),
            "messages": { "deadLetter": { "$ref": "#/components/messages/RelayDeadLetter" } },
        },
    });
    let mut operations = json!({
        "relayPublish": {
            "action": "send",
            "channel": channel_ref("participation"),
            "title": "The service publishes each win and each change of a win",
            "description": "The relay publishes every outbox row at least once (idempotent \
                            producer, acks=all), in outbox-id order per key among committed rows.",
            "messages": participation_messages(),
        },
        "relayDeadLetter": {
            "action": "send",
            "channel": channel_ref("relayDlq"),
            "title": "The relay dead-letters an event",
            "messages": [message_ref("relayDlq", "deadLetter")],
        },
    });
    for name in ConsumerName::ALL {
        let n = name.as_str();
        let dlq_channel = format!("{n}Dlq");
        channels[&dlq_channel] = json!({
            "address": dlq::consumer_topic(topic, n),
            "title": format!("The {n} consumer's dead letters"),
            "description": format!("Messages of {topic} the {n} consumer could not read (they \
                                    failed the contract check)."),
            "messages": { "deadLetter": { "$ref": "#/components/messages/ConsumerDeadLetter" } },
        });
        operations[format!("{n}Receive")] = json!({
            "action": "receive",
            "channel": channel_ref("participation"),
            "title": format!("The {n} consumer applies each event once"),
            "description": consumer_description(name),
            "messages": participation_messages(),
            "bindings": { "kafka": { "bindingVersion": KAFKA_BINDINGS,
                "groupId": { "type": "string", "const": name.group_id() },
                "clientId": { "type": "string", "const": name.group_id() } } },
        });
        operations[format!("{n}DeadLetter")] = json!({
            "action": "send",
            "channel": channel_ref(&dlq_channel),
            "title": format!("The {n} consumer dead-letters a poison message"),
            "messages": [message_ref(&dlq_channel, "deadLetter")],
        });
    }
    (channels, operations)
}

/// The AsyncAPI document for `topic` (`KAFKA_TOPIC`), as YAML.
pub fn asyncapi_yaml(topic: &str) -> String {
    let (channels, operations) = channels_and_operations(topic);
    let document = json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "firstcome events",
            "version": "1",
            "description": "Events of firstcome's transactional outbox. Delivery is at least once \
                            and ordered per campaign: dedupe on event_id. docs/kafka-contract.md \
                            explains the guarantees and how to write a consumer.",
        },
        "defaultContentType": headers::APPLICATION_JSON,
        "servers": {
            "compose": { "host": "localhost:29092", "protocol": "kafka",
                "description": "docker compose (kafka:9092 from other containers). Elsewhere: \
                                the service's KAFKA_BOOTSTRAP_SERVERS." },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages(),
            "schemas": {
                (payloads::ACCEPTED.event_type): payloads::ACCEPTED.schema(),
                (payloads::CONFIRMED.event_type): payloads::CONFIRMED.schema(),
                (payloads::CANCELLED.event_type): payloads::CANCELLED.schema(),
                "Headers": headers_schema(),
                "RelayDeadLetterHeaders": relay_dlq_headers_schema(),
                "ConsumerDeadLetterHeaders": consumer_dlq_headers_schema(),
            },
        },
    });
    // Serializing a `Value` to YAML cannot fail.
    let yaml = serde_yaml::to_string(&document).unwrap_or_default();
    format!("# Generated by `firstcome asyncapi`; do not edit (a test checks it).\n{yaml}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        serde_yaml::from_str(&asyncapi_yaml("t")).expect("the document is YAML")
    }

    #[test]
    fn the_channel_and_every_operation_on_it_carry_the_three_event_types() {
        let doc = document();
        let channel = doc["channels"]["participation"]["messages"]
            .as_object()
            .expect("messages");
        assert_eq!(channel.len(), 3);
        for (_, op) in doc["operations"].as_object().expect("operations") {
            if op["channel"]["$ref"] == "#/channels/participation" {
                assert_eq!(op["messages"].as_array().expect("list").len(), 3, "{op}");
            }
        }
        let types = &doc["components"]["schemas"]["Headers"]["properties"]["event_type"]["enum"];
        assert_eq!(types.as_array().expect("list").len(), 3);
    }

    #[test]
    fn every_ref_resolves_and_each_consumer_has_its_dead_letter_topic() {
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => m.iter().for_each(|(k, v)| match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }),
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 10);
        for r in found {
            let pointer = r.strip_prefix('#').expect("local ref");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
        for name in ConsumerName::ALL {
            let channel = &doc["channels"][format!("{name}Dlq")];
            assert_eq!(channel["address"], format!("t.{name}.dlq"));
        }
        assert_eq!(doc["channels"]["relayDlq"]["address"], "t.dlq");
    }
}
