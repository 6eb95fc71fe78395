//! SQL for campaigns. Plain statements through sea-orm, so the reader sees exactly what runs.

use crate::db::sql::stmt;
use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::{
    bucket::Deal,
    campaign::{Admission, Campaign},
    db::{
        time::{precision, to_db},
        Db,
    },
    gate::Slot,
};

/// What an admin asks for; validated by the API layer.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub total_stock: i64,
    pub per_user_limit: i32,
    pub reward_points: i64,
    pub confirm_within_seconds: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub admission: Admission,
    /// 0 for [`Admission::Open`].
    pub admission_rate_per_second: i32,
    /// 1 (today's campaign) to [`crate::bucket::MAX_BUCKETS`] (docs/design.md §21).
    pub buckets: u16,
    /// The group it joins (docs/design.md §22); the API checked that it exists and that its
    /// buckets match.
    pub group_id: Option<i64>,
    /// Seconds an offer to a waitlisted user stays valid; 0: no waitlist (docs/design.md §22).
    pub offer_seconds: i32,
    /// Whether its door asks for the bot check; `None`: the service's default (docs/design.md §16).
    pub bot_check: Option<bool>,
    /// The creation's `Idempotency-Key`, with its admin and request (docs/design.md §17).
    pub key: Option<crate::campaign::create_key::CreateKey>,
}

/// A campaign with how many participations it has accepted.
#[derive(Debug, Clone)]
pub struct CampaignWithCount {
    pub campaign: Campaign,
    pub accepted_count: i64,
}

#[derive(FromQueryResult)]
struct Row {
    id: i64,
    name: String,
    total_stock: i64,
    remaining_stock: i64,
    per_user_limit: i32,
    reward_points: i64,
    confirm_within_seconds: i32,
    starts_at: NaiveDateTime,
    ends_at: Option<NaiveDateTime>,
    paused: bool,
    closed_at: Option<NaiveDateTime>,
    control_seq: i64,
    admission: String,
    admission_rate_per_second: i32,
    buckets: i16,
    group_id: Option<i64>,
    offer_seconds: i32,
    bot_check: Option<bool>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    accepted_count: i64,
}

impl From<Row> for CampaignWithCount {
    fn from(r: Row) -> Self {
        Self {
            campaign: Campaign {
                id: r.id,
                name: r.name,
                total_stock: r.total_stock,
                remaining_stock: r.remaining_stock,
                per_user_limit: r.per_user_limit,
                reward_points: r.reward_points,
                confirm_within_seconds: r.confirm_within_seconds,
                starts_at: r.starts_at.and_utc(),
                ends_at: r.ends_at.map(|t| t.and_utc()),
                paused: r.paused,
                closed_at: r.closed_at.map(|t| t.and_utc()),
                control_seq: r.control_seq,
                admission: Admission::parse(&r.admission),
                admission_rate_per_second: r.admission_rate_per_second,
                buckets: u16::try_from(r.buckets).unwrap_or(1).max(1),
                group_id: r.group_id,
                offer_seconds: r.offer_seconds,
                bot_check: r.bot_check,
                created_at: r.created_at.and_utc(),
                updated_at: r.updated_at.and_utc(),
            },
            accepted_count: r.accepted_count,
        }
    }
}

/// A bucketed campaign's remaining stock is its pool plus its buckets' rows, and its wins are
/// counted in those rows (docs/design.md §21); an unbucketed one has no rows, so it reads as before.
const SELECT: &str =
    "SELECT c.id, c.name, c.total_stock, \
     CAST(c.remaining_stock + COALESCE((SELECT SUM(b.remaining_stock) FROM campaign_bucket b \
     WHERE b.campaign_id = c.id), 0) AS SIGNED) AS remaining_stock, \
     c.per_user_limit, c.reward_points, c.confirm_within_seconds, \
     c.starts_at, c.ends_at, c.paused, c.closed_at, c.control_seq, c.admission, c.admission_rate_per_second, \
     c.buckets, c.group_id, c.offer_seconds, c.bot_check, c.created_at, c.updated_at, \
     CAST(c.accepted_count + COALESCE((SELECT SUM(b.accepted_count) FROM campaign_bucket b \
     WHERE b.campaign_id = c.id), 0) AS SIGNED) AS accepted_count \
     FROM campaign c";

/// Creates a campaign; a bucketed one with its buckets' rows and their first slices, in the same
/// transaction (docs/design.md §21: what is not dealt stays in the pool, `remaining_stock`).
#[tracing::instrument(level = "debug", skip_all, fields(name = %new.name, total_stock = new.total_stock), err)]
pub async fn insert(db: &Db, new: &NewCampaign) -> Result<CampaignWithCount, DbErr> {
    match insert_within(db, new, i64::MAX).await? {
        Ok(created) => Ok(created),
        Err(over) => Err(DbErr::Custom(format!("{over:?}"))),
    }
}

/// A bucketed creation that does not fit `CAMPAIGN_BUCKETS_MAX_TOTAL`: the buckets open
/// campaigns held when it was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    pub held: i64,
}

/// [`insert`], a bucketed campaign only if the buckets open campaigns hold, with its own, stay
/// within `max_buckets`. The check and the insert run in one transaction under the one row of
/// `bucket_budget` (migration 51), so concurrent bucketed creations are judged one after another
/// and never fit more together than the cap (docs/design.md §21).
pub async fn insert_within(
    db: &Db,
    new: &NewCampaign,
    max_buckets: i64,
) -> Result<Result<CampaignWithCount, OverBudget>, DbErr> {
    let now = to_db(Utc::now());
    // MariaDB would store an unstorable time as a zero date that no read can decode; refuse it
    // here too, in case a caller skipped the API's check.
    for t in std::iter::once(new.starts_at).chain(new.ends_at) {
        if !crate::campaign::storable(precision(t)) {
            return Err(DbErr::Custom(format!(
                "campaign time {t} is outside DATETIME's range"
            )));
        }
    }
    let buckets = new.buckets.clamp(1, crate::bucket::MAX_BUCKETS);
    let (slices, pool) = if buckets > 1 {
        Deal::of(new.total_stock, buckets).slices(new.total_stock, buckets)
    } else {
        (Vec::new(), new.total_stock)
    };
    let txn = db.begin().await?;
    if buckets > 1 {
        txn.execute_raw(stmt(
            "SELECT id FROM bucket_budget WHERE id = 1 FOR UPDATE",
            vec![],
        ))
        .await?;
        let held = crate::campaign::create_key::open_buckets(&txn).await?;
        if held + i64::from(buckets) > max_buckets {
            txn.rollback().await?;
            return Ok(Err(OverBudget { held }));
        }
    }
    let res = txn
        .execute_raw(stmt(
            "INSERT INTO campaign (name, total_stock, remaining_stock, per_user_limit, reward_points, \
             confirm_within_seconds, starts_at, ends_at, admission, admission_rate_per_second, buckets, \
             group_id, offer_seconds, bot_check, create_admin, create_key, create_request, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                new.name.clone().into(),
                new.total_stock.into(),
                pool.into(),
                new.per_user_limit.into(),
                new.reward_points.into(),
                new.confirm_within_seconds.into(),
                to_db(new.starts_at).into(),
                new.ends_at.map(to_db).into(),
                new.admission.as_str().into(),
                new.admission_rate_per_second.into(),
                buckets.into(),
                new.group_id.into(),
                new.offer_seconds.into(),
                new.bot_check.into(),
                new.key.as_ref().map(|k| k.admin.clone()).into(),
                new.key.as_ref().map(|k| k.key.clone()).into(),
                new.key.as_ref().map(|k| k.request.clone()).into(),
                now.into(),
                now.into(),
            ],
        ))
        .await?;
    let id = i64::try_from(res.last_insert_id()).map_err(|e| DbErr::Custom(e.to_string()))?;
    if !slices.is_empty() {
        crate::bucket::store::insert_rows_for(&txn, id, &slices).await?;
    }
    txn.commit().await?;
    let created = find(db, id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("campaign {id} vanished after insert")))?;
    Ok(Ok(created))
}

#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn find(db: &impl ConnectionTrait, id: i64) -> Result<Option<CampaignWithCount>, DbErr> {
    let row = Row::find_by_statement(stmt(&format!("{SELECT} WHERE c.id = ?"), vec![id.into()]))
        .one(db)
        .await?;
    Ok(row.map(Into::into))
}

/// A group's campaigns, oldest first (the live view's group, docs/design.md §20).
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn in_group(
    db: &impl ConnectionTrait,
    group_id: i64,
) -> Result<Vec<CampaignWithCount>, DbErr> {
    let rows = Row::find_by_statement(stmt(
        &format!("{SELECT} WHERE c.group_id = ? ORDER BY c.id"),
        vec![group_id.into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Newest first; `before` is the cursor (the last id of the previous page).
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn list(
    db: &impl ConnectionTrait,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<CampaignWithCount>, DbErr> {
    let rows = Row::find_by_statement(stmt(
        &format!("{SELECT} WHERE c.id < ? ORDER BY c.id DESC LIMIT ?"),
        vec![before.unwrap_or(i64::MAX).into(), limit.into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// What the Redis gate needs to rebuild a campaign's state: the stock MySQL holds, the highest
/// sequence handed out so far, the live controls' state with the number of the last control
/// (docs/design.md §15) and the row's gate generation (§2.1), all in one read.
#[derive(Debug, Clone, FromQueryResult)]
pub struct GateSeed {
    pub remaining_stock: i64,
    pub max_sequence: i64,
    pub paused: bool,
    pub closed_at: Option<NaiveDateTime>,
    pub control_seq: i64,
    pub gate_gen: i64,
}

/// A rebuild's first step in MySQL (docs/design.md §2.1): the slot's row counts one more
/// generation of its gate. A win whose reservation a lost gate made carries the count before,
/// and is refused from this commit on; one that took the row's lock first is committed before
/// this returns, so the rebuild's read that follows sees it (its user, its sequence).
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn raise_gate_gen(db: &impl ConnectionTrait, slot: Slot) -> Result<(), DbErr> {
    let statement = match slot.bucket {
        None => stmt(
            "UPDATE campaign SET gate_gen = gate_gen + 1 WHERE id = ?",
            vec![slot.campaign_id.into()],
        ),
        Some(bucket) => stmt(
            "UPDATE campaign_bucket SET gate_gen = gate_gen + 1 WHERE campaign_id = ? AND bucket = ?",
            vec![slot.campaign_id.into(), bucket.into()],
        ),
    };
    db.execute_raw(statement).await.map(|_| ())
}

/// The seed of one slot's gate: an unbucketed campaign's row, or one bucket's row (its stock and
/// its own highest sequence) with the campaign's state and controls, in one statement.
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn gate_seed(db: &impl ConnectionTrait, slot: Slot) -> Result<Option<GateSeed>, DbErr> {
    let statement = match slot.bucket {
        None => stmt(
            "SELECT c.remaining_stock, \
             CAST(COALESCE((SELECT MAX(p.sequence) FROM participation p WHERE p.campaign_id = c.id), 0) AS SIGNED) \
             AS max_sequence, c.paused, c.closed_at, c.control_seq, c.gate_gen \
             FROM campaign c WHERE c.id = ?",
            vec![slot.campaign_id.into()],
        ),
        Some(bucket) => stmt(
            // The row keeps the campaign-wide sequence (`bucket::sequence`); the gate counts
            // its own.
            "SELECT b.remaining_stock, \
             CAST(CASE WHEN b.max_sequence = 0 THEN 0 ELSE (b.max_sequence - b.bucket) DIV c.buckets END AS SIGNED) \
             AS max_sequence, c.paused, c.closed_at, c.control_seq, b.gate_gen \
             FROM campaign_bucket b JOIN campaign c ON c.id = b.campaign_id \
             WHERE b.campaign_id = ? AND b.bucket = ?",
            vec![slot.campaign_id.into(), bucket.into()],
        ),
    };
    GateSeed::find_by_statement(statement).one(db).await
}

/// `AND bucket = ?` for a bucket's slot (its value pushed onto `values`), nothing otherwise.
fn bucket_filter(slot: Slot, column: &str, values: &mut Vec<sea_orm::Value>) -> String {
    match slot.bucket {
        None => String::new(),
        Some(bucket) => {
            values.push(bucket.into());
            format!(" AND {column} = ?")
        }
    }
}

/// What the slot's gate counts as given to it already, for a rebuild: the ids of its cancelled
/// and expired wins (their units are back in the stock read with them) and, negated, the
/// transfers into it whose markers are still there (their units are in its row already).
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn returned_ids(db: &impl ConnectionTrait, slot: Slot) -> Result<Vec<i64>, DbErr> {
    let mut values = vec![slot.campaign_id.into()];
    let filter = bucket_filter(slot, "bucket", &mut values);
    let mut sql = format!(
        "SELECT id FROM participation WHERE campaign_id = ?{filter} AND status IN ('CANCELLED', 'EXPIRED')"
    );
    if slot.bucket.is_some() {
        values.extend([slot.campaign_id.into(), slot.bucket_or_zero().into()]);
        sql += " UNION ALL SELECT -transfer_id FROM gate_transfer WHERE campaign_id = ? AND bucket = ?";
    }
    let rows = db.query_all_raw(stmt(&sql, values)).await?;
    rows.iter().map(|row| row.try_get_by_index(0)).collect()
}

/// What MySQL committed that the slot's gate may not have: its `gate_return` markers
/// (participation id, quantity), its `gate_transfer` markers (negated transfer id, units; a
/// bucket's only), and the campaign's `gate_control` markers (number, kind, delta) in number
/// order. A rebuild gives them to the state it loaded (see `upkeep::loader`).
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn owed_to_gate(db: &impl ConnectionTrait, slot: Slot) -> Result<OwedToGate, DbErr> {
    let mut values = vec![slot.campaign_id.into()];
    let filter = bucket_filter(slot, "bucket", &mut values);
    let mut sql =
        format!("SELECT participation_id, CAST(quantity AS SIGNED) FROM gate_return WHERE campaign_id = ?{filter}");
    if slot.bucket.is_some() {
        values.extend([slot.campaign_id.into(), slot.bucket_or_zero().into()]);
        sql += " UNION ALL SELECT -transfer_id, CAST(units AS SIGNED) FROM gate_transfer \
                WHERE campaign_id = ? AND bucket = ?";
    }
    let returns = db
        .query_all_raw(stmt(&sql, values))
        .await?
        .iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect::<Result<_, DbErr>>()?;
    let controls = db
        .query_all_raw(stmt(
            "SELECT seq, kind, delta FROM gate_control WHERE campaign_id = ? ORDER BY seq",
            vec![slot.campaign_id.into()],
        ))
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get_by_index(0)?,
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
            ))
        })
        .collect::<Result<_, DbErr>>()?;
    Ok(OwedToGate { returns, controls })
}

/// See [`owed_to_gate`].
#[derive(Debug, Default)]
pub struct OwedToGate {
    /// (participation id, or a transfer's id negated; units).
    pub returns: Vec<(i64, i64)>,
    pub controls: Vec<(i64, String, i64)>,
}

/// One page of a campaign's winners, in participation id order after `after_id`: (participation
/// id, the win). The gate rebuild reads a large campaign this way, a bounded page at a time.
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn winners_page(
    db: &impl ConnectionTrait,
    slot: Slot,
    after_id: i64,
    limit: u32,
) -> Result<Vec<(i64, crate::gate::Committed)>, DbErr> {
    // A bucket's winners are read through the campaign's index and filtered: a rebuild of one
    // bucket reads the campaign's whole list (docs/design.md §21 says what this costs).
    let mut values = vec![slot.campaign_id.into()];
    let filter = bucket_filter(slot, "bucket", &mut values);
    values.extend([after_id.into(), limit.into()]);
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT id, user_id, quantity FROM participation WHERE campaign_id = ?{filter} \
                 AND id > ? ORDER BY id LIMIT ?"
            ),
            values,
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let win = crate::gate::Committed {
                user_id: row.try_get_by_index(1)?,
                quantity: row.try_get_by_index(2)?,
            };
            Ok((row.try_get_by_index(0)?, win))
        })
        .collect()
}
