//! [`CampaignService`]: what the campaigns resource does with campaigns: create, list a page,
//! find one. A new campaign is readied for its first burst by the participation service
//! (`ParticipationService::prime`), which the API calls after `create`.

use sea_orm::DbErr;

use crate::{
    campaign::{
        create_key::{self, CreateKey},
        repo::{self, CampaignWithCount, NewCampaign, OverBudget},
    },
    db::{
        error::{self as db_error, DbErrorKind},
        Db,
    },
};

/// Campaigns in MySQL, over the API's pool. Cheap to clone.
#[derive(Clone)]
pub struct CampaignService {
    db: Db,
    /// `CAMPAIGN_BUCKETS_MAX_TOTAL`: the buckets open campaigns may hold together.
    buckets_max_total: i64,
}

/// What a creation did.
#[derive(Debug)]
pub enum Creation {
    Created(CampaignWithCount),
    /// The key created this campaign before, from the same request (its answer was lost, or
    /// came after the request's deadline): nothing new was made.
    Replayed(CampaignWithCount),
}

/// Why a creation made nothing.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("the Idempotency-Key created campaign {campaign} with another request")]
    KeyReused { campaign: i64 },
    #[error(
        "open campaigns hold {held} buckets and CAMPAIGN_BUCKETS_MAX_TOTAL is {max}: {asked} more do not fit (end or close a bucketed campaign first)"
    )]
    BucketsExhausted { asked: i64, held: i64, max: i64 },
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl CampaignService {
    pub fn new(db: Db, buckets_max_total: u32) -> Self {
        Self {
            db,
            buckets_max_total: i64::from(buckets_max_total),
        }
    }

    /// Stores a campaign whose fields were validated; returns it as stored. With a key, a
    /// campaign the key created already is answered instead (the same request), or the call is
    /// refused (another request), before anything is written; two calls with one key at once
    /// make one campaign (the key is unique), the second answered as a replay.
    pub async fn create(&self, new: &NewCampaign) -> Result<Creation, CreateError> {
        if let Some(key) = &new.key {
            if let Some(found) = self.replay(key).await? {
                return Ok(found);
            }
        }
        match repo::insert_within(&self.db, new, self.buckets_max_total).await {
            Ok(Ok(created)) => Ok(Creation::Created(created)),
            Ok(Err(OverBudget { held })) => Err(CreateError::BucketsExhausted {
                asked: i64::from(new.buckets),
                held,
                max: self.buckets_max_total,
            }),
            Err(e) if db_error::kind(&e) == DbErrorKind::UniqueViolation => match &new.key {
                Some(key) => self.replay(key).await?.ok_or(CreateError::Db(e)),
                None => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// The campaign `key` created, as a replay of the same request; `None` when it made none.
    async fn replay(&self, key: &CreateKey) -> Result<Option<Creation>, CreateError> {
        let Some(keyed) = create_key::find(&self.db, &key.admin, &key.key).await? else {
            return Ok(None);
        };
        if keyed.create_request.as_deref() != Some(key.request.as_str()) {
            return Err(CreateError::KeyReused { campaign: keyed.id });
        }
        let campaign = repo::find(&self.db, keyed.id).await?.ok_or_else(|| {
            DbErr::RecordNotFound(format!("campaign {} of an Idempotency-Key", keyed.id))
        })?;
        Ok(Some(Creation::Replayed(campaign)))
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
