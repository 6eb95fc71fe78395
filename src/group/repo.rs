//! SQL for groups. Plain statements, so the reader sees exactly what runs.

use chrono::{NaiveDateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::{
    db::{sql::stmt, time::to_db, Db},
    gate::Sibling,
    group::Group,
};

/// What an admin asks for; validated by the API layer.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub name: String,
    pub per_user_limit: i32,
    pub buckets: u16,
}

#[derive(FromQueryResult)]
struct Row {
    id: i64,
    name: String,
    per_user_limit: i32,
    buckets: i16,
    created_at: NaiveDateTime,
}

impl From<Row> for Group {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            name: r.name,
            per_user_limit: r.per_user_limit,
            buckets: u16::try_from(r.buckets).unwrap_or(1).max(1),
            created_at: r.created_at.and_utc(),
        }
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(name = %new.name), err)]
pub async fn insert(db: &Db, new: &NewGroup) -> Result<Group, DbErr> {
    let res = db
        .execute_raw(stmt(
            "INSERT INTO campaign_group (name, per_user_limit, buckets, created_at) \
             VALUES (?, ?, ?, ?)",
            vec![
                new.name.clone().into(),
                new.per_user_limit.into(),
                new.buckets.into(),
                to_db(Utc::now()).into(),
            ],
        ))
        .await?;
    let id = i64::try_from(res.last_insert_id()).map_err(|e| DbErr::Custom(e.to_string()))?;
    find(db, id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("group {id} vanished after insert")))
}

#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn find(db: &impl ConnectionTrait, id: i64) -> Result<Option<Group>, DbErr> {
    Row::find_by_statement(stmt(
        "SELECT id, name, per_user_limit, buckets, created_at FROM campaign_group WHERE id = ?",
        vec![id.into()],
    ))
    .one(db)
    .await
    .map(|row| row.map(Group::from))
}

/// The group's campaigns, by id, with their epochs (creation times in microseconds).
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn campaigns(db: &impl ConnectionTrait, id: i64) -> Result<Vec<Sibling>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT id, created_at FROM campaign WHERE group_id = ? ORDER BY id",
            vec![id.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let created: NaiveDateTime = row.try_get_by_index(1)?;
            Ok(Sibling {
                campaign_id: row.try_get_by_index(0)?,
                epoch: created.and_utc().timestamp_micros(),
            })
        })
        .collect()
}
