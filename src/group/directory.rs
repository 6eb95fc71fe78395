//! Each group's limit and campaigns as a join needs them: read from MySQL, kept
//! [`MEMBERS_FRESH`]. A campaign joins a group at its creation, so the list only grows; a join
//! that runs on a list without the newest campaign has its Redis check miss the units held
//! there, and the MySQL guard ([`super::guard`]) refuses what would pass the limit.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::DbErr;
use tokio::sync::RwLock;

use crate::{
    campaign::{Campaign, CampaignCache},
    db::Db,
    gate::Sibling,
    group::{repo, Group},
};

/// How long a group's campaign list is used before it is read again.
pub const MEMBERS_FRESH: Duration = Duration::from_secs(1);

/// A group and its campaigns at one reading.
#[derive(Debug)]
pub struct GroupMembers {
    pub group: Group,
    /// Every campaign of the group, by id.
    pub campaigns: Vec<Sibling>,
    /// Each campaign's siblings (the others), made once per reading: a join reads them without
    /// allocating.
    siblings: HashMap<i64, Vec<Sibling>>,
    read_at: Instant,
}

impl GroupMembers {
    fn new(group: Group, campaigns: Vec<Sibling>, read_at: Instant) -> Self {
        let siblings = campaigns
            .iter()
            .map(|c| {
                let others = campaigns.iter().filter(|s| s.campaign_id != c.campaign_id);
                (c.campaign_id, others.copied().collect())
            })
            .collect();
        Self {
            group,
            campaigns,
            siblings,
            read_at,
        }
    }

    /// The group's campaigns other than `campaign_id` (all of them for a campaign not listed).
    pub fn siblings_of(&self, campaign_id: i64) -> &[Sibling] {
        self.siblings
            .get(&campaign_id)
            .map_or(&self.campaigns[..], Vec::as_slice)
    }
}

/// The groups this instance has served joins for.
pub struct GroupDirectory {
    db: Db,
    campaigns: Arc<CampaignCache>,
    entries: RwLock<HashMap<i64, Arc<GroupMembers>>>,
}

impl GroupDirectory {
    pub fn new(db: Db, campaigns: Arc<CampaignCache>) -> Self {
        Self {
            db,
            campaigns,
            entries: RwLock::default(),
        }
    }

    /// Group `id` and its campaigns, read again once the copy is older than [`MEMBERS_FRESH`].
    pub async fn get(&self, id: i64) -> Result<Arc<GroupMembers>, DbErr> {
        if let Some(found) = self.entries.read().await.get(&id) {
            if found.read_at.elapsed() < MEMBERS_FRESH {
                return Ok(found.clone());
            }
        }
        Box::pin(self.read(id)).await
    }

    /// Group `id` with every campaign in `campaigns` if they are in it: a copy that lacks one
    /// (it joined the group since) is read again.
    pub async fn get_with(
        &self,
        id: i64,
        campaigns: impl Iterator<Item = i64> + Clone,
    ) -> Result<Arc<GroupMembers>, DbErr> {
        let members = self.get(id).await?;
        let listed = |m: &GroupMembers| {
            campaigns
                .clone()
                .all(|c| m.campaigns.iter().any(|s| s.campaign_id == c))
        };
        if listed(&members) {
            return Ok(members);
        }
        Box::pin(self.read(id)).await
    }

    async fn read(&self, id: i64) -> Result<Arc<GroupMembers>, DbErr> {
        let read_at = Instant::now();
        let group = repo::find(&self.db, id)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("group {id}")))?;
        let campaigns = repo::campaigns(&self.db, id).await?;
        let members = Arc::new(GroupMembers::new(group, campaigns, read_at));
        self.entries.write().await.insert(id, members.clone());
        Ok(members)
    }

    /// A campaign of a group, from the shared campaign cache (a sibling whose keys a join must
    /// load).
    pub async fn campaign(&self, id: i64) -> Result<Arc<Campaign>, DbErr> {
        self.campaigns
            .get(&self.db, id)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("campaign {id}")))
    }
}
