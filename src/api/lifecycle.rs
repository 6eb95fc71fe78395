//! `…/participations/{userId}/confirm` and `…/cancel`: a win after its acceptance (docs/design.md
//! §14). For the user, like join (with `USER_AUTH=jwt` the user's own token; with `none` anyone:
//! the gateway's job); cancelling a confirmed win (a refund) takes an admin token.

use poem::{web::Data, Request};
use poem_openapi::{param::Path, payload::Json, OpenApi};

use crate::{
    api::{participations::ParticipationDto, Tag},
    http::{
        admin_auth::{AdminName, AdminTokens, Presented},
        error::ApiError,
        request_span::ServerSpan,
        user_auth::{AdminOrUserToken, UserAuthority, UserToken},
    },
    win::lifecycle::{Caller, LifecycleService},
};

/// The lifecycle resource: confirm and cancel.
pub struct LifecycleApi {
    pub lifecycle: LifecycleService,
    pub admin: AdminTokens,
    /// Who may confirm or cancel for a user (`USER_AUTH`).
    pub users: UserAuthority,
    /// Per-user and per-IP limits (docs/design.md §16).
    pub limits: crate::http::rate_limit::RateLimits,
}

impl LifecycleApi {
    fn canceller(
        &self,
        http: &Request,
        user_id: i64,
    ) -> Result<(Caller, Option<AdminName>), ApiError> {
        canceller(&self.admin, &self.users, http, user_id)
    }
}

/// Who asks for a cancellation: an admin (its token names it), else the user (with
/// `USER_AUTH=jwt`, proven by the user's token). A bearer that is neither an admin token nor
/// shaped like a JWT is a failed admin attempt (the door counts it); with `none`, any bearer
/// that is no admin token is 401, never a silent downgrade to the user's call.
pub(crate) fn canceller(
    admin: &AdminTokens,
    users: &UserAuthority,
    http: &Request,
    user_id: i64,
) -> Result<(Caller, Option<AdminName>), ApiError> {
    match (admin.presented(http)?, users.enabled()) {
        (Presented::Admin(admin), _) => {
            tracing::info!(admin = %admin, "Admin call.");
            Ok((Caller::Admin, Some(admin)))
        }
        (Presented::Failed, true) => Err(ApiError::unauthenticated()),
        (Presented::Failed | Presented::UserJwt, false) => Err(ApiError::unauthorized()),
        (Presented::UserJwt | Presented::Nothing, true) => {
            users.verified(http, user_id)?;
            Ok((Caller::User, None))
        }
        (Presented::Nothing, false) => Ok((Caller::User, None)),
    }
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
        _token: UserToken,
        http: &Request,
    ) -> Result<Json<ParticipationDto>, ApiError> {
        self.users.authorize(http, user_id.0)?;
        self.limits.check(http, id.0, user_id.0).await?;
        let trace = Some(span.0 .0.to_string());
        let stored = self.lifecycle.confirm(id.0, user_id.0, trace).await?;
        tracing::info!(
            campaign_id = id.0,
            user_id = user_id.0,
            "Participation confirmed."
        );
        Ok(Json(stored.win.into()))
    }

    /// Cancel a win: its units go back to the sale. A held win, by its user (`reason` USER) or an
    /// admin (`reason` ADMIN); a confirmed win only with an admin token (a refund, `reason`
    /// ADMIN), else 409 ALREADY_CONFIRMED. Cancelling a cancelled win answers it again; an expired hold:
    /// 409 HOLD_EXPIRED. The user stays refused for this campaign. The answer's `gate` says
    /// whether the units were back on sale before it (`UPDATED`) or Redis could not be reached
    /// (`PENDING`: on sale within about a second after it answers again).
    #[oai(path = "/:id/participations/:userId/cancel", method = "post")]
    async fn cancel(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        #[oai(name = "userId", validator(minimum(value = "1")))] user_id: Path<i64>,
        span: Data<&ServerSpan>,
        _token: AdminOrUserToken,
        http: &Request,
    ) -> Result<Json<ParticipationDto>, ApiError> {
        let (caller, admin) = self.canceller(http, user_id.0)?;
        if admin.is_none() {
            self.limits.check(http, id.0, user_id.0).await?;
        }
        let trace = Some(span.0 .0.to_string());
        let changed = self
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
        let mut answer: ParticipationDto = changed.win.into();
        answer.gate = changed.gate.map(Into::into);
        Ok(Json(answer))
    }
}
