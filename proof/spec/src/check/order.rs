//! The committed order: each key's events as the topic holds them (design §2.5: a key's events
//! are first delivered in commit order), with the duplicates §2.4 allows removed.
//!
//! An unbucketed campaign has one key, its id, so one order. A bucketed campaign (§21) has one
//! [`Lane`] per key it uses (`<campaign>` for its controls, `<campaign>:<bucket>` for each
//! bucket's wins): each lane is ordered, none across them ([`super::merge`] interleaves them).
//!
//! A copy of an event (same `eventId`) keeps the place of its first delivery and must carry the
//! same payload; a copy that differs is an anomaly, and so is a key whose events are spread
//! over two partitions (its order would be undefined) or a record the contract cannot read.

use std::collections::{BTreeMap, HashMap};

use super::replay::event_ref;
use crate::{
    event::{self, Envelope},
    final_state::{OutboxRow, TopicRecord},
    model::bucket::{parse_key, Lane},
    report::{AnomalyKind, Report},
};

/// A campaign's events by key, each in its deduplicated topic order.
pub type Lanes = BTreeMap<Lane, Vec<Envelope>>;

/// Builds each campaign's deduplicated lanes; `buckets` answers a campaign's bucket count.
/// O(n log n) for the sort, O(n) otherwise.
pub fn build(
    records: &[TopicRecord],
    buckets: impl Fn(i64) -> i64,
    report: &mut Report,
) -> BTreeMap<i64, Lanes> {
    let mut sorted: Vec<&TopicRecord> = records.iter().collect();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    let mut orders: BTreeMap<i64, Lanes> = BTreeMap::new();
    // eventId → the payload of its first copy.
    let mut seen: HashMap<String, &serde_json::Value> = HashMap::new();
    let mut partition_of: HashMap<(i64, Lane), i32> = HashMap::new();
    for record in sorted {
        let envelope = match event::parse(&record.payload) {
            Ok(e) => e,
            Err(error) => {
                let campaign = record.key.as_deref().and_then(parse_key).map(|k| k.0);
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
        let lane = lane_of(record, &envelope, buckets(campaign), report);
        let first = *partition_of
            .entry((campaign, lane))
            .or_insert(record.partition);
        if first != record.partition {
            let whose = match lane {
                Lane::Campaign => "the campaign's events are".to_owned(),
                Lane::Bucket(b) => format!("bucket {b}'s events are"),
            };
            report.push(
                AnomalyKind::MalformedInput,
                Some(campaign),
                format!(
                    "{whose} in partitions {first} and {}: no single order",
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
        orders
            .entry(campaign)
            .or_default()
            .entry(lane)
            .or_default()
            .push(envelope);
    }
    report.events = seen.len();
    orders
}

/// The lane a record's key puts its event in. An unbucketed campaign's events must be keyed by
/// its id and all go to [`Lane::Campaign`]. A bucketed campaign's key names the lane, right or
/// wrong ([`super::keys`] judges which key each event should have); a key that is no key of
/// the event's campaign puts it where the contract would have.
fn lane_of(record: &TopicRecord, envelope: &Envelope, buckets: i64, report: &mut Report) -> Lane {
    let campaign = envelope.campaign;
    let parsed = record.key.as_deref().and_then(parse_key);
    match parsed {
        Some((c, lane)) if c == campaign && (buckets > 1 || lane == Lane::Campaign) => lane,
        _ => {
            let what = if buckets > 1 {
                "no key of its campaign"
            } else {
                "not its campaign id"
            };
            report.push(
                AnomalyKind::MalformedInput,
                Some(campaign),
                format!(
                    "record {}:{} has key {:?}, {what}",
                    record.partition, record.offset, record.key
                ),
            );
            Lane::of_event(envelope, buckets)
        }
    }
}

/// Each key's order against its outbox ids (design §2.5: a key's events are first delivered in
/// ascending outbox id). An event delivered after an event with a higher id is a breach, cited
/// with the highest-id event before it (by its position in its key's order). Events without a
/// row (none in a run: cleanup runs after hours) are passed over. O(n).
pub fn against_outbox(orders: &BTreeMap<i64, Lanes>, outbox: &[OutboxRow], report: &mut Report) {
    let id_of: HashMap<&str, i64> = outbox.iter().map(|r| (r.event_id.as_str(), r.id)).collect();
    let lanes = orders
        .iter()
        .flat_map(|(&c, lanes)| lanes.values().map(move |order| (c, order)));
    for (campaign, order) in lanes {
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
                        format!("outbox row {id} delivered after row {top} of the same key"),
                    );
                    anomaly.events.push(event_ref(&order[at], at));
                    anomaly.events.push(event_ref(envelope, position));
                }
                _ => highest = Some((id, position)),
            }
        }
    }
}
