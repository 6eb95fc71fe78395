//! The final state's groups and carts (design §22; `final_state::GroupState`): each campaign's
//! `group_id`, each participation's `purchase_id`, and MySQL's `campaign_group`, `purchase`
//! and `group_holding` rows of the run's groups. Table and column names are the service's
//! migrations', read, not imported.

use anyhow::Context;
use serde_json::Value;
use sqlx::{AssertSqlSafe, MySqlPool};

use crate::final_state::{
    CampaignGroup, Group, GroupHolding, GroupState, ParticipationPurchase, Purchase,
};

use super::in_list;

/// Reads the group fields of the campaigns in `list` (ids, comma-separated).
pub async fn read(pool: &MySqlPool, list: &str) -> anyhow::Result<GroupState> {
    let campaigns: Vec<(i64, Option<i64>)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, group_id FROM campaign WHERE id IN ({list}) ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .context("reading campaign.group_id")?;
    let participations: Vec<(i64, Option<i64>)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, purchase_id FROM participation WHERE campaign_id IN ({list}) ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .context("reading participation.purchase_id")?;
    let mut ids: Vec<i64> = campaigns.iter().filter_map(|c| c.1).collect();
    ids.sort_unstable();
    ids.dedup();
    let (groups, purchases, holdings) = if ids.is_empty() {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        rows(pool, &in_list(&ids)).await?
    };
    Ok(GroupState {
        campaigns: campaigns
            .into_iter()
            .map(|(id, group)| CampaignGroup { id, group })
            .collect(),
        participations: participations
            .into_iter()
            .map(|(id, purchase)| ParticipationPurchase { id, purchase })
            .collect(),
        groups: Some(groups),
        purchases: Some(purchases),
        group_holdings: Some(holdings),
    })
}

async fn rows(
    pool: &MySqlPool,
    groups: &str,
) -> anyhow::Result<(Vec<Group>, Vec<Purchase>, Vec<GroupHolding>)> {
    let g: Vec<(i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, CAST(per_user_limit AS SIGNED), CAST(buckets AS SIGNED) FROM campaign_group \
         WHERE id IN ({groups}) ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .context("reading campaign_group")?;
    let p: Vec<(i64, i64, i64, Option<String>)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, group_id, user_id, idempotency_key FROM purchase \
         WHERE group_id IN ({groups}) ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .context("reading purchase")?;
    let h: Vec<(i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT group_id, user_id, CAST(units AS SIGNED) FROM group_holding \
         WHERE group_id IN ({groups}) ORDER BY group_id, user_id"
    )))
    .fetch_all(pool)
    .await
    .context("reading group_holding")?;
    Ok((
        g.into_iter()
            .map(|(id, per_user_limit, buckets)| Group {
                id,
                per_user_limit,
                buckets,
            })
            .collect(),
        p.into_iter()
            .map(|(id, group, user, idempotency_key)| Purchase {
                id,
                group,
                user,
                idempotency_key,
            })
            .collect(),
        h.into_iter()
            .map(|(group, user, units)| GroupHolding { group, user, units })
            .collect(),
    ))
}

/// Adds the group fields to the document: each campaign's `group` and each participation's
/// `purchase` on their objects, the rest as top-level lists.
pub fn add(doc: &mut Value, groups: &GroupState) -> serde_json::Result<()> {
    let extra = serde_json::to_value(groups)?;
    for part in ["campaigns", "participations"] {
        if let (Some(into), Some(from)) = (doc.get_mut(part), extra.get(part)) {
            super::buckets::merge_by_id(into, from);
        }
    }
    for part in ["groups", "purchases", "groupHoldings"] {
        if let (Some(value), Some(doc)) = (extra.get(part), doc.as_object_mut()) {
            doc.insert(part.to_owned(), value.clone());
        }
    }
    Ok(())
}
