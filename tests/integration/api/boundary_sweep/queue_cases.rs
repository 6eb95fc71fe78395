//! The case table for the waiting room (docs/design.md §16): `POST …/queue` with every `userId`
//! at and past its bounds and every malformed body, `GET …/queue/{ticket}` with every bad
//! ticket, both with every bad or unknown campaign id and on a campaign without a waiting room,
//! and a join's `admissionToken` at and past its bounds. Each case names the exact status and
//! code the contract gives it.

use super::{
    runner::{ep, Case, Endpoint, Want},
    values::{bad_ids, object, I64_MAX, I64_MAX_1, I64_MIN_1, NOT_INTEGERS},
};

const INVALID: Want = Want::Exactly(400, "VALIDATION_FAILED");
const QUEUED: Want = Want::Exactly(202, "");
const POLLED: Want = Want::Exactly(200, "");
const NOT_FOUND: Want = Want::Exactly(404, "CAMPAIGN_NOT_FOUND");
const NO_TICKET: Want = Want::Exactly(404, "TICKET_NOT_FOUND");
const NO_ROOM: Want = Want::Exactly(422, "NO_WAITING_ROOM");
const REQUIRED: Want = Want::Exactly(403, "ADMISSION_REQUIRED");
const TOKEN_INVALID: Want = Want::Exactly(403, "ADMISSION_TOKEN_INVALID");

const QUEUE: Endpoint = ep("POST", "/api/v1/campaigns/{id}/queue", false);
const POLL: Endpoint = ep("GET", "/api/v1/campaigns/{id}/queue/{ticket}", false);
const JOIN: Endpoint = ep("POST", "/api/v1/campaigns/{id}/participations", false);

fn at(endpoint: &Endpoint, id: &dyn std::fmt::Display) -> String {
    endpoint.template.replace("{id}", &id.to_string())
}

/// Every case: `queued` is a `QUEUE` campaign in which `ticket` was issued, `open` a campaign
/// without a waiting room.
pub fn queue_cases(queued: i64, open: i64, ticket: &str) -> Vec<Case> {
    let mut cases = user_id_cases(queued);
    cases.extend(ticket_cases(queued, ticket));
    cases.extend(id_cases(queued, open, ticket));
    cases.extend(token_cases(queued));
    cases
}

fn user_id_cases(queued: i64) -> Vec<Case> {
    let path = at(&QUEUE, &queued);
    let mut cases = Vec::new();
    for raw in ["1", "2", I64_MAX] {
        cases.push(
            QUEUE
                .case(&path, "userId", raw, QUEUED)
                .body(object(&[("userId", raw.into())])),
        );
    }
    let refused = ["0", "-1", "-0", I64_MAX_1, I64_MIN_1, "1.0", "1e3"];
    for raw in refused.into_iter().chain(NOT_INTEGERS) {
        cases.push(
            QUEUE
                .case(&path, "userId", raw, INVALID)
                .body(object(&[("userId", raw.into())])),
        );
    }
    for (what, body) in [
        ("(absent)", "{}".to_string()),
        ("(extra field)", "{\"userId\":3,\"quantity\":1}".to_string()),
        ("(not JSON)", "userId=3".to_string()),
        ("(array)", "[{\"userId\":3}]".to_string()),
        ("(empty)", String::new()),
    ] {
        cases.push(QUEUE.case(&path, "body", what, INVALID).body(body));
    }
    cases
}

fn ticket_cases(queued: i64, ticket: &str) -> Vec<Case> {
    let base = at(&QUEUE, &queued);
    let mut cases = vec![POLL.case(format!("{base}/{ticket}"), "ticket", ticket, POLLED)];
    let unknown = [
        "AAAAAAAAAAAAAAAAAAAAAA".to_string(),
        // The last character changed (to one it is not).
        format!(
            "{}{}",
            &ticket[..21],
            if ticket.ends_with('A') { 'B' } else { 'A' }
        ),
        ticket[..21].to_string(),
        format!("{ticket}A"),
        "x".to_string(),
        "%00".to_string(),
        "%F0%9F%98%80".to_string(),
        "a.b".to_string(),
        "-".repeat(64),
    ];
    for value in unknown {
        cases.push(POLL.case(format!("{base}/{value}"), "ticket", &value, NO_TICKET));
    }
    let long = "A".repeat(65);
    cases.push(POLL.case(format!("{base}/{long}"), "ticket", &long, INVALID));
    cases
}

fn id_cases(queued: i64, open: i64, ticket: &str) -> Vec<Case> {
    let body = object(&[("userId", "5".into())]);
    let mut cases = Vec::new();
    for id in bad_ids() {
        cases.push(
            QUEUE
                .case(at(&QUEUE, &id), "id", &id, Want::Refused)
                .body(body.clone()),
        );
        let path = format!("{}/{ticket}", at(&QUEUE, &id));
        cases.push(POLL.case(path, "id", &id, Want::Refused));
    }
    let unknown = queued + open + 1_000;
    cases.push(
        QUEUE
            .case(at(&QUEUE, &unknown), "id", "unknown", NOT_FOUND)
            .body(body.clone()),
    );
    let path = format!("{}/{ticket}", at(&QUEUE, &unknown));
    cases.push(POLL.case(path, "id", "unknown", NOT_FOUND));
    cases.push(
        QUEUE
            .case(at(&QUEUE, &open), "id", "OPEN campaign", NO_ROOM)
            .body(body),
    );
    let path = format!("{}/{ticket}", at(&QUEUE, &open));
    cases.push(POLL.case(path, "id", "OPEN campaign", NO_ROOM));
    // Another campaign's ticket is not this one's.
    cases
}

/// A join of the `QUEUE` campaign by user 9 (who never queued) with `admissionToken` set to each
/// value: missing is ADMISSION_REQUIRED, a string that is no token of this campaign and user
/// ADMISSION_TOKEN_INVALID, anything else VALIDATION_FAILED.
fn token_cases(queued: i64) -> Vec<Case> {
    let path = at(&JOIN, &queued);
    let join = |raw: &str, want: Want| {
        let shown = raw.chars().take(40).collect::<String>();
        JOIN.case(&path, "admissionToken", &shown, want)
            .body(object(&[
                ("userId", "9".into()),
                ("admissionToken", raw.into()),
            ]))
    };
    let mut cases = vec![
        JOIN.case(&path, "admissionToken", "(absent)", REQUIRED)
            .body(object(&[("userId", "9".into())])),
        join("null", REQUIRED),
    ];
    let strings = [
        "\"\"".to_string(),
        "\"x\"".to_string(),
        "\"1.9.AAAAAAAAAAAAAAAAAAAAAA.1.AAAA\"".to_string(),
        format!("\"{queued}.9.AAAAAAAAAAAAAAAAAAAAAA.9999999999999.AAAA\""),
        "\".....\"".to_string(),
        "\"\\u0000\"".to_string(),
        format!("\"{}\"", "t".repeat(256)),
    ];
    for raw in &strings {
        cases.push(join(raw, TOKEN_INVALID));
    }
    let refused = [
        format!("\"{}\"", "t".repeat(257)),
        "1".to_string(),
        "true".to_string(),
        "[]".to_string(),
        "{}".to_string(),
    ];
    for raw in &refused {
        cases.push(join(raw, INVALID));
    }
    cases
}
