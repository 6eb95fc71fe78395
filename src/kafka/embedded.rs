//! The embedded Kafka-protocol broker: librdkafka's mock cluster, started in process when
//! `KAFKA_BOOTSTRAP_SERVERS` is unset, so the service runs (and `kcat` can read its topics) on a
//! machine without Kafka.
//!
//! It is for trying the service and for tests, not for keeping data: it keeps nothing across
//! restarts and silently evicts the oldest data of a partition past about 5 MiB.
//!
//! `MockCluster` is `!Send`; the cluster is owned by a holder client created with
//! `test.mock.num.brokers`, which is `Send + Sync`. The cluster lives exactly as long as this
//! struct; fault-injection tests borrow it through [`EmbeddedBroker::with_cluster`].

use rdkafka::{
    config::ClientConfig,
    error::KafkaResult,
    mocking::MockCluster,
    producer::{BaseProducer, DefaultProducerContext, Producer},
};

pub struct EmbeddedBroker {
    /// Owns the mock cluster; dropping it stops the broker.
    holder: BaseProducer,
    bootstrap_servers: String,
}

impl EmbeddedBroker {
    /// Starts a one-broker cluster and creates `topics` with `partitions` partitions each.
    pub fn start<S: AsRef<str>>(topics: &[S], partitions: i32) -> KafkaResult<Self> {
        let holder: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .set("log_level", "3")
            .create()?;
        let bootstrap_servers =
            {
                let cluster = holder.client().mock_cluster().ok_or(
                    rdkafka::error::KafkaError::MockCluster(rdkafka::types::RDKafkaErrorCode::Fail),
                )?;
                for topic in topics {
                    cluster.create_topic(topic.as_ref(), partitions, 1)?;
                }
                cluster.bootstrap_servers()
            };
        Ok(Self {
            holder,
            bootstrap_servers,
        })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Runs `f` with the cluster (fault injection in tests: `broker_down`, `request_errors`, …).
    pub fn with_cluster<T>(
        &self,
        f: impl FnOnce(&MockCluster<'_, DefaultProducerContext>) -> T,
    ) -> Option<T> {
        self.holder
            .client()
            .mock_cluster()
            .map(|cluster| f(&cluster))
    }
}
