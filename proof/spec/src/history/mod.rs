//! The history format: what the harness writes while a sale runs, one JSON object per line
//! (JSON Lines), in Jepsen's shape, and the reader that pairs its entries into operations.
//!
//! # Format
//!
//! Every line is one entry:
//!
//! ```json
//! {"type": "invoke", "process": 3, "time": 1200345, "f": "join",
//!  "value": {"campaign": 1, "user": 77, "quantity": 1, "idempotencyKey": "k-77-1"}}
//! {"type": "ok", "process": 3, "time": 1900002, "f": "join",
//!  "value": {"campaign": 1, "user": 77, "quantity": 1, "participationId": 5, "status": "HELD"}}
//! ```
//!
//! - `type`: `invoke` (the client sends the request), then one of `ok` (a definite success: a
//!   2xx answer), `fail` (a definite refusal: a 4xx answer with its `code`) or `info`
//!   (indeterminate: a timeout, a reset connection, a 5xx; it may or may not have taken effect,
//!   now or later).
//! - `process`: the logical client, a non-negative integer. A process runs one operation at a
//!   time, so its completion is the next entry of the same process after its `invoke`, with the
//!   same `f`. An `invoke` with no completion by the end of the file counts as `info`. The fault
//!   injector writes `"process": "nemesis"`.
//! - `time`: nanoseconds on one monotonic clock of the harness (not wall time; only its order and
//!   differences mean something). Entries are written in time order.
//! - `f`: `join`, `cart` (a purchase of several campaigns of a group, §22), `confirm`, `cancel` (the user's), `refund` (an admin's cancel: of a confirmed
//!   win, or of a held one), `stock`, `pause`, `resume`, `close`, `queue` and `poll` (the
//!   waiting room, §16: `value.ticket`, `state`, `position`, `admissionToken`), or `nemesis` (a
//!   fault).
//! - `value`: the arguments on `invoke`, the arguments and the answer on a completion (fields
//!   absent on the completion are taken from the `invoke`). See [`Value`] for each field.
//!
//! A fault is `{"type": "info", "process": "nemesis", "time": …, "f": "nemesis",
//! "value": {"fault": "kill", "phase": "start", "target": "instance-1"}}`, and the healing of a
//! lasting fault the same with `"phase": "stop"`. A fault with no `stop` lasts to the end; one
//! with no phase is instantaneous (a SIGKILL). The `type` of nemesis entries is not interpreted.

use serde::{Deserialize, Serialize};

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "type")]
    pub kind: EntryType,
    pub process: Process,
    /// Nanoseconds on the harness's monotonic clock.
    pub time: u64,
    pub f: Func,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// A client (one operation at a time) or the fault injector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    Client(u64),
    Nemesis(NemesisTag),
}

/// The string `"nemesis"`, the only process that is not a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NemesisTag {
    #[serde(rename = "nemesis")]
    Nemesis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Func {
    Join,
    Confirm,
    Cancel,
    Refund,
    Stock,
    Pause,
    Resume,
    Close,
    /// The waiting room (§16): `POST …/queue` (a ticket) and `GET …/queue/{ticket}` (its state).
    Queue,
    Poll,
    /// A cart (§22): `POST /api/v1/groups/{id}/purchases`, several campaigns of a group bought
    /// at once, every item won or none. `value.group`, `user`, `items`, `idempotencyKey`; the
    /// answer `purchase` and each item's `participationId`, `sequence`, `status`; a refusal's
    /// `campaign` names the item that could not be had.
    Cart,
    /// A whole purchase's confirm, its user's cancel and an admin's cancel (a refund):
    /// `POST /api/v1/groups/{id}/purchases/{purchaseId}/confirm|cancel`. `value.group`,
    /// `purchase`, `user`; the answer's `items` with each item's `status`.
    PurchaseConfirm,
    PurchaseCancel,
    PurchaseRefund,
    Nemesis,
}

impl Func {
    pub const CLIENT: [Func; 8] = [
        Func::Join,
        Func::Confirm,
        Func::Cancel,
        Func::Refund,
        Func::Stock,
        Func::Pause,
        Func::Resume,
        Func::Close,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Func::Join => "join",
            Func::Confirm => "confirm",
            Func::Cancel => "cancel",
            Func::Refund => "refund",
            Func::Stock => "stock",
            Func::Pause => "pause",
            Func::Resume => "resume",
            Func::Close => "close",
            Func::Queue => "queue",
            Func::Poll => "poll",
            Func::Cart => "cart",
            Func::PurchaseConfirm => "purchase-confirm",
            Func::PurchaseCancel => "purchase-cancel",
            Func::PurchaseRefund => "purchase-refund",
            Func::Nemesis => "nemesis",
        }
    }

    /// A purchase's own operations (§22), judged through their items.
    pub fn is_purchase(self) -> bool {
        matches!(
            self,
            Func::Cart | Func::PurchaseConfirm | Func::PurchaseCancel | Func::PurchaseRefund
        )
    }

    /// The live controls of §15, whose answer is the campaign.
    pub fn is_control(self) -> bool {
        matches!(self, Func::Stock | Func::Pause | Func::Resume | Func::Close)
    }
}

/// Arguments and answer of an operation, or a fault's description. Every field is optional; the
/// ones an operation needs are listed with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Value {
    /// Every client operation: the campaign id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<i64>,
    /// join, confirm, cancel, refund: the user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<i64>,
    /// join: units asked (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    /// join: the `Idempotency-Key` header sent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// stock: units added (positive) or withdrawn (negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<i64>,
    /// Answer of join, confirm, cancel, refund: the participation id (also carried by an
    /// `ALREADY_PARTICIPATED` refusal once the win is committed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participation_id: Option<i64>,
    /// Answer of join, confirm, cancel, refund: the participation's status (`HELD`,
    /// `CONFIRMED`, `CANCELLED`, `EXPIRED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Answer of cancel, refund: the cancel reason (`USER`, `ADMIN`, `EXPIRED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Answer of cancel, refund, a purchase's cancel or refund, a control: whether its change
    /// reached the gate before the answer (`UPDATED`, `PENDING`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// Answer of join: the gate's FCFS sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    /// Answer of a control (the campaign's `controlCount`): the number of the last control the
    /// answer includes. Recording it lets the checker tie the answer to its event exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_seq: Option<i64>,
    /// queue, poll: the waiting room's ticket (the answer of a queue, the argument of a poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// Answer of queue, poll: the ticket's `state` (`WAITING`, `ADMITTED`, `SOLD_OUT`, `WAITLISTED`, `USED`,
    /// `EXPIRED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Answer of queue, poll: the ticket's `position` while it waits (1 = next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// Answer of queue, poll once `ADMITTED`: the token the room issued; join: the token sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_token: Option<String>,
    /// Queue (and a join with `BOT_CHECK_ON_JOIN`): the bot check the client sent (§16):
    /// `solved` (a solution of the service's challenge), `forged` (an answer that solves
    /// nothing) or `none` (no answer); absent: the run has no bot check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_check: Option<String>,
    /// Answer of queue, poll: the harness's wall clock when the answer arrived, ms since the
    /// epoch (the service's clock on the same machine): the ticket was last seen alive by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at_ms: Option<i64>,
    /// Answer of queue, poll once `ADMITTED`: `admissionExpiresAt`, ms since the epoch (an
    /// offer's: its admission instant plus `offerSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_expires_ms: Option<i64>,
    /// Answer of a control: the campaign's `totalStock` and `remainingStock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_stock: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_stock: Option<i64>,
    /// `fail`: the error's `code` (`SOLD_OUT`, `ALREADY_PARTICIPATED`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `info`: what made it indeterminate (`timeout`, `reset`, `503 DEPENDENCY_UNAVAILABLE`, …),
    /// for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// cart: the group bought from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<i64>,
    /// cart: the items asked (`campaign`, `quantity`), and once answered each item's win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Item>>,
    /// Answer of a cart: the purchase's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase: Option<i64>,
    /// nemesis: the fault's kind (`kill`, `stop`, `term`, `broker-hang`, `broker-down`,
    /// `redis-flush`, `redis-restart`, `redis-hang`, `mysql-failover`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// nemesis: `start` or `stop` (absent: an instantaneous fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// nemesis: what it hit (an instance's name, `kafka`, `redis`, `mysql`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Every client operation: the instance it was sent to (a nemesis `target`'s name, e.g.
    /// `instance-1`). Absent in older histories: then any instance may have served it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// One item of a cart: what it asked, and in an `ok` answer the item's win.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub campaign: i64,
    pub quantity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participation_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        }
    }
}

/// One client operation: an `invoke` paired with its completion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    /// Position in the list of operations (in invocation order).
    pub id: usize,
    pub process: u64,
    pub f: Func,
    pub invoke: i64,
    /// The completion's time; `None` for an operation never completed. An `info` has its time
    /// here too, but it may take effect after it (the server may still be working on it).
    pub complete: Option<i64>,
    pub outcome: Outcome,
    /// The invoke's value overlaid with the completion's.
    pub value: Value,
}

impl Op {
    pub fn campaign(&self) -> Option<i64> {
        self.value.campaign
    }
    pub fn user(&self) -> Option<i64> {
        self.value.user
    }
    pub fn quantity(&self) -> i64 {
        self.value.quantity.unwrap_or(1)
    }
    pub fn code(&self) -> Option<&str> {
        self.value.code.as_deref()
    }
    /// When the operation could last have taken effect: its completion if definite, never
    /// otherwise.
    pub fn definite_end(&self) -> i64 {
        match (self.outcome, self.complete) {
            (Outcome::Info, _) | (_, None) => i64::MAX,
            (_, Some(t)) => t,
        }
    }
}

/// A fault of the nemesis, with the span it lasted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    pub kind: String,
    pub target: Option<String>,
    pub start: i64,
    /// `None`: not healed within the history (or instantaneous: then `start`).
    pub end: Option<i64>,
}

/// A history read and paired.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    pub ops: Vec<Op>,
    pub faults: Vec<Fault>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("line {line}: {source}")]
    Parse {
        line: usize,
        source: serde_json::Error,
    },
    #[error("reading the history: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: process {process} completes {f} without an invoke")]
    Unpaired {
        line: usize,
        process: u64,
        f: &'static str,
    },
    #[error("line {line}: process {process} invokes {f} while its {pending} is still open")]
    Overlapping {
        line: usize,
        process: u64,
        f: &'static str,
        pending: &'static str,
    },
    #[error("line {line}: process {process} completes {f} but invoked {pending}")]
    WrongFunction {
        line: usize,
        process: u64,
        f: &'static str,
        pending: &'static str,
    },
    #[error("line {line}: a client entry with f \"nemesis\"")]
    ClientNemesis { line: usize },
    #[error("line {line}: time {time} does not fit in i64 nanoseconds")]
    Time { line: usize, time: u64 },
}

mod pair;

pub use pair::{pair, read};
