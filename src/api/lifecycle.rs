//! `…/participations/{userId}/confirm` and `…/cancel`: a win after its acceptance (docs/design.md
//! §14). Public, like join (the caller's identity is the gateway's job); cancelling a confirmed win
//! (a refund) takes the admin token.

use poem::{web::Data, Request};
use poem_openapi::{param::Path, payload::Json, OpenApi};

use super::{
    auth::{admin_presented, AdminTokens},
    error::ApiError,
    participations::ParticipationDto,
    request_span::ServerSpan,
    Tag,
};
use crate::participation::lifecycle::{Caller, LifecycleService};

/// The lifecycle resource: confirm and cancel.
pub struct LifecycleApi {
    pub lifecycle: LifecycleService,
    pub admin: AdminTokens,
}

#[OpenApi(prefix_path = "/api/v1/campaigns", tag = "Tag::Participations")]
impl LifecycleApi {
    /// Confirm (pay for) a held win before its `holdExpiresAt`: it becomes `CONFIRMED`. Confirming
    /// a confirmed win answers it again. Past the deadline: 409 HOLD_EXPIRED (the deadline
    /// decides, whether or not the sweeper has run); a cancelled win: 409 PARTICIPATION_CANCELLED.
    #[oai(path = "/:id/participations/:userId/confirm", method = "post")]
    async fn confirm(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        #[oai(name = "userId", validator(minimum(value = "1")))] user_id: Path<i64>,
        span: Data<&ServerSpan>,
    ) -> Result<Json<ParticipationDto>, ApiError> {
        let trace = Some(span.0 .0.to_string());
        let stored = self.lifecycle.confirm(id.0, user_id.0, trace).await?;
        tracing::info!(
            campaign_id = id.0,
            user_id = user_id.0,
            "Participation confirmed."
        );
        Ok(Json(stored.into()))
    }

    /// Cancel a win: its units go back to the sale. A held win, by anyone (`reason` USER); a
    /// confirmed win only with `Authorization: Bearer <ADMIN_TOKEN>` (a refund, `reason` ADMIN),
    /// else 409 ALREADY_CONFIRMED. Cancelling a cancelled win answers it again; an expired hold:
    /// 409 HOLD_EXPIRED. The user stays refused for this campaign.
    #[oai(path = "/:id/participations/:userId/cancel", method = "post")]
    async fn cancel(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        #[oai(name = "userId", validator(minimum(value = "1")))] user_id: Path<i64>,
        span: Data<&ServerSpan>,
        http: &Request,
    ) -> Result<Json<ParticipationDto>, ApiError> {
        let admin = admin_presented(http, &self.admin)?;
        let caller = match admin {
            Some(_) => Caller::Admin,
            None => Caller::User,
        };
        let trace = Some(span.0 .0.to_string());
        let stored = self
            .lifecycle
            .cancel(id.0, user_id.0, caller, trace)
            .await?;
        tracing::info!(
            campaign_id = id.0,
            user_id = user_id.0,
            ?caller,
            admin = admin.as_ref().map(tracing::field::display),
            "Participation cancelled."
        );
        Ok(Json(stored.into()))
    }
}
