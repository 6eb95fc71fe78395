//! The committed order: each campaign's events as the topic holds them (design §2.5: a key's
//! events are first delivered in commit order), with the duplicates §2.4 allows removed.
//!
//! A copy of an event (same `eventId`) keeps the place of its first delivery and must carry the
//! same payload; a copy that differs is an anomaly, and so is a campaign whose events are spread
//! over two partitions (its order would be undefined) or a record the contract cannot read.

use std::collections::{BTreeMap, HashMap};

use super::replay::event_ref;
use crate::{
    event::{self, Envelope},
    final_state::{OutboxRow, TopicRecord},
    report::{AnomalyKind, Report},
};

/// Builds each campaign's deduplicated order. O(n log n) for the sort, O(n) otherwise.
pub fn build(records: &[TopicRecord], report: &mut Report) -> BTreeMap<i64, Vec<Envelope>> {
    let mut sorted: Vec<&TopicRecord> = records.iter().collect();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    let mut orders: BTreeMap<i64, Vec<Envelope>> = BTreeMap::new();
    // eventId → (campaign, the payload of its first copy).
    let mut seen: HashMap<String, &serde_json::Value> = HashMap::new();
    let mut partition_of: HashMap<i64, i32> = HashMap::new();
    for record in sorted {
        let envelope = match event::parse(&record.payload) {
            Ok(e) => e,
            Err(error) => {
                let campaign = record.key.as_deref().and_then(|k| k.parse().ok());
                report.push(
                    AnomalyKind::MalformedInput,
                    campaign,
                    format!(
                        "record {}:{} is not an event of the contract: {error}",
                        record.partition, record.offset
                    ),
                );
                continue;
            }
        };
        let campaign = envelope.campaign;
        if record.key.as_deref() != Some(campaign.to_string().as_str()) {
            report.push(
                AnomalyKind::MalformedInput,
                Some(campaign),
                format!(
                    "record {}:{} has key {:?}, not its campaign id",
                    record.partition, record.offset, record.key
                ),
            );
        }
        let first = *partition_of.entry(campaign).or_insert(record.partition);
        if first != record.partition {
            report.push(
                AnomalyKind::MalformedInput,
                Some(campaign),
                format!(
                    "the campaign's events are in partitions {first} and {}: no single order",
                    record.partition
                ),
            );
        }
        if let Some(earlier) = seen.get(&envelope.event_id) {
            report.duplicate_events += 1;
            if *earlier != &record.payload {
                report.push(
                    AnomalyKind::MissingOrDuplicatedEvent,
                    Some(campaign),
                    format!(
                        "event {} delivered again at {}:{} with a different payload",
                        envelope.event_id, record.partition, record.offset
                    ),
                );
            }
            continue;
        }
        seen.insert(envelope.event_id.clone(), &record.payload);
        orders.entry(campaign).or_default().push(envelope);
    }
    report.events = seen.len();
    orders
}

/// Each campaign's order against its outbox ids (design §2.5: a key's events are first
/// delivered in ascending outbox id). An event delivered after an event with a higher id is a
/// breach, cited with the highest-id event before it. Events without a row (none in a run:
/// cleanup runs after hours) are passed over. O(n).
pub fn against_outbox(
    orders: &BTreeMap<i64, Vec<Envelope>>,
    outbox: &[OutboxRow],
    report: &mut Report,
) {
    let id_of: HashMap<&str, i64> = outbox.iter().map(|r| (r.event_id.as_str(), r.id)).collect();
    for (&campaign, order) in orders {
        let mut highest: Option<(i64, usize)> = None;
        for (position, envelope) in order.iter().enumerate() {
            let Some(&id) = id_of.get(envelope.event_id.as_str()) else {
                continue;
            };
            match highest {
                Some((top, at)) if id < top => {
                    let anomaly = report.push(
                        AnomalyKind::OrderBreach,
                        Some(campaign),
                        format!("outbox row {id} delivered after row {top} of the same campaign"),
                    );
                    anomaly.events.push(event_ref(&order[at], at));
                    anomaly.events.push(event_ref(envelope, position));
                }
                _ => highest = Some((id, position)),
            }
        }
    }
}
