//! Creating and reading groups (docs/design.md §22).

use sea_orm::DbErr;

use crate::{
    db::Db,
    group::{
        repo::{self, NewGroup},
        Group,
    },
};

/// A group with the ids of its campaigns.
#[derive(Debug, Clone)]
pub struct GroupWithCampaigns {
    pub group: Group,
    pub campaign_ids: Vec<i64>,
}

#[derive(Clone)]
pub struct GroupService {
    db: Db,
}

impl GroupService {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Stores a group whose fields were validated.
    pub async fn create(&self, new: &NewGroup) -> Result<Group, DbErr> {
        repo::insert(&self.db, new).await
    }

    /// The group alone (a new campaign asks to join it).
    pub async fn group(&self, id: i64) -> Result<Option<Group>, DbErr> {
        repo::find(&self.db, id).await
    }

    pub async fn find(&self, id: i64) -> Result<Option<GroupWithCampaigns>, DbErr> {
        let Some(group) = repo::find(&self.db, id).await? else {
            return Ok(None);
        };
        let campaign_ids = repo::campaigns(&self.db, id)
            .await?
            .into_iter()
            .map(|s| s.campaign_id)
            .collect();
        Ok(Some(GroupWithCampaigns {
            group,
            campaign_ids,
        }))
    }
}
