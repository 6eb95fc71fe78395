//! Taking the final state (`crate::final_state`) once settled: MySQL's rows of the run's
//! campaigns, each gate in the run's Redis, every record of the topic (read all along by
//! [`TopicTail`], to each partition's high watermark), and the consumers' tables. Names of tables,
//! columns and keys are the service's (its migrations and Lua scripts), read, not imported.

use std::{collections::HashMap, time::Duration};

use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{AssertSqlSafe, MySqlPool};

use super::topic_tail::TopicTail;
use crate::final_state::{
    Campaign, ControlRow, FinalState, Gate, OutboxRow, Participation, RewardAccount, RewardGrant,
    Stats,
};

fn utc(t: Option<NaiveDateTime>) -> Option<DateTime<Utc>> {
    t.map(|t| t.and_utc())
}

fn in_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

pub async fn take(
    pool: &MySqlPool,
    redis_url: &str,
    prefix: &str,
    topic: TopicTail,
    campaigns: &HashMap<i64, i64>,
) -> anyhow::Result<(FinalState, Vec<String>)> {
    let mut ids: Vec<i64> = campaigns.keys().copied().collect();
    ids.sort_unstable();
    let list = in_list(&ids);
    let mut notes = Vec::new();
    let campaign_rows = mysql_campaigns(pool, &list, campaigns).await?;
    let participations = mysql_participations(pool, &list).await?;
    let controls = mysql_controls(pool, &list).await?;
    let gates = match gates(redis_url, prefix, &ids).await {
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
    let outbox = mysql_outbox(pool, &ids).await?;
    let (stats, rewards, grants) = consumers(pool, &list).await?;
    Ok((
        FinalState {
            campaigns: campaign_rows,
            participations,
            controls: Some(controls),
            gates,
            events,
            outbox: Some(outbox),
            stats: Some(stats),
            rewards: Some(rewards),
            grants: Some(grants),
        },
        notes,
    ))
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
);

async fn mysql_campaigns(
    pool: &MySqlPool,
    list: &str,
    initial: &HashMap<i64, i64>,
) -> anyhow::Result<Vec<Campaign>> {
    let rows: Vec<CampaignRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, total_stock, remaining_stock, CAST(paused <> 0 AS SIGNED), \
         CAST(closed_at IS NOT NULL AS SIGNED), reward_points, \
         CAST(confirm_within_seconds AS SIGNED), starts_at, ends_at, \
         CAST(per_user_limit AS SIGNED), admission \
         FROM campaign WHERE id IN ({list}) ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .context("reading campaign")?;
    Ok(rows
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
        })
        .collect())
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
);

async fn mysql_participations(pool: &MySqlPool, list: &str) -> anyhow::Result<Vec<Participation>> {
    let rows: Vec<ParticipationRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, campaign_id, user_id, CAST(quantity AS SIGNED), status, created_at, \
         hold_expires_at, cancel_reason FROM participation WHERE campaign_id IN ({list}) ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .context("reading participation")?;
    Ok(rows
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
        })
        .collect())
}

/// The outbox rows of the campaigns' events (`msg_key` is the campaign id as text). The run's
/// retention keeps them all (`OUTBOX_RETENTION_HOURS` is hours; a run is minutes).
async fn mysql_outbox(pool: &MySqlPool, ids: &[i64]) -> anyhow::Result<Vec<OutboxRow>> {
    let keys = ids
        .iter()
        .map(|id| format!("'{id}'"))
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

async fn gates(redis_url: &str, prefix: &str, ids: &[i64]) -> anyhow::Result<Vec<Gate>> {
    let client = redis::Client::open(redis_url)?;
    let mut c = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .context("connecting to Redis")??;
    let mut out = Vec::new();
    for id in ids {
        let key = |part: &str| format!("{prefix}{{c:{id}}}:{part}");
        let stock: Option<i64> = redis::cmd("HGET")
            .arg(key("meta"))
            .arg("stock")
            .query_async(&mut c)
            .await?;
        let users: Vec<i64> = redis::cmd("SMEMBERS")
            .arg(key("users"))
            .query_async(&mut c)
            .await?;
        let returned: Vec<i64> = redis::cmd("SMEMBERS")
            .arg(key("returned"))
            .query_async(&mut c)
            .await?;
        let pending: i64 = redis::cmd("HLEN")
            .arg(key("pending"))
            .query_async(&mut c)
            .await?;
        out.push(Gate {
            campaign: *id,
            stock,
            users: Some(users),
            returned: Some(returned),
            pending: Some(pending),
        });
    }
    Ok(out)
}
