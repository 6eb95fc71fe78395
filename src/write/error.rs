//! Why a write of wins did not commit (docs/design.md §6 step 3): the refusals of MySQL's guards,
//! a commit left in doubt, a failure before the commit. The transaction reports them; the settle
//! step maps each to how a reservation goes back and what is answered (`Settle::refusal`).
//!
//! The same type crosses back from a campaign's writer on another instance (`writer::wire`):
//! one spelling of each refusal. A MySQL error crosses as its text, a commit in doubt as its
//! settlement's verdicts (`in_doubt::across`).

use std::sync::Arc;

use sea_orm::DbErr;

use crate::write::in_doubt::InDoubt;

/// Why the transaction did not commit.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum WriteError {
    /// UNIQUE(campaign_id, user_id): the user (one of them, in a batch) already won (Redis did not
    /// know, e.g. after a reload).
    #[error("the user already has a participation in this campaign")]
    Duplicate,
    /// The guarded decrement matched no row: MySQL has less stock than Redis believed. The
    /// stock is read with the campaign's `control_seq` (the live controls it includes).
    #[error("the campaign has {remaining_stock} units left in MySQL")]
    SoldOut {
        remaining_stock: i64,
        control_seq: i64,
    },
    /// The campaign is paused in MySQL (a pause the gate has not received yet: it reaches the
    /// gate within ~1 s, longer when Redis is slow, and MySQL decides meanwhile).
    #[error("the campaign is paused")]
    Paused,
    /// The campaign was closed in MySQL (likewise), or its window ended before the win reached
    /// the campaign row's lock.
    #[error("the campaign is closed")]
    Closed,
    #[error(transparent)]
    Db(
        #[from]
        #[serde(with = "db_text")]
        DbErr,
    ),
    /// The batch's task ended before answering (a panic): the transaction may have committed.
    #[error("the group commit ended without an answer")]
    Unanswered,
    /// The COMMIT was sent and not answered (a deadline, a broken connection): it may have
    /// committed. Every member of the batch shares the one settlement, which says which.
    #[error("the commit's outcome is unknown: {}", .0.error())]
    InDoubt(#[serde(with = "super::in_doubt::across")] Arc<InDoubt>),
    /// A win reached the campaign row's lock past its `commit_by` (its instance was stopped, or
    /// MySQL stalled): the reconciler may have given its reservation back, so it is not written.
    #[error("the reservation outlived its commit deadline")]
    Stale,
    /// A batch over several buckets of a campaign: one of its buckets refused its part (too few
    /// units, or paused or closed). Nothing was written; the group commit writes the batch's
    /// wins one by one, each answered by its own bucket's guard.
    #[error("a bucket refused its part of the batch")]
    BatchRefused,
    /// The win would take its user past the group's limit in MySQL (`group_holding`), which the
    /// gate had not seen (docs/design.md §22). Nothing was written. In a batch of several users'
    /// wins the batch answers [`WriteError::BatchRefused`] and each win is written alone.
    #[error("the user holds {held} of the group's {limit} units already")]
    GroupLimit { limit: i32, held: i64 },
    /// The win's row counts another generation of its gate than the reservation carries: the
    /// gate that made it was lost (a flush, a restart) and a rebuild has read the row since
    /// (docs/design.md §2.1). Committed now, the win could carry a sequence the rebuilt gate
    /// hands out again. Nothing was written; in a batch whose reservations come from gates of
    /// several generations, each win is then written alone.
    #[error("the reservation's gate was rebuilt (the row counts gate generation {row_gen})")]
    GateLost { row_gen: i64 },
    /// Another request with this user's Idempotency-Key committed its purchase first.
    #[error("a purchase with this Idempotency-Key exists")]
    KeyUsed,
}

/// A MySQL error across instances: its text, read back as [`DbErr::Custom`] (the origin only
/// logs it and answers as for any failure before the commit).
pub(super) mod db_text {
    use sea_orm::DbErr;
    use serde::{Deserialize, Deserializer, Serializer};

    /// The error's text; a custom one's own (read back, it is custom again, not said twice).
    pub fn text(e: &DbErr) -> String {
        match e {
            DbErr::Custom(text) => text.clone(),
            other => other.to_string(),
        }
    }

    pub fn serialize<S: Serializer>(e: &DbErr, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&text(e))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DbErr, D::Error> {
        String::deserialize(d).map(DbErr::Custom)
    }
}

/// Why a write did not commit, and the win it is about: the one whose campaign refused it, or
/// the first (a refusal of the whole).
#[derive(Debug)]
pub struct Refused {
    pub index: usize,
    pub error: WriteError,
}

impl From<DbErr> for Refused {
    fn from(e: DbErr) -> Self {
        Self::whole(e.into())
    }
}

impl From<WriteError> for Refused {
    fn from(e: WriteError) -> Self {
        Self::whole(e)
    }
}

impl Refused {
    pub(super) fn whole(error: WriteError) -> Self {
        Self { index: 0, error }
    }
}
