//! The synchronous baseline (docs/design.md §6), kept to show what the outbox fixes: no Redis, the
//! campaign row locked with `SELECT … FOR UPDATE` for the whole check-and-write, commit, then a
//! produce to Kafka awaited before answering. It writes no outbox row, so when Kafka fails after
//! the commit the event is lost: that is logged and counted (`syncEventsLost`), never retried.

use crate::db::{sql::stmt, time::to_db};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use crate::events::lifecycle::ParticipationMessage;

use crate::{
    campaign::{Campaign, CampaignCache},
    config::Settings,
    db::{
        error::{self as db_error, DbErrorKind},
        Db,
    },
    events::{accepted::WinStatus, ParticipationAccepted},
    join::{
        admit::check_campaign,
        request::{detached, existing, Accepted, AdmissionRefusal, JoinError, JoinRequest},
        ParticipationService,
    },
    kafka::{producer::Outgoing, Producers},
    telemetry::metrics::{registry::PathLabels, Metrics, ParticipationPath},
    win::{
        status::at_acceptance,
        store::{find, StoredParticipation},
    },
    write::rows::{accepted_event, Accepting, WinFacts},
};

#[derive(Clone)]
pub struct SyncParticipationService {
    pub db: Db,
    pub campaigns: Arc<CampaignCache>,
    pub producers: Producers,
    pub topic: Arc<str>,
    pub metrics: Arc<Metrics>,
    /// `KAFKA_MESSAGE_TIMEOUT_MS`: bounds the wait for room in the producer's queue, as the
    /// producer's own `message.timeout.ms` bounds the delivery.
    pub send_timeout: std::time::Duration,
    /// The outbox path's bot check: with `BOT_CHECK_ON_JOIN` the baseline's joins pass it too
    /// (a baseline for comparison is no side door, docs/design.md §16).
    pub bot: crate::bot_check::BotCheck,
}

impl SyncParticipationService {
    /// Beside the outbox path: the same pool and campaign cache, the main producer, and
    /// `KAFKA_MESSAGE_TIMEOUT_MS` as its send deadline.
    pub fn new(
        db: &Db,
        outbox_path: &ParticipationService,
        producers: &Producers,
        metrics: &Arc<Metrics>,
        settings: &Settings,
    ) -> Self {
        Self {
            db: db.clone(),
            campaigns: outbox_path.campaigns(),
            producers: producers.clone(),
            topic: settings.kafka.topic.as_str().into(),
            metrics: metrics.clone(),
            send_timeout: settings.kafka.message_timeout,
            bot: outbox_path.bot_check(),
        }
    }
}

enum SyncOutcome {
    Won {
        participation_id: i64,
        sequence: i64,
    },
    SoldOut,
    /// Paused by an admin (the cached campaign may not know it yet; the locked row does).
    Paused,
    /// Closed early by an admin.
    Closed,
    /// The user's existing win, read back (`None` if it vanished since the duplicate key).
    Already(Option<StoredParticipation>),
}

impl SyncParticipationService {
    #[tracing::instrument(level = "debug", skip_all, fields(campaign_id = req.entry.campaign_id, user_id = req.entry.user_id, quantity = req.entry.quantity))]
    pub async fn join(&self, req: JoinRequest) -> Result<Accepted, JoinError> {
        let (campaign, now) = check_campaign(&self.campaigns, &self.db, &req).await?;
        // The waiting room's admissions live in Redis, which this path does not use: a campaign
        // with one is joined through the outbox path only.
        if campaign.admission.queued() {
            return Err(AdmissionRefusal::Required.counted(&self.metrics).into());
        }
        if campaign.buckets > 1 {
            return Err(JoinError::BucketedOnSyncPath(campaign.id));
        }
        if campaign.group_id.is_some() {
            return Err(JoinError::GroupedOnSyncPath(campaign.id));
        }
        (self
            .bot
            .pass(campaign.id, req.bot_check.as_deref(), None)
            .await)
            .map_err(JoinError::BotCheck)?;
        // Like the outbox path, the commit-then-produce runs where a hang-up cannot cut it.
        let this = self.clone();
        detached(async move { this.commit_then_produce(req, now, &campaign).await }).await
    }

    async fn commit_then_produce(
        &self,
        req: JoinRequest,
        now: DateTime<Utc>,
        campaign: &Campaign,
    ) -> Result<Accepted, JoinError> {
        let reward_points = campaign.reward_points;
        let (status, hold_expires_at) = at_acceptance(campaign.confirm_within_seconds, now);
        let started = std::time::Instant::now();
        let written = self.write(&req, now, (status, hold_expires_at)).await;
        self.metrics
            .transaction_duration
            .get_or_create(&PathLabels {
                path: ParticipationPath::Sync.as_str(),
            })
            .observe(started.elapsed().as_secs_f64());
        let (participation_id, sequence) = match written {
            Ok(SyncOutcome::Won {
                participation_id,
                sequence,
            }) => (participation_id, sequence),
            Ok(SyncOutcome::SoldOut) => return Err(JoinError::SoldOut),
            Ok(SyncOutcome::Paused) => return Err(JoinError::Paused),
            Ok(SyncOutcome::Closed) => return Err(JoinError::Ended),
            Ok(SyncOutcome::Already(found)) => return existing(&req, found),
            Err(e) => return Err(e.into()),
        };
        let event_id = Uuid::now_v7();
        let facts = WinFacts {
            event_id,
            participation_id,
            sequence,
            reward_points,
            state: (status, hold_expires_at),
        };
        let accepting = Accepting {
            at: now,
            purchase_id: None,
        };
        let event = accepted_event(&req.entry, facts, accepting);
        let traceparent = req.trace.map(|t| t.to_string());
        if let Err(e) = self.produce(&event, traceparent.as_deref()).await {
            // Committed, but the event is gone: nothing will ever send it again.
            self.metrics.sync_events_lost.inc();
            tracing::error!(%event_id, participation_id, error = %e,
                "Sync path: the participation is committed but its event was lost (no outbox).");
        }
        Ok(
            Accepted::new(&req, participation_id, sequence, Some(event_id), now)
                .with_status(status.into(), hold_expires_at),
        )
    }

    /// Lock the campaign row, check, decrement, insert, commit.
    async fn write(
        &self,
        req: &JoinRequest,
        now: DateTime<Utc>,
        (status, hold_expires_at): (WinStatus, Option<DateTime<Utc>>),
    ) -> Result<SyncOutcome, DbErr> {
        let txn = self.db.begin().await?;
        let row = txn
            .query_one_raw(stmt(
                "SELECT total_stock, remaining_stock, paused, closed_at IS NOT NULL \
                 FROM campaign WHERE id = ? FOR UPDATE",
                vec![req.entry.campaign_id.into()],
            ))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("campaign {}", req.entry.campaign_id)))?;
        let total: i64 = row.try_get_by_index(0)?;
        let remaining: i64 = row.try_get_by_index(1)?;
        let paused: bool = row.try_get_by_index(2)?;
        let closed: i64 = row.try_get_by_index(3)?;
        if closed != 0 || paused {
            txn.rollback().await?;
            return Ok(if closed != 0 {
                SyncOutcome::Closed
            } else {
                SyncOutcome::Paused
            });
        }
        if let Some(found) = find(&txn, req.entry.campaign_id, req.entry.user_id).await? {
            txn.rollback().await?;
            return Ok(SyncOutcome::Already(Some(found)));
        }
        if remaining < i64::from(req.entry.quantity) {
            txn.rollback().await?;
            return Ok(SyncOutcome::SoldOut);
        }
        // FCFS rank by units sold before this one (no Redis sequence on this path).
        let sequence = total - remaining + 1;
        txn.execute_raw(stmt(
            "UPDATE campaign SET remaining_stock = remaining_stock - ?, accepted_count = accepted_count + 1, updated_at = ? WHERE id = ?",
            vec![req.entry.quantity.into(), to_db(now).into(), req.entry.campaign_id.into()],
        ))
        .await?;
        let inserted = txn
            .execute_raw(stmt(
                "INSERT INTO participation (campaign_id, user_id, quantity, sequence, created_at, idempotency_key, \
                 status, hold_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                vec![
                    req.entry.campaign_id.into(),
                    req.entry.user_id.into(),
                    req.entry.quantity.into(),
                    sequence.into(),
                    to_db(now).into(),
                    req.idempotency_key.clone().into(),
                    status.as_str().into(),
                    hold_expires_at.map(to_db).into(),
                ],
            ))
            .await;
        let participation_id = match inserted {
            Ok(res) => {
                i64::try_from(res.last_insert_id()).map_err(|e| DbErr::Custom(e.to_string()))?
            }
            Err(e) if db_error::kind(&e) == DbErrorKind::UniqueViolation => {
                txn.rollback().await?;
                let found = find(&self.db, req.entry.campaign_id, req.entry.user_id).await?;
                return Ok(SyncOutcome::Already(found));
            }
            Err(e) => return Err(e),
        };
        txn.commit().await?;
        Ok(SyncOutcome::Won {
            participation_id,
            sequence,
        })
    }

    async fn produce(
        &self,
        event: &ParticipationAccepted,
        traceparent: Option<&str>,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let payload = event.json();
        let headers = crate::events::headers::to_kafka(&event.message_headers(traceparent), &[]);
        let key = event.key();
        let message = Outgoing {
            topic: &self.topic,
            key: Some(key.as_bytes()),
            payload: Some(payload.as_bytes()),
            headers,
        };
        let producer = self.producers.sync.get();
        match producer
            .send_and_wait(message, Some(self.send_timeout))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                self.producers.sync.replace_if_fatal(&producer);
                Err(e)
            }
        }
    }
}
