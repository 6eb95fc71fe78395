//! Kafka at start-up: the configured cluster, or the embedded broker when `KAFKA_BOOTSTRAP_SERVERS`
//! is unset (with every topic the service writes created up front), and the producers.

use std::sync::Arc;

use anyhow::Context;

use crate::{
    config::{consumers::ConsumerName, Settings},
    kafka::{EmbeddedBroker, KafkaMode, KafkaReachability, Producers},
};

/// The Kafka side of the application, as start-up hands it on.
pub(super) struct KafkaClients {
    pub bootstrap: String,
    /// The in-process broker, when one was started; it must outlive the producers.
    pub embedded: Option<Arc<EmbeddedBroker>>,
    pub reachability: Arc<KafkaReachability>,
    pub producers: Producers,
}

impl KafkaClients {
    /// Creating producers does not connect: this succeeds while Kafka is down.
    pub fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let topic = settings.kafka.topic.as_str();
        let (bootstrap, embedded) = match &settings.kafka.bootstrap_servers {
            Some(servers) => (servers.clone(), None),
            None => {
                let broker = EmbeddedBroker::start(&all_topics(topic), settings.kafka.partitions)
                    .context("could not start the embedded Kafka broker")?;
                let servers = broker.bootstrap_servers().to_string();
                tracing::info!(bootstrap_servers = %servers, topic, partitions = settings.kafka.partitions,
                    "KAFKA_BOOTSTRAP_SERVERS is not set; started the embedded Kafka broker (for trying the service: \
                     it keeps nothing across restarts and at most ~5 MiB per partition). Read it with: \
                     kcat -b {servers} -C -t {topic}");
                (servers, Some(Arc::new(broker)))
            }
        };
        let mode = if embedded.is_some() {
            KafkaMode::Embedded
        } else {
            KafkaMode::External
        };
        let reachability = KafkaReachability::new(mode, &bootstrap);
        let producers = Producers::new(&bootstrap, &settings.kafka, &reachability)
            .context("could not create the Kafka producers")?;
        Ok(Self {
            bootstrap,
            embedded,
            reachability,
            producers,
        })
    }
}

/// Every topic the service writes: the main topic, the relay's dead-letter topic and each
/// consumer's (created up front on the embedded broker).
fn all_topics(topic: &str) -> Vec<String> {
    let mut topics = vec![topic.to_string(), crate::events::dlq::relay_topic(topic)];
    topics.extend(
        ConsumerName::ALL
            .iter()
            .map(|c| crate::events::dlq::consumer_topic(topic, c.as_str())),
    );
    topics
}
