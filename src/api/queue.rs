//! `/api/v1/campaigns/{id}/queue`: the waiting room of a `QUEUE` or `RAFFLE` campaign
//! (docs/design.md §16). Queue once, poll the ticket about once a second, join with the admission
//! token once it is `ADMITTED`.

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::{param::Path, payload::Json, ApiResponse, Enum, Object, OpenApi};

use crate::{
    api::Tag,
    gate::queue::TicketState,
    http::{
        error::ApiError,
        rate_limit::RateLimits,
        user_auth::{UserAuthority, UserToken},
    },
    waiting_room::{QueueView, WaitingRoom},
};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueBody {
    /// The user, a positive 64-bit integer.
    #[oai(validator(minimum(value = "1")))]
    pub user_id: i64,
}

/// Where a ticket stands: `WAITING` (with its `position`), `ADMITTED` (join now with
/// `admissionToken`, before `admissionExpiresAt`), `SOLD_OUT` (no free stock now; the ticket
/// keeps its place in case units come back), `WAITLISTED` (the same on a campaign with a
/// waitlist: kept without polling, and the next unit that comes back is offered to it in order,
/// as an admission valid `offerSeconds`), `USED` (the user joined with it) or `EXPIRED` (not
/// polled for a while, or admitted and not used in time: queue again).
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TicketStateDto {
    Waiting,
    Admitted,
    SoldOut,
    Waitlisted,
    Used,
    Expired,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TicketDto {
    /// Opaque; poll it at `…/queue/{ticket}`. The same user queueing again gets the same ticket.
    pub ticket: String,
    pub user_id: i64,
    // No doc comment: poem-openapi would wrap the enum's $ref in an allOf with it, which
    // generated clients cannot read; the enum carries the description.
    pub state: TicketStateDto,
    /// Place in the queue, 1 = next (while `WAITING` or `SOLD_OUT`). Abandoned tickets never count.
    #[oai(skip_serializing_if_is_none)]
    pub position: Option<i64>,
    /// Seconds until admission at the campaign's admission rate (while `WAITING`).
    #[oai(skip_serializing_if_is_none)]
    pub estimated_wait_seconds: Option<i64>,
    /// While `ADMITTED`: the single-use token the join carries as `admissionToken`.
    #[oai(skip_serializing_if_is_none)]
    pub admission_token: Option<String>,
    /// While `ADMITTED`: when the token expires; unused, its unit goes to the next in the queue.
    #[oai(skip_serializing_if_is_none)]
    pub admission_expires_at: Option<DateTime<Utc>>,
}

impl From<QueueView> for TicketDto {
    fn from(v: QueueView) -> Self {
        let (state, position) = match v.state {
            TicketState::Waiting { position } => (TicketStateDto::Waiting, Some(position)),
            TicketState::SoldOut { position } => (TicketStateDto::SoldOut, Some(position)),
            TicketState::Waitlisted { position } => (TicketStateDto::Waitlisted, Some(position)),
            TicketState::Admitted { .. } => (TicketStateDto::Admitted, None),
            TicketState::Used => (TicketStateDto::Used, None),
            TicketState::Expired => (TicketStateDto::Expired, None),
        };
        let (admission_token, admission_expires_at) = v.admission.unzip();
        Self {
            ticket: v.ticket,
            user_id: v.user_id,
            state,
            position,
            estimated_wait_seconds: v.estimated_wait_seconds,
            admission_token,
            admission_expires_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum Queued {
    /// In the waiting room (or already there: the same ticket).
    #[oai(status = 202)]
    Accepted(Json<TicketDto>),
}

/// The waiting room resource.
pub struct QueueApi {
    pub room: WaitingRoom,
    /// Who may queue or poll for a user (`USER_AUTH`).
    pub users: UserAuthority,
    /// Per-user and per-IP limits (docs/design.md §16): on by default here.
    pub limits: RateLimits,
}

#[OpenApi(prefix_path = "/api/v1/campaigns", tag = "Tag::Queue")]
impl QueueApi {
    /// Queue for a campaign with a waiting room (`QUEUE` or `RAFFLE`): a ticket with its position
    /// and estimated wait. One ticket per user: asking again answers the same ticket.
    #[oai(path = "/:id/queue", method = "post")]
    async fn enqueue(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        body: Json<QueueBody>,
        _token: UserToken,
        http: &Request,
    ) -> Result<Queued, ApiError> {
        self.users.authorize(http, body.user_id)?;
        self.limits.check(http, id.0, body.user_id).await?;
        let view = self.room.enqueue(id.0, body.user_id).await?;
        Ok(Queued::Accepted(Json(view.into())))
    }

    /// Where a ticket stands; polling (about once a second) keeps it in the queue. Once
    /// `ADMITTED`, the answer carries the admission token.
    #[oai(path = "/:id/queue/:ticket", method = "get")]
    async fn poll(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        #[oai(validator(max_length = 64))] ticket: Path<String>,
        _token: UserToken,
        http: &Request,
    ) -> Result<Json<TicketDto>, ApiError> {
        // Every check before the room's step, which moves the room (refreshes the ticket, admits
        // whoever is due): the client's bucket, the ticket (read, nothing written), the holder's
        // token and bucket. A refused poll leaves the room as it was.
        self.limits.check_ip(http, id.0).await?;
        let held = self.room.find(id.0, &ticket.0).await?;
        self.users.authorize(http, held.user_id)?;
        self.limits.check_user_in(id.0, held.user_id).await?;
        let view = self.room.poll(&held).await?;
        Ok(Json(view.into()))
    }
}
