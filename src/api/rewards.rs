//! `GET /api/v1/users/{userId}/rewards`: a user's points, kept by the rewards consumer.

use chrono::{DateTime, Utc};
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Object, OpenApi,
};

use crate::{
    api::Tag,
    consumer::rewards::RewardsView,
    http::{
        error::ApiError,
        user_auth::{UserAuthority, UserToken},
    },
};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RewardGrant {
    pub campaign_id: i64,
    /// `rewardPoints × quantity` of the win.
    pub points: i64,
    /// The event that granted them (one grant per event).
    pub event_id: String,
    pub granted_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UserRewards {
    pub user_id: i64,
    /// The balance: the sum of every grant (0 for a user with none).
    pub points: i64,
    /// The latest grants, newest first (`limit`, default 100).
    pub grants: Vec<RewardGrant>,
}

/// The rewards resource: the rewards consumer's tables.
pub struct RewardsApi {
    pub rewards: RewardsView,
    /// Who may read a user's rewards (`USER_AUTH`).
    pub users: UserAuthority,
    /// A configured per-user limit (docs/design.md §16).
    pub limits: crate::http::rate_limit::RateLimits,
}

#[OpenApi(prefix_path = "/api/v1/users", tag = "Tag::Rewards")]
impl RewardsApi {
    /// A user's reward points and latest grants (eventually consistent with their wins).
    #[oai(path = "/:userId/rewards", method = "get")]
    async fn user(
        &self,
        /// The user, a positive int64.
        #[oai(name = "userId", validator(minimum(value = "1")))]
        user_id: Path<i64>,
        /// Grants to return, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        _token: UserToken,
        http: &poem::Request,
    ) -> Result<Json<UserRewards>, ApiError> {
        self.users.authorize(http, user_id.0)?;
        self.limits.check_user(user_id.0).await?;
        let (points, grants) = self.rewards.user(user_id.0, limit.0.unwrap_or(100)).await?;
        Ok(Json(UserRewards {
            user_id: user_id.0,
            points,
            grants: grants
                .into_iter()
                .map(|g| RewardGrant {
                    campaign_id: g.campaign_id,
                    points: g.points,
                    event_id: g.event_id,
                    granted_at: g.granted_at.and_utc(),
                })
                .collect(),
        }))
    }
}
