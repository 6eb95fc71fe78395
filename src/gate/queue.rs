//! The waiting room's step in Redis (`lua/queue.lua`, docs/design.md §16): forget abandoned
//! tickets and lapsed admissions, admit at the campaign's rate while free stock lasts, then
//! enqueue a user or read a ticket. The room's keys share the campaign's hash tag, so the join's
//! gate step (`lua/reserve.lua`) checks an admission in the same atomic step as the stock.
//!
//! A poll is checked before its step moves anything: [`Gate::ticket_holder`] reads who holds the
//! ticket (a read, nothing written), the caller checks that user's token and rate limit, and the
//! step ([`RoomOp::Poll`]) names that holder, so that a ticket the room never issued or another
//! user's is answered [`RoomAnswer::Unknown`] before the script writes anything.

use std::{sync::LazyLock, time::Duration};

use redis::Script;

use crate::gate::{Gate, GateError, GateState, Slot};

/// How long a forgotten ticket's record stays in its room (docs/design.md §16): a poll of it
/// answers `EXPIRED` meanwhile, and 404 after, when its user may only queue again. So a room's
/// hashes hold the tickets of the last ten minutes, however many tickets come and go.
pub const FORGOTTEN_KEPT: Duration = Duration::from_secs(600);

/// How long the room of a campaign without an end keeps its keys after its last step (one with
/// an end keeps them as long as the gate's): a room nobody uses any more leaves Redis.
pub const IDLE_ROOM_KEPT: Duration = Duration::from_secs(86_400);

static QUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/queue.lua")));
static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/admit.lua")));

/// What one call asks of the room.
#[derive(Debug, Clone)]
pub enum RoomOp {
    /// Queue `user_id` (or find the ticket they hold). `ticket` is used if they hold none;
    /// `raffle_place` places an arrival before a raffle's start (below every later arrival).
    Enqueue {
        user_id: i64,
        ticket: String,
        raffle_place: Option<u64>,
        /// Who is asking (`http::client_ip`'s key): the room caps the live tickets it holds.
        client: String,
    },
    /// Read one ticket, held by `user_id` (as [`Gate::ticket_holder`] found it, and the caller
    /// checked): the step runs only for that ticket of that user.
    Poll { ticket: String, user_id: i64 },
}

impl RoomOp {
    /// The client an enqueue counts against (a poll counts against none).
    fn client(&self) -> &str {
        match self {
            Self::Enqueue { client, .. } => client,
            Self::Poll { .. } => "",
        }
    }
}

/// The campaign's side of a call: who it is (`epoch`, see `lua/reserve.lua`) and its room's pace.
#[derive(Debug, Clone, Copy)]
pub struct RoomPace {
    pub epoch: i64,
    /// Admissions per second (≥ 1).
    pub rate_per_second: i32,
    /// How long an admission token stays valid.
    pub token_lifetime: Duration,
    /// A waiting ticket not polled for this long is dropped.
    pub idle_timeout: Duration,
    /// How long an offer to a waitlisted ticket stays valid; zero when the campaign keeps no
    /// waitlist (docs/design.md §22).
    pub offer_lifetime: Duration,
    /// A bucketed campaign's side, read by the caller (`None`: the campaign's gate keys have it).
    pub bucketed: Option<BucketedRoom>,
    /// The caps an enqueue meets (`QUEUE_TICKETS_PER_CLIENT`, `QUEUE_MAX_WAITING`; 0: none).
    pub caps: RoomCaps,
}

/// How many tickets a room gives (docs/design.md §16 "The room stays bounded"): the live
/// tickets one client may hold, and the tickets it keeps waiting (waitlisted ones too). 0: no
/// cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomCaps {
    pub tickets_per_client: u32,
    pub max_waiting: u32,
}

/// What the room of a bucketed campaign (docs/design.md §21) is told, since no key of its slot
/// holds it: the campaign's stock is in its buckets' slots and MySQL's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketedRoom {
    /// Free units: the pool plus every bucket's row, as MySQL had them lately.
    pub free: i64,
    pub state: GateState,
    pub starts_ms: i64,
    /// When the campaign's keys expire (0: kept).
    pub expire_ms: i64,
    /// (Enqueue) the user holds a reservation or a win in their home bucket.
    pub won: bool,
    /// When the reading of `free` began, ms (the caller's clock).
    pub read_ms: i64,
}

impl BucketedRoom {
    fn arg(&self) -> String {
        let state = self.state.as_str();
        let won = u8::from(self.won);
        format!(
            "{}:{state}:{}:{}:{won}:{}",
            self.free,
            self.starts_ms.max(0),
            self.expire_ms.max(0),
            self.read_ms.max(0)
        )
    }
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketState {
    /// In the queue at `position` (1 = next).
    Waiting { position: i64 },
    /// Waiting while the campaign has no free stock; units that come back move the queue again.
    SoldOut { position: i64 },
    /// The same on a campaign with a waitlist (docs/design.md §22): kept while it is polled; a
    /// unit that comes back is offered to the next waitlisted ticket in order.
    Waitlisted { position: i64 },
    /// Admitted: the token is valid until `expires_ms`.
    Admitted { expires_ms: i64 },
    /// The admission was used by a win.
    Used,
    /// Abandoned (not polled), or admitted and not used in time.
    Expired,
}

/// The room's answer about one ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub ticket: String,
    pub user_id: i64,
    pub state: TicketState,
}

/// A waitlist's offers in one call (docs/design.md §22).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OfferCounts {
    pub offered: i64,
    pub taken: i64,
    pub passed: i64,
    /// Tickets on the waitlist after the call.
    pub waitlisted: i64,
}

/// What a call found, with what it admitted on the way (for the metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomAnswer {
    /// The campaign's gate keys are not loaded: load them and call again.
    Missing,
    /// No such ticket.
    Unknown,
    /// (Enqueue) the client holds its cap of live tickets here: no ticket was made.
    ClientLimit,
    /// (Enqueue) the room keeps its cap of waiting tickets: no ticket was made.
    Full,
    Found {
        ticket: Ticket,
        /// Users this call admitted, and the sum of their waits.
        admitted: i64,
        waited: Duration,
        /// Tickets waiting after this call.
        waiting: i64,
        /// The waitlist's offers this call made, found taken, found passed on, and its length.
        offers: OfferCounts,
        /// The room's real time per admission, ms (smoothed, and at least the time since the
        /// last one); 0 before two admissions were seen.
        pace_ms: i64,
    },
}

impl Gate {
    /// One step of the waiting room in `room` (the campaign's [`Slot`] for its room, see
    /// `Campaign::room_slot`) at `now_ms` (see `lua/queue.lua`).
    #[tracing::instrument(level = "debug", skip(self, op), err(level = "warn"))]
    pub async fn room(
        &self,
        room: Slot,
        pace: RoomPace,
        now_ms: i64,
        op: &RoomOp,
    ) -> Result<RoomAnswer, GateError> {
        let mut inv = self.queue_call(room);
        inv.key(self.campaign_key_base(room) + "qcl:" + op.client());
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        inv.arg(match op {
            RoomOp::Enqueue { .. } => "enqueue",
            RoomOp::Poll { .. } => "poll",
        })
        .arg(now_ms)
        .arg(pace.epoch)
        .arg(pace.rate_per_second.max(1))
        .arg(millis(pace.token_lifetime))
        .arg(millis(pace.idle_timeout));
        match op {
            RoomOp::Enqueue {
                user_id,
                ticket,
                raffle_place,
                ..
            } => {
                inv.arg(*user_id)
                    .arg(ticket)
                    .arg(raffle_place.map_or(String::new(), |p| p.to_string()));
            }
            RoomOp::Poll { ticket, user_id } => {
                inv.arg(ticket).arg(*user_id).arg("");
            }
        }
        inv.arg(pace.bucketed.map_or(String::new(), |b| b.arg()))
            .arg(millis(pace.offer_lifetime))
            .arg(millis(FORGOTTEN_KEPT))
            .arg(millis(IDLE_ROOM_KEPT))
            .arg(pace.caps.tickets_per_client)
            .arg(pace.caps.max_waiting);
        let reply: Vec<redis::Value> = self.run(inv).await?;
        parse(&reply)
    }

    /// A bucketed campaign's admission `ticket`, of `user_id`, won: its win committed at about
    /// `now_ms` (`lua/queue.lua`, "used"); `keys_expire_ms` as the campaign's keys. `false` when
    /// the room did not have it live.
    pub async fn room_used(
        &self,
        keys: (Slot, i64, i64),
        ticket: &str,
        user_id: i64,
        now_ms: i64,
    ) -> Result<bool, GateError> {
        self.admission_ended("used", keys, (ticket, user_id), now_ms)
            .await
    }

    /// A bucketed campaign's admission `ticket`, of `user_id`, was refused for its group's
    /// limit (docs/design.md §22): it expires in the room too, its unit free for the next
    /// admission (`lua/queue.lua`, "spent"). `false` when the room did not have it live.
    pub async fn room_spent(
        &self,
        keys: (Slot, i64, i64),
        ticket: &str,
        user_id: i64,
        now_ms: i64,
    ) -> Result<bool, GateError> {
        self.admission_ended("spent", keys, (ticket, user_id), now_ms)
            .await
    }

    async fn admission_ended(
        &self,
        op: &str,
        (room, epoch, keys_expire_ms): (Slot, i64, i64),
        (ticket, user_id): (&str, i64),
        now_ms: i64,
    ) -> Result<bool, GateError> {
        let mut inv = self.queue_call(room);
        inv.arg(op)
            .arg(now_ms)
            .arg(epoch)
            .arg(1)
            .arg(keys_expire_ms.max(0))
            .arg(0);
        inv.arg(ticket).arg(user_id).arg("").arg("");
        let reply: Vec<redis::Value> = self.run(inv).await?;
        match text(reply.first()).as_deref() {
            Some("USED" | "SPENT") => Ok(true),
            Some("UNKNOWN") => Ok(false),
            _ => Err(protocol("?", &reply)),
        }
    }

    /// Copies a bucketed campaign's admission into its holder's home bucket `slot`, where the
    /// join checks it (`lua/admit.lua`): before the holder is given its token. `false` when the
    /// bucket had it already.
    pub async fn admit_in_bucket(
        &self,
        slot: Slot,
        ticket: &str,
        user_id: i64,
        (expires_ms, keys_expire_ms): (i64, i64),
    ) -> Result<bool, GateError> {
        let [_, tickets, _, _, admissions, _] = self.room_keys(slot);
        let mut inv = ADMIT.key(tickets);
        inv.key(admissions)
            .arg(ticket)
            .arg(user_id)
            .arg(expires_ms)
            .arg(keys_expire_ms.max(0));
        let copied: i64 = self.run(inv).await?;
        Ok(copied == 1)
    }

    /// Whether `user_id` holds a reservation or a win in `slot` (its winners set).
    pub async fn holds(&self, slot: Slot, user_id: i64) -> Result<bool, GateError> {
        let [_, winners, _] = self.keys(slot);
        self.query(redis::cmd("SISMEMBER").arg(winners).arg(user_id).clone())
            .await
    }

    /// The user `ticket` was issued to in the room in `room` of `epoch` (see `lua/queue.lua`),
    /// `None` when the room never issued it. A read: nothing in the room moves, whatever the
    /// answer, and the campaign's gate keys need not be loaded.
    #[tracing::instrument(level = "debug", skip(self, ticket), err(level = "warn"))]
    pub async fn ticket_holder(
        &self,
        room: Slot,
        epoch: i64,
        ticket: &str,
    ) -> Result<Option<i64>, GateError> {
        let mut inv = self.queue_call(room);
        inv.arg("holder")
            .arg(0)
            .arg(epoch)
            .arg(1)
            .arg(0)
            .arg(0)
            .arg(ticket)
            .arg("")
            .arg("")
            .arg("")
            .arg(0);
        let reply: Vec<redis::Value> = self.run(inv).await?;
        match text(reply.first()).as_deref() {
            Some("UNKNOWN") => Ok(None),
            Some("HOLDER") => int(reply.get(1))
                .map(Some)
                .ok_or_else(|| protocol("HOLDER", &reply)),
            _ => Err(protocol("?", &reply)),
        }
    }
}

impl Gate {
    /// `lua/queue.lua` with the campaign's keys, in its order: the gate's hash, the room's
    /// keys, the winners set, `…:qused` (a bucketed campaign's used admissions), the waitlist's
    /// keys and `…:qgone` (forgotten tickets, until their records leave).
    fn queue_call(&self, room: Slot) -> redis::ScriptInvocation<'static> {
        let [meta, winners, _] = self.keys(room);
        let mut inv = QUEUE.key(meta);
        for key in self.room_keys(room) {
            inv.key(key);
        }
        inv.key(winners).key(self.campaign_key_base(room) + "qused");
        for key in self.waitlist_keys(room) {
            inv.key(key);
        }
        inv.key(self.campaign_key_base(room) + "qgone");
        inv
    }
}

/// A reply the script never gives, described without its contents: it may carry a ticket, which
/// is its holder's secret and must not reach a log line.
fn protocol(status: &str, reply: &[redis::Value]) -> GateError {
    GateError::Protocol(format!(
        "queue.lua answered {status} with {} values in an unexpected shape",
        reply.len()
    ))
}

fn text(v: Option<&redis::Value>) -> Option<String> {
    match v? {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(v: Option<&redis::Value>) -> Option<i64> {
    match v? {
        redis::Value::Int(n) => Some(*n),
        other => text(Some(other))?.parse().ok(),
    }
}

fn parse(reply: &[redis::Value]) -> Result<RoomAnswer, GateError> {
    let unexpected = || protocol("OK", reply);
    match text(reply.first()).as_deref() {
        Some("MISSING") => return Ok(RoomAnswer::Missing),
        Some("UNKNOWN") => return Ok(RoomAnswer::Unknown),
        Some("CLIENT_LIMIT") => return Ok(RoomAnswer::ClientLimit),
        Some("FULL") => return Ok(RoomAnswer::Full),
        Some("OK") => {}
        _ => return Err(protocol("?", reply)),
    }
    let ticket = text(reply.get(1)).ok_or_else(unexpected)?;
    let position = int(reply.get(4)).ok_or_else(unexpected)?;
    let state = match text(reply.get(2)).as_deref() {
        Some("WAITING") => TicketState::Waiting { position },
        Some("SOLD_OUT") => TicketState::SoldOut { position },
        Some("WAITLISTED") => TicketState::Waitlisted { position },
        Some("ADMITTED") => TicketState::Admitted {
            expires_ms: int(reply.get(5)).ok_or_else(unexpected)?,
        },
        Some("USED") => TicketState::Used,
        Some("EXPIRED") => TicketState::Expired,
        _ => return Err(unexpected()),
    };
    let user_id = int(reply.get(3)).ok_or_else(unexpected)?;
    let admitted = int(reply.get(6)).ok_or_else(unexpected)?;
    let waited = Duration::from_millis(
        u64::try_from(int(reply.get(7)).ok_or_else(unexpected)?).unwrap_or(0),
    );
    Ok(RoomAnswer::Found {
        ticket: Ticket {
            ticket,
            user_id,
            state,
        },
        admitted,
        waited,
        waiting: int(reply.get(8)).ok_or_else(unexpected)?,
        offers: OfferCounts {
            offered: int(reply.get(9)).unwrap_or(0),
            taken: int(reply.get(10)).unwrap_or(0),
            passed: int(reply.get(11)).unwrap_or(0),
            waitlisted: int(reply.get(12)).unwrap_or(0),
        },
        pace_ms: int(reply.get(13)).unwrap_or(0),
    })
}

/// The waiting room's figures the live view shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomFigures {
    /// Tickets in the queue.
    pub waiting: i64,
    /// Admissions since the room was opened.
    pub admitted: i64,
    /// The waitlist (docs/design.md §22): tickets on it, offers open now, and offers made,
    /// taken and passed on since the room was opened.
    pub waitlisted: i64,
    pub offers_open: i64,
    pub offers: i64,
    pub offers_taken: i64,
    pub offers_passed: i64,
}

impl Gate {
    /// The queue length, admissions and waitlist so far of the room in `room` (four reads of its
    /// keys sent together, no step).
    pub async fn room_figures(&self, room: Slot) -> Result<RoomFigures, GateError> {
        let [waitlist, offers] = self.waitlist_keys(room);
        let [queue, _, _, _, _, room] = self.room_keys(room);
        let fields = ["admitted", "offers", "offers_taken", "offers_passed"];
        let (waiting, counts, waitlisted, offers_open) = tokio::try_join!(
            self.query::<i64>(redis::cmd("ZCARD").arg(queue).clone()),
            self.query::<Vec<Option<i64>>>(redis::cmd("HMGET").arg(room).arg(&fields[..]).clone()),
            self.query::<i64>(redis::cmd("SCARD").arg(waitlist).clone()),
            self.query::<i64>(redis::cmd("ZCARD").arg(offers).clone()),
        )?;
        let count = |i: usize| counts.get(i).copied().flatten().unwrap_or(0);
        Ok(RoomFigures {
            waiting,
            admitted: count(0),
            waitlisted,
            offers_open,
            offers: count(1),
            offers_taken: count(2),
            offers_passed: count(3),
        })
    }
}
