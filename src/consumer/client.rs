//! A consumer's Kafka client: librdkafka's configuration for the framework (manual offsets, the
//! group protocol, the session of a classic member) and its subscription.

use std::sync::Arc;

use rdkafka::{
    config::ClientConfig,
    consumer::{Consumer, StreamConsumer},
    error::KafkaResult,
};

use crate::{
    config::{consumers::ConsumerName, GroupProtocol},
    consumer::{context::GroupContext, runner::ConsumerDeps, ConsumerReport},
};

/// A classic group member's session: how long a member that stopped heartbeating (a killed
/// process) keeps its partitions before the group moves them.
const CLASSIC_SESSION_TIMEOUT_MS: &str = "10000";
/// Heartbeats well inside the session (librdkafka wants at most a third of it).
const CLASSIC_HEARTBEAT_MS: &str = "2000";

/// The client, subscribed. Fails (a startup error) when librdkafka refuses the configuration.
pub(super) fn subscribe(
    name: ConsumerName,
    deps: &ConsumerDeps,
    report: Arc<ConsumerReport>,
) -> KafkaResult<StreamConsumer<GroupContext>> {
    let protocol = match deps.group_protocol {
        GroupProtocol::Classic => "classic",
        GroupProtocol::Consumer => "consumer",
    };
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &deps.bootstrap)
        .set("client.id", name.group_id())
        .set("auto.offset.reset", "earliest")
        .set("log_level", "4");
    if deps.group_protocol == GroupProtocol::Classic {
        // librdkafka's default (45 s) keeps a killed member's partitions unconsumed that long,
        // twice when it is restarted before its session ends: the proof run measured 70 s
        // after the outbox drained. 10 s is above Kafka's default floor (group.min.session.
        // timeout.ms, 6 s); a broker with a higher floor takes KAFKA_PROPERTIES'
        // session.timeout.ms, applied next. (`consumer` groups keep this on the broker.)
        config
            .set("session.timeout.ms", CLASSIC_SESSION_TIMEOUT_MS)
            .set("heartbeat.interval.ms", CLASSIC_HEARTBEAT_MS);
    }
    // Tuning and security from KAFKA_PROPERTIES (a client.id of its own, say); then what the
    // framework rests on, which KAFKA_PROPERTIES may not set.
    deps.properties.apply(&mut config);
    let consumer: StreamConsumer<GroupContext> = config
        .set("group.id", name.group_id())
        .set("group.protocol", protocol)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", deps.fetch_wait.as_millis().to_string())
        .set("statistics.interval.ms", "1000")
        .create_with_context(GroupContext::new(&deps.topic, report))?;
    consumer.subscribe(&[&deps.topic])?;
    Ok(consumer)
}
