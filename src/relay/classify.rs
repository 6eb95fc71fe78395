//! The one place that decides what a produce result means for an outbox row (DESIGN.md §7):
//! published, retried later (exponential backoff with jitter, from the `backoff` crate), or
//! dead-lettered. Like vector's Kafka sink, errors are split by what retrying could change.

use std::time::Duration;

use backoff::backoff::Backoff;
use rdkafka::{error::KafkaError, types::RDKafkaErrorCode};

/// What happens to a row after a produce attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Published,
    /// Try again no earlier than `after` from now.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// Retrying cannot help (the message itself is refused).
    NonRetriable,
    /// `RELAY_MAX_ATTEMPTS` produce attempts failed.
    AttemptsExhausted,
}

impl DeadReason {
    /// Value of the `dlq_reason` header.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::NonRetriable => "non_retriable",
            DeadReason::AttemptsExhausted => "attempts_exhausted",
        }
    }
}

/// The retry schedule: attempt n waits about `base * 2^(n-1)`, capped, ±50 % jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
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
        )
    )
}

/// Decides a row's fate. `attempts_before` counts the earlier failed attempts of the row.
pub fn classify(
    result: Result<(), &KafkaError>,
    attempts_before: u32,
    policy: &RetryPolicy,
) -> Outcome {
    let Err(error) = result else {
        return Outcome::Published;
    };
    let attempts = attempts_before + 1;
    let text = error.to_string();
    if !is_retriable(error) {
        Outcome::DeadLetter {
            reason: DeadReason::NonRetriable,
            error: text,
        }
    } else if attempts >= policy.max_attempts {
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
    };

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
    fn errors_are_split_by_what_retrying_can_change() {
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let too_big = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let fatal = KafkaError::MessageProduction(RDKafkaErrorCode::Fatal);
        assert_eq!(classify(Ok(()), 0, &POLICY), Outcome::Published);
        assert!(matches!(
            classify(Err(&timeout), 0, &POLICY),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify(Err(&fatal), 0, &POLICY),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify(Err(&too_big), 0, &POLICY),
            Outcome::DeadLetter {
                reason: DeadReason::NonRetriable,
                ..
            }
        ));
        assert!(matches!(
            classify(Err(&timeout), 4, &POLICY),
            Outcome::DeadLetter {
                reason: DeadReason::AttemptsExhausted,
                ..
            }
        ));
    }
}
