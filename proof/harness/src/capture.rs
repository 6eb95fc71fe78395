//! Taking the final state (`crate::final_state`) once settled: MySQL's rows of the run's
//! campaigns, each gate in the run's Redis ([`gates`]), every record of the topic (read all
//! along by [`TopicTail`], to each partition's high watermark), and the consumers' tables; for a
//! bucketed campaign (design §21) also its bucket count, pool and rows, each participation's
//! bucket and one gate per bucket ([`buckets`]). Names of tables, columns and keys are the
//! service's (its migrations and Lua scripts), read, not imported.

mod buckets;
mod gates;
mod groups;

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{AssertSqlSafe, MySqlPool};

use super::{slots, topic_tail::TopicTail};
use crate::final_state::{
    BucketState, Campaign, CampaignBuckets, ControlRow, FinalState, OutboxRow, Participation,
    ParticipationBucket, RewardAccount, RewardGrant, Stats,
};

fn utc(t: Option<NaiveDateTime>) -> Option<DateTime<Utc>> {
    t.map(|t| t.and_utc())
}

fn in_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Takes the final state of `campaigns` (id → the stock it was created with); returns it as
/// the one JSON document the checker reads (`final_state::read_with_buckets`), and notes on
/// what could not be taken.
pub async fn take(
    pool: &MySqlPool,
    redis_url: &str,
    prefix: &str,
    topic: TopicTail,
    campaigns: &HashMap<i64, i64>,
) -> anyhow::Result<(serde_json::Value, Vec<String>)> {
    let mut ids: Vec<i64> = campaigns.keys().copied().collect();
    ids.sort_unstable();
    let list = in_list(&ids);
    let mut notes = Vec::new();
    let (mut campaign_rows, campaign_buckets) = mysql_campaigns(pool, &list, campaigns).await?;
    let bucket_rows = buckets::rows(pool, &list).await?;
    buckets::whole_campaign(&mut campaign_rows, &campaign_buckets, &bucket_rows);
    let counts: Vec<(i64, i64)> = campaign_rows
        .iter()
        .map(|c| (c.id, bucket_count(&campaign_buckets, c.id)))
        .collect();
    let group_state = groups::read(pool, &list).await?;
    let group_of = group_state.group_of();
    let slots = slots::of_campaigns(
        counts
            .iter()
            .map(|&(c, b)| (c, b, group_of.get(&c).copied())),
    );
    let (participations, participation_buckets) = mysql_participations(pool, &list).await?;
    let controls = mysql_controls(pool, &list).await?;
    let gates = match gates::read(redis_url, prefix, &slots).await {
        Ok(g) => Some(g),
        Err(e) => {
            notes.push(format!("the gate could not be read: {e:#}"));
            None
        }
    };
    let (events, topic_notes) = tokio::task::spawn_blocking(move || topic.finish())
        .await
        .context("the topic reader's task panicked")??;
    notes.extend(topic_notes);
    let outbox = mysql_outbox(pool, &buckets::outbox_keys(&counts)).await?;
    let (stats, rewards, grants) = consumers(pool, &list).await?;
    let state = FinalState {
        campaigns: campaign_rows,
        participations,
        controls: Some(controls),
        gates: gates
            .as_ref()
            .map(|g| g.iter().map(|g| g.gate.clone()).collect()),
        events,
        outbox: Some(outbox),
        stats: Some(stats),
        rewards: Some(rewards),
        grants: Some(grants),
    };
    let bucket_state = BucketState {
        campaigns: campaign_buckets,
        participations: participation_buckets,
        gates,
        bucket_rows: Some(bucket_rows),
    };
    let mut doc = buckets::document(&state, &bucket_state)?;
    groups::add(&mut doc, &group_state)?;
    Ok((doc, notes))
}

/// The campaign's bucket count as MySQL has it (1: unbucketed).
fn bucket_count(campaigns: &[CampaignBuckets], id: i64) -> i64 {
    let found = campaigns.iter().find(|c| c.id == id);
    found.and_then(|c| c.buckets).unwrap_or(1)
}

type CampaignRow = (
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    i64,
    String,
    i64,
    i64,
);

/// The campaign rows, and the bucket fields of the bucketed ones: their count and their pool,
/// which is what `remaining_stock` holds for them ([`buckets::whole_campaign`] makes it the
/// whole campaign's).
async fn mysql_campaigns(
    pool: &MySqlPool,
    list: &str,
    initial: &HashMap<i64, i64>,
) -> anyhow::Result<(Vec<Campaign>, Vec<CampaignBuckets>)> {
    let rows: Vec<CampaignRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, total_stock, remaining_stock, CAST(paused <> 0 AS SIGNED), \
         CAST(closed_at IS NOT NULL AS SIGNED), reward_points, \
         CAST(confirm_within_seconds AS SIGNED), starts_at, ends_at, \
         CAST(per_user_limit AS SIGNED), admission, CAST(buckets AS SIGNED), \
         CAST(offer_seconds AS SIGNED) \
         FROM campaign WHERE id IN ({list}) ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .context("reading campaign")?;
    let bucketed = rows
        .iter()
        .filter(|r| r.11 > 1)
        .map(|r| CampaignBuckets {
            id: r.0,
            buckets: Some(r.11),
            pool: Some(r.2),
        })
        .collect();
    let campaigns = rows
        .into_iter()
        .map(|r| Campaign {
            id: r.0,
            total_stock: r.1,
            remaining_stock: r.2,
            paused: r.3 != 0,
            closed: r.4 != 0,
            reward_points: r.5,
            confirm_within_seconds: r.6,
            starts_at: utc(r.7),
            ends_at: utc(r.8),
            initial_stock: initial.get(&r.0).copied(),
            per_user_limit: Some(r.9),
            admission: Some(r.10),
            offer_seconds: Some(r.12),
        })
        .collect();
    Ok((campaigns, bucketed))
}

type ParticipationRow = (
    i64,
    i64,
    i64,
    i64,
    String,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    Option<String>,
    i64,
    Option<NaiveDateTime>,
);

/// The participation rows, and each one's bucket (0 in an unbucketed campaign).
async fn mysql_participations(
    pool: &MySqlPool,
    list: &str,
) -> anyhow::Result<(Vec<Participation>, Vec<ParticipationBucket>)> {
    let rows: Vec<ParticipationRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, campaign_id, user_id, CAST(quantity AS SIGNED), status, created_at, \
         hold_expires_at, cancel_reason, CAST(bucket AS SIGNED), cancelled_at FROM participation \
         WHERE campaign_id IN ({list}) ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .context("reading participation")?;
    let buckets = rows
        .iter()
        .map(|r| ParticipationBucket {
            id: r.0,
            campaign: r.1,
            user: r.2,
            bucket: r.8,
        })
        .collect();
    let participations = rows
        .into_iter()
        .map(|r| Participation {
            id: r.0,
            campaign: r.1,
            user: r.2,
            quantity: r.3,
            status: r.4,
            accepted_at: utc(r.5),
            hold_expires_at: utc(r.6),
            cancel_reason: r.7,
            cancelled_at: utc(r.9),
        })
        .collect();
    Ok((participations, buckets))
}

/// The outbox rows of the campaigns' events, by their keys (`msg_key`: the campaign id as text,
/// or `<campaign>:<bucket>` for a bucketed campaign's wins; [`buckets::outbox_keys`]). The run's
/// retention keeps them all (`OUTBOX_RETENTION_HOURS` is hours; a run is minutes).
async fn mysql_outbox(pool: &MySqlPool, keys: &[String]) -> anyhow::Result<Vec<OutboxRow>> {
    // Digits and one colon each: nothing to escape.
    let keys = keys
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(",");
    let rows: Vec<(i64, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, event_id FROM outbox_event WHERE msg_key IN ({keys}) ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .context("reading outbox_event")?;
    Ok(rows
        .into_iter()
        .map(|(id, event_id)| OutboxRow { id, event_id })
        .collect())
}

async fn mysql_controls(pool: &MySqlPool, list: &str) -> anyhow::Result<Vec<ControlRow>> {
    let rows: Vec<(i64, i64, String, i64, i64, i64, String)> =
        sqlx::query_as(AssertSqlSafe(format!(
        "SELECT campaign_id, seq, kind, COALESCE(delta, 0), total_stock, remaining_stock, event_id \
         FROM campaign_control WHERE campaign_id IN ({list}) ORDER BY campaign_id, seq"
    )))
        .fetch_all(pool)
        .await
        .context("reading campaign_control")?;
    Ok(rows
        .into_iter()
        .map(|r| ControlRow {
            campaign: r.0,
            seq: r.1,
            kind: audit_kind(r.2),
            delta: r.3,
            total_stock: r.4,
            remaining_stock: r.5,
            event_id: r.6,
        })
        .collect())
}

/// `campaign_control.kind` as the service writes it (`STOCK_CHANGED`, `PAUSED`, `RESUMED`,
/// `CLOSED`) in the final state's names (`STOCK`, `PAUSE`, `RESUME`, `CLOSE`); anything else is
/// kept as it is, for the checker to flag.
fn audit_kind(kind: String) -> String {
    match kind.as_str() {
        "STOCK_CHANGED" => "STOCK".to_owned(),
        "PAUSED" => "PAUSE".to_owned(),
        "RESUMED" => "RESUME".to_owned(),
        "CLOSED" => "CLOSE".to_owned(),
        _ => kind,
    }
}

type StatsRow = (
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

async fn consumers(
    pool: &MySqlPool,
    list: &str,
) -> anyhow::Result<(Vec<Stats>, Vec<RewardAccount>, Vec<RewardGrant>)> {
    let rows: Vec<StatsRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT campaign_id, accepted_count, accepted_quantity, confirmed_count, cancelled_count, \
         expired_count, active_quantity, events_applied, stock_added, stock_withdrawn, \
         controls_applied, CAST(paused <> 0 AS SIGNED), CAST(closed_at IS NOT NULL AS SIGNED) \
         FROM campaign_stats WHERE campaign_id IN ({list}) ORDER BY campaign_id"
    )))
    .fetch_all(pool)
    .await
    .context("reading campaign_stats")?;
    let stats = rows
        .into_iter()
        .map(|r| Stats {
            campaign: r.0,
            accepted_count: Some(r.1),
            accepted_quantity: Some(r.2),
            confirmed_count: Some(r.3),
            cancelled_count: Some(r.4),
            expired_count: Some(r.5),
            active_quantity: Some(r.6),
            events_applied: Some(r.7),
            stock_added: Some(r.8),
            stock_withdrawn: Some(r.9),
            controls_applied: Some(r.10),
            paused: Some(r.11 != 0),
            closed: Some(r.12 != 0),
        })
        .collect();
    let accounts: Vec<(i64, i64)> =
        sqlx::query_as("SELECT user_id, points FROM reward_account ORDER BY user_id")
            .fetch_all(pool)
            .await
            .context("reading reward_account")?;
    let grants: Vec<(String, i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT event_id, user_id, campaign_id, points FROM reward_grant \
         WHERE campaign_id IN ({list}) ORDER BY granted_at, event_id"
    )))
    .fetch_all(pool)
    .await
    .context("reading reward_grant")?;
    Ok((
        stats,
        accounts
            .into_iter()
            .map(|(user, points)| RewardAccount { user, points })
            .collect(),
        grants
            .into_iter()
            .map(|(event_id, user, campaign, points)| RewardGrant {
                event_id,
                user,
                campaign,
                points,
            })
            .collect(),
    ))
}
