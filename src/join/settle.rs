//! The join's last step, settle (docs/design.md §6): past the gate, the win is written through
//! its campaign's group commit (here, or on the instance that writes the campaign:
//! `write::writer`), or its reservation is given back in Redis (compensation); a
//! write whose answer was lost is resolved by asking MySQL whether the win is there. A user the
//! gate already knows is answered from MySQL here too.
//!
//! A purchase (`join::cart`) settles through the same step: its write ([`Settle::write_purchase`]),
//! the one mapping from a write's refusal to how a reservation goes back and what is answered
//! ([`Settle::refusal`]), the same compensation and the same settlement of a commit in doubt.

use std::{sync::Arc, time::Duration};

use sea_orm::DbErr;
use uuid::Uuid;

use crate::outbox::Sink;
use crate::{
    campaign::Campaign,
    db::Db,
    gate::{reservation_value, AdmissionPass, Entry, Gate, Release},
    join::request::{existing, Accepted, JoinError, JoinRequest, Reserved},
    telemetry::metrics::{
        registry::{PathLabels, ReasonLabels},
        Metrics, ParticipationPath,
    },
    waiting_room::buckets::{report_admission, AdmissionReport},
    win::store,
    write::{
        error::{Refused, WriteError},
        in_doubt::{InDoubt, Verdict},
        rows::{NewParticipation, PurchaseRow, Written},
        transaction::Committed as Wrote,
        writer::Writers,
    },
};

/// Attempts at compensating before the reservation is given up as leaked (and logged as such).
const RELEASE_ATTEMPTS: u32 = 3;

/// Lookups of a win still being written, for a retry with an `Idempotency-Key` (25 ms doubling:
/// about 1.5 s in all, past a group commit's transaction under load).
const IN_FLIGHT_LOOKUPS: u32 = 6;

/// What settling a reservation came to.
pub(super) enum Settled {
    /// The join's answer.
    Answer(Result<Accepted, JoinError>),
    /// A bucketed campaign's bucket row had fewer units than its gate gave out (the gate ran
    /// ahead of the row: a steal that committed after a rebuild had counted its units, say).
    /// Unlike a campaign's row, a bucket's says nothing about the campaign (docs/design.md §21):
    /// the reservation is given back as a sell-out of the bucket (its gate set from the row), and
    /// the join asks its bucket again, which looks in the pool and the siblings when dry. The
    /// request comes back for that.
    BucketShort(JoinRequest),
}

/// The settle step: MySQL through the group commit, the gate for compensation.
pub struct Settle {
    db: Db,
    gate: Gate,
    /// Where a join's win is written: here, or by its campaign's writer (docs/design.md §23);
    /// its group commit (several wins of a campaign per transaction under load) also writes
    /// purchases.
    writers: Arc<Writers>,
    /// Where the wins' events go: the topic their outbox rows name, and the relay's wakeup
    /// after each commit (a no-op with no relay listening).
    sink: Sink,
    /// Transaction latencies.
    metrics: Arc<Metrics>,
}

/// What a write that did not commit comes to for one win, a join's or a purchase's item's.
pub enum Refusal {
    /// Nothing was written: the reservation goes back `how`, and the win is answered `answer`
    /// (`AlreadyParticipated` without an id: the caller may look it up).
    Back { how: Release, answer: JoinError },
    /// The COMMIT went unanswered: its settlement ([`InDoubt`]) decides, and has started.
    InDoubt(Arc<InDoubt>),
    /// The batch's task ended without an answer: MySQL says whether the win is there.
    Unanswered(DbErr),
}

impl Settle {
    pub(super) fn new(
        db: Db,
        gate: Gate,
        writers: Arc<Writers>,
        sink: Sink,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            db,
            gate,
            writers,
            sink,
            metrics,
        }
    }

    /// The database the wins are written to (reads of what was written).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Where a join's win is written.
    pub fn writers(&self) -> &Writers {
        &self.writers
    }

    /// The gate the reservations go back to.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The topic the wins' events name.
    pub fn topic(&self) -> Arc<str> {
        self.sink.topic.clone()
    }

    /// Wins of the campaign queued for its next group-commit transaction.
    pub fn queued(&self, campaign_id: i64) -> usize {
        self.writers.group_commit().queued(campaign_id)
    }

    /// Writes a purchase's items and its row in one transaction (docs/design.md §22), and wakes
    /// the relay once it committed.
    pub async fn write_purchase(
        &self,
        items: &[NewParticipation],
        row: &PurchaseRow,
    ) -> Result<Wrote, Refused> {
        let written = (self.writers.group_commit())
            .write_purchase(items, row)
            .await;
        if written.is_ok() {
            self.sink.wakeup.notify_one();
        }
        written
    }

    /// Settlement: the win is written (group commit), or the reservation is given back.
    pub(super) async fn commit_or_compensate(
        &self,
        req: JoinRequest,
        pass: Option<&AdmissionPass>,
        reserved: Reserved,
        campaign: &Campaign,
    ) -> Settled {
        let Reserved {
            sequence,
            returns_seen,
            gate_gen,
            reserved_at_ms,
            commit_by,
            group,
        } = reserved;
        let event_id = Uuid::now_v7();
        let sequence = crate::bucket::sequence(sequence, req.entry.bucket, campaign.buckets);
        let participation = NewParticipation {
            entry: req.entry,
            sequence,
            gate_gen,
            reward_points: campaign.reward_points,
            event_id,
            topic: self.sink.topic.clone(),
            traceparent: req.trace.map(|t| t.to_string()),
            idempotency_key: req.idempotency_key.clone(),
            confirm_within_seconds: campaign.confirm_within_seconds,
            commit_by,
            ends_at: campaign.ends_at,
            reserved_at_ms,
            group,
        };
        match self.write(participation).await {
            Ok(Written {
                participation_id,
                accepted_at,
                status,
                hold_expires_at,
            }) => {
                // The batch settled the reservation in Redis already (see `group_commit`), and
                // the writer woke its relay.
                if let (Some(pass), true) = (pass, campaign.buckets > 1) {
                    report_admission(
                        &self.gate,
                        campaign,
                        (&pass.ticket, req.entry.user_id),
                        AdmissionReport::Used,
                    );
                }
                Settled::Answer(Ok(Accepted::new(
                    &req,
                    participation_id,
                    sequence,
                    Some(event_id),
                    accepted_at,
                )
                .with_status(status.into(), hold_expires_at)))
            }
            Err(WriteError::SoldOut {
                remaining_stock,
                control_seq,
            }) if req.entry.bucket.is_some() => {
                tracing::debug!(campaign_id = req.entry.campaign_id, slot = %req.entry.slot(),
                    remaining_stock, "The bucket's row refused a reservation its gate made; asking the bucket again.");
                let how = Release::SoldOut {
                    remaining_stock,
                    control_seq,
                    returns_seen,
                };
                self.compensate(&req, pass, how, reserved_at_ms).await;
                Settled::BucketShort(req)
            }
            Err(failed) => Settled::Answer(
                self.failed_write(req, pass, failed, returns_seen, reserved_at_ms)
                    .await,
            ),
        }
    }

    /// A write that did not commit a win: the reservation goes back as the failure says (whole,
    /// keeping the user, as a sell-out, or only while still this request's), and the join is
    /// answered; a write whose outcome is unknown asks MySQL first.
    async fn failed_write(
        &self,
        req: JoinRequest,
        pass: Option<&AdmissionPass>,
        failed: WriteError,
        returns_seen: i64,
        reserved_at_ms: i64,
    ) -> Result<Accepted, JoinError> {
        match self.refusal(failed, &req.entry, returns_seen) {
            Refusal::Back { how, answer } => {
                self.compensate(&req, pass, how, reserved_at_ms).await;
                match answer {
                    JoinError::AlreadyParticipated { .. } => self.already(&req).await,
                    answer => Err(answer),
                }
            }
            Refusal::InDoubt(batch) => self.await_in_doubt(req, &batch).await,
            Refusal::Unanswered(e) => self.resolve_unknown(req, pass, e, reserved_at_ms).await,
        }
    }

    /// The one mapping from a write that did not commit to how the reservation of the win
    /// `entry` goes back and what it is answered, for a join and a purchase's item alike; logged
    /// and counted here. `returns_seen` is what the gate's reservation saw (a sell-out goes back
    /// with it, see `Release::SoldOut`).
    pub fn refusal(&self, failed: WriteError, entry: &Entry, returns_seen: i64) -> Refusal {
        let (how, answer) = match failed {
            WriteError::Duplicate => (
                Release::KeepUser,
                JoinError::AlreadyParticipated {
                    participation_id: None,
                },
            ),
            // The gate ran ahead of the row: it takes the row's stock. A bucket's row says
            // nothing about the campaign (units may be in the siblings): SERVICE_BUSY. (A join's
            // bucket asks its gate again before it comes here, see `Settled::BucketShort`.)
            WriteError::SoldOut {
                remaining_stock,
                control_seq,
            } => (
                Release::SoldOut {
                    remaining_stock,
                    control_seq,
                    returns_seen,
                },
                match entry.bucket {
                    None => JoinError::SoldOut,
                    Some(_) => JoinError::Busy,
                },
            ),
            // The group's limit in MySQL, which the gate had not seen (a campaign list read
            // before the newest campaign joined the group).
            WriteError::GroupLimit { limit, held } => self.past_group_limit(entry, limit, held),
            // The gate that made the reservation was lost and rebuilt: the reservation goes back
            // if the live gate has it, the live gate takes the row's generation, and the user
            // may join again (the request went unanswered by a Redis fault, 503).
            lost @ WriteError::GateLost { row_gen } => {
                tracing::warn!(campaign_id = entry.campaign_id, user_id = entry.user_id, row_gen,
                    "A win's gate was rebuilt while it was in flight; not written, the user may join again.");
                let answer = JoinError::Unavailable {
                    what: "Redis",
                    source: lost.into(),
                };
                (Release::GateLost { row_gen }, answer)
            }
            // A pause or close the gate had not received: MySQL refuses the win, and the
            // reservation goes back whole (units and user).
            WriteError::Paused => (Release::Undo, JoinError::Paused),
            WriteError::Closed => (Release::Undo, JoinError::Ended),
            // Too late to commit: the reconciler may have given the reservation back already, so
            // it goes back only if it is still exactly this request's.
            stale @ WriteError::Stale => {
                tracing::warn!(campaign_id = entry.campaign_id, user_id = entry.user_id,
                    "A win reached MySQL past its commit deadline; not written, its reservation given back.");
                let answer = JoinError::Unavailable {
                    what: "MySQL",
                    source: stale.into(),
                };
                (Release::Expire, answer)
            }
            WriteError::InDoubt(batch) => return Refusal::InDoubt(batch),
            unanswered @ WriteError::Unanswered => {
                return Refusal::Unanswered(DbErr::Custom(unanswered.to_string()))
            }
            // Failed before its COMMIT was sent: dropped unfinished, it never commits. (A
            // refused batch is never one win's answer: the group commit writes its wins one by
            // one; a purchase's taken key is the purchase's to answer.)
            failed @ (WriteError::Db(_) | WriteError::BatchRefused | WriteError::KeyUsed) => {
                let e = match failed {
                    WriteError::Db(e) => e,
                    refused => DbErr::Custom(refused.to_string()),
                };
                tracing::warn!(error = %e, campaign_id = entry.campaign_id, user_id = entry.user_id,
                    "The participation transaction failed; releasing the reservation.");
                (Release::Undo, e.into())
            }
        };
        Refusal::Back { how, answer }
    }

    /// MySQL's guard of the group's limit refused a win the gate had let through (a campaign
    /// list read before the newest campaign joined the group): counted, and given back whole.
    fn past_group_limit(&self, entry: &Entry, limit: i32, held: i64) -> (Release, JoinError) {
        tracing::info!(
            campaign_id = entry.campaign_id,
            user_id = entry.user_id,
            held,
            limit,
            "MySQL's guard refused a win past the group's limit that the gate had let through."
        );
        (self.metrics.group_limit_refused)
            .get_or_create(&ReasonLabels { reason: "MYSQL" })
            .inc();
        (Release::Undo, JoinError::GroupLimit { limit, held })
    }

    /// One win's write through its campaign's group commit, here or at its writer, timed from
    /// queueing to the answer.
    async fn write(&self, participation: NewParticipation) -> Result<Written, WriteError> {
        let started = std::time::Instant::now();
        let written = self.writers.write(participation).await;
        self.metrics
            .transaction_duration
            .get_or_create(&PathLabels {
                path: ParticipationPath::Outbox.as_str(),
            })
            .observe(started.elapsed().as_secs_f64());
        written
    }

    /// The batch's COMMIT went unanswered: its settlement ([`in_doubt`]) ends the session, reads
    /// which wins exist and gives back the others' units. The request answers from its verdict
    /// if it comes within the statement deadline; otherwise 503, and the settlement goes on.
    async fn await_in_doubt(
        &self,
        req: JoinRequest,
        batch: &InDoubt,
    ) -> Result<Accepted, JoinError> {
        let entry = req.entry;
        match batch
            .verdict(
                entry.campaign_id,
                entry.user_id,
                self.db.statement_timeout(),
            )
            .await
        {
            Some(Verdict::Committed(found)) => {
                tracing::info!(
                    campaign_id = entry.campaign_id,
                    user_id = entry.user_id,
                    "The participation committed although its answer was lost."
                );
                Ok(Accepted::stored(&req, &found))
            }
            Some(Verdict::Earlier(participation_id)) => Err(JoinError::AlreadyParticipated {
                participation_id: Some(participation_id),
            }),
            Some(Verdict::NotCommitted) => Err(batch.error().clone().into()),
            None => {
                tracing::warn!(error = %batch.error(), campaign_id = entry.campaign_id, user_id = entry.user_id,
                    "The participation's commit is in doubt; its reservation is settled once MySQL answers (or, when a writer that took it stopped answering, by the reconciler).");
                Err(batch.error().clone().into())
            }
        }
    }

    /// The batch's task ended without an answer (a panic): the transaction may have committed.
    /// MySQL says which. A win found there is the caller's win; no row means nothing was
    /// written and the reservation is given back. If MySQL cannot say either (still down), the
    /// reservation stays open and the reconciler decides once MySQL answers, so Redis never
    /// gives back stock that MySQL has sold.
    async fn resolve_unknown(
        &self,
        req: JoinRequest,
        pass: Option<&AdmissionPass>,
        e: DbErr,
        reserved_at_ms: i64,
    ) -> Result<Accepted, JoinError> {
        let entry = req.entry;
        match store::find(&self.db, entry.campaign_id, entry.user_id).await {
            Ok(Some(found)) if found.quantity == entry.quantity => {
                tracing::info!(
                    campaign_id = entry.campaign_id,
                    user_id = entry.user_id,
                    "The participation committed although its answer was lost."
                );
                if let Err(e) = self.gate.settle(entry.slot(), &[(&entry).into()]).await {
                    tracing::debug!(error = %e, "Could not close the reservation; the reconciler will.");
                }
                Ok(Accepted::stored(&req, &found))
            }
            Ok(Some(other)) => {
                // An earlier win of this user (the gate had lost track of it).
                self.compensate(&req, pass, Release::KeepUser, reserved_at_ms)
                    .await;
                Err(JoinError::AlreadyParticipated {
                    participation_id: Some(other.id),
                })
            }
            Ok(None) => {
                tracing::warn!(error = %e, campaign_id = entry.campaign_id, user_id = entry.user_id,
                    "The participation transaction failed; releasing the reservation.");
                self.compensate(&req, pass, Release::Undo, reserved_at_ms)
                    .await;
                Err(e.into())
            }
            Err(lookup) => {
                tracing::warn!(error = %e, lookup = %lookup, campaign_id = entry.campaign_id, user_id = entry.user_id,
                    "The participation transaction's outcome is unknown; the reconciler settles its reservation.");
                Err(e.into())
            }
        }
    }

    /// Gives back the request's reservation, the one stamped `reserved_at_ms`, while it is still
    /// open (see [`reservation_value`]). Retried a few times; if Redis stays unreachable the
    /// reservation is leaked (Redis then undercounts the stock until its keys are rebuilt) and
    /// logged. The admission `pass` the reservation used is live again when nothing was written.
    pub async fn compensate(
        &self,
        req: &JoinRequest,
        pass: Option<&AdmissionPass>,
        how: Release,
        reserved_at_ms: i64,
    ) {
        let reservation = reservation_value(reserved_at_ms, req.entry.quantity);
        let mut delay = Duration::from_millis(20);
        for attempt in 1..=RELEASE_ATTEMPTS {
            match self
                .gate
                .release(&req.entry, pass, how.clone(), &reservation)
                .await
            {
                Ok(_) => return,
                Err(e) if attempt == RELEASE_ATTEMPTS => {
                    tracing::error!(error = %e, campaign_id = req.entry.campaign_id, user_id = req.entry.user_id, ?how,
                        "Compensation failed; the reconciler gives the reservation back later.");
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
            }
        }
    }

    /// The gate knows the user: their win (a retry with its `Idempotency-Key`), or
    /// ALREADY_PARTICIPATED with the existing participation id when it is committed. A retry
    /// with a key that finds nothing yet may have overtaken its first request (whose answer the
    /// client gave up on): the lookup is repeated for a moment, until that write has settled.
    pub(super) async fn already(&self, req: &JoinRequest) -> Result<Accepted, JoinError> {
        let mut delay = Duration::from_millis(25);
        for round in 0..=IN_FLIGHT_LOOKUPS {
            match store::find(&self.db, req.entry.campaign_id, req.entry.user_id).await {
                Ok(None) if req.idempotency_key.is_some() && round < IN_FLIGHT_LOOKUPS => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Ok(found) => return existing(req, found),
                Err(e) => {
                    tracing::warn!(error = %e, "Could not look up the existing participation.");
                    break;
                }
            }
        }
        Err(JoinError::AlreadyParticipated {
            participation_id: None,
        })
    }
}
