//! `/api/v1/campaigns/{id}/participations`: join through the outbox path, and look a user's
//! participation up.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Header, Path},
    payload::Json,
    ApiResponse, Object, OpenApi,
};
use uuid::Uuid;

use super::{error::ApiError, Tag};
use crate::{
    participation::{Accepted, JoinRequest},
    state::AppState,
};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinBody {
    /// The user, a positive 64-bit integer.
    #[oai(validator(minimum(value = "1")))]
    pub user_id: i64,
    /// Units to take (default 1); at most the campaign's `perUserLimit`.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000000")))]
    pub quantity: Option<i32>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ParticipationDto {
    pub participation_id: i64,
    pub campaign_id: i64,
    pub user_id: i64,
    pub quantity: i32,
    /// FCFS order handed out by the gate.
    pub sequence: i64,
    /// The Kafka event's id (the dedupe key); absent once the outbox row was cleaned up.
    pub event_id: Option<Uuid>,
    pub accepted_at: DateTime<Utc>,
}

impl From<Accepted> for ParticipationDto {
    fn from(a: Accepted) -> Self {
        Self {
            participation_id: a.participation_id,
            campaign_id: a.campaign_id,
            user_id: a.user_id,
            quantity: a.quantity,
            sequence: a.sequence,
            event_id: Some(a.event_id),
            accepted_at: a.accepted_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum Joined {
    /// The win is committed; its event is in the outbox.
    #[oai(status = 201)]
    Created(Json<ParticipationDto>),
}

pub struct ParticipationsApi;

#[OpenApi(prefix_path = "/api/v1/campaigns", tag = "Tag::Participations")]
impl ParticipationsApi {
    /// Join a campaign (outbox path): Redis gate, then one MySQL transaction writing the
    /// participation and its outbox event.
    #[oai(path = "/:id/participations", method = "post")]
    async fn join(
        &self,
        state: Data<&Arc<AppState>>,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        body: Json<JoinBody>,
        /// W3C trace context, forwarded to the Kafka message.
        traceparent: Header<Option<String>>,
    ) -> Result<Joined, ApiError> {
        let accepted = state
            .participations
            .join(JoinRequest {
                campaign_id: id.0,
                user_id: body.0.user_id,
                quantity: body.0.quantity.unwrap_or(1),
                traceparent: traceparent.0,
            })
            .await?;
        Ok(Joined::Created(Json(accepted.into())))
    }

    /// A user's participation in a campaign.
    #[oai(path = "/:id/participations/:userId", method = "get")]
    async fn find(
        &self,
        state: Data<&Arc<AppState>>,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        #[oai(name = "userId", validator(minimum(value = "1")))] user_id: Path<i64>,
    ) -> Result<Json<ParticipationDto>, ApiError> {
        let found = crate::participation::store::find(&state.db, id.0, user_id.0)
            .await?
            .ok_or_else(ApiError::participation_not_found)?;
        Ok(Json(ParticipationDto {
            participation_id: found.id,
            campaign_id: found.campaign_id,
            user_id: found.user_id,
            quantity: found.quantity,
            sequence: found.sequence,
            event_id: found.event_id.and_then(|e| e.parse().ok()),
            accepted_at: found.created_at.and_utc(),
        }))
    }
}
