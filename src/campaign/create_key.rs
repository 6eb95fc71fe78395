//! A campaign's creation made idempotent and bounded (docs/design.md §17, §21): the
//! `Idempotency-Key` a creation came with, under the admin token's name, finds the campaign it
//! made; and the buckets all open campaigns hold together are capped, since each bucket is a
//! row, gate keys and a Redis slot's worth of work while its campaign is busy.

use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::db::sql::stmt;

/// What a keyed creation records with its campaign: who, the key, and the request's body (the
/// same key with another body is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateKey {
    pub admin: String,
    pub key: String,
    /// The request's body as the service read it (canonical JSON of the parsed request).
    pub request: String,
}

/// The campaign a key created, with the body it was created from.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Keyed {
    pub id: i64,
    pub create_request: Option<String>,
}

/// The campaign `admin` created with `key`, if any.
pub async fn find(
    db: &impl ConnectionTrait,
    admin: &str,
    key: &str,
) -> Result<Option<Keyed>, DbErr> {
    Keyed::find_by_statement(stmt(
        "SELECT id, create_request FROM campaign WHERE create_admin = ? AND create_key = ?",
        vec![admin.into(), key.into()],
    ))
    .one(db)
    .await
}

/// The buckets held by bucketed campaigns that have not ended (closed early, or past their
/// end): what a new bucketed campaign is counted against.
pub async fn open_buckets(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT CAST(COALESCE(SUM(buckets), 0) AS SIGNED) FROM campaign WHERE buckets > 1 \
             AND closed_at IS NULL AND (ends_at IS NULL OR ends_at > UTC_TIMESTAMP(6))",
            vec![],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0))
}
