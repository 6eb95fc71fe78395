//! Reading a batch's messages where librdkafka holds them: each is parsed into its event at
//! once, and only poison is copied out, for the dead-letter topic.

use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};

use crate::{
    consumer::Delivered,
    events::{headers, ContractError, ParticipationEvent},
};

/// One message of a batch, read where librdkafka holds it: its event, or, when it breaks the
/// contract, a copy of it for the dead-letter topic. Only poison is copied out of librdkafka.
pub(super) enum Read {
    Event(Delivered),
    Poison {
        message: OwnedMessage,
        error: ContractError,
    },
}

impl Read {
    /// The message's `(partition, offset)`.
    pub(super) fn position(&self) -> (i32, i64) {
        match self {
            Read::Event(d) => (d.partition, d.offset),
            Read::Poison { message, .. } => (message.partition(), message.offset()),
        }
    }
}

/// Parses `message` into its event and its place, checked against the contract.
pub(super) fn read(message: &BorrowedMessage<'_>) -> Read {
    let headers = headers::received(message.headers());
    match ParticipationEvent::checked(message.key(), message.payload(), headers.event_id) {
        Ok(event) => Read::Event(Delivered {
            event,
            partition: message.partition(),
            offset: message.offset(),
            traceparent: headers
                .traceparent
                .map(|tp| String::from_utf8_lossy(tp).into_owned()),
        }),
        Err(error) => Read::Poison {
            message: message.detach(),
            error,
        },
    }
}
