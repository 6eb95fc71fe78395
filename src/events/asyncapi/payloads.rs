//! The payload schemas and examples of the topic's seven event types, for the AsyncAPI document:
//! one JSON Schema per shape, generated from its field list ([`accepted::FIELDS`],
//! [`lifecycle::CONFIRMED_FIELDS`], [`lifecycle::CANCELLED_FIELDS`], [`control::FIELDS`]), with the
//! rules the contract check (`ParticipationEvent::from_message`) enforces. A win's three event
//! types have a shape each; the four controls share one, `CampaignChanged`. Tests check each
//! schema against what serde writes and requires.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::{
    events::contract::MAX_TOTAL_STOCK,
    events::{
        accepted::{self, ParticipationAccepted, WinStatus, PARTICIPATION_ACCEPTED},
        control::{
            self, CampaignChanged, ControlKind, CAMPAIGN_CLOSED, CAMPAIGN_PAUSED, CAMPAIGN_RESUMED,
            CAMPAIGN_STOCK_CHANGED,
        },
        lifecycle::{
            self, CancelReason, ParticipationCancelled, ParticipationConfirmed,
            PARTICIPATION_CANCELLED, PARTICIPATION_CONFIRMED,
        },
    },
};

/// One shape of value, as the document describes it.
pub struct Payload {
    /// The schema's and the message's name: the `eventType` of a win's event, `CampaignChanged`
    /// for the controls.
    pub name: &'static str,
    /// The `eventType`s of this shape (one, but for the controls).
    pub event_types: &'static [&'static str],
    fields: &'static [(&'static str, &'static str, &'static str)],
    /// Fields a reader may find missing (added within v1, or set only sometimes).
    optional: &'static [&'static str],
    /// Descriptions of this type's own fields, before the shared ones.
    descriptions: &'static [(&'static str, &'static str)],
    pub summary: &'static str,
}

/// Descriptions of the fields every type has (the last four: every event of a win).
const SHARED: &[(&str, &str)] = &[
    ("eventId", "UUIDv7, the same in every copy of the event: the dedupe key (= the event_id header)."),
    ("occurredAt", "When the change committed: RFC 3339, UTC, ≤ 6 fraction digits."),
    ("campaignId", "The campaign; also the message key."),
    ("participationId", "The participation (the win) the event is about; unique per win, the same in all of its events."),
    ("userId", "The winner (positive)."),
    ("quantity", "The win's units (at least 1)."),
    ("rewardPoints", "Points per unit the campaign grants."),
];

pub const ACCEPTED: Payload = Payload {
    name: PARTICIPATION_ACCEPTED,
    event_types: &[PARTICIPATION_ACCEPTED],
    fields: accepted::FIELDS,
    optional: &["rewardPoints", "status", "holdExpiresAt", "purchaseId"],
    descriptions: &[
        ("eventType", "Always ParticipationAccepted."),
        ("occurredAt", "When the win was committed (the response's acceptedAt): RFC 3339, UTC, ≤ 6 fraction digits."),
        ("quantity", "Units won (at least 1)."),
        ("sequence", "FCFS rank from the Redis gate: increasing within a campaign, gaps are normal."),
        ("rewardPoints", "Points per unit the campaign grants (added in v1; 0 in events written before it)."),
        ("status", "HELD (the campaign has a confirmation window: a ParticipationConfirmed or ParticipationCancelled follows) or CONFIRMED (final at once). Added in v1; CONFIRMED in events written before it."),
        ("holdExpiresAt", "When a HELD win expires unless confirmed (absent when CONFIRMED)."),
        ("purchaseId", "The purchase (a cart of several campaigns of one group) this win is an item of; absent for a join of one campaign. A purchase's items are accepted in one transaction, each on its own campaign's key, and are confirmed, cancelled or expired together (added in v1)."),
    ],
    summary: "One accepted participation (a win), HELD or CONFIRMED.",
};

pub const CONFIRMED: Payload = Payload {
    name: PARTICIPATION_CONFIRMED,
    event_types: &[PARTICIPATION_CONFIRMED],
    fields: lifecycle::CONFIRMED_FIELDS,
    optional: &["purchaseId"],
    descriptions: &[
        ("eventType", "Always ParticipationConfirmed."),
        (
            "occurredAt",
            "When the confirmation committed: RFC 3339, UTC, ≤ 6 fraction digits.",
        ),
        (
            "rewardPoints",
            "Points per unit the campaign grants (the rewards consumer grants them now).",
        ),
        (
            "purchaseId",
            "The purchase this win is an item of, as in its ParticipationAccepted; absent for a \
             join of one campaign. A purchase is confirmed as a whole: each item's event on its \
             own campaign's key.",
        ),
    ],
    summary: "A HELD win was confirmed (paid) before its hold expired: it is final. Follows the \
              win's ParticipationAccepted.",
};

pub const CANCELLED: Payload = Payload {
    name: PARTICIPATION_CANCELLED,
    event_types: &[PARTICIPATION_CANCELLED],
    fields: lifecycle::CANCELLED_FIELDS,
    optional: &["purchaseId"],
    descriptions: &[
        ("eventType", "Always ParticipationCancelled."),
        ("occurredAt", "When the cancellation committed: RFC 3339, UTC, ≤ 6 fraction digits."),
        ("quantity", "Units given back to the sale (the win's units)."),
        ("reason", "USER (the user gave a held win up), ADMIN (an admin cancelled it: the only way to cancel a CONFIRMED win, a refund) or EXPIRED (the hold ran out unconfirmed)."),
        ("previousStatus", "What the win was before: CONFIRMED means points were granted and a refund takes them back; HELD means nothing was granted."),
        ("rewardPoints", "Points per unit the campaign grants (what a refund takes back)."),
        ("purchaseId", "The purchase this win is an item of, as in its ParticipationAccepted; absent for a join of one campaign. A purchase is cancelled, refunded or expired as a whole: each item's event on its own campaign's key."),
    ],
    summary: "A win was cancelled or its hold expired; its units went back to the sale. Follows \
              the win's ParticipationAccepted (and its ParticipationConfirmed, for a refund); \
              nothing follows it.",
};

/// The schema's name for the controls' one shape.
pub const CAMPAIGN_CHANGED: &str = "CampaignChanged";

pub const CONTROL: Payload = Payload {
    name: CAMPAIGN_CHANGED,
    event_types: &[
        CAMPAIGN_STOCK_CHANGED,
        CAMPAIGN_PAUSED,
        CAMPAIGN_RESUMED,
        CAMPAIGN_CLOSED,
    ],
    fields: control::FIELDS,
    optional: &["delta"],
    descriptions: &[
        ("eventType", "Which control: CampaignStockChanged (units added or withdrawn), CampaignPaused (joins are refused until a resume), CampaignResumed, CampaignClosed (the campaign ended early)."),
        ("occurredAt", "When the control committed: RFC 3339, UTC, ≤ 6 fraction digits."),
        ("controlSeq", "The control's number within its campaign: 1, 2, … in commit order."),
        ("changedBy", "The name of the admin token that asked (not empty)."),
        ("delta", "Present on CampaignStockChanged only, and never 0 there: units added (positive) or withdrawn (negative), at most 10,000,000 either way. Absent on the other three."),
        ("totalStock", "The campaign's stock after the control."),
        ("remainingStock", "Units still for sale after the control (0 ≤ remainingStock ≤ totalStock)."),
    ],
    summary: "A live control changed the campaign: stock added or withdrawn, paused, resumed or \
              closed early. About no win: a consumer with nothing to do for it skips it.",
};

/// The four, the win's three in the order a win's events can come, then the controls.
pub const ALL: [&Payload; 4] = [&ACCEPTED, &CONFIRMED, &CANCELLED, &CONTROL];

/// Every `eventType` of the topic.
pub fn event_types() -> Vec<&'static str> {
    ALL.iter()
        .flat_map(|p| p.event_types.iter().copied())
        .collect()
}

impl Payload {
    fn description(&self, field: &str) -> Option<&'static str> {
        self.descriptions
            .iter()
            .chain(SHARED)
            .find(|d| d.0 == field)
            .map(|d| d.1)
    }

    /// The value's JSON Schema, one property per field of its list.
    pub fn schema(&self) -> Value {
        let mut properties = Map::new();
        for &(name, json_type, format) in self.fields {
            let mut property = json!({ "type": json_type, "description": self.description(name) });
            if !format.is_empty() {
                property["format"] = format.into();
            }
            properties.insert(name.into(), property);
        }
        let required: Vec<&str> = self
            .fields
            .iter()
            .map(|f| f.0)
            .filter(|name| !self.optional.contains(name))
            .collect();
        let mut schema = json!({
            "type": "object",
            "description": "UTF-8 JSON, camelCase. Readers ignore fields they do not know: fields \
                            are only ever added within v1.",
            "required": required,
            "properties": properties,
            "additionalProperties": true,
        });
        // The rules the contract check enforces.
        let p = &mut schema["properties"];
        match self.event_types {
            [one] => p["eventType"]["const"] = (*one).into(),
            several => p["eventType"]["enum"] = json!(several),
        }
        if self.name == CAMPAIGN_CHANGED {
            p["controlSeq"]["minimum"] = 1.into();
            p["changedBy"]["minLength"] = 1.into();
            p["delta"]["not"] = json!({ "const": 0 });
            p["delta"]["minimum"] = (-MAX_TOTAL_STOCK).into();
            p["delta"]["maximum"] = MAX_TOTAL_STOCK.into();
            p["totalStock"]["minimum"] = 0.into();
            p["totalStock"]["maximum"] = MAX_TOTAL_STOCK.into();
            p["remainingStock"]["minimum"] = 0.into();
            // delta on a stock change, and only there.
            schema["if"] =
                json!({ "properties": { "eventType": { "const": CAMPAIGN_STOCK_CHANGED } } });
            schema["then"] = json!({ "required": ["delta"] });
            schema["else"] = json!({ "not": { "required": ["delta"] } });
            return schema;
        }
        p["userId"]["minimum"] = 1.into();
        p["quantity"]["minimum"] = 1.into();
        p["rewardPoints"]["minimum"] = 0.into();
        let statuses = json!([WinStatus::Held.as_str(), WinStatus::Confirmed.as_str()]);
        match self.name {
            PARTICIPATION_ACCEPTED => {
                p["rewardPoints"]["default"] = 0.into();
                p["status"]["enum"] = statuses;
                p["status"]["default"] = WinStatus::Confirmed.as_str().into();
            }
            PARTICIPATION_CANCELLED => {
                p["reason"]["enum"] = json!(CancelReason::ALL.map(CancelReason::as_str));
                p["previousStatus"]["enum"] = statuses;
            }
            _ => {}
        }
        schema
    }

    /// The document's sample value of this type (the messages' examples are built from the same
    /// events), for the tests.
    #[cfg(test)]
    fn example(&self) -> Value {
        let value = match self.name {
            PARTICIPATION_ACCEPTED => serde_json::to_value(accepted()),
            PARTICIPATION_CONFIRMED => serde_json::to_value(confirmed()),
            PARTICIPATION_CANCELLED => serde_json::to_value(cancelled()),
            // The stock change: the one control with every field.
            _ => serde_json::to_value(&controls()[0]),
        };
        value.unwrap_or_default()
    }

    /// Whether serde reads `value` as this shape.
    #[cfg(test)]
    fn reads(&self, value: Value) -> bool {
        match self.name {
            PARTICIPATION_ACCEPTED => {
                serde_json::from_value::<ParticipationAccepted>(value).is_ok()
            }
            PARTICIPATION_CONFIRMED => {
                serde_json::from_value::<ParticipationConfirmed>(value).is_ok()
            }
            PARTICIPATION_CANCELLED => {
                serde_json::from_value::<ParticipationCancelled>(value).is_ok()
            }
            _ => serde_json::from_value::<CampaignChanged>(value).is_ok(),
        }
    }
}

/// The examples' times: a win, its confirmation two minutes later, within a ten-minute hold.
fn at(minute: u32, micro: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2026, 11, 21)
        .and_then(|d| d.and_hms_micro_opt(9, minute, 0, micro))
        .unwrap_or_default()
        .and_utc()
}

/// The examples' win: held, so every field of the type is shown.
pub fn accepted() -> ParticipationAccepted {
    ParticipationAccepted {
        event_id: Uuid::from_u128(0x0193a5f2_7c4e_7b21_9d3a_5e8f0c1b2a47),
        event_type: PARTICIPATION_ACCEPTED.into(),
        occurred_at: at(0, 123_456),
        campaign_id: 42,
        participation_id: 1001,
        user_id: 7,
        quantity: 1,
        sequence: 17,
        reward_points: 10,
        status: WinStatus::Held,
        hold_expires_at: Some(at(10, 123_456)),
        purchase_id: Some(501),
    }
}

/// The example win's confirmation.
pub fn confirmed() -> ParticipationConfirmed {
    ParticipationConfirmed {
        event_id: Uuid::from_u128(0x0193a5f4_5d10_7c02_8e4b_6f9a1d2c3b58),
        event_type: PARTICIPATION_CONFIRMED.into(),
        occurred_at: at(2, 5_000),
        campaign_id: 42,
        participation_id: 1001,
        user_id: 7,
        quantity: 1,
        reward_points: 10,
        purchase_id: Some(501),
    }
}

/// The example win refunded by an admin after its confirmation.
pub fn cancelled() -> ParticipationCancelled {
    ParticipationCancelled {
        event_id: Uuid::from_u128(0x0193a5f9_1e22_7d13_9f5c_7a0b2e3d4c69),
        event_type: PARTICIPATION_CANCELLED.into(),
        occurred_at: at(30, 0),
        campaign_id: 42,
        participation_id: 1001,
        user_id: 7,
        quantity: 1,
        reason: CancelReason::Admin,
        previous_status: WinStatus::Confirmed,
        reward_points: 10,
        purchase_id: Some(501),
    }
}

/// The examples' controls, one of each kind, on the example win's campaign: 50 units added
/// while it sells, a pause and a resume, then an early close.
pub fn controls() -> [CampaignChanged; 4] {
    let control =
        |seq: i64, kind: ControlKind, minute: u32, delta: Option<i64>, remaining| CampaignChanged {
            event_id: Uuid::from_u128(0x0193a5fa_0000_7e24_a06d_8b1c3f4e5d70 + seq as u128),
            event_type: kind.event_type().into(),
            occurred_at: at(minute, 250_000),
            campaign_id: 42,
            control_seq: seq,
            changed_by: "ops".into(),
            delta,
            total_stock: 150,
            remaining_stock: remaining,
        };
    [
        control(1, ControlKind::StockChanged, 5, Some(50), 80),
        control(2, ControlKind::Paused, 20, None, 61),
        control(3, ControlKind::Resumed, 25, None, 61),
        control(4, ControlKind::Closed, 40, None, 44),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_schemas_properties_are_the_serialized_fields() {
        for payload in ALL {
            let schema = payload.schema();
            let properties = schema["properties"].as_object().expect("properties");
            let mut documented: Vec<&String> = properties.keys().collect();
            let example = payload.example();
            let mut serialized: Vec<&String> =
                example.as_object().expect("object").keys().collect();
            documented.sort_unstable();
            serialized.sort_unstable();
            assert_eq!(documented, serialized, "{}", payload.name);
            for (name, p) in properties {
                let described = p["description"].as_str().is_some_and(|d| !d.is_empty());
                assert!(described, "{}.{name}", payload.name);
            }
        }
    }

    #[test]
    fn each_schemas_required_is_what_serde_requires() {
        for payload in ALL {
            let schema = payload.schema();
            let required = schema["required"].as_array().expect("list");
            for &(name, _, _) in payload.fields {
                let mut value = payload.example();
                value.as_object_mut().expect("object").remove(name);
                let reads = payload.reads(value);
                let listed = required.contains(&name.into());
                assert_eq!(
                    reads, !listed,
                    "{}.{name}: reads without it = {reads}",
                    payload.name
                );
            }
        }
    }

    #[test]
    fn the_examples_pass_the_contract_check_as_their_own_type() {
        use crate::events::{lifecycle::ParticipationMessage, ParticipationEvent};
        fn check<E: ParticipationMessage>(e: &E) -> String {
            let event = ParticipationEvent::from_message(
                Some(e.key().as_bytes()),
                Some(e.json().as_bytes()),
                &e.message_headers(None),
            )
            .expect("valid");
            event.event_type().to_string()
        }
        assert_eq!(check(&accepted()), PARTICIPATION_ACCEPTED);
        assert_eq!(check(&confirmed()), PARTICIPATION_CONFIRMED);
        assert_eq!(check(&cancelled()), PARTICIPATION_CANCELLED);
        for c in controls() {
            let event = ParticipationEvent::from_message(
                Some(c.key().as_bytes()),
                Some(c.json().as_bytes()),
                &c.message_headers(None),
            )
            .expect("valid");
            assert_eq!(event, ParticipationEvent::Campaign(c.clone()));
        }
        let kinds = controls().map(|c| c.kind());
        assert_eq!(
            kinds,
            ControlKind::ALL.map(Some),
            "one example of each control"
        );
    }

    #[test]
    fn the_control_schema_puts_delta_on_a_stock_change_only() {
        let schema = CONTROL.schema();
        let types = schema["properties"]["eventType"]["enum"]
            .as_array()
            .expect("enum");
        let kinds: Vec<&str> = ControlKind::ALL.map(ControlKind::event_type).to_vec();
        assert_eq!(types, &kinds);
        assert_eq!(
            schema["if"]["properties"]["eventType"]["const"],
            CAMPAIGN_STOCK_CHANGED
        );
        assert_eq!(schema["then"]["required"], json!(["delta"]));
        assert_eq!(schema["else"]["not"]["required"], json!(["delta"]));
        for c in controls() {
            let has_delta = serde_json::to_value(&c)
                .expect("serializes")
                .get("delta")
                .is_some();
            assert_eq!(
                has_delta,
                c.event_type == CAMPAIGN_STOCK_CHANGED,
                "{}",
                c.event_type
            );
        }
    }
}
