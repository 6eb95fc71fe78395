//! The case table for a join (`POST .../participations` and `.../participations/sync`): the
//! body's fields, the body as a whole, the path id, and the `traceparent` and `x-request-id`
//! headers.

use super::{
    runner::{Case, Endpoint, Want, Want::*},
    values::{
        bad_ids, json_string, object, out_of_range, I32_MAX, I32_MAX_1, I64_MAX, I64_MAX_1,
        I64_MIN_1, NOT_INTEGERS,
    },
};

/// Fresh user ids, one for each case that could win (so no case is refused for a user that
/// already won).
pub struct Users(pub i64);

impl Users {
    fn next(&mut self) -> String {
        self.0 += 1;
        self.0.to_string()
    }
}

/// One join endpoint and the campaigns its cases target.
struct Join {
    endpoint: Endpoint,
    /// The path on the campaign allowing 5 units per user.
    path: String,
}

impl Join {
    fn at(&self, id: &dyn std::fmt::Display) -> String {
        self.endpoint.template.replace("{id}", &id.to_string())
    }
    fn post(&self, path: &str, field: &str, value: &str, body: String, want: Want) -> Case {
        self.endpoint.case(path, field, value, want).body(body)
    }
    /// A join by a fresh user on the 5-unit campaign with `header` set to `value`.
    fn with_header(
        &self,
        users: &mut Users,
        name: &'static str,
        value: Vec<u8>,
        want: Want,
    ) -> Case {
        let shown: String = String::from_utf8_lossy(&value).into_owned();
        let shown = if name == "x-request-id" {
            shown.chars().take(40).collect()
        } else {
            shown
        };
        let body = object(&[("userId", users.next())]);
        self.post(&self.path, name, &shown, body, want)
            .header(name, value)
    }
}

/// Join cases (body fields, path id, `traceparent`) for one of the two paths. `campaign` allows
/// 5 units per user; `wide` allows 10,000,000 (the largest `quantity`). Each case that could win
/// takes a new user from `users`.
pub fn join_cases(endpoint: Endpoint, campaign: i64, wide: i64, users: &mut Users) -> Vec<Case> {
    let path = endpoint.template.replace("{id}", &campaign.to_string());
    let join = Join { endpoint, path };
    let mut cases = user_id_cases(&join);
    cases.extend(quantity_cases(&join, wide, users));
    cases.extend(whole_body_cases(&join, users));
    cases.extend(path_id_cases(&join, users));
    cases.extend(header_cases(&join, users));
    cases
}

#[rustfmt::skip] // a value table
fn user_id_cases(join: &Join) -> Vec<Case> {
    let bad_users = [
        "0", "-1", "-0", I64_MAX_1, "-9223372036854775808", I64_MIN_1, "18446744073709551615",
        "100000000000000000000000000000",
    ];
    let user = |raw: &str, want| join.post(&join.path, "userId", raw, object(&[("userId", raw.into())]), want);
    let mut cases: Vec<Case> = bad_users.into_iter().chain(NOT_INTEGERS).map(|raw| user(raw, Refused)).collect();
    let no_user = object(&[("quantity", "1".into())]);
    cases.push(join.post(&join.path, "userId", "(absent)", no_user, Refused));
    cases.extend([ "1", I32_MAX, I32_MAX_1, I64_MAX].map(|raw| user(raw, Ok)));
    cases
}

/// `quantity` within the 5-unit limit and past it; then on `wide` the largest quantity wins all
/// 10,000,000 units and the next request is SOLD_OUT (409).
fn quantity_cases(join: &Join, wide: i64, users: &mut Users) -> Vec<Case> {
    let not_null = NOT_INTEGERS.into_iter().filter(|v| *v != "null");
    let refused = out_of_range("10000001")
        .into_iter()
        .chain(not_null)
        .map(|v| (v, Refused));
    let limits = [
        ("1", Ok),
        ("null", Ok),
        ("5", Ok),
        ("6", Refused),
        ("10000000", Refused),
    ];
    let mut cases = Vec::new();
    for (raw, want) in refused.chain(limits) {
        let body = object(&[("userId", users.next()), ("quantity", raw.into())]);
        let shown = format!("{raw} (limit 5)");
        cases.push(join.post(&join.path, "quantity", &shown, body, want));
    }
    for (raw, want) in [("10000001", Refused), ("10000000", Ok), ("1", Refused)] {
        let body = object(&[("userId", users.next()), ("quantity", raw.into())]);
        let shown = format!("{raw} (limit 10000000)");
        cases.push(join.post(&join.at(&wide), "quantity", &shown, body, want));
    }
    cases
}

fn whole_body_cases(join: &Join, users: &mut Users) -> Vec<Case> {
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let mib = json_string(&"x".repeat(1 << 20));
    let unknown_field = object(&[("userId", users.next()), ("campaignId", join.path.clone())]);
    let one_mib = object(&[("userId", users.next()), ("pad", mib)]);
    [
        ("(empty)", String::new()),
        ("null", "null".into()),
        ("[]", "[]".into()),
        ("{}", "{}".into()),
        ("unknown field", unknown_field),
        ("nested 10000 deep", object(&[("userId", deep)])),
        ("1 MiB", one_mib),
    ]
    .into_iter()
    .map(|(what, body)| join.post(&join.path, "body", what, body, Refused))
    .collect()
}

/// Campaign ids that are not ids, and ids no campaign has.
fn path_id_cases(join: &Join, users: &mut Users) -> Vec<Case> {
    let unknown = [I64_MAX.to_string(), "4611686018427387904".to_string()];
    bad_ids()
        .into_iter()
        .chain(unknown)
        .map(|id| {
            let body = object(&[("userId", users.next())]);
            join.post(&join.at(&id), "id", &id, body, Refused)
        })
        .collect()
}

/// `traceparent`: well-formed or not, it never refuses the join (a bad one starts a new trace;
/// tracing.rs checks what the message carries). `x-request-id`: kept, or replaced when too long
/// or odd; never a reason to refuse.
fn header_cases(join: &Join, users: &mut Users) -> Vec<Case> {
    let traceparents = [
        (
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec(),
            Ok,
        ),
        (
            b"00-00000000000000000000000000000000-0000000000000000-00".to_vec(),
            Ok,
        ),
        (b"garbage".to_vec(), Ok),
        (b"".to_vec(), Ok),
        (
            format!("00-{}-b7ad6b7169203331-01", "f".repeat(8000)).into_bytes(),
            Ok,
        ),
        (b"\xff\xfe".to_vec(), Either),
    ];
    let request_ids = [
        b"req-1".to_vec(),
        "x".repeat(8000).into_bytes(),
        b"a b\"c".to_vec(),
        b"\xff\xfe".to_vec(),
    ];
    let mut cases = Vec::new();
    for (tp, want) in traceparents {
        cases.push(join.with_header(users, "traceparent", tp, want));
    }
    for id in request_ids {
        cases.push(join.with_header(users, "x-request-id", id, Ok));
    }
    cases
}
