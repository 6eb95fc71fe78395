//! Reading Kafka back: every message of a topic from the beginning (`read_topic`) and the
//! check of per-key order of first deliveries against the outbox.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use firstcome::events::headers;
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::Message,
    ClientConfig, Offset, TopicPartitionList,
};
use serde_json::Value;
use uuid::Uuid;

/// A message read back from Kafka.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub key: String,
    pub payload: String,
    pub headers: BTreeMap<String, String>,
    pub partition: i32,
    pub offset: i64,
}

impl Consumed {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.payload).expect("payload is JSON")
    }
    pub fn event_id(&self) -> &str {
        self.headers
            .get(headers::EVENT_ID)
            .map(String::as_str)
            .expect("event_id header")
    }
}

/// Reads every message of `topic` from the beginning, until at least `expected` were read and
/// every partition reached its end (so duplicates beyond `expected` are seen too).
pub async fn read_topic(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    let bootstrap = bootstrap.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("test-{}", Uuid::now_v7().simple()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("metadata");
        let partitions = metadata.topics()[0].partitions().len();
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            assignment
                .add_partition_offset(&topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&assignment).expect("assign");
        let deadline = std::time::Instant::now() + timeout;
        let mut out = Vec::new();
        let mut at_end = std::collections::HashSet::new();
        while std::time::Instant::now() < deadline
            && !(out.len() >= expected && at_end.len() == partitions)
        {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    at_end.remove(&m.partition());
                    out.push(Consumed {
                        key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                        payload: String::from_utf8_lossy(m.payload().unwrap_or_default())
                            .into_owned(),
                        headers: headers::from_kafka(m.headers()),
                        partition: m.partition(),
                        offset: m.offset(),
                    });
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => panic!("consumer error: {e}"),
                None => {}
            }
        }
        out
    })
    .await
    .expect("consumer task")
}

/// Per-key order of first deliveries (docs/design.md §2.5): reading each partition from its start, the
/// first time each event appears its outbox id is above every event of its key seen before.
/// Later copies (duplicates) are allowed. Returns how many distinct events were read.
pub fn assert_first_deliveries_in_order(
    messages: &[Consumed],
    outbox_ids: &HashMap<String, i64>,
) -> usize {
    let mut sorted: Vec<&Consumed> = messages.iter().collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    let mut seen = std::collections::HashSet::new();
    let mut last: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut inversions = Vec::new();
    for m in sorted {
        if !seen.insert(m.event_id().to_string()) {
            continue;
        }
        let id = outbox_ids[m.event_id()];
        if let Some((prev, prev_offset)) = last.insert(&m.key, (id, m.offset)) {
            if prev > id {
                inversions.push(format!(
                    "key {}: outbox id {id} (offset {}) first delivered after {prev} (offset {prev_offset})",
                    m.key, m.offset
                ));
            }
        }
    }
    assert!(
        inversions.is_empty(),
        "{} inversions: {inversions:#?}",
        inversions.len()
    );
    seen.len()
}
