//! Which partition a message goes to: its campaign's (docs/design.md §4 "Partition", §21).
//!
//! A bucketed campaign's events are keyed `<campaign>:<bucket>`, so that per-key order holds per
//! bucket. Hashing the whole key, as librdkafka's default partitioner does, spread one campaign
//! over every partition of the topic: each producer batch and each consumer fetch was split by
//! partition, and that split was most of what a bucketed win cost beyond an unbucketed one
//! (docs/benchmarks.md "The bucketed premium was the topic's partitions"). So the partition is
//! chosen by the key's campaign part alone (the bytes before the first `:`), with librdkafka's
//! default hash of it (`consistent_random`: CRC-32 of the bytes modulo the partition count):
//! an unbucketed campaign's events land where they always did, and a bucketed campaign's where
//! the same campaign unbucketed would. A key still maps to one partition, so per-key order is
//! untouched; a campaign's buckets share one partition, as one campaign's events always did.
//! A message without a key (a poison message copied to a dead-letter topic) goes round the
//! partitions.

use std::sync::atomic::{AtomicU32, Ordering};

use rdkafka::producer::Partitioner;

/// A message key's campaign part: the key up to its first `:` (`42` of `42:7`), the whole key
/// when it has none: what [`ByCampaign::of_key`] hashes (for the partition, and the relay's
/// worker in `relay::claim`).
fn campaign_part(key: &[u8]) -> &[u8] {
    key.split(|&b| b == b':').next().unwrap_or(key)
}

/// The service's producers' partitioner: by the key's campaign part.
#[derive(Default)]
pub struct ByCampaign {
    /// The next partition of a message without a key.
    unkeyed: AtomicU32,
}

impl ByCampaign {
    pub const fn new() -> Self {
        Self {
            unkeyed: AtomicU32::new(0),
        }
    }

    /// The partition of `key` among `count` (at least one) partitions.
    pub fn of_key(key: &[u8], count: i32) -> i32 {
        let count = count.max(1) as u32;
        (crc32fast::hash(campaign_part(key)) % count) as i32
    }
}

impl Partitioner for ByCampaign {
    fn partition(
        &self,
        _topic_name: &str,
        key: Option<&[u8]>,
        partition_cnt: i32,
        _is_partition_available: impl Fn(i32) -> bool,
    ) -> i32 {
        match key {
            Some(key) if !key.is_empty() => Self::of_key(key, partition_cnt),
            _ => {
                let next = self.unkeyed.fetch_add(1, Ordering::Relaxed);
                (next % partition_cnt.max(1) as u32) as i32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaigns_buckets_share_the_partition_of_its_unbucketed_key() {
        for count in [1, 3, 8, 64] {
            for campaign in [1_i64, 42, 1_000_003] {
                let whole = ByCampaign::of_key(campaign.to_string().as_bytes(), count);
                for bucket in [0, 1, 63, 1023] {
                    let key = format!("{campaign}:{bucket}");
                    assert_eq!(
                        ByCampaign::of_key(key.as_bytes(), count),
                        whole,
                        "{key} of {count}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_unbucketed_key_goes_where_librdkafkas_default_partitioner_sends_it() {
        // librdkafka's `consistent_random`: CRC-32 (IEEE, as zlib's) of the key, modulo the
        // partition count. crc32("42") = 0x3224b088.
        assert_eq!(crc32fast::hash(b"42"), 0x3224_b088);
        assert_eq!(ByCampaign::of_key(b"42", 8), (0x3224_b088_u32 % 8) as i32);
    }

    #[test]
    fn campaigns_spread_over_the_partitions() {
        let used: std::collections::BTreeSet<i32> = (1..=200)
            .map(|c: i64| ByCampaign::of_key(format!("{c}:7").as_bytes(), 8))
            .collect();
        assert_eq!(used.len(), 8);
    }

    #[test]
    fn messages_without_a_key_go_round_the_partitions() {
        let p = ByCampaign::default();
        let got: Vec<i32> = (0..4)
            .map(|_| p.partition("t", None, 3, |_| true))
            .collect();
        assert_eq!(got, [0, 1, 2, 0]);
        assert_eq!(p.partition("t", Some(b""), 3, |_| true), 1);
    }
}
