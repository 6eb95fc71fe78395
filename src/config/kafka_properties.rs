//! `KAFKA_PROPERTIES`: extra librdkafka settings for every Kafka client the service creates
//! (producers, consumers), for what the service has no variable of its own: TLS and SASL to a
//! managed Kafka, a client id, compression, linger.
//!
//! Written as `key=value` pairs separated by commas; `\,` is a comma inside a value and `\\` a
//! backslash. For example, Confluent Cloud:
//! `security.protocol=SASL_SSL,sasl.mechanisms=PLAIN,sasl.username=KEY,sasl.password=SECRET`.
//!
//! Checked at startup: each pair is given to librdkafka, which refuses unknown keys and bad
//! values, and the settings the service's guarantees rest on are refused here (the relay's
//! idempotent, ordered, never-timed-out delivery; the consumers' manual offsets) or belong to
//! another variable. Values are never logged: they hold passwords.

use std::fmt;

use rdkafka::ClientConfig;

use crate::config::{invalid, ConfigError};

const VAR: &str = "KAFKA_PROPERTIES";

/// Keys that `KAFKA_PROPERTIES` may not set, and why.
const RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "use KAFKA_BOOTSTRAP_SERVERS"),
    ("metadata.broker.list", "use KAFKA_BOOTSTRAP_SERVERS"),
    ("message.max.bytes", "use KAFKA_MESSAGE_MAX_BYTES"),
    ("message.timeout.ms", "use KAFKA_MESSAGE_TIMEOUT_MS"),
    ("delivery.timeout.ms", "use KAFKA_MESSAGE_TIMEOUT_MS"),
    ("fetch.wait.max.ms", "use CONSUMER_FETCH_WAIT_MS"),
    ("group.protocol", "use CONSUMER_GROUP_PROTOCOL"),
    (
        "enable.idempotence",
        "the relay's exactly-once-per-attempt delivery needs it on",
    ),
    ("acks", "the relay needs acks=all"),
    ("request.required.acks", "the relay needs acks=all"),
    ("enable.gapless.guarantee", "per-key order rests on it"),
    (
        "max.in.flight.requests.per.connection",
        "per-key order rests on it",
    ),
    ("max.in.flight", "per-key order rests on it"),
    (
        "transactional.id",
        "the service does not use Kafka transactions",
    ),
    ("group.id", "each consumer's group is firstcome-<name>"),
    (
        "enable.auto.commit",
        "consumers commit offsets after their transaction",
    ),
    (
        "enable.auto.offset.store",
        "consumers store offsets after their transaction",
    ),
    (
        "statistics.interval.ms",
        "Kafka's reachability in /health/ready is read from it",
    ),
];

/// The pairs, in the order written. `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties(Vec<(String, String)>);

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, _)| (k, "***")))
            .finish()
    }
}

impl KafkaProperties {
    /// Parses and checks the variable's text (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut pairs = Vec::new();
        for (n, entry) in split(text).iter().enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            // Not echoed: a mistyped pair may hold a password.
            let Some((key, value)) = entry.split_once('=') else {
                return Err(invalid(
                    VAR,
                    "<redacted>",
                    &format!("entry {} is not key=value", n + 1),
                ));
            };
            let (key, value) = (key.trim().to_string(), value.trim().to_string());
            if let Some((_, why)) = RESERVED.iter().find(|(k, _)| *k == key) {
                return Err(invalid(
                    VAR,
                    "<redacted>",
                    &format!("{key} may not be set here: {why}"),
                ));
            }
            pairs.push((key, value));
        }
        let properties = Self(pairs);
        let mut probe = ClientConfig::new();
        properties.apply(&mut probe);
        if let Err(e) = probe.create_native_config() {
            let reason = match e {
                rdkafka::error::KafkaError::ClientConfig(_, description, key, _) => {
                    format!("librdkafka refused {key}: {description}")
                }
                other => other.to_string(),
            };
            return Err(invalid(VAR, "<redacted>", &reason));
        }
        Ok(properties)
    }

    /// Sets every pair on `config` (after the service's own settings, which they may tune).
    pub fn apply(&self, config: &mut ClientConfig) {
        for (key, value) in &self.0 {
            config.set(key, value);
        }
    }

    /// The value of `key`, if given.
    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits at unescaped commas, resolving `\,` and `\\`.
fn split(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next @ (',' | '\\')) => push(&mut parts, next),
                Some(other) => {
                    push(&mut parts, '\\');
                    push(&mut parts, other);
                }
                None => push(&mut parts, '\\'),
            },
            ',' => parts.push(String::new()),
            c => push(&mut parts, c),
        }
    }
    parts
}

fn push(parts: &mut [String], c: char) {
    if let Some(last) = parts.last_mut() {
        last.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_split_at_unescaped_commas() {
        let p = KafkaProperties::parse(
            " client.id = shop-1 , sasl.password=a\\,b\\\\c ,compression.type=gzip,",
        )
        .expect("valid");
        assert_eq!(p.get("client.id"), Some("shop-1"));
        assert_eq!(p.get("sasl.password"), Some("a,b\\c"));
        assert_eq!(p.get("compression.type"), Some("gzip"));
        assert!(KafkaProperties::parse("").expect("empty").is_empty());
    }

    #[test]
    fn tls_and_sasl_to_a_managed_kafka_are_accepted() {
        // librdkafka refuses SASL_SSL and SCRAM when it was built without OpenSSL.
        let p = KafkaProperties::parse(
            "security.protocol=SASL_SSL,sasl.mechanisms=SCRAM-SHA-512,sasl.username=u,\
             sasl.password=p,ssl.endpoint.identification.algorithm=https",
        )
        .expect("SASL_SSL with SCRAM");
        assert_eq!(p.get("security.protocol"), Some("SASL_SSL"));
        KafkaProperties::parse("security.protocol=SASL_SSL,sasl.mechanisms=PLAIN")
            .expect("SASL_SSL with PLAIN");
    }

    #[test]
    fn unknown_reserved_and_malformed_pairs_name_the_variable_not_the_secret() {
        for (text, says) in [
            ("no.such.property=1", "no.such.property"),
            ("acks=1", "acks"),
            ("enable.idempotence=false", "enable.idempotence"),
            (
                "bootstrap.servers=elsewhere:9092",
                "KAFKA_BOOTSTRAP_SERVERS",
            ),
            ("sasl.password", "key=value"),
            ("compression.type=bogus", "compression.type"),
        ] {
            let err = KafkaProperties::parse(&format!("sasl.username=hunter2,{text}"))
                .expect_err(text)
                .to_string();
            assert!(err.starts_with("KAFKA_PROPERTIES="), "{err}");
            assert!(err.contains(says), "{text}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn debug_shows_keys_only() {
        let p = KafkaProperties::parse("sasl.password=hunter2").expect("valid");
        let shown = format!("{p:?}");
        assert!(
            shown.contains("sasl.password") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
