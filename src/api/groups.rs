//! `/api/v1/groups`: groups of campaigns under one per-user limit (docs/design.md §22) — create
//! (admin) and read (public). A campaign joins a group at its creation (`groupId`).

use chrono::{DateTime, Utc};
use poem_openapi::{param::Path, payload::Json, ApiResponse, Object, OpenApi};

use crate::{
    api::Tag,
    group::{repo::NewGroup, service::GroupWithCampaigns, GroupService},
    http::{admin_auth::AdminOnly, error::ApiError, json_string::JsonString},
};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGroup {
    /// 1 to 200 characters, without control characters; leading and trailing whitespace is
    /// dropped.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: JsonString,
    /// Units one user may hold across the group's campaigns, 1 to 10,000,000. Every win counts,
    /// whatever became of it (a cancelled or expired win counts, as it does for a campaign's one
    /// win per user).
    #[oai(validator(minimum(value = "1"), maximum(value = "10000000")))]
    pub per_user_limit: i32,
    /// Buckets of each of the group's campaigns, 1 to 1,024 (default 1): a user's home bucket
    /// is then the same in every campaign of the group (docs/design.md §21, §22).
    #[oai(validator(minimum(value = "1"), maximum(value = "1024")))]
    pub buckets: Option<i32>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct GroupDto {
    pub id: i64,
    pub name: String,
    pub per_user_limit: i32,
    pub buckets: i32,
    /// The group's campaigns, by id.
    pub campaign_ids: Vec<i64>,
    pub created_at: DateTime<Utc>,
}

impl From<GroupWithCampaigns> for GroupDto {
    fn from(g: GroupWithCampaigns) -> Self {
        Self {
            id: g.group.id,
            name: g.group.name,
            per_user_limit: g.group.per_user_limit,
            buckets: i32::from(g.group.buckets),
            campaign_ids: g.campaign_ids,
            created_at: g.group.created_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum GroupCreated {
    #[oai(status = 201)]
    Created(Json<GroupDto>),
}

/// The groups resource.
pub struct GroupsApi {
    pub groups: GroupService,
    /// A group's public read, kept briefly ([`super::read_cache`]).
    pub reads: super::read_cache::ReadCache<Option<GroupDto>>,
}

#[OpenApi(prefix_path = "/api/v1/groups", tag = "Tag::Groups")]
impl GroupsApi {
    /// Create a group (admin).
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        _auth: AdminOnly,
        body: Json<CreateGroup>,
    ) -> Result<GroupCreated, ApiError> {
        let body = body.0;
        let name = crate::api::campaigns::display_name(&body.name.0)?;
        let group = self
            .groups
            .create(&NewGroup {
                name: name.to_string(),
                per_user_limit: body.per_user_limit,
                buckets: u16::try_from(body.buckets.unwrap_or(1)).unwrap_or(1),
            })
            .await?;
        tracing::info!(
            group_id = group.id,
            per_user_limit = group.per_user_limit,
            "Group created."
        );
        Ok(GroupCreated::Created(Json(GroupDto::from(
            GroupWithCampaigns {
                group,
                campaign_ids: Vec::new(),
            },
        ))))
    }

    /// Get a group with its campaigns.
    #[oai(path = "/:id", method = "get")]
    async fn get(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
    ) -> Result<Json<GroupDto>, ApiError> {
        let id = id.0;
        let read = self
            .reads
            .get_or(id, || async {
                Ok::<_, ApiError>(self.groups.find(id).await?.map(GroupDto::from))
            })
            .await?;
        read.map(Json).ok_or_else(|| ApiError::group_not_found(id))
    }
}
