//! The MySQL guard of a group's per-user limit (docs/design.md §22). Redis checks the limit in
//! the gate's atomic step; MySQL holds it too, so that no state of Redis (a rebuild racing a
//! win, a join on a campaign list read before a new campaign joined the group) can sell a user
//! past it. `group_holding` has one row per group and user: the units of every win the user made
//! in the group. The win's transaction adds to it and reads it back under the row's lock; a
//! total past the limit rolls the whole transaction back.
//!
//! Rows are written in ascending user order, so two transactions over overlapping users (two
//! campaigns' batches, two carts) lock them in the same order and never deadlock on them.

use sea_orm::{ConnectionTrait, DbErr};

use crate::db::sql::{placeholders, stmt};

/// Units one user takes in a group, in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    pub user_id: i64,
    pub units: i64,
}

/// What the guard found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Every user stays within the limit: the units are recorded.
    Within,
    /// This user would hold `total` units, past the limit: nothing may commit.
    Over { user_id: i64, total: i64 },
}

/// Adds `takes` (distinct users) to their holdings in `group_id` and says whether every user
/// stays within `limit`. The caller rolls back on [`Held::Over`].
pub async fn take(
    txn: &impl ConnectionTrait,
    group_id: i64,
    limit: i32,
    takes: &[Take],
) -> Result<Held, DbErr> {
    if takes.is_empty() {
        return Ok(Held::Within);
    }
    let mut sorted = takes.to_vec();
    sorted.sort_by_key(|t| t.user_id);
    let mut values = Vec::with_capacity(sorted.len() * 3);
    for t in &sorted {
        values.extend([group_id.into(), t.user_id.into(), t.units.into()]);
    }
    let rows = vec![format!("({})", placeholders(3)); sorted.len()].join(", ");
    txn.execute_raw(stmt(
        &format!(
            "INSERT INTO group_holding (group_id, user_id, units) VALUES {rows} \
             ON DUPLICATE KEY UPDATE units = units + VALUES(units)"
        ),
        values,
    ))
    .await?;
    let mut values = vec![group_id.into(), i64::from(limit).into()];
    values.extend(sorted.iter().map(|t| t.user_id.into()));
    let over = txn
        .query_one_raw(stmt(
            &format!(
                "SELECT user_id, units FROM group_holding WHERE group_id = ? AND units > ? \
                 AND user_id IN ({}) LIMIT 1",
                placeholders(sorted.len())
            ),
            values,
        ))
        .await?;
    Ok(match over {
        None => Held::Within,
        Some(row) => Held::Over {
            user_id: row.try_get_by_index(0)?,
            total: row.try_get_by_index(1)?,
        },
    })
}
