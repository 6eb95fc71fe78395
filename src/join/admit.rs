//! The join's first step, admit (docs/design.md §6, §16): the campaign checks both participation
//! paths make before anything is reserved or written ([`check_campaign`]: the campaign exists,
//! its window is open, the quantity is within its limit); for the outbox path also the waiting
//! room's admission token (its signature; whether it is live and unused is the gate's to say)
//! and the sold-out memo ([`Admit`]); the bot check: an admission's ticket carries its pass, and
//! with `BOT_CHECK_ON_JOIN` an `OPEN` campaign's join shows one itself.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::{
    bot_check::{BotCheck, BotRefusal},
    campaign::{Campaign, CampaignCache, Window},
    db::Db,
    gate::{sold_out::SoldOutMemo, AdmissionPass},
    join::request::{AdmissionRefusal, JoinError, JoinRequest},
    telemetry::metrics::Metrics,
    waiting_room::{AdmissionSigner, TokenRefusal},
};

/// The admit step of the outbox path: what it reads before the gate is asked.
pub struct Admit {
    pub(super) db: Db,
    /// The campaign cache every participation-side service shares.
    pub(super) campaigns: Arc<CampaignCache>,
    /// Checks the signature of a waiting room's admission token (docs/design.md §16).
    pub(super) signer: Arc<AdmissionSigner>,
    /// Campaigns seen sold out a moment ago, answered without Redis.
    pub(super) sold_out: Arc<SoldOutMemo>,
    /// Counts refused admissions.
    pub(super) metrics: Arc<Metrics>,
    /// The bot check (`BOT_CHECK`): an admission's ticket must carry its pass, and with
    /// `BOT_CHECK_ON_JOIN` an `OPEN` campaign's join passes it itself.
    pub(super) bot: BotCheck,
}

/// A join the admit step let through: its campaign, the time it is judged at (which stamps the
/// reservation), and the admission pass of a campaign with a waiting room.
pub struct Admitted {
    pub campaign: Arc<Campaign>,
    pub now: DateTime<Utc>,
    pub pass: Option<AdmissionPass>,
}

impl Admit {
    /// The campaign checks, the admission token, the sold-out memo.
    pub(super) async fn run(&self, req: &JoinRequest) -> Result<Admitted, JoinError> {
        let (campaign, now) = check_campaign(&self.campaigns, &self.db, req).await?;
        // Whether its door asks for the bot check now (its own choice, or the service's).
        let asks = self
            .bot
            .asked(campaign.id)
            .await
            .map_err(JoinError::BotCheck)?;
        let pass = self.admission(&campaign, req, asks)?;
        if pass.is_none() && asks {
            (self
                .bot
                .check(campaign.id, req.bot_check.as_deref(), None)
                .await)
                .map_err(JoinError::BotCheck)?;
        }
        if self.sold_out.refuses(campaign.id, req.entry.user_id) {
            tracing::debug!("SOLD_OUT from the sold-out memo");
            return Err(JoinError::SoldOut);
        }
        Ok(Admitted {
            campaign,
            now,
            pass,
        })
    }

    /// The admission a join of a campaign with a waiting room carries, its signature checked
    /// (whether it is live and unused is the gate's to say); `None` for an `OPEN` campaign.
    fn admission(
        &self,
        campaign: &Campaign,
        req: &JoinRequest,
        asks: bool,
    ) -> Result<Option<AdmissionPass>, JoinError> {
        if !campaign.admission.queued() {
            return Ok(None);
        }
        let token = req
            .admission_token
            .as_deref()
            .ok_or_else(|| refused(&self.metrics, AdmissionRefusal::Required))?;
        match self.signer.verify(token, campaign.id, req.entry.user_id) {
            // A ticket issued before the check was switched on carries no pass: where the
            // campaign asks now, it wins nothing (a bot queued before the switch gains nothing).
            Ok(pass)
                if asks
                    && !(self.signer).ticket_passed(
                        campaign.id,
                        req.entry.user_id,
                        &pass.ticket,
                    ) =>
            {
                Err(JoinError::BotCheck(BotRefusal::Missing))
            }
            Ok(pass) => Ok(Some(pass)),
            Err(TokenRefusal::Invalid | TokenRefusal::NotYours) => {
                Err(refused(&self.metrics, AdmissionRefusal::Invalid))
            }
        }
    }
}

/// Counts a refused admission and gives the error.
pub(super) fn refused(metrics: &Metrics, why: AdmissionRefusal) -> JoinError {
    JoinError::Admission(why.counted(metrics))
}

/// The checks both participation paths make before anything is reserved or written: the
/// campaign exists (cached), its window is open now, the quantity is within its limit.
pub(crate) async fn check_campaign(
    campaigns: &CampaignCache,
    db: &Db,
    req: &JoinRequest,
) -> Result<(Arc<Campaign>, DateTime<Utc>), JoinError> {
    let entry = &req.entry;
    let campaign = campaigns
        .get(db, entry.campaign_id)
        .await?
        .ok_or(JoinError::CampaignNotFound(entry.campaign_id))?;
    let now = crate::db::time::precision(Utc::now());
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
