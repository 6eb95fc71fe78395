//! The case tables for the reads and the admin routes: campaign and participation reads (ids,
//! page sizes, cursors, methods, unknown routes) and the admin outbox endpoints (parameters,
//! event ids and tokens).

use super::{
    runner::{ep, Case, Endpoint, Want},
    values::{bad_ids, cursor_values, limit_values, strs, I64_MAX},
};

/// Reads of campaigns, wrong methods on a campaign, and routes that do not exist; `campaign`
/// exists.
pub fn campaign_read_cases(campaign: i64) -> Vec<Case> {
    let list = ep("GET", "/api/v1/campaigns", false);
    let path = list.template;
    let mut cases = Vec::new();
    let (ok, refused) = limit_values(100);
    cases.extend(list.query(path, "limit", &strs(&ok), &refused));
    let (ok, refused) = cursor_values(1);
    cases.extend(list.query(path, "cursor", &ok, &refused));
    let repeated = format!("{path}?limit=1&cursor={I64_MAX}&limit=2");
    cases.push(list.case(repeated, "query", "repeated limit", Want::Either));
    let unknown = format!("{path}?unknown=1");
    cases.push(list.case(unknown, "query", "unknown name", Want::Either));

    let one = ep("GET", "/api/v1/campaigns/{id}", false);
    let unknown = [I64_MAX.to_string(), (campaign + 1).to_string()];
    for id in bad_ids().into_iter().chain(unknown) {
        cases.push(one.case(format!("/api/v1/campaigns/{id}"), "id", &id, Want::Refused));
    }
    let exists = format!("/api/v1/campaigns/{campaign}");
    cases.push(one.case(exists.clone(), "id", "(exists)", Want::Ok));
    for method in ["PUT", "DELETE", "PATCH"] {
        let case =
            ep(method, one.template, false).case(exists.clone(), "method", method, Want::Refused);
        cases.push(case);
    }
    // The live stream of a campaign that exists would not end: only its refusals are swept.
    let live = ep("GET", "/api/v1/campaigns/{id}/live", false);
    let unknown = [I64_MAX.to_string(), (campaign + 1).to_string()];
    for id in bad_ids().into_iter().chain(unknown) {
        let path = format!("/api/v1/campaigns/{id}/live");
        cases.push(live.case(path, "id", &id, Want::Refused));
    }
    cases.extend(route_cases());
    cases.extend(period_cases());
    cases
}

/// The daily statistics' period, on both sources: `date`, or `from` and `to`, at most 366 days.
fn period_cases() -> Vec<Case> {
    let invalid = Want::Exactly(400, "VALIDATION_FAILED");
    let mut cases = Vec::new();
    for template in ["/api/v1/admin/stats/daily", "/api/v1/admin/stats/raw"] {
        let stats = ep("GET", template, true);
        for (query, want) in [
            ("from=2026-11-20&to=2026-11-21", Want::Ok),
            ("from=2025-11-21&to=2026-11-21", Want::Ok),
            ("from=2026-11-21", Want::Ok),
            ("to=2026-11-21", Want::Ok),
            ("from=1000-01-01&to=1000-12-31", Want::Ok),
            ("from=9999-01-01&to=9999-12-31", Want::Ok),
            ("from=2025-11-20&to=2026-11-21", invalid),
            ("from=0001-01-01&to=9999-12-31", invalid),
            ("from=0999-12-31&to=1000-01-01", invalid),
            ("date=0001-01-01", invalid),
            ("from=2026-11-21&to=2026-11-20", invalid),
            ("date=2026-11-21&from=2026-11-21", invalid),
            ("date=2026-11-21&to=2026-11-21", invalid),
            ("from=2026-02-30", invalid),
            ("from=2026-11-21T00:00:00Z", invalid),
            ("to=", invalid),
            ("from=%00", invalid),
        ] {
            cases.push(stats.case(format!("{template}?{query}"), "period", query, want));
        }
    }
    cases
}

/// Routes outside the campaign API, wrong methods on them, and paths no route matches.
fn route_cases() -> Vec<Case> {
    [
        ("GET", "/health/live?x=%00", Want::Ok),
        ("POST", "/health/live", Want::Refused),
        ("GET", "/openapi.json?x=1", Want::Ok),
        ("GET", "/api/v1/campaigns/", Want::Either),
        ("GET", "/api/v1/campaigns//participations", Want::Refused),
        ("GET", "/api/v1/no/such/route", Want::Refused),
        ("GET", "/%FF", Want::Refused),
    ]
    .into_iter()
    .map(|(method, path, want)| ep(method, path, false).case(path, "route", path, want))
    .collect()
}

/// Reads of participations of `campaign`, where user 7 won and user 8 did not take part.
pub fn participation_read_cases(campaign: i64) -> Vec<Case> {
    let mut cases = Vec::new();
    let list = ep("GET", "/api/v1/campaigns/{id}/participations", false);
    let path = format!("/api/v1/campaigns/{campaign}/participations");
    let (ok, refused) = limit_values(1000);
    cases.extend(list.query(&path, "limit", &strs(&ok), &refused));
    let (ok, refused) = cursor_values(0);
    cases.extend(list.query(&path, "cursor", &ok, &refused));

    let one = ep(
        "GET",
        "/api/v1/campaigns/{id}/participations/{userId}",
        false,
    );
    for id in bad_ids().into_iter().chain([I64_MAX.to_string()]) {
        let p = format!("/api/v1/campaigns/{id}/participations");
        cases.push(list.case(p, "id", &id, Want::Refused));
        let p = format!("/api/v1/campaigns/{id}/participations/7");
        cases.push(one.case(p, "id", &id, Want::Refused));
        let p = format!("/api/v1/campaigns/{campaign}/participations/{id}");
        cases.push(one.case(p, "userId", &id, Want::Refused));
    }
    for (user, want) in [(7, Want::Ok), (8, Want::Refused)] {
        let p = format!("/api/v1/campaigns/{campaign}/participations/{user}");
        cases.push(one.case(p, "userId", &user.to_string(), want));
    }
    cases
}

/// Confirm and cancel on `campaign` (no confirmation window), where user 7 won and user 8 did
/// not take part: every bad id refused; user 7's win confirms (it is final already) and a cancel
/// without the admin token is refused (ALREADY_CONFIRMED).
pub fn lifecycle_cases(campaign: i64) -> Vec<Case> {
    let mut cases = Vec::new();
    for (action, template) in [
        (
            "confirm",
            "/api/v1/campaigns/{id}/participations/{userId}/confirm",
        ),
        (
            "cancel",
            "/api/v1/campaigns/{id}/participations/{userId}/cancel",
        ),
    ] {
        let one = ep("POST", template, false);
        for id in bad_ids().into_iter().chain([I64_MAX.to_string()]) {
            let p = format!("/api/v1/campaigns/{id}/participations/7/{action}");
            cases.push(one.case(p, "id", &id, Want::Refused));
            let p = format!("/api/v1/campaigns/{campaign}/participations/{id}/{action}");
            cases.push(one.case(p, "userId", &id, Want::Refused));
        }
        let want_7 = if action == "confirm" {
            Want::Ok
        } else {
            Want::Refused
        };
        for (user, want) in [(7, want_7), (8, Want::Refused)] {
            let p = format!("/api/v1/campaigns/{campaign}/participations/{user}/{action}");
            cases.push(one.case(p, "userId", &user.to_string(), want));
        }
    }
    cases
}

/// The admin outbox endpoints on `campaign`, whose DEAD rows are `dead`. Every refusal first;
/// the two redrives that move the DEAD rows come last.
pub fn admin_outbox_cases(campaign: i64, dead: &[String]) -> Vec<Case> {
    let key = campaign.to_string();
    let ids = bad_ids();
    let mut cases = Vec::new();

    let summary = ep("GET", "/api/v1/admin/outbox", true);
    let path = summary.template;
    cases.extend(summary.query(path, "campaignId", &["1", I64_MAX, &key], &ids));
    cases.extend(summary.auth(path, None));

    let dead_list = ep("GET", "/api/v1/admin/outbox/dead", true);
    let path = dead_list.template;
    let (ok, refused) = limit_values(500);
    cases.extend(dead_list.query(path, "limit", &strs(&ok), &refused));
    let (ok, refused) = cursor_values(0);
    cases.extend(dead_list.query(path, "cursor", &ok, &refused));
    cases.extend(dead_list.auth(path, None));

    let by_campaign = ep("POST", "/api/v1/admin/outbox/redrive", true);
    let path = by_campaign.template;
    let unknown = (campaign + 1).to_string();
    cases.extend(by_campaign.query(path, "campaignId", &[&unknown, I64_MAX], &ids));
    cases.push(by_campaign.case(path, "campaignId", "(absent)", Want::Refused));
    let this_campaign = format!("{path}?campaignId={campaign}");
    cases.extend(by_campaign.auth(&this_campaign, None));

    let by_event = ep("POST", "/api/v1/admin/outbox/{eventId}/redrive", true);
    let event = &dead[0];
    cases.extend(redrive_event_cases(by_event, event));
    cases.push(by_campaign.case(this_campaign, "campaignId", &key, Want::Ok));
    cases
}

/// Redrive by event id: ids that are not the DEAD row's (refused), wrong tokens, then the DEAD
/// row `event` (redriven) and the same again (refused: no longer DEAD).
fn redrive_event_cases(by_event: Endpoint, event: &str) -> Vec<Case> {
    let at = |id: &str| by_event.template.replace("{eventId}", id);
    let nil = "00000000-0000-0000-0000-000000000000";
    let bad_events = [
        "0",
        "-1",
        "abc",
        nil,
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "%00",
        "%FF",
    ]
    .into_iter()
    .map(String::from)
    .chain([
        format!("{event}0"),
        event[..event.len() - 1].to_string(),
        event.replace('-', "_"),
        format!("{event}%00"),
        // Other spellings the uuid crate reads, of an id no DEAD row has: 404.
        "%7B00000000-0000-0000-0000-000000000001%7D".into(),
        "urn:uuid:00000000-0000-0000-0000-000000000001".into(),
        "00000000000000000000000000000001".into(),
        "f".repeat(8192),
    ]);
    let mut cases: Vec<Case> = bad_events
        .map(|id| by_event.case(at(&id), "eventId", &id, Want::Refused))
        .collect();
    cases.extend(by_event.auth(&at(event), None));
    cases.push(by_event.case(at(event), "eventId", event, Want::Ok));
    cases.push(by_event.case(at(event), "eventId", "(already redriven)", Want::Refused));
    cases
}
