//! Admission: everything a request passes before anything is written. The campaign checks both
//! paths make ([`admit`]: exists, window open, quantity within the limit), and on the outbox
//! path the Redis gate's reservation (rebuilding the campaign's keys when they are missing), the
//! sold-out memo, and the answer for a user who already won.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{
    join::{JoinError, JoinRequest},
    service::{ParticipationService, LOAD_ROUNDS},
    store,
};
use crate::{
    campaign::{db_precision, Campaign, CampaignCache, Window},
    db::Db,
    gate::{loader, Decision},
};

/// The checks both participation paths make before anything is reserved or written: the
/// campaign exists (cached), its window is open now, the quantity is within its limit.
pub(crate) async fn admit(
    campaigns: &CampaignCache,
    db: &Db,
    req: &JoinRequest,
) -> Result<(Arc<Campaign>, DateTime<Utc>), JoinError> {
    let entry = &req.entry;
    let campaign = campaigns
        .get(db, entry.campaign_id)
        .await?
        .ok_or(JoinError::CampaignNotFound(entry.campaign_id))?;
    let now = db_precision(Utc::now());
    match campaign.window(now) {
        Window::NotOpen => return Err(JoinError::NotOpen(campaign.starts_at)),
        Window::Ended => return Err(JoinError::Ended),
        Window::Open => {}
    }
    if entry.quantity > campaign.per_user_limit {
        return Err(JoinError::OverLimit {
            quantity: entry.quantity,
            limit: campaign.per_user_limit,
        });
    }
    Ok((campaign, now))
}

impl ParticipationService {
    /// One EVALSHA; when the campaign's keys are missing (first request, eviction, Redis restart),
    /// wait for the instance's one rebuild of them ([`GateLoader`]) and ask again. The keys can
    /// vanish again between the rebuild and the retry (another eviction), so a few rounds are
    /// allowed.
    pub(super) async fn reserve(
        &self,
        campaign: &Arc<Campaign>,
        req: &JoinRequest,
        now: DateTime<Utc>,
    ) -> Result<Decision, JoinError> {
        let now_ms = now.timestamp_millis();
        let epoch = loader::epoch(campaign);
        for _ in 0..LOAD_ROUNDS {
            let started = std::time::Instant::now();
            let decision = self.gate.reserve(&req.entry, epoch, now_ms).await;
            self.metrics
                .gate_duration
                .observe(started.elapsed().as_secs_f64());
            let decision = decision?;
            if decision != Decision::Missing {
                return Ok(decision);
            }
            self.loader.ensure(campaign).await?;
        }
        Ok(Decision::Missing)
    }

    /// Notes a sold-out campaign in the memo, copying the winners set when it changed (one
    /// caller at a time). Best effort: without the copy the memo simply does not answer for the
    /// campaign.
    pub(super) async fn remember_sold_out(&self, campaign_id: i64, winners: i64) {
        if self.sold_out.refresh(campaign_id, winners) {
            return;
        }
        let Some(copy) = self.sold_out.start_copy(campaign_id) else {
            return;
        };
        match self.gate.winners(campaign_id).await {
            // Fewer members than Redis counted with its SOLD_OUT answer: the keys were lost in
            // between (eviction, flush). Such a copy would refuse past winners SOLD_OUT instead
            // of ALREADY_PARTICIPATED; a larger set only sends more users on to Redis.
            Ok(set) if (set.len() as i64) < winners => {
                tracing::debug!(
                    copied = set.len(),
                    winners,
                    "The winners set shrank while copied; no sold-out memo."
                );
            }
            Ok(set) => copy.record(set),
            Err(e) => {
                tracing::debug!(error = %e, "Could not copy the winners set; no sold-out memo.")
            }
        }
    }

    /// ALREADY_PARTICIPATED carries the existing participation id when it is committed.
    pub(super) async fn already(&self, req: &JoinRequest) -> JoinError {
        let participation_id =
            match store::find(&self.db, req.entry.campaign_id, req.entry.user_id).await {
                Ok(found) => found.map(|p| p.id),
                Err(e) => {
                    tracing::warn!(error = %e, "Could not look up the existing participation.");
                    None
                }
            };
        JoinError::AlreadyParticipated { participation_id }
    }
}
