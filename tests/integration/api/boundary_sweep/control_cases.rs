//! The case table for the live controls (docs/design.md §15): `POST …/stock` with every `delta`
//! at and past its limits and every malformed body, `…/pause`, `…/resume` and `…/close` with a
//! body they do not take, `…/bot-check` (§16) with every `required` and body, the audit trail's
//! page size and cursor, every bad or unknown campaign id and every wrong token on all six
//! routes, and an ended campaign. Each case names the exact status and code the contract gives
//! it.

use super::{
    runner::{ep, Case, Endpoint, Want},
    values::{
        bad_ids, cursor_values, limit_values, object, strs, I64_MAX, I64_MAX_1, I64_MIN_1,
        NOT_INTEGERS,
    },
};

const INVALID: Want = Want::Exactly(400, "VALIDATION_FAILED");
const OK: Want = Want::Exactly(200, "");
const IN_USE: Want = Want::Exactly(409, "STOCK_IN_USE");
const ENDED: Want = Want::Exactly(409, "CAMPAIGN_ENDED");
const NOT_FOUND: Want = Want::Exactly(404, "CAMPAIGN_NOT_FOUND");
const UNAUTHORIZED: Want = Want::Exactly(401, "UNAUTHORIZED");
const TOO_LARGE: Want = Want::Exactly(413, "PAYLOAD_TOO_LARGE");

const STOCK: Endpoint = ep("POST", "/api/v1/admin/campaigns/{id}/stock", true);
const PAUSE: Endpoint = ep("POST", "/api/v1/admin/campaigns/{id}/pause", true);
const RESUME: Endpoint = ep("POST", "/api/v1/admin/campaigns/{id}/resume", true);
const CLOSE: Endpoint = ep("POST", "/api/v1/admin/campaigns/{id}/close", true);
const EVENTS: Endpoint = ep("GET", "/api/v1/admin/campaigns/{id}/events", true);
const BOT_CHECK: Endpoint = ep("POST", "/api/v1/admin/campaigns/{id}/bot-check", true);

fn at(endpoint: &Endpoint, id: &dyn std::fmt::Display) -> String {
    endpoint.template.replace("{id}", &id.to_string())
}

fn delta(raw: &str) -> String {
    object(&[("delta", raw.into())])
}

/// A JSON string of 1 MiB, past the body limit (16 KiB by default).
fn one_mib() -> String {
    format!("\"{}\"", "x".repeat(1 << 20))
}

/// Every case, in the order they must run: `campaign` is open with 5 units, 4 of them unsold
/// (one user won one). The valid controls leave it as they found it until the close, last.
pub fn control_cases(campaign: i64) -> Vec<Case> {
    let mut cases = delta_cases(campaign);
    cases.extend(stock_limit_cases(campaign));
    cases.extend(body_cases(campaign));
    cases.extend(id_cases(campaign));
    cases.extend(auth_cases(campaign));
    cases.extend(state_body_cases(campaign));
    cases.extend(bot_check_cases(campaign));
    cases.extend(events_cases(campaign));
    cases.extend(ended_cases(campaign));
    cases
}

/// `delta` values that are not a non-zero integer within ±10,000,000.
#[rustfmt::skip] // a value table
fn delta_cases(campaign: i64) -> Vec<Case> {
    let path = at(&STOCK, &campaign);
    let out_of_range = [
        "0", "-0", "10000001", "-10000001", I64_MAX, "-9223372036854775808", I64_MAX_1, I64_MIN_1,
        "100000000000000000000", "-100000000000000000000", "1e20", "1E7", "-1e7",
    ];
    out_of_range
        .into_iter()
        .chain(NOT_INTEGERS)
        .map(|raw| STOCK.case(&path, "delta", raw, INVALID).body(delta(raw)))
        .collect()
}

/// Units added up to the total's limit and withdrawn down to the units sold, and one past each.
fn stock_limit_cases(campaign: i64) -> Vec<Case> {
    let path = at(&STOCK, &campaign);
    [
        ("10000000 (total 10000005)", "10000000", INVALID),
        ("9999996 (total 10000001)", "9999996", INVALID),
        ("9999995 (total 10000000)", "9999995", OK),
        ("1 (total 10000001)", "1", INVALID),
        ("-10000000 (9999999 unsold)", "-10000000", IN_USE),
        ("-9999995 (back to 5)", "-9999995", OK),
        ("-5 (4 unsold)", "-5", IN_USE),
        ("-4 (4 unsold)", "-4", OK),
        ("-1 (none unsold)", "-1", IN_USE),
        ("4 (back to 5)", "4", OK),
    ]
    .into_iter()
    .map(|(shown, raw, want)| STOCK.case(&path, "delta", shown, want).body(delta(raw)))
    .collect()
}

/// The stock body as a whole: absent, not an object, unknown members, too big.
fn body_cases(campaign: i64) -> Vec<Case> {
    let path = at(&STOCK, &campaign);
    let bodies = [
        ("(empty)", String::new()),
        ("null", "null".into()),
        ("[]", "[]".into()),
        ("[{delta:1}]", format!("[{}]", delta("1"))),
        ("{}", "{}".into()),
        ("\"delta\"", "\"delta\"".into()),
        ("1", "1".into()),
        (
            "unknown member",
            object(&[("delta", "1".into()), ("x", "1".into())]),
        ),
        ("Delta", object(&[("Delta", "1".into())])),
        (
            "campaignId",
            object(&[("delta", "1".into()), ("campaignId", "1".into())]),
        ),
        ("not JSON", "{delta: 1}".into()),
        ("truncated", "{\"delta\": 1".into()),
    ];
    let mut cases: Vec<Case> = bodies
        .into_iter()
        .map(|(shown, body)| STOCK.case(&path, "body", shown, INVALID).body(body))
        .collect();
    let padded = object(&[("delta", "1".into()), ("pad", one_mib())]);
    cases.push(STOCK.case(&path, "body", "1 MiB", TOO_LARGE).body(padded));
    let text = STOCK
        .case(&path, "content-type", "text/plain", INVALID)
        .body(delta("1"))
        .header("content-type", b"text/plain".to_vec());
    cases.push(text);
    cases.push(STOCK.case(&path, "body", "(none)", INVALID));
    cases
}

/// Campaign ids that are not ids, and ids no campaign has, on all six routes.
fn id_cases(campaign: i64) -> Vec<Case> {
    let mut cases = Vec::new();
    for endpoint in [STOCK, PAUSE, RESUME, CLOSE, EVENTS, BOT_CHECK] {
        for id in bad_ids() {
            cases.push(with_body(
                &endpoint,
                endpoint.case(at(&endpoint, &id), "id", &id, INVALID),
            ));
        }
        for id in [I64_MAX.to_string(), (campaign + 1_000).to_string()] {
            let case = endpoint.case(at(&endpoint, &id), "id", &id, NOT_FOUND);
            cases.push(with_body(&endpoint, case));
        }
    }
    cases
}

/// The valid body of a route that needs one: the stock's and the bot check's.
fn valid_body(endpoint: &Endpoint) -> Option<String> {
    if endpoint.template == STOCK.template {
        Some(delta("1"))
    } else if endpoint.template == BOT_CHECK.template {
        Some(object(&[("required", "true".into())]))
    } else {
        None
    }
}

/// `case` with a valid body when its route needs one.
fn with_body(endpoint: &Endpoint, case: Case) -> Case {
    match valid_body(endpoint) {
        Some(body) => case.body(body),
        None => case,
    }
}

/// Every wrong `Authorization` on all six routes of the campaign: 401.
fn auth_cases(campaign: i64) -> Vec<Case> {
    let mut cases = Vec::new();
    for endpoint in [STOCK, PAUSE, RESUME, CLOSE, EVENTS, BOT_CHECK] {
        let body = valid_body(&endpoint);
        for mut case in endpoint.auth(&at(&endpoint, &campaign), body.as_deref()) {
            case.want = UNAUTHORIZED;
            cases.push(case);
        }
    }
    cases
}

/// Pause and resume take no body; one sent is ignored (the control is applied once all the
/// same), whatever it holds.
fn state_body_cases(campaign: i64) -> Vec<Case> {
    let mut cases = Vec::new();
    for endpoint in [PAUSE, RESUME] {
        let path = at(&endpoint, &campaign);
        for (shown, body) in [
            ("{\"x\":1}", "{\"x\":1}".to_string()),
            ("not JSON", "{x".to_string()),
            ("{delta:1}", delta("1")),
        ] {
            cases.push(endpoint.case(&path, "body", shown, OK).body(body));
        }
        cases.push(
            endpoint
                .case(&path, "body", "1 MiB", TOO_LARGE)
                .body(one_mib()),
        );
    }
    cases
}

/// The bot check's switch: `required` true, false, null or absent (the service's default, last,
/// so the campaign leaves as it came); anything else, an unknown member or no JSON object: 400.
#[rustfmt::skip] // a value table
fn bot_check_cases(campaign: i64) -> Vec<Case> {
    let path = at(&BOT_CHECK, &campaign);
    let required = |raw: &str| object(&[("required", raw.into())]);
    let mut cases: Vec<Case> = ["true", "false", "null"]
        .into_iter()
        .map(|raw| BOT_CHECK.case(&path, "required", raw, OK).body(required(raw)))
        .collect();
    for raw in ["\"true\"", "1", "0", "\"yes\"", "[]", "{}"] {
        cases.push(BOT_CHECK.case(&path, "required", raw, INVALID).body(required(raw)));
    }
    for (shown, body) in [
        ("unknown member", object(&[("required", "true".into()), ("x", "1".into())])),
        ("not JSON", "{required: true}".to_string()),
        ("[]", "[]".to_string()),
    ] {
        cases.push(BOT_CHECK.case(&path, "body", shown, INVALID).body(body));
    }
    cases.push(BOT_CHECK.case(&path, "body", "(none)", INVALID));
    cases.push(BOT_CHECK.case(&path, "required", "(absent)", OK).body("{}".to_string()));
    cases
}

/// The audit trail's page size (1..=500) and cursor (0 up).
fn events_cases(campaign: i64) -> Vec<Case> {
    let path = at(&EVENTS, &campaign);
    let exact = |cases: Vec<Case>| {
        cases.into_iter().map(|mut c| {
            c.want = if c.want == Want::Ok { OK } else { INVALID };
            c
        })
    };
    let (ok, refused) = limit_values(500);
    let mut cases: Vec<Case> = exact(EVENTS.query(&path, "limit", &strs(&ok), &refused)).collect();
    let (ok, refused) = cursor_values(0);
    cases.extend(exact(EVENTS.query(&path, "cursor", &ok, &refused)));
    cases
}

/// The close, last: closing again answers the campaign; every other control of an ended
/// campaign is refused.
fn ended_cases(campaign: i64) -> Vec<Case> {
    let stock = at(&STOCK, &campaign);
    vec![
        CLOSE.case(at(&CLOSE, &campaign), "state", "open", OK),
        CLOSE.case(at(&CLOSE, &campaign), "state", "ended", OK),
        PAUSE.case(at(&PAUSE, &campaign), "state", "ended", ENDED),
        RESUME.case(at(&RESUME, &campaign), "state", "ended", ENDED),
        STOCK
            .case(&stock, "delta", "1 (ended)", ENDED)
            .body(delta("1")),
        STOCK
            .case(&stock, "delta", "-1 (ended)", ENDED)
            .body(delta("-1")),
        STOCK
            .case(&stock, "delta", "0 (ended)", INVALID)
            .body(delta("0")),
    ]
}
