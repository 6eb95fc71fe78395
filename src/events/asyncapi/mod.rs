//! The AsyncAPI 3.0 document of the topic, the relay's dead-letter topic and each consumer's
//! dead-letter topic. `firstcome asyncapi` prints it; it is committed as `docs/asyncapi.yaml` and a
//! test fails when that file drifts from this generator.
//!
//! Generated, not hand-written, so it cannot promise what the code does not do: the payloads of
//! the seven event types (a win's three, and the four controls' one shape) come from their field
//! lists ([`payloads`]), the header names from [`headers`] and [`dlq`], the dead-letter reasons
//! from the relay's and the contract check's own reason words, the consumers from
//! [`ConsumerName::ALL`]. Descriptions repeat the doc comments of those items.
//!
//! serde_json keeps object keys sorted, so every map in the document is in alphabetical order.

mod payloads;

use serde_json::{json, Value};

use crate::{
    config::consumers::ConsumerName,
    events::{
        dlq, dlq::DeadReason, headers, lifecycle::ParticipationMessage, ContractError, Headers,
    },
};

/// Version of the AsyncAPI Kafka bindings used below.
const KAFKA_BINDINGS: &str = "0.5.0";

/// What each consumer does (the doc comments of [`ConsumerName`]).
fn consumer_description(name: ConsumerName) -> &'static str {
    match name {
        ConsumerName::Stats => {
            "Campaign statistics: campaign_stats (wins, confirmed, cancelled, \
                                expired, units held or confirmed now; the live controls: units \
                                added and withdrawn, paused, closed, controls applied) and \
                                campaign_daily_stats (wins per day)."
        }
        ConsumerName::Rewards => {
            "Points for winners: rewardPoints × quantity when a win is final \
                                  (an accepted CONFIRMED win, or its confirmation), taken back \
                                  when a CONFIRMED win is cancelled. A control moves nothing."
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
                "enum": payloads::event_types(),
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
        "key": { "type": "string", "pattern": "^[0-9]+(:[0-9]+)?$", "description": description } } })
}

/// The examples' `traceparent`.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A sample message: its value and the headers the writer builds for it.
fn example(name: &str, headers: Headers, value: &impl serde::Serialize) -> Value {
    json!({
        "name": name,
        "headers": headers,
        "payload": serde_json::to_value(value).unwrap_or_default(),
    })
}

/// A sample message of a win's `event`.
fn win_example<E: ParticipationMessage>(name: &str, event: &E) -> Value {
    example(name, event.message_headers(Some(TRACEPARENT)), event)
}

/// The sample messages of the controls, one of each kind.
fn control_examples() -> Vec<Value> {
    let names = ["stockAdded", "paused", "resumed", "closedEarly"];
    payloads::controls()
        .iter()
        .zip(names)
        .map(|(c, name)| example(name, c.message_headers(Some(TRACEPARENT)), c))
        .collect()
}

/// The message key of every event type.
const KEY: &str = "The campaign id as a decimal string (UTF-8): a campaign's events share a \
                   partition, in order, so a win's later events always follow it and a control \
                   keeps its place among the wins. A bucketed campaign's wins and their later \
                   events are keyed `<campaign>:<bucket>` (e.g. `42:7`): order holds per bucket, \
                   a win's later events still follow it, and there is no order across buckets \
                   nor between a bucket's events and the campaign's controls (keyed `<campaign>`).";

/// The component message of one shape of value.
fn event_message(payload: &payloads::Payload, title: &str, examples: Vec<Value>) -> Value {
    json!({
        "name": payload.name,
        "title": title,
        "summary": format!("{} Published at least once, in order per campaign: dedupe on \
                            event_id.", payload.summary),
        "contentType": headers::APPLICATION_JSON,
        "correlationId": { "location": "$message.header#/event_id",
            "description": "The dedupe key; the same in every copy of the event." },
        "headers": { "$ref": "#/components/schemas/Headers" },
        "payload": { "$ref": format!("#/components/schemas/{}", payload.name) },
        "bindings": key_binding(KEY),
        "examples": examples,
    })
}

fn messages() -> Value {
    let any_event: Vec<Value> = payloads::ALL
        .iter()
        .map(|p| json!({ "$ref": format!("#/components/schemas/{}", p.name) }))
        .collect();
    json!({
        (payloads::ACCEPTED.name): event_message(&payloads::ACCEPTED, "A win",
            vec![win_example("aHeldWin", &payloads::accepted())]),
        (payloads::CONFIRMED.name): event_message(&payloads::CONFIRMED,
            "A held win confirmed", vec![win_example("itsConfirmation", &payloads::confirmed())]),
        (payloads::CANCELLED.name): event_message(&payloads::CANCELLED,
            "A win cancelled or expired", vec![win_example("itsRefund", &payloads::cancelled())]),
        (payloads::CONTROL.name): event_message(&payloads::CONTROL,
            "A live control of the campaign", control_examples()),
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
const CHANNEL_MESSAGES: [(&str, &str); 4] = [
    ("participationAccepted", "ParticipationAccepted"),
    ("participationConfirmed", "ParticipationConfirmed"),
    ("participationCancelled", "ParticipationCancelled"),
    ("campaignChanged", payloads::CAMPAIGN_CHANGED),
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
            "title": "Participations, their lifecycle, and the campaigns' live controls",
            "description": "A win (ParticipationAccepted), then, for a win, at most a \
                            ParticipationConfirmed and at most one ParticipationCancelled, in \
                            that order; and, among them, the campaign's live controls \
                            (CampaignChanged: CampaignStockChanged, CampaignPaused, \
                            CampaignResumed, CampaignClosed). Key: the campaign id, so a \
                            campaign's events share a partition and arrive in the order they \
                            were committed; a bucketed campaign's wins are keyed \
                            <campaign>:<bucket>, ordered per bucket, in the campaign's \
                            partition (CRC32 of the key up to its first ':'). Any other \
                            eventType is poison.",
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
            "title": "The service publishes each win, each change of a win and each control",
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
                (payloads::ACCEPTED.name): payloads::ACCEPTED.schema(),
                (payloads::CONFIRMED.name): payloads::CONFIRMED.schema(),
                (payloads::CANCELLED.name): payloads::CANCELLED.schema(),
                (payloads::CONTROL.name): payloads::CONTROL.schema(),
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
    use crate::events::{
        accepted::PARTICIPATION_ACCEPTED,
        control::ControlKind,
        lifecycle::{PARTICIPATION_CANCELLED, PARTICIPATION_CONFIRMED},
    };

    fn document() -> Value {
        serde_yaml::from_str(&asyncapi_yaml("t")).expect("the document is YAML")
    }

    #[test]
    fn the_channel_and_every_operation_on_it_carry_every_event_type() {
        let doc = document();
        let channel = doc["channels"]["participation"]["messages"]
            .as_object()
            .expect("messages");
        assert_eq!(
            channel.len(),
            4,
            "a win's three types and the controls' shape"
        );
        for (_, op) in doc["operations"].as_object().expect("operations") {
            if op["channel"]["$ref"] == "#/channels/participation" {
                assert_eq!(op["messages"].as_array().expect("list").len(), 4, "{op}");
            }
        }
        let types = &doc["components"]["schemas"]["Headers"]["properties"]["event_type"]["enum"];
        let mut expected = vec![
            PARTICIPATION_ACCEPTED,
            PARTICIPATION_CONFIRMED,
            PARTICIPATION_CANCELLED,
        ];
        expected.extend(ControlKind::ALL.map(ControlKind::event_type));
        assert_eq!(types, &json!(expected));
        let examples = &doc["components"]["messages"]["CampaignChanged"]["examples"];
        assert_eq!(
            examples.as_array().expect("list").len(),
            4,
            "one per control"
        );
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
