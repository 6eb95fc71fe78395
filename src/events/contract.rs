//! The contract check a consumer runs on every message of `campaign.participation.v1`
//! (docs/design.md §4): which event it is ([`ParticipationEvent`], dispatched on `eventType`), and
//! why a message that is none of them is poison ([`ContractError`]).
//!
//! Seven event types share the topic and the key (the campaign id): the three of a win
//! (`ParticipationAccepted`, `ParticipationConfirmed`, `ParticipationCancelled`) and the four of a
//! campaign's live controls (`CampaignStockChanged`, `CampaignPaused`, `CampaignResumed`,
//! `CampaignClosed`, one shape: [`CampaignChanged`]). One check serves them all, and a consumer
//! reads a campaign's events, wins and controls alike, in the order they were committed. A
//! consumer that has nothing to do for a type skips it; an `eventType` outside the seven is
//! poison.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::events::{
    accepted::{ParticipationAccepted, PARTICIPATION_ACCEPTED},
    control::{
        CampaignChanged, CAMPAIGN_CLOSED, CAMPAIGN_PAUSED, CAMPAIGN_RESUMED, CAMPAIGN_STOCK_CHANGED,
    },
    event_type,
    headers::{self, Headers},
    lifecycle::{
        ParticipationCancelled, ParticipationConfirmed, PARTICIPATION_CANCELLED,
        PARTICIPATION_CONFIRMED,
    },
};

/// Most units a campaign may have in all, at its creation and after units are added (the
/// contract bounds `totalStock` and a control's `delta` by it; `crate::campaign` enforces it).
pub const MAX_TOTAL_STOCK: i64 = 10_000_000;

/// Most buckets a campaign may have (docs/design.md §21): a bucketed campaign's message keys
/// name a bucket below it (`crate::bucket` enforces it).
pub const MAX_BUCKETS: u16 = 1024;

/// Why a message does not satisfy the contract (it goes to the consumer's dead-letter topic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("the value is not a JSON object: {0}")]
    NotJson(String),
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("{0}")]
    Invalid(String),
}

impl ContractError {
    /// The `dlq_reason` of a consumer dead letter.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "not_json",
            Self::UnknownEventType(_) => "unknown_event_type",
            Self::Invalid(_) => "contract_violation",
        }
    }
}

/// Every event type of the topic, as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParticipationEvent {
    /// A win (`HELD` or `CONFIRMED`).
    Accepted(ParticipationAccepted),
    /// A held win was confirmed.
    Confirmed(ParticipationConfirmed),
    /// A win was cancelled (by the user or an admin) or its hold expired.
    Cancelled(ParticipationCancelled),
    /// A live control changed the campaign (stock added or withdrawn, paused, resumed, closed).
    /// It is about no win: [`ParticipationEvent::participation`] is `None`.
    Campaign(CampaignChanged),
}

/// What every event of a win carries about the win, whichever of the three it is: the fields a
/// consumer of wins needs without matching on the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Participation {
    pub participation_id: i64,
    /// The winner (positive).
    pub user_id: i64,
    /// The win's units (won, confirmed, or given back; positive).
    pub quantity: i32,
    /// Points per unit the campaign grants (not negative).
    pub reward_points: i64,
}

/// The same expression on whichever event `$self` holds (the types share these fields).
macro_rules! each {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            ParticipationEvent::Accepted($e) => $body,
            ParticipationEvent::Confirmed($e) => $body,
            ParticipationEvent::Cancelled($e) => $body,
            ParticipationEvent::Campaign($e) => $body,
        }
    };
}

/// Reads the value as one event type; a missing or mistyped field is a contract violation.
fn parse<T: serde::de::DeserializeOwned>(value: &[u8]) -> Result<T, ContractError> {
    serde_json::from_slice(value).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            // Its `eventType` was read before the JSON broke off: not JSON all the same.
            ContractError::NotJson(e.to_string())
        } else {
            ContractError::Invalid(e.to_string())
        }
    })
}

/// Whether `key` is `campaign_id` as the message key writes it (`event::message_key`), or a
/// bucket of it, `<campaign>:<bucket>` (`accepted::win_message_key`, docs/design.md §21), without
/// writing it anew for every message.
fn is_message_key(key: &[u8], campaign_id: i64) -> bool {
    use std::io::Write;
    let mut text = [0u8; 20];
    let mut out = &mut text[..];
    // 20 bytes hold any i64 in decimal.
    let Ok(n) = write!(out, "{campaign_id}").map(|()| 20 - out.len()) else {
        return false;
    };
    match key.strip_prefix(&text[..n]) {
        Some([]) => true,
        Some([b':', bucket @ ..]) => is_bucket(bucket),
        _ => false,
    }
}

/// A bucket as a key writes it: decimal, below [`MAX_BUCKETS`], no leading zero.
fn is_bucket(text: &[u8]) -> bool {
    let decimal = !text.is_empty()
        && text.len() <= 4
        && text.iter().all(u8::is_ascii_digit)
        && (text == b"0" || text[0] != b'0');
    decimal
        && std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<u16>().ok())
            .is_some_and(|b| b < MAX_BUCKETS)
}

/// A rule of the contract: `Ok` when `holds`, else a violation saying which.
fn rule(holds: bool, what: &str) -> Result<(), ContractError> {
    if holds {
        Ok(())
    } else {
        Err(ContractError::Invalid(what.into()))
    }
}

impl ParticipationEvent {
    /// The contract check: the value is one of the topic's event types (by `eventType`), the
    /// `event_id` header (when present) and the key agree with it, and its numbers are in range
    /// (for a win's events: positive `userId` and `quantity`, `rewardPoints` not negative; for a
    /// control: see [`check_control`]). Anything else is poison for every consumer, an
    /// `eventType` it does not know included.
    pub fn from_message(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<Self, ContractError> {
        let event_id = headers.get(headers::EVENT_ID).map(String::as_bytes);
        Self::checked(key, value, event_id)
    }

    /// [`Self::from_message`] with the one header the check reads, `event_id`, as it came
    /// (`headers::received`: what a consumer reads off librdkafka without copying).
    pub fn checked(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        event_id: Option<&[u8]>,
    ) -> Result<Self, ContractError> {
        let value =
            value.ok_or_else(|| ContractError::NotJson("the message has no value".into()))?;
        // The usual message: its `eventType` read first, then the value parsed once into that
        // type. Anything else (not JSON, no `eventType` string) takes the general way, which
        // names what is wrong.
        let event = match event_type::event_type(value) {
            Some(event_type) => Self::of_type(&event_type, value)?,
            None => Self::from_value(value)?,
        };
        event.check(key, event_id)?;
        Ok(event)
    }

    /// `value` parsed as the event type `event_type` names.
    fn of_type(event_type: &str, value: &[u8]) -> Result<Self, ContractError> {
        Ok(match event_type {
            PARTICIPATION_ACCEPTED => Self::Accepted(parse(value)?),
            PARTICIPATION_CONFIRMED => Self::Confirmed(parse(value)?),
            PARTICIPATION_CANCELLED => Self::Cancelled(parse(value)?),
            CAMPAIGN_STOCK_CHANGED | CAMPAIGN_PAUSED | CAMPAIGN_RESUMED | CAMPAIGN_CLOSED => {
                Self::Campaign(parse(value)?)
            }
            other => return Err(ContractError::UnknownEventType(other.into())),
        })
    }

    /// A value whose `eventType` could not be read as a string: not JSON, or an unknown type.
    fn from_value(value: &[u8]) -> Result<Self, ContractError> {
        let json: serde_json::Value =
            serde_json::from_slice(value).map_err(|e| ContractError::NotJson(e.to_string()))?;
        let event_type = json
            .get("eventType")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        Self::of_type(event_type, value)
    }

    /// The rules every event type shares (header, key), then its own, beyond its shape.
    fn check(&self, key: Option<&[u8]>, event_id: Option<&[u8]>) -> Result<(), ContractError> {
        let mut text = Uuid::encode_buffer();
        let own_id = self.event_id().hyphenated().encode_lower(&mut text);
        if let Some(id) = event_id.filter(|id| *id != own_id.as_bytes()) {
            return Err(ContractError::Invalid(format!(
                "header event_id {:?} differs from eventId {own_id}",
                String::from_utf8_lossy(id)
            )));
        }
        if !key.is_some_and(|key| is_message_key(key, self.campaign_id())) {
            return Err(ContractError::Invalid(format!(
                "the key {:?} is not campaignId {}",
                key.map(String::from_utf8_lossy),
                self.campaign_id()
            )));
        }
        match self {
            Self::Campaign(control) => check_control(control),
            _ => self.participation().map_or(Ok(()), check_participation),
        }
    }

    /// The dedupe key (the same in every copy of the event).
    pub fn event_id(&self) -> Uuid {
        each!(self, e => e.event_id)
    }

    /// `eventType`: which of the seven it is.
    pub fn event_type(&self) -> &str {
        each!(self, e => &e.event_type)
    }

    /// When the change it reports committed.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        each!(self, e => e.occurred_at)
    }

    /// The campaign; also the message key.
    pub fn campaign_id(&self) -> i64 {
        each!(self, e => e.campaign_id)
    }

    /// The win the event is about, with what its events all carry; `None` for a campaign
    /// control, which is about no win (so a consumer cannot mistake it for one of zero units).
    pub fn participation(&self) -> Option<Participation> {
        let (participation_id, user_id, quantity, reward_points) = match self {
            Self::Accepted(e) => (e.participation_id, e.user_id, e.quantity, e.reward_points),
            Self::Confirmed(e) => (e.participation_id, e.user_id, e.quantity, e.reward_points),
            Self::Cancelled(e) => (e.participation_id, e.user_id, e.quantity, e.reward_points),
            Self::Campaign(_) => return None,
        };
        Some(Participation {
            participation_id,
            user_id,
            quantity,
            reward_points,
        })
    }
}

/// The rules of a win's events: a user, some units, and no negative points (what the rewards
/// consumer multiplies).
fn check_participation(win: Participation) -> Result<(), ContractError> {
    rule(
        win.user_id > 0 && win.quantity > 0 && win.reward_points >= 0,
        "userId and quantity must be positive, rewardPoints not negative",
    )
}

/// A control's own rules: it is numbered from 1, the stock it reports is a possible one
/// (`0 <= remainingStock <= totalStock <= 10,000,000`, as the campaign table's CHECK and the API
/// keep it), `delta` is there, not 0 and at most the largest total in size, exactly on a stock
/// change (a change of nothing is not written), and it names who asked. The bounds keep a
/// hand-made event from overflowing a consumer's sums, which would fail its batch forever.
fn check_control(c: &CampaignChanged) -> Result<(), ContractError> {
    rule(c.control_seq >= 1, "controlSeq must be at least 1")?;
    rule(
        (0..=MAX_TOTAL_STOCK).contains(&c.total_stock),
        "totalStock must be between 0 and 10,000,000",
    )?;
    rule(
        0 <= c.remaining_stock && c.remaining_stock <= c.total_stock,
        "remainingStock must be between 0 and totalStock",
    )?;
    match (c.event_type == CAMPAIGN_STOCK_CHANGED, c.delta) {
        (true, Some(delta)) => rule(
            delta != 0 && (-MAX_TOTAL_STOCK..=MAX_TOTAL_STOCK).contains(&delta),
            "delta must not be 0 and at most 10,000,000 in size",
        )?,
        (true, None) => rule(false, "a CampaignStockChanged must have a delta")?,
        (false, Some(_)) => rule(false, "only a CampaignStockChanged has a delta")?,
        (false, None) => {}
    }
    rule(!c.changed_by.is_empty(), "changedBy must not be empty")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{
        accepted::WinStatus,
        lifecycle::{CancelReason, ParticipationMessage},
    };

    #[test]
    fn a_key_is_the_campaign_id_in_decimal_and_nothing_else() {
        for id in [1, 42, i64::MAX, i64::MIN, 0, -7] {
            assert!(
                is_message_key(crate::events::accepted::message_key(id).as_bytes(), id),
                "{id}"
            );
        }
        assert!(!is_message_key(b"042", 42));
        assert!(!is_message_key(b"+42", 42));
        assert!(!is_message_key(b"42 ", 42));
        assert!(!is_message_key(b"4", 42));
        assert!(!is_message_key(b"", 42));
    }

    #[test]
    fn a_buckets_key_is_the_campaign_id_a_colon_and_the_bucket() {
        let key = |b| crate::events::accepted::win_message_key(42, b);
        for bucket in [None, Some(0), Some(7), Some(1023)] {
            assert!(is_message_key(key(bucket).as_bytes(), 42), "{bucket:?}");
        }
        for bad in [
            &b"42:"[..],
            b"42:01",
            b"42:1024",
            b"42:-1",
            b"42:1:2",
            b"42::1",
            b"4:1",
        ] {
            assert!(!is_message_key(bad, 42), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("a valid time")
    }

    fn accepted() -> ParticipationAccepted {
        ParticipationAccepted {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_ACCEPTED.into(),
            occurred_at: at(0),
            campaign_id: 1,
            participation_id: 2,
            user_id: 3,
            quantity: 2,
            sequence: 4,
            reward_points: 10,
            status: WinStatus::Held,
            hold_expires_at: Some(at(60)),
            purchase_id: None,
        }
    }

    fn confirmed() -> ParticipationConfirmed {
        ParticipationConfirmed {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_CONFIRMED.into(),
            occurred_at: at(1),
            campaign_id: 1,
            participation_id: 2,
            user_id: 3,
            quantity: 2,
            reward_points: 10,
            purchase_id: None,
        }
    }

    fn cancelled() -> ParticipationCancelled {
        ParticipationCancelled {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_CANCELLED.into(),
            occurred_at: at(2),
            campaign_id: 1,
            participation_id: 2,
            user_id: 3,
            quantity: 2,
            reason: CancelReason::Admin,
            previous_status: WinStatus::Confirmed,
            reward_points: 10,
            purchase_id: None,
        }
    }

    /// The message the relay would send for `e`: its key, value and headers.
    fn check<E: ParticipationMessage>(
        e: &E,
        key: &str,
        headers: &Headers,
    ) -> Result<ParticipationEvent, ContractError> {
        ParticipationEvent::from_message(Some(key.as_bytes()), Some(e.json().as_bytes()), headers)
    }

    #[test]
    fn each_event_type_is_read_as_itself() {
        let (a, c, x) = (accepted(), confirmed(), cancelled());
        let got = check(&a, "1", &a.message_headers(None));
        assert_eq!(got, Ok(ParticipationEvent::Accepted(a.clone())));
        let got = check(&c, "1", &c.message_headers(None));
        assert_eq!(got, Ok(ParticipationEvent::Confirmed(c.clone())));
        let got = check(&x, "1", &x.message_headers(None)).expect("valid");
        assert_eq!(got, ParticipationEvent::Cancelled(x.clone()));
        assert_eq!(got.event_id(), x.event_id);
        assert_eq!(got.event_type(), PARTICIPATION_CANCELLED);
        assert_eq!(got.occurred_at(), x.occurred_at);
        let win = got.participation().expect("a win's event");
        assert_eq!(
            (
                win.participation_id,
                win.user_id,
                win.quantity,
                win.reward_points
            ),
            (2, 3, 2, 10)
        );
    }

    fn control(event_type: &str, delta: Option<i64>) -> CampaignChanged {
        CampaignChanged {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            occurred_at: at(3),
            campaign_id: 1,
            control_seq: 1,
            changed_by: "ops".into(),
            delta,
            total_stock: 10,
            remaining_stock: 4,
        }
    }

    /// The four controls, each as it is written.
    fn controls() -> [CampaignChanged; 4] {
        [
            control(CAMPAIGN_STOCK_CHANGED, Some(-2)),
            control(CAMPAIGN_PAUSED, None),
            control(CAMPAIGN_RESUMED, None),
            control(CAMPAIGN_CLOSED, None),
        ]
    }

    /// The message the relay would send for the control `c`, with the key `key`.
    fn check_control(c: &CampaignChanged, key: &str) -> Result<ParticipationEvent, ContractError> {
        ParticipationEvent::from_message(
            Some(key.as_bytes()),
            Some(c.json().as_bytes()),
            &c.message_headers(None),
        )
    }

    #[test]
    fn each_control_is_read_as_a_campaign_event_about_no_win() {
        for c in controls() {
            let got = check_control(&c, "1").expect("valid");
            assert_eq!(got, ParticipationEvent::Campaign(c.clone()));
            assert_eq!(
                (got.event_id(), got.event_type(), got.occurred_at()),
                (c.event_id, c.event_type.as_str(), c.occurred_at)
            );
            assert_eq!(got.campaign_id(), 1);
            assert_eq!(got.participation(), None, "{}", c.event_type);
        }
        let added = control(CAMPAIGN_STOCK_CHANGED, Some(5));
        assert!(check_control(&added, "1").is_ok());
    }

    #[test]
    fn each_rule_of_a_control_is_checked() {
        let reason = |r: Result<ParticipationEvent, ContractError>| r.expect_err("poison").reason();
        let [stock, paused, _, closed] = controls();
        assert_eq!(reason(check_control(&paused, "2")), "contract_violation");
        let mut other = paused.message_headers(None);
        other.insert(headers::EVENT_ID.into(), Uuid::nil().to_string());
        let wrong_id =
            ParticipationEvent::from_message(Some(b"1"), Some(paused.json().as_bytes()), &other);
        assert_eq!(reason(wrong_id), "contract_violation");
        // Each broken control, the field its violation names, and what breaks it.
        type Break = fn(&mut CampaignChanged);
        let broken: [(&CampaignChanged, &str, Break); 12] = [
            (&stock, "totalStock", |c| {
                c.total_stock = MAX_TOTAL_STOCK + 1
            }),
            (&stock, "delta", |c| c.delta = Some(MAX_TOTAL_STOCK + 1)),
            (&stock, "delta", |c| c.delta = Some(i64::MIN)),
            (&closed, "controlSeq", |c| c.control_seq = 0),
            (&closed, "totalStock", |c| {
                (c.total_stock, c.remaining_stock) = (-1, 0)
            }),
            (&closed, "remainingStock", |c| c.remaining_stock = -1),
            (&stock, "remainingStock", |c| c.remaining_stock = 11),
            (&stock, "delta", |c| c.delta = Some(0)),
            (&stock, "delta", |c| c.delta = None),
            (&paused, "delta", |c| c.delta = Some(1)),
            (&closed, "delta", |c| c.delta = Some(-1)),
            (&paused, "changedBy", |c| c.changed_by.clear()),
        ];
        for (valid, field, break_it) in broken {
            let mut c = valid.clone();
            break_it(&mut c);
            let err = check_control(&c, "1").expect_err("poison");
            assert_eq!(err.reason(), "contract_violation", "{c:?}");
            assert!(err.to_string().contains(field), "{err} for {c:?}");
        }
        for field in ["controlSeq", "changedBy", "totalStock", "remainingStock"] {
            let mut json = serde_json::to_value(&paused).expect("serializes");
            json.as_object_mut().expect("object").remove(field);
            let got = ParticipationEvent::from_message(
                Some(b"1"),
                Some(json.to_string().as_bytes()),
                &Headers::new(),
            );
            assert_eq!(reason(got), "contract_violation", "without {field}");
        }
    }

    #[test]
    fn an_accepted_event_from_before_the_lifecycle_reads_as_confirmed() {
        let mut json = serde_json::to_value(accepted()).expect("serializes");
        let object = json.as_object_mut().expect("object");
        for old in ["status", "holdExpiresAt", "rewardPoints"] {
            object.remove(old);
        }
        let got = ParticipationEvent::from_message(
            Some(b"1"),
            Some(json.to_string().as_bytes()),
            &Headers::new(),
        );
        let Ok(ParticipationEvent::Accepted(e)) = got else {
            panic!("not read as a win: {got:?}");
        };
        assert_eq!(
            (e.status, e.hold_expires_at, e.reward_points),
            (WinStatus::Confirmed, None, 0)
        );
    }

    #[test]
    fn the_shared_rules_hold_for_every_type() {
        let (c, x) = (confirmed(), cancelled());
        let reason = |r: Result<ParticipationEvent, ContractError>| r.expect_err("poison").reason();
        assert_eq!(
            reason(check(&c, "2", &Headers::new())),
            "contract_violation"
        );
        let mut other = x.message_headers(None);
        other.insert(headers::EVENT_ID.into(), Uuid::nil().to_string());
        assert_eq!(reason(check(&x, "1", &other)), "contract_violation");
        let mut bad = x.clone();
        bad.quantity = 0;
        assert_eq!(
            reason(check(&bad, "1", &Headers::new())),
            "contract_violation"
        );
        let mut bad = c.clone();
        bad.user_id = -1;
        assert_eq!(
            reason(check(&bad, "1", &Headers::new())),
            "contract_violation"
        );
        let mut bad = c;
        bad.reward_points = -1;
        assert_eq!(
            reason(check(&bad, "1", &Headers::new())),
            "contract_violation"
        );
    }

    #[test]
    fn poison_is_classified() {
        let h = Headers::new();
        let reason = |v: &[u8]| {
            ParticipationEvent::from_message(Some(b"1"), Some(v), &h)
                .expect_err("poison")
                .reason()
        };
        assert_eq!(reason(b"not json"), "not_json");
        assert_eq!(reason(br#"{"eventType":"Refunded"}"#), "unknown_event_type");
        assert_eq!(reason(br#"{"no":"type"}"#), "unknown_event_type");
        // A control's type in another case is not a control.
        assert_eq!(
            reason(br#"{"eventType":"campaignPaused"}"#),
            "unknown_event_type"
        );
        for t in [
            PARTICIPATION_ACCEPTED,
            PARTICIPATION_CONFIRMED,
            PARTICIPATION_CANCELLED,
            CAMPAIGN_STOCK_CHANGED,
            CAMPAIGN_PAUSED,
            CAMPAIGN_RESUMED,
            CAMPAIGN_CLOSED,
        ] {
            let value = format!(r#"{{"eventType":"{t}"}}"#);
            assert_eq!(reason(value.as_bytes()), "contract_violation", "{t}");
        }
        let mut json = serde_json::to_value(cancelled()).expect("serializes");
        json["reason"] = "BORED".into();
        assert_eq!(reason(json.to_string().as_bytes()), "contract_violation");
        let none = ParticipationEvent::from_message(Some(b"1"), None, &h);
        assert_eq!(none.expect_err("poison").reason(), "not_json");
        // JSON that breaks off or runs on after its eventType is still not JSON.
        let whole = cancelled().json();
        for broken in [&whole[..whole.len() - 1], &format!("{whole} {{")] {
            assert_eq!(reason(broken.as_bytes()), "not_json", "{broken}");
        }
        // A second eventType is refused, whichever came first.
        let twice = whole.replacen('{', r#"{"eventType":"Refunded","#, 1);
        assert_eq!(reason(twice.as_bytes()), "unknown_event_type");
        let twice = whole.replacen('{', r#"{"eventType":"ParticipationCancelled","#, 1);
        assert_eq!(reason(twice.as_bytes()), "contract_violation");
    }
}
