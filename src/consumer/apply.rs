//! Applying one batch: its record (inbox rows, or the effect's own rows) and its effect in one
//! transaction (docs/design.md §11), so "applied" and "recorded" cannot disagree, and a
//! redelivered event is skipped.

use std::{borrow::Cow, collections::HashSet};

use sea_orm::DbErr;
use uuid::Uuid;

use crate::{
    consumer::{inbox, ConsumerReport, Delivered, Handler, Record},
    db::{
        error::{self as db_error, DbErrorKind},
        Db, Txn,
    },
};

/// What applying a batch needs of its consumer.
pub(super) struct Applier<'a> {
    pub db: &'a Db,
    pub consumer: &'a str,
    pub handler: &'a dyn Handler,
    pub report: &'a ConsumerReport,
}

impl Applier<'_> {
    /// One transaction: the record of the events not applied before ([`Record`]) and their
    /// effect. Returns (applied, skipped as duplicates).
    ///
    /// Optimistic first: the batch is recorded and applied without looking its events up (a
    /// redelivery is rare: a crash or a rebalance before the offsets were stored). If one was
    /// recorded before, the insert of its record fails on its key (the inbox's, or the handler's
    /// own), nothing of the transaction stays, and the batch is applied again the careful way
    /// ([`Self::apply_fresh`]).
    pub(super) async fn apply(&self, events: &[Delivered]) -> Result<(usize, usize), DbErr> {
        let mut seen = HashSet::with_capacity(events.len());
        let unique: Vec<&Delivered> = events
            .iter()
            .filter(|d| seen.insert(d.event.event_id()))
            .collect();
        let ids: Vec<Uuid> = unique.iter().map(|d| d.event.event_id()).collect();
        // Normally no event repeats within the batch: the batch itself, uncopied.
        let all: Cow<'_, [Delivered]> = if unique.len() == events.len() {
            Cow::Borrowed(events)
        } else {
            Cow::Owned(unique.iter().map(|d| (*d).clone()).collect())
        };
        let txn = self.db.begin().await?;
        match self.record_and_apply(&txn, &ids, &all).await {
            Ok(()) => {
                txn.commit().await?;
                self.report_applied(&all);
                Ok((all.len(), events.len() - all.len()))
            }
            Err(e) if db_error::kind(&e) == DbErrorKind::UniqueViolation => {
                txn.rollback().await?;
                let fresh = self.apply_fresh(unique, &ids).await?;
                Ok((fresh, events.len() - fresh))
            }
            Err(e) => Err(e),
        }
    }

    /// Applies the events of `unique` (whose ids are `ids`) that the record does not hold, in one
    /// transaction; returns how many.
    async fn apply_fresh(&self, unique: Vec<&Delivered>, ids: &[Uuid]) -> Result<usize, DbErr> {
        let txn = self.db.begin().await?;
        let done = match self.handler.record() {
            Record::Inbox => inbox::applied(&txn, self.consumer, ids).await?,
            Record::Effect { table } => inbox::recorded_in(&txn, table, ids).await?,
        };
        let fresh: Vec<Delivered> = unique
            .into_iter()
            .filter(|d| !done.contains(&d.event.event_id()))
            .cloned()
            .collect();
        if fresh.is_empty() {
            txn.rollback().await?;
            return Ok(0);
        }
        let fresh_ids: Vec<Uuid> = fresh.iter().map(|d| d.event.event_id()).collect();
        self.record_and_apply(&txn, &fresh_ids, &fresh).await?;
        txn.commit().await?;
        self.report_applied(&fresh);
        Ok(fresh.len())
    }

    /// Within `txn`: the inbox rows of `ids` when the inbox is the record, and the effect of
    /// `events` (which writes its own record otherwise).
    async fn record_and_apply(
        &self,
        txn: &Txn,
        ids: &[Uuid],
        events: &[Delivered],
    ) -> Result<(), DbErr> {
        if self.handler.record() == Record::Inbox {
            inbox::record(txn, self.consumer, ids).await?;
        }
        self.handler.apply(txn, events).await
    }

    fn report_applied(&self, applied: &[Delivered]) {
        let now = chrono::Utc::now();
        for d in applied {
            // A producer clock ahead of ours counts as no latency rather than a negative one.
            self.report
                .applied_after((now - d.event.occurred_at()).to_std().unwrap_or_default());
        }
    }
}
