//! The one place that decides what a produce result means for an outbox row (docs/design.md §7):
//! published, waiting for a broker, retried later (exponential backoff with jitter, from the
//! `backoff` crate), or dead-lettered. Like vector's Kafka sink, errors are split by what
//! retrying could change; and, the outage policy, by whether a broker answered at all.
//!
//! - **No broker answered** (librdkafka's local errors: transport, all brokers down, a message
//!   timeout, a producer reset after a fatal error, a purge at shutdown): the row backs off
//!   without consuming an attempt. A Kafka outage of hours turns no row into a dead letter.
//! - **A broker refused the produce** with an error librdkafka does not retry, but that an
//!   operator can fix (e.g. `TOPIC_AUTHORIZATION_FAILED`): one attempt; `RELAY_MAX_ATTEMPTS` of
//!   them send the row to the DLQ. (Errors librdkafka retries itself, like `NOT_ENOUGH_REPLICAS`,
//!   never reach here: the relay's producer retries them without limit to keep order, and a row
//!   they hold up too long comes back through a purge, as in an outage.)
//! - **A broker (or the client, for a message too large) refused the message itself**: the DLQ at
//!   once, since sending it again cannot help.
//! - Whatever the error, a row older than `RELAY_MAX_RETRY_AGE` goes to the DLQ.

use crate::events::dlq::DeadReason;
use std::time::Duration;

use backoff::backoff::Backoff;
use rdkafka::{error::KafkaError, types::RDKafkaErrorCode};

/// What happens to a row after a produce attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Published,
    /// No broker answered: try again no earlier than `after`, without counting an attempt.
    Wait {
        after: Duration,
        error: String,
    },
    /// A broker answered with a retriable error: one attempt more, then again after `after`.
    Retry {
        after: Duration,
        error: String,
    },
    /// Publish to the dead-letter topic, then mark the row DEAD.
    DeadLetter {
        reason: DeadReason,
        error: String,
    },
}

/// The retry schedule: attempt n waits about `base * 2^(n-1)`, capped, ±50 % jitter; and how
/// long a row may keep trying at all.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// `RELAY_MAX_RETRY_AGE`: a row older than this that fails goes to the DLQ.
    pub max_age: Duration,
}

impl RetryPolicy {
    /// The delay before the next attempt, after `attempts` failed ones (1 = the first failure).
    pub fn delay(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(31);
        let interval = self.base.saturating_mul(1 << exponent).min(self.cap);
        let mut schedule = backoff::ExponentialBackoff {
            current_interval: interval,
            initial_interval: self.base,
            randomization_factor: 0.5,
            multiplier: 2.0,
            max_interval: self.cap,
            max_elapsed_time: None,
            ..Default::default()
        };
        schedule.next_backoff().unwrap_or(interval).min(self.cap)
    }
}

/// Errors that the same message will meet again however often it is sent.
pub fn is_retriable(error: &KafkaError) -> bool {
    !matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::UnsupportedForMessageFormat
                | RDKafkaErrorCode::PolicyViolation
                | RDKafkaErrorCode::BadMessage
                | RDKafkaErrorCode::InvalidArgument
        )
    )
}

/// Whether the error means that no broker answered the produce: librdkafka's local errors
/// (negative codes), and no code at all (the delivery was cancelled with its producer), but not
/// the local errors that are about the message or the topic itself.
pub fn no_broker_answered(error: &KafkaError) -> bool {
    match error.rdkafka_error_code() {
        None => true,
        Some(
            RDKafkaErrorCode::BadMessage
            | RDKafkaErrorCode::InvalidArgument
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition,
        ) => false,
        Some(code) => (code as i32) < 0,
    }
}

/// Decides a row's fate. `attempts_before` counts the row's earlier attempts that a broker
/// answered; `age` is how long ago the row was written.
pub fn classify(
    result: Result<(), &KafkaError>,
    attempts_before: u32,
    age: Duration,
    policy: &RetryPolicy,
) -> Outcome {
    let Err(error) = result else {
        return Outcome::Published;
    };
    let text = error.to_string();
    if !is_retriable(error) {
        return Outcome::DeadLetter {
            reason: DeadReason::NonRetriable,
            error: text,
        };
    }
    if age > policy.max_age {
        return Outcome::DeadLetter {
            reason: DeadReason::RetryAgeExceeded,
            error: text,
        };
    }
    if no_broker_answered(error) {
        return Outcome::Wait {
            after: policy.delay(attempts_before.max(1)),
            error: text,
        };
    }
    let attempts = attempts_before + 1;
    if attempts >= policy.max_attempts {
        Outcome::DeadLetter {
            reason: DeadReason::AttemptsExhausted,
            error: text,
        }
    } else {
        Outcome::Retry {
            after: policy.delay(attempts),
            error: text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
        max_age: Duration::from_secs(24 * 3600),
    };
    const FRESH: Duration = Duration::from_secs(1);

    fn produce(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[test]
    fn delays_grow_exponentially_with_jitter_up_to_the_cap() {
        for attempts in 1..=10 {
            let nominal = (100u64 << (attempts - 1)).min(1_000) as f64;
            let d = POLICY.delay(attempts).as_millis() as f64;
            assert!(
                d >= nominal * 0.5 - 1.0 && d <= (nominal * 1.5).min(1_000.0) + 1.0,
                "attempt {attempts}: {d}"
            );
        }
    }

    #[test]
    fn no_broker_answering_never_consumes_attempts_nor_dead_letters() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::Fatal,
            RDKafkaErrorCode::GaplessGuarantee,
            RDKafkaErrorCode::PurgeQueue,
            RDKafkaErrorCode::PurgeInflight,
        ] {
            // However many attempts the row already has.
            for attempts in [0, 4, 1_000] {
                assert!(
                    matches!(
                        classify(Err(&produce(code)), attempts, FRESH, &POLICY),
                        Outcome::Wait { .. }
                    ),
                    "{code:?} after {attempts} attempts"
                );
            }
        }
        assert!(matches!(
            classify(Err(&KafkaError::Canceled), 0, FRESH, &POLICY),
            Outcome::Wait { .. }
        ));
    }

    #[test]
    fn broker_answers_count_attempts_until_the_dead_letter_topic() {
        let refused = produce(RDKafkaErrorCode::NotEnoughReplicas);
        assert_eq!(classify(Ok(()), 0, FRESH, &POLICY), Outcome::Published);
        assert!(matches!(
            classify(Err(&refused), 0, FRESH, &POLICY),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify(Err(&refused), 4, FRESH, &POLICY),
            Outcome::DeadLetter {
                reason: DeadReason::AttemptsExhausted,
                ..
            }
        ));
        let unknown = produce(RDKafkaErrorCode::UnknownTopic);
        assert!(matches!(
            classify(Err(&unknown), 0, FRESH, &POLICY),
            Outcome::Retry { .. }
        ));
    }

    #[test]
    fn a_refused_message_goes_to_the_dead_letter_topic_at_once() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidRecord,
        ] {
            assert!(matches!(
                classify(Err(&produce(code)), 0, FRESH, &POLICY),
                Outcome::DeadLetter {
                    reason: DeadReason::NonRetriable,
                    ..
                }
            ));
        }
    }

    #[test]
    fn a_row_past_the_retry_age_goes_to_the_dead_letter_topic_whatever_failed() {
        let old = POLICY.max_age + Duration::from_secs(1);
        for error in [
            produce(RDKafkaErrorCode::MessageTimedOut),
            produce(RDKafkaErrorCode::NotEnoughReplicas),
        ] {
            assert!(matches!(
                classify(Err(&error), 0, old, &POLICY),
                Outcome::DeadLetter {
                    reason: DeadReason::RetryAgeExceeded,
                    ..
                }
            ));
        }
    }
}
