//! `/api/v1/campaigns/{id}/queue`: the waiting room of a `QUEUE` or `RAFFLE` campaign
//! (docs/design.md §16). Queue once, poll the ticket about once a second, join with the admission
//! token once it is `ADMITTED`.

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::{param::Path, payload::Json, ApiResponse, Enum, Object, OpenApi};

use std::sync::Arc;

use crate::{
    api::{bot_check::ChallengeDto, Tag},
    bot_check::{BotCheck, Passed},
    gate::queue::TicketState,
    http::{
        client_ip,
        error::ApiError,
        rate_limit::RateLimits,
        user_auth::{UserAuthority, UserToken},
    },
    refusal::RefusalCounter,
    waiting_room::{QueueView, WaitingRoom},
};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueBody {
    /// The user, a positive 64-bit integer.
    #[oai(validator(minimum(value = "1")))]
    pub user_id: i64,
    /// Required when the campaign asks for the bot check (its `botCheck`, or `BOT_CHECK`): the
    /// solved challenge of `GET …/{id}/bot-check` (the ALTCHA widget's payload, base64), or the
    /// captcha provider's token. Each is accepted once.
    #[oai(validator(max_length = 4096))]
    pub bot_check: Option<String>,
}

/// Where a ticket stands: `WAITING` (with its `position`), `ADMITTED` (join now with
/// `admissionToken`, before `admissionExpiresAt`), `SOLD_OUT` (no free stock now; the ticket
/// keeps its place in case units come back), `WAITLISTED` (the same on a campaign with a
/// waitlist: the next unit that comes back is offered to it in order, as an admission valid
/// `offerSeconds`), `USED` (the user joined with it) or `EXPIRED` (not polled for a while, or
/// admitted and not used in time: queue again). A `WAITING`, `SOLD_OUT` or `WAITLISTED` ticket
/// keeps its place only while it is polled (about once a second; one not polled for
/// `QUEUE_TICKET_IDLE_MS`, 30 s by default, is dropped).
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
    /// The bot check a client passes before it is given a ticket (`BOT_CHECK`).
    pub bot: BotCheck,
    /// A refused bot check counts among its campaign's refusals (docs/design.md §20).
    pub refusals: Arc<RefusalCounter>,
}

#[OpenApi(prefix_path = "/api/v1/campaigns", tag = "Tag::Queue")]
impl QueueApi {
    /// Queue for a campaign with a waiting room (`QUEUE` or `RAFFLE`): a ticket with its position
    /// and estimated wait. One ticket per user: asking again answers the same ticket. With a
    /// bot check, asking again needs a solution again (each is accepted once): a client that lost
    /// the answer solves a new challenge and is answered its same ticket.
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
        // The cheap refusals before the check's work: the campaign has a room open to queue in.
        self.room.wants_bot_check(id.0, false).await?;
        // The room writes nothing for a client that did not pass.
        let client = client_ip::of(http);
        let passed = match self
            .bot
            .pass(id.0, body.bot_check.as_deref(), Some(&client.0.to_string()))
            .await
        {
            Ok(passed) => passed != Passed::NotAsked,
            Err(refusal) => {
                let refused = ApiError::from(refusal);
                self.refusals.record_code(id.0, &refused.code().name());
                return Err(refused);
            }
        };
        let view = (self.room)
            .enqueue(id.0, body.user_id, passed, client.key())
            .await?;
        Ok(Queued::Accepted(Json(view.into())))
    }

    /// A proof-of-work challenge for this campaign's bot check (`BOT_CHECK=pow`, or `off` with a
    /// campaign that asks for the check), in ALTCHA's v2 form: point the ALTCHA widget's
    /// `challengeurl` here and send its payload as `botCheck` when queueing (or when joining an
    /// `OPEN` campaign that asks for it). Signed and stateless; good for this campaign until
    /// `expiresAt`, for one verification (a wrong solution spends it too: fetch a new one). Only
    /// for a campaign that asks for the check: 404 for one that does not exist or asks for none
    /// (its `botCheck`, or the service's default), 422 `NO_WAITING_ROOM` for an `OPEN` one whose
    /// joins do not ask.
    #[oai(path = "/:id/bot-check", method = "get")]
    async fn bot_check_challenge(
        &self,
        #[oai(validator(minimum(value = "1")))] id: Path<i64>,
        http: &Request,
    ) -> Result<Json<ChallengeDto>, ApiError> {
        self.limits.check_ip(http, id.0).await?;
        if self.bot.challenge_offered() {
            // Only for a campaign that asks for the check (at its room's door, or its joins).
            let asks = self.bot.asks(id.0).await.map_err(ApiError::from)?;
            self.room.wants_bot_check(id.0, asks).await?;
            if !asks {
                return Err(ApiError::not_found(format!(
                    "campaign {} asks for no bot check (its botCheck, or the service's BOT_CHECK={})",
                    id.0,
                    self.bot.mode().name()
                )));
            }
        }
        let challenge = self.bot.challenge(id.0).ok_or_else(|| {
            ApiError::not_found(format!(
                "no proof-of-work bot check here (BOT_CHECK={})",
                self.bot.mode().name()
            ))
        })?;
        Ok(Json(ChallengeDto::from(challenge)))
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
