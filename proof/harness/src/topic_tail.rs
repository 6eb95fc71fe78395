//! The topic, read while the run goes on: a reader started with the broker follows every
//! partition from offset 0 and keeps each record, so the final state has the whole topic however
//! long the run. The mock broker keeps only about 5 MiB per partition and evicts older records
//! silently (KAFKA-NOTES.md); a 30-minute run writes more than that, and a reader started at the
//! end found the first records gone. This one reads them within moments of their append.
//!
//! At the end ([`TopicTail::finish`]) it reads on to the high watermarks of that moment. A hole
//! in a partition's offsets (records evicted before the reader reached them, which a reader this
//! close behind should never see) is said in the notes: the checker would then report events
//! missing that the service did send.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context;
use rdkafka::{
    config::ClientConfig,
    consumer::{BaseConsumer, Consumer},
    message::{BorrowedMessage, Message},
    Offset, TopicPartitionList,
};

use crate::final_state::TopicRecord;

/// What the reader hands back: every record in partition then offset order, and the notes.
type Read = (Vec<TopicRecord>, Vec<String>);

pub struct TopicTail {
    stop: Arc<AtomicBool>,
    /// Records read so far (the reader's progress, for tests).
    read: Arc<AtomicUsize>,
    reader: JoinHandle<anyhow::Result<Read>>,
}

impl TopicTail {
    /// Starts reading `topic` (which must exist) from the start of each partition.
    pub fn start(bootstrap: &str, topic: &str) -> anyhow::Result<Self> {
        let consumer = subscribe(bootstrap, topic)?;
        let stop = Arc::new(AtomicBool::new(false));
        let read = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (Arc::clone(&stop), Arc::clone(&read));
        let topic = topic.to_owned();
        let reader = std::thread::Builder::new()
            .name("topic-tail".into())
            .spawn(move || follow(&consumer, &topic, &flag, &count))
            .context("starting the topic reader")?;
        Ok(Self { stop, read, reader })
    }

    /// How many records it has read so far.
    pub fn records_read(&self) -> usize {
        self.read.load(Ordering::SeqCst)
    }

    /// Reads on to the partitions' high watermarks of this moment (within 120 s), then returns
    /// every record read. Blocking: call it off the async workers.
    pub fn finish(self) -> anyhow::Result<Read> {
        self.stop.store(true, Ordering::SeqCst);
        self.reader
            .join()
            .map_err(|_| anyhow::anyhow!("the topic reader panicked"))?
    }
}

/// A consumer assigned every partition of `topic` from its beginning (no group offsets: it
/// commits nothing). An offset evicted under it resets to the earliest one left, and the hole is
/// noted.
fn subscribe(bootstrap: &str, topic: &str) -> anyhow::Result<(BaseConsumer, Vec<i32>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("firstcome-proof-{}", uuid::Uuid::now_v7()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("log_level", "3")
        .create()
        .context("creating the topic reader")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("reading the topic's metadata")?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(!partitions.is_empty(), "topic {topic} has no partitions");
    let mut assignment = TopicPartitionList::new();
    for &p in &partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok((consumer, partitions))
}

/// The reader's loop: every record until `stop`, then on to the high watermarks of then.
/// Errors while it runs (the nemesis takes the broker down and hangs it) are waited out; after
/// `stop` the deadline bounds them.
fn follow(
    (consumer, partitions): &(BaseConsumer, Vec<i32>),
    topic: &str,
    stop: &AtomicBool,
    read: &AtomicUsize,
) -> anyhow::Result<Read> {
    let mut records = Vec::new();
    let mut notes = Vec::new();
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut end: Option<(HashMap<i32, i64>, Instant)> = None;
    let mut last_error = None;
    loop {
        if end.is_none() && stop.load(Ordering::SeqCst) {
            end = Some((
                high_watermarks(consumer, topic, partitions)?,
                Instant::now(),
            ));
        }
        if let Some((high, since)) = &end {
            if high
                .iter()
                .all(|(p, h)| next.get(p).copied().unwrap_or(0) >= *h)
            {
                break;
            }
            anyhow::ensure!(
                since.elapsed() < Duration::from_secs(120),
                "the topic was not read to its high watermarks within 120 s (last error: {last_error:?})"
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => last_error = Some(e.to_string()),
            Some(Ok(m)) => {
                let expected = next.get(&m.partition()).copied().unwrap_or(0);
                if m.offset() > expected {
                    notes.push(format!(
                        "partition {}: offsets {expected}..{} were gone before they were read \
                         (the mock broker's ~5 MiB cap)",
                        m.partition(),
                        m.offset()
                    ));
                }
                next.insert(m.partition(), m.offset() + 1);
                records.push(record(&m));
                read.store(records.len(), Ordering::SeqCst);
            }
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    records.dedup_by_key(|r| (r.partition, r.offset));
    Ok((records, notes))
}

fn high_watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<HashMap<i32, i64>> {
    partitions
        .iter()
        .map(|&p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .with_context(|| format!("watermarks of partition {p}"))?;
            Ok((p, high))
        })
        .collect()
}

fn record(m: &BorrowedMessage<'_>) -> TopicRecord {
    let payload = match m.payload() {
        Some(bytes) => serde_json::from_slice(bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into())),
        None => serde_json::Value::Null,
    };
    TopicRecord {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    /// Twice the mock broker's cap through one partition, each slice read before the next is
    /// sent: the broker evicts the oldest records, the tail still has every one.
    #[test]
    fn every_record_is_read_though_the_broker_evicts_the_oldest() {
        let holder: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .set("log_level", "3")
            .create()
            .expect("mock cluster");
        let cluster = holder.client().mock_cluster().expect("mock cluster");
        cluster.create_topic("t", 1, 1).expect("topic");
        let bootstrap = cluster.bootstrap_servers();
        let tail = TopicTail::start(&bootstrap, "t").expect("tail");
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("log_level", "3")
            .create()
            .expect("producer");
        let value = vec![b'x'; 16 * 1024];
        let (slices, per_slice) = (20, 32); // 10 MiB in slices of 512 KiB
        for slice in 1..=slices {
            for _ in 0..per_slice {
                producer
                    .send(BaseRecord::to("t").key("k").payload(&value))
                    .map_err(|(e, _)| e)
                    .expect("send");
            }
            producer.flush(Duration::from_secs(10)).expect("flush");
            let deadline = Instant::now() + Duration::from_secs(30);
            while tail.records_read() < slice * per_slice {
                assert!(
                    Instant::now() < deadline,
                    "the tail stopped at {}",
                    tail.records_read()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let (low, high) = producer
            .client()
            .fetch_watermarks("t", 0, Duration::from_secs(10))
            .expect("watermarks");
        assert!(
            low > 0,
            "the broker evicted nothing (low {low}, high {high}): the test proves nothing"
        );
        let (records, notes) = tail.finish().expect("finish");
        assert!(notes.is_empty(), "{notes:?}");
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..high).collect::<Vec<_>>());
    }
}
