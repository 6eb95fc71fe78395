//! [`CampaignService`]: what the campaigns resource does with campaigns: create, list a page,
//! find one. A new campaign is readied for its first burst by the participation service
//! (`ParticipationService::prime`), which the API calls after `create`.

use sea_orm::DbErr;

use crate::{
    campaign::repo::{self, CampaignWithCount, NewCampaign},
    db::Db,
};

/// Campaigns in MySQL, over the API's pool. Cheap to clone.
#[derive(Clone)]
pub struct CampaignService {
    db: Db,
}

impl CampaignService {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Stores a campaign whose fields were validated; returns it as stored.
    pub async fn create(&self, new: &NewCampaign) -> Result<CampaignWithCount, DbErr> {
        repo::insert(&self.db, new).await
    }

    /// Up to `limit` campaigns, newest first, older than `before` (the previous page's last id).
    pub async fn page(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CampaignWithCount>, DbErr> {
        repo::list(&self.db, before, limit).await
    }

    pub async fn find(&self, id: i64) -> Result<Option<CampaignWithCount>, DbErr> {
        repo::find(&self.db, id).await
    }

    pub async fn exists(&self, id: i64) -> Result<bool, DbErr> {
        Ok(self.find(id).await?.is_some())
    }
}
