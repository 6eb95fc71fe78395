//! What a bucketed campaign (design §21) adds to the final state, and the one document both
//! parts are written as. [`FinalState`] is the checker's format before buckets and has no
//! place for them; the checker reads the bucket fields apart from the same document
//! (`final_state::read_with_buckets`), so they are written into it here: `buckets` and `pool`
//! on a bucketed campaign, `bucket` on every participation and gate entry, and `bucketRows`.

use std::collections::HashMap;

use anyhow::Context;
use serde_json::{Map, Value};
use sqlx::{AssertSqlSafe, MySqlPool};

use crate::final_state::{BucketRow, BucketState, Campaign, CampaignBuckets, FinalState};

/// MySQL's `campaign_bucket` rows of the campaigns (none for an unbucketed one).
pub async fn rows(pool: &MySqlPool, list: &str) -> anyhow::Result<Vec<BucketRow>> {
    let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT campaign_id, CAST(bucket AS SIGNED), remaining_stock, accepted_count \
         FROM campaign_bucket WHERE campaign_id IN ({list}) ORDER BY campaign_id, bucket"
    )))
    .fetch_all(pool)
    .await
    .context("reading campaign_bucket")?;
    Ok(rows
        .into_iter()
        .map(|r| BucketRow {
            campaign: r.0,
            bucket: r.1,
            remaining_stock: r.2,
            accepted_count: Some(r.3),
        })
        .collect())
}

/// A bucketed campaign's `remainingStock` is the whole campaign's, as its GET answers it: the
/// pool (`campaign.remaining_stock`, kept apart in `buckets`) plus its rows'. Summed from the
/// rows the document carries, so the two parts of it speak of one read.
pub fn whole_campaign(campaigns: &mut [Campaign], buckets: &[CampaignBuckets], rows: &[BucketRow]) {
    for c in campaigns.iter_mut() {
        let Some(pool) = buckets.iter().find(|b| b.id == c.id).and_then(|b| b.pool) else {
            continue;
        };
        let dealt: i64 = rows
            .iter()
            .filter(|r| r.campaign == c.id)
            .map(|r| r.remaining_stock)
            .sum();
        c.remaining_stock = pool + dealt;
    }
}

/// The outbox keys of the campaigns' events, each given with its bucket count: `<c>` (every
/// event of an unbucketed campaign, a bucketed one's controls) and `<c>:<b>` for each bucket
/// (a bucketed campaign's wins and their later events).
pub fn outbox_keys(campaigns: &[(i64, i64)]) -> Vec<String> {
    let mut keys = Vec::new();
    for &(id, buckets) in campaigns {
        keys.push(id.to_string());
        if buckets > 1 {
            keys.extend((0..buckets).map(|b| format!("{id}:{b}")));
        }
    }
    keys
}

/// The final state as one JSON document: `state` with the bucket fields of `buckets` written
/// into it, which `final_state::read_with_buckets` reads back as the two.
pub fn document(state: &FinalState, buckets: &BucketState) -> serde_json::Result<Value> {
    let mut doc = serde_json::to_value(state)?;
    let extra = serde_json::to_value(buckets)?;
    for part in ["campaigns", "participations"] {
        if let (Some(into), Some(from)) = (doc.get_mut(part), extra.get(part)) {
            merge_by_id(into, from);
        }
    }
    // A bucket's gate entry is a gate entry with its `bucket`: the richer list stands for both.
    for part in ["gates", "bucketRows"] {
        if let (Some(value), Some(doc)) = (extra.get(part), doc.as_object_mut()) {
            doc.insert(part.to_owned(), value.clone());
        }
    }
    Ok(doc)
}

/// Adds the fields of each object of `from` to the object of `into` with the same `id`.
pub(super) fn merge_by_id(into: &mut Value, from: &Value) {
    let by_id: HashMap<i64, &Map<String, Value>> = from
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| Some((o.get("id")?.as_i64()?, o.as_object()?)))
        .collect();
    for object in into.as_array_mut().into_iter().flatten() {
        let Some(fields) = object
            .get("id")
            .and_then(Value::as_i64)
            .and_then(|id| by_id.get(&id))
        else {
            continue;
        };
        if let Some(object) = object.as_object_mut() {
            for (k, v) in fields.iter() {
                object.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::final_state::{
        read_with_buckets, BucketGate, Gate, Participation, ParticipationBucket,
    };

    fn sample() -> (FinalState, BucketState) {
        let campaign = |id, remaining_stock| Campaign {
            id,
            total_stock: 40,
            remaining_stock,
            ..Campaign::default()
        };
        let participation = |id, campaign| Participation {
            id,
            campaign,
            user: 42,
            quantity: 1,
            status: "CONFIRMED".to_owned(),
            accepted_at: None,
            hold_expires_at: None,
            cancel_reason: None,
            cancelled_at: None,
        };
        let gate = |campaign, bucket, stock| BucketGate {
            bucket,
            gate: Gate {
                campaign,
                stock: Some(stock),
                users: Some(vec![42]),
                returned: Some(vec![]),
                pending: Some(0),
            },
        };
        let mut campaigns = vec![campaign(1, 39), campaign(2, 0)];
        let buckets = BucketState {
            campaigns: vec![CampaignBuckets {
                id: 2,
                buckets: Some(2),
                pool: Some(30),
            }],
            participations: vec![
                ParticipationBucket {
                    id: 7,
                    campaign: 1,
                    user: 42,
                    bucket: 0,
                },
                ParticipationBucket {
                    id: 8,
                    campaign: 2,
                    user: 42,
                    bucket: 1,
                },
            ],
            gates: Some(vec![gate(1, 0, 39), gate(2, 0, 5), gate(2, 1, 4)]),
            bucket_rows: Some(vec![
                BucketRow {
                    campaign: 2,
                    bucket: 0,
                    remaining_stock: 5,
                    accepted_count: Some(0),
                },
                BucketRow {
                    campaign: 2,
                    bucket: 1,
                    remaining_stock: 4,
                    accepted_count: Some(1),
                },
            ]),
        };
        let rows = buckets.bucket_rows.clone().unwrap_or_default();
        whole_campaign(&mut campaigns, &buckets.campaigns, &rows);
        let state = FinalState {
            campaigns,
            participations: vec![participation(7, 1), participation(8, 2)],
            gates: buckets
                .gates
                .as_ref()
                .map(|g| g.iter().map(|g| g.gate.clone()).collect()),
            ..FinalState::default()
        };
        (state, buckets)
    }

    #[test]
    fn the_document_reads_back_as_the_state_and_its_buckets() {
        let (state, buckets) = sample();
        assert_eq!(state.campaigns[1].remaining_stock, 30 + 5 + 4);
        assert_eq!(
            state.campaigns[0].remaining_stock, 39,
            "unbucketed: as read"
        );
        let doc = document(&state, &buckets).expect("the document");
        assert!(doc["campaigns"][0].get("buckets").is_none(), "{doc}");
        assert_eq!(doc["campaigns"][1]["pool"], 30);
        assert_eq!(doc["gates"][2]["bucket"], 1);
        assert_eq!(doc["bucketRows"][1]["acceptedCount"], 1);
        let bytes = serde_json::to_vec(&doc).expect("bytes");
        let (read, read_buckets) = read_with_buckets(bytes.as_slice()).expect("it reads");
        assert_eq!(read, state);
        // Every campaign reads with its bucket fields; an unbucketed one's are absent.
        assert_eq!(read_buckets.campaign(2), buckets.campaign(2));
        assert_eq!(read_buckets.campaign(1).and_then(|c| c.buckets), None);
        let rest = |b: BucketState| (b.participations, b.gates, b.bucket_rows);
        assert_eq!(rest(read_buckets), rest(buckets));
    }

    #[test]
    fn a_bucketed_campaigns_outbox_keys_are_its_own_and_each_buckets() {
        assert_eq!(
            outbox_keys(&[(3, 1), (4, 3)]),
            ["3", "4", "4:0", "4:1", "4:2"]
        );
    }
}
