//! Message headers: their names, the map stored in `outbox_event.headers`, and conversion to and
//! from Kafka headers.

use std::collections::BTreeMap;

use rdkafka::message::{Header, OwnedHeaders};
use uuid::Uuid;

/// The event's id (UUIDv7), equal to the value's `eventId`: the dedupe key.
pub const EVENT_ID: &str = "event_id";
/// The value's `eventType`.
pub const EVENT_TYPE: &str = "event_type";
pub const CONTENT_TYPE: &str = "content-type";
/// W3C trace context of the service's span for the request that produced the event (see
/// `crate::telemetry::trace`).
pub const TRACEPARENT: &str = "traceparent";
/// The only content type in v1.
pub const APPLICATION_JSON: &str = "application/json";

/// Message headers, stored as a JSON object in `outbox_event.headers`.
pub type Headers = BTreeMap<String, String>;

/// The headers every message carries; `traceparent` when the event came from a request (always,
/// through the API) and is a valid one.
pub fn build(event_id: Uuid, event_type: &str, traceparent: Option<&str>) -> Headers {
    let mut h = Headers::new();
    h.insert(EVENT_ID.into(), event_id.to_string());
    h.insert(EVENT_TYPE.into(), event_type.into());
    h.insert(CONTENT_TYPE.into(), APPLICATION_JSON.into());
    if let Some(tp) = traceparent.filter(|tp| is_valid_traceparent(tp)) {
        h.insert(TRACEPARENT.into(), tp.into());
    }
    h
}

/// The JSON text stored in `outbox_event.headers`: only what the row's own columns do not say
/// (`event_id` and `event_type` are columns, the content type is always JSON), so the
/// `traceparent` when it is well formed, else nothing. The relay puts the message's headers back
/// together ([`of_row`]).
pub fn stored(traceparent: Option<&str>) -> String {
    match traceparent.filter(|tp| is_valid_traceparent(tp)) {
        // Version 00 is hex digits and dashes, written as they are; a later version may carry
        // more after its flags, which JSON escapes.
        Some(tp) if !needs_escaping(tp) => [STORED_TRACEPARENT, tp, "\"}"].concat(),
        Some(tp) => {
            let value = serde_json::to_string(tp).unwrap_or_default();
            ["{\"", TRACEPARENT, "\":", &value, "}"].concat()
        }
        None => "{}".into(),
    }
}

/// How [`stored`] begins a traceparent's text: `{"traceparent":"`.
const STORED_TRACEPARENT: &str = "{\"traceparent\":\"";

/// Whether JSON would escape something in `text` (a quote, a backslash, a control character):
/// such a text is stored through serde_json and read back through the map.
fn needs_escaping(text: &str) -> bool {
    text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// Reads `outbox_event.headers`; a row whose headers are not a JSON object of strings is sent
/// without them rather than not at all.
pub fn from_stored(stored: &str) -> Headers {
    serde_json::from_str(stored).unwrap_or_default()
}

/// A row's message headers: those every message carries, from its columns, then what
/// `headers` stored (which wins: a row written before the headers were stored this way, or
/// written by hand, keeps exactly what it stored).
pub fn of_row(event_id: &str, event_type: &str, stored: &str) -> Headers {
    let mut h = Headers::new();
    h.insert(EVENT_ID.into(), event_id.into());
    h.insert(EVENT_TYPE.into(), event_type.into());
    h.insert(CONTENT_TYPE.into(), APPLICATION_JSON.into());
    h.extend(from_stored(stored));
    h
}

/// A row's Kafka headers straight from its columns, as `to_kafka(&of_row(..), &[])` gives them
/// (names in the map's order), with the `traceparent` among them; when the row stored what
/// [`stored`] writes for a traceparent that needs no escaping, or nothing. Anything else (a row
/// written by hand or by an older version) is `None` and takes the map's way.
pub fn kafka_of_row<'a>(
    event_id: &str,
    event_type: &str,
    stored: &'a str,
) -> Option<(OwnedHeaders, Option<&'a str>)> {
    let traceparent = match stored {
        "{}" => None,
        _ => Some(
            stored
                .strip_prefix(STORED_TRACEPARENT)?
                .strip_suffix("\"}")
                .filter(|tp| !needs_escaping(tp))?,
        ),
    };
    let names_and_values = [
        (CONTENT_TYPE, Some(APPLICATION_JSON)),
        (EVENT_ID, Some(event_id)),
        (EVENT_TYPE, Some(event_type)),
        (TRACEPARENT, traceparent),
    ];
    let mut out = OwnedHeaders::new_with_capacity(4);
    for (key, value) in names_and_values {
        if let Some(value) = value {
            out = out.insert(Header {
                key,
                value: Some(value),
            });
        }
    }
    Some((out, traceparent))
}

/// Kafka headers: `headers`, then `extra` (the `dlq_*` headers of a dead letter).
pub fn to_kafka(headers: &Headers, extra: &[(&str, String)]) -> OwnedHeaders {
    let mut out = OwnedHeaders::new_with_capacity(headers.len() + extra.len());
    let all = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.iter().map(|(k, v)| (*k, v.as_str())));
    for (key, value) in all {
        out = out.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    out
}

/// The headers of a received message. A header that is not UTF-8 is kept lossily (the contract
/// check then finds it wrong); a repeated name keeps its last value.
pub fn from_kafka<H: rdkafka::message::Headers>(headers: Option<&H>) -> Headers {
    let Some(headers) = headers else {
        return Headers::new();
    };
    headers
        .iter()
        .map(|h| {
            (
                h.key.to_string(),
                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}

/// The two headers a consumer reads of a received message, borrowed where librdkafka holds
/// them: `event_id` (the contract check) and `traceparent`. A repeated name keeps its last
/// value, as in [`from_kafka`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub event_id: Option<&'a [u8]>,
    pub traceparent: Option<&'a [u8]>,
}

/// See [`Received`]: no map built, nothing copied.
pub fn received<H: rdkafka::message::Headers>(headers: Option<&H>) -> Received<'_> {
    let mut out = Received::default();
    for h in headers.into_iter().flat_map(|h| h.iter()) {
        let value = Some(h.value.unwrap_or_default());
        match h.key {
            EVENT_ID => out.event_id = value,
            TRACEPARENT => out.traceparent = value,
            _ => {}
        }
    }
    out
}

/// W3C trace context `traceparent` (`crate::telemetry::trace::TraceContext` reads it). Anything else is
/// dropped rather than forwarded to every consumer.
pub fn is_valid_traceparent(tp: &str) -> bool {
    crate::telemetry::trace::TraceContext::parse(tp).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a row stores, the long way: every header of `headers` that the row's columns do not
    /// say. [`stored`] must write the same text.
    fn to_stored(headers: &Headers) -> String {
        let extra: BTreeMap<&str, &str> = headers
            .iter()
            .filter(|(k, v)| match k.as_str() {
                EVENT_ID | EVENT_TYPE => false,
                CONTENT_TYPE => v.as_str() != APPLICATION_JSON,
                _ => true,
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        serde_json::to_string(&extra).unwrap_or_else(|_| "{}".into())
    }

    #[test]
    fn only_well_formed_traceparents_are_forwarded() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            build(Uuid::nil(), "T", Some(good))
                .get(TRACEPARENT)
                .map(String::as_str),
            Some(good)
        );
        assert!(!build(Uuid::nil(), "T", Some("evil\r\nheader")).contains_key(TRACEPARENT));
        assert_eq!(build(Uuid::nil(), "T", None).len(), 3);
    }

    /// The headers in the order Kafka carries them.
    fn listed(headers: &OwnedHeaders) -> Vec<(String, Vec<u8>)> {
        use rdkafka::message::Headers as _;
        headers
            .iter()
            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
            .collect()
    }

    #[test]
    fn a_rows_headers_from_its_columns_are_the_maps_in_the_same_order() {
        let id = Uuid::now_v7().to_string();
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-\"x\\y";
        let fast = [super::stored(Some(tp)), super::stored(None)];
        for stored in &fast {
            let (headers, traceparent) =
                kafka_of_row(&id, "ParticipationAccepted", stored).expect("straight");
            let map = of_row(&id, "ParticipationAccepted", stored);
            assert_eq!(listed(&headers), listed(&to_kafka(&map, &[])), "{stored}");
            assert_eq!(traceparent, map.get(TRACEPARENT).map(String::as_str));
        }
        // What needs the map: escapes, other headers, a content type of its own, not JSON.
        for stored in [
            super::stored(Some(later)),
            r#"{"traceparent":"a","x":"b"}"#.into(),
            r#"{"content-type":"text/plain"}"#.into(),
            r#"{ "traceparent":"a"}"#.into(),
            "not json".into(),
            String::new(),
        ] {
            assert!(kafka_of_row(&id, "T", &stored).is_none(), "{stored}");
        }
    }

    #[test]
    fn stored_headers_round_trip_through_kafka_headers() {
        let h = build(Uuid::nil(), "T", None);
        let row = of_row(&Uuid::nil().to_string(), "T", &to_stored(&h));
        let kafka = to_kafka(&row, &[("dlq_reason", "x".into())]);
        let back = from_kafka(Some(&kafka));
        assert_eq!(back.len(), 4);
        assert_eq!(back[EVENT_ID], Uuid::nil().to_string());
        assert_eq!(back["dlq_reason"], "x");
    }

    #[test]
    fn a_row_stores_only_what_its_columns_do_not_say_and_gets_every_header_back() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let id = Uuid::now_v7();
        let h = build(id, "ParticipationAccepted", Some(tp));
        let stored = to_stored(&h);
        assert_eq!(stored, format!("{{\"traceparent\":\"{tp}\"}}"));
        assert_eq!(of_row(&id.to_string(), "ParticipationAccepted", &stored), h);
        assert_eq!(to_stored(&build(id, "T", None)), "{}");
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-\"x\\y";
        assert!(
            is_valid_traceparent(later),
            "a later version's traceparent, escaped"
        );
        for traceparent in [
            Some(tp),
            None,
            Some("evil\r\nheader"),
            Some(""),
            Some(later),
        ] {
            assert_eq!(
                super::stored(traceparent),
                to_stored(&build(id, "T", traceparent)),
                "{traceparent:?}"
            );
        }
        // A row written with every header (before, or by hand) keeps what it stored.
        let full = serde_json::to_string(&h).expect("json");
        assert_eq!(of_row(&id.to_string(), "ParticipationAccepted", &full), h);
        let odd = r#"{"event_id":"other","content-type":"text/plain"}"#;
        let sent = of_row(&id.to_string(), "T", odd);
        assert_eq!(sent[EVENT_ID], "other");
        assert_eq!(sent[CONTENT_TYPE], "text/plain");
    }
}
