//! Dead-letter topics and the `dlq_*` headers (docs/design.md §4). The relay dead-letters rows to
//! `<topic>.dlq`; a consumer dead-letters messages it cannot read to `<topic>.<consumer>.dlq`.
//! Both keep the original key, value and headers and add these.

use chrono::Utc;

/// Why the message was dead-lettered (a stable, snake_case word).
pub const REASON: &str = "dlq_reason";
/// The error, as text.
pub const ERROR: &str = "dlq_error";
/// Attempts made (the relay's produce attempts; 1 for a consumer's contract failure).
pub const ATTEMPTS: &str = "dlq_attempts";
pub const ORIGINAL_TOPIC: &str = "dlq_original_topic";
/// RFC 3339, UTC, milliseconds.
pub const FAILED_AT: &str = "dlq_failed_at";
/// The consumer that gave up (consumer DLQs only).
pub const CONSUMER: &str = "dlq_consumer";
/// `true` when the value was too large for the dead-letter topic and was left out (the outbox
/// row keeps it).
pub const VALUE_OMITTED: &str = "dlq_value_omitted";
/// Where a consumer dead letter came from: `<partition>:<offset>` of the original topic.
pub const ORIGINAL_POSITION: &str = "dlq_original_position";

/// The relay's dead-letter topic for `topic`.
pub fn relay_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// A consumer's dead-letter topic for `topic`.
pub fn consumer_topic(topic: &str, consumer: &str) -> String {
    format!("{topic}.{consumer}.dlq")
}

/// The `dlq_*` headers of one dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub reason: &'a str,
    pub error: &'a str,
    pub attempts: i64,
    pub original_topic: &'a str,
    /// Set by consumers, absent for the relay.
    pub consumer: Option<&'a str>,
}

impl DeadLetter<'_> {
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            (REASON, self.reason.to_string()),
            (ERROR, self.error.to_string()),
            (ATTEMPTS, self.attempts.to_string()),
            (ORIGINAL_TOPIC, self.original_topic.to_string()),
            (
                FAILED_AT,
                Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
        ];
        if let Some(consumer) = self.consumer {
            h.push((CONSUMER, consumer.to_string()));
        }
        h
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// Retrying cannot help (the message itself is refused).
    NonRetriable,
    /// `RELAY_MAX_ATTEMPTS` produce attempts failed with a broker's answer.
    AttemptsExhausted,
    /// The row is older than `RELAY_MAX_RETRY_AGE` and still not published.
    RetryAgeExceeded,
}

impl DeadReason {
    /// Value of the `dlq_reason` header.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::NonRetriable => "non_retriable",
            DeadReason::AttemptsExhausted => "attempts_exhausted",
            DeadReason::RetryAgeExceeded => "retry_age_exceeded",
        }
    }
}
