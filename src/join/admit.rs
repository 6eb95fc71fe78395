//! Admission: the campaign checks both participation paths make before anything is reserved or
//! written ([`check_campaign`]: the campaign exists, its window is open, the quantity is within its limit).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::{
    campaign::{Campaign, CampaignCache, Window},
    db::Db,
    join::request::{JoinError, JoinRequest},
};

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
