//! In-process cache of campaigns for the participation path.
//!
//! The fields the hot path reads (window, per-user limit) never change after creation, so a
//! cached copy stays right; its `remaining_stock` is stale by design and is never used for a
//! decision (Redis and the MySQL guard decide). Unknown ids are not cached, so a campaign
//! created on another instance is found on its first request.

use std::{collections::HashMap, sync::Arc};

use sea_orm::DbErr;
use tokio::sync::RwLock;

use crate::{
    campaign::{repo, Campaign},
    db::Db,
};

/// Bound on cached campaigns; past it the cache starts over (campaigns are few and cheap to load).
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct CampaignCache {
    entries: RwLock<HashMap<i64, Arc<Campaign>>>,
}

impl CampaignCache {
    pub async fn get(&self, db: &Db, id: i64) -> Result<Option<Arc<Campaign>>, DbErr> {
        if let Some(c) = self.entries.read().await.get(&id) {
            return Ok(Some(c.clone()));
        }
        // Boxed: a miss is rare, and its query's future would otherwise be part of every
        // join's future (moved and boxed on every request).
        Box::pin(self.load(db, id)).await
    }

    /// A campaign read from MySQL and cached.
    async fn load(&self, db: &Db, id: i64) -> Result<Option<Arc<Campaign>>, DbErr> {
        let Some(found) = repo::find(db, id).await? else {
            return Ok(None);
        };
        Ok(Some(self.insert(found.campaign).await))
    }

    /// The campaign if it is cached here; never reads MySQL.
    pub async fn cached(&self, id: i64) -> Option<Arc<Campaign>> {
        self.entries.read().await.get(&id).cloned()
    }

    /// The ids of the campaigns cached here (those this instance has served).
    pub async fn ids(&self) -> Vec<i64> {
        self.entries.read().await.keys().copied().collect()
    }

    pub async fn insert(&self, campaign: Campaign) -> Arc<Campaign> {
        let campaign = Arc::new(campaign);
        let mut entries = self.entries.write().await;
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(campaign.id, campaign.clone());
        campaign
    }
}
