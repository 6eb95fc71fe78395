//! Boundary-value sweep over every field of every endpoint (issue 8, "no client-caused 5xx";
//! docs/design.md §2.6 and §3). Each case is one request; the invariant checked for all of them:
//! - never a 5xx, and never a dropped connection;
//! - a refusal is a 4xx with the `{"code", "message"}` body and writes nothing: the rows the API
//!   writes (counts, stock, outbox statuses and attempts, last update) are unchanged, and every
//!   Redis key under the app's prefix `DUMP`s byte for byte as before;
//! - a valid boundary value (a name of exactly 200 characters, `totalStock` 10,000,000, a body of
//!   exactly the size limit) succeeds.
//!
//! Failures are collected and reported together, each with its endpoint, field and value.

use std::collections::BTreeMap;

use firstcome::outbox::OutboxStatus;
use redis::AsyncCommands;
use reqwest::{header::HeaderValue, Method};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::helpers::{spawn_app, spawn_app_with, test_settings, TestApp, ADMIN_TOKEN};

/// What a case must get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// 2xx.
    Ok,
    /// 4xx with the JSON error body, and nothing written.
    Refused,
    /// Either of the above (the contract does not say which), but never a 5xx.
    Either,
}

struct Case {
    /// `METHOD path-template field=value`, for the failure report.
    what: String,
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    /// `Authorization` header value, verbatim (`None`: no header).
    auth: Option<Vec<u8>>,
    headers: Vec<(&'static str, Vec<u8>)>,
    want: Want,
}

/// A value short enough to read in a report.
fn show(value: &str) -> String {
    let mut shown: String = value.chars().take(40).collect();
    if shown.len() < value.len() {
        shown.push_str(&format!("…({} bytes)", value.len()));
    }
    shown.escape_debug().to_string()
}

fn bearer() -> Option<Vec<u8>> {
    Some(format!("Bearer {ADMIN_TOKEN}").into_bytes())
}

impl Case {
    fn new(
        method: Method,
        template: &str,
        path: String,
        field: &str,
        value: &str,
        want: Want,
    ) -> Self {
        Self {
            what: format!("{method} {template} {field}={}", show(value)),
            method,
            path,
            body: None,
            auth: None,
            headers: Vec::new(),
            want,
        }
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
    fn admin(mut self) -> Self {
        self.auth = bearer();
        self
    }
}

/// A JSON object written by hand from raw member texts, so that values serde_json would never
/// produce (`9223372036854775808`, `1e30`, duplicate keys) reach the server as typed.
fn object(members: &[(&str, String)]) -> String {
    let inner: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// `base` with `field` set to the raw JSON `value` (or removed when `value` is `None`).
fn with(base: &[(&str, &str)], field: &str, value: Option<&str>) -> String {
    let mut members: Vec<(&str, String)> = base
        .iter()
        .filter(|(k, _)| *k != field)
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    if let Some(v) = value {
        members.push((field, v.to_string()));
    }
    object(&members)
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.into()).to_string()
}

/// Everything a request could have written: the rows of every table the API writes and the
/// dump of every Redis key under this app's prefix.
async fn snapshot(app: &TestApp) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (table, sql) in [
        ("campaign", "SELECT CAST(COUNT(*) AS CHAR), CAST(COALESCE(SUM(remaining_stock), 0) AS CHAR), CAST(COALESCE(MAX(updated_at), '') AS CHAR) FROM campaign"),
        ("participation", "SELECT CAST(COUNT(*) AS CHAR), CAST(COALESCE(MAX(id), 0) AS CHAR), '' FROM participation"),
        ("outbox_event", "SELECT CAST(COUNT(*) AS CHAR), COALESCE(GROUP_CONCAT(status, ':', attempts ORDER BY id), ''), CAST(COALESCE(MAX(available_at), '') AS CHAR) FROM outbox_event"),
    ] {
        let row = app
            .db
            .query_one_raw(Statement::from_string(DbBackend::MySql, sql))
            .await
            .expect("snapshot query")
            .expect("one row");
        let cols: Vec<String> = (0..3)
            .map(|i| row.try_get_by_index::<String>(i).expect("text column"))
            .collect();
        out.insert(format!("mysql {table}"), cols.join("|").into_bytes());
    }
    let mut conn = app.redis.clone();
    let mut keys: Vec<String> = Vec::new();
    {
        let mut iter = conn
            .scan_match::<_, String>(format!("{}*", app.redis_prefix))
            .await
            .expect("SCAN");
        while let Some(key) = iter.next_item().await {
            keys.push(key.expect("SCAN item"));
        }
    }
    for key in keys {
        let dump: Option<Vec<u8>> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("DUMP");
        out.insert(format!("redis {key}"), dump.unwrap_or_default());
    }
    out
}

fn changed(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

/// Sends every case in order against `app` and panics listing every case that broke the
/// invariant. Returns how many cases ran.
async fn sweep(app: &TestApp, cases: Vec<Case>) -> usize {
    let mut failures = Vec::new();
    let mut before = snapshot(app).await;
    for case in &cases {
        let mut req = app.client.request(case.method.clone(), app.url(&case.path));
        if let Some(body) = &case.body {
            if !case.headers.iter().any(|(n, _)| *n == "content-type") {
                req = req.header("content-type", "application/json");
            }
            req = req.body(body.clone());
        }
        if let Some(auth) = &case.auth {
            match HeaderValue::from_bytes(auth) {
                Ok(v) => req = req.header("authorization", v),
                Err(e) => panic!("{}: bad test header: {e}", case.what),
            }
        }
        for (name, value) in &case.headers {
            match HeaderValue::from_bytes(value) {
                Ok(v) => req = req.header(*name, v),
                Err(e) => panic!("{}: bad test header: {e}", case.what),
            }
        }
        let (status, body) = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.text().await.unwrap_or_default())
            }
            Err(e) => {
                failures.push(format!("{}: transport error {e}", case.what));
                before = snapshot(app).await;
                continue;
            }
        };
        let after = snapshot(app).await;
        let wrote = changed(&before, &after);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let shaped = json["code"].as_str().is_some_and(|c| !c.is_empty())
            && json["message"].as_str().is_some_and(|m| !m.is_empty());
        let problem = match (case.want, status) {
            (_, s) if s >= 500 => Some("a 5xx"),
            (Want::Ok, s) if !(200..300).contains(&s) => Some("not a 2xx for a valid value"),
            (Want::Refused, s) if !(400..500).contains(&s) => {
                Some("not a 4xx for an invalid value")
            }
            (Want::Either, s) if !(200..500).contains(&s) || (300..400).contains(&s) => {
                Some("neither 2xx nor 4xx")
            }
            (_, s) if (400..500).contains(&s) && !shaped => Some("a 4xx without {code, message}"),
            (_, s) if (400..500).contains(&s) && !wrote.is_empty() => Some("a refusal wrote"),
            _ => None,
        };
        if let Some(problem) = problem {
            let body: String = body.chars().take(200).collect();
            failures.push(format!(
                "{}: {problem}: {status} {body} (changed: {wrote:?})",
                case.what
            ));
        }
        println!("{status} {}", case.what);
        before = after;
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

const I32_MAX: &str = "2147483647";
const I32_MAX_1: &str = "2147483648";
const I64_MAX: &str = "9223372036854775807";
const I64_MAX_1: &str = "9223372036854775808";
const I64_MIN_1: &str = "-9223372036854775809";

/// JSON values of the wrong type for an integer field.
const NOT_INTEGERS: [&str; 12] = [
    "null", "true", "[]", "[1]", "{}", "\"1\"", "\"\"", "1.5", "1.0", "1e3", "1e30", "-1e30",
];

/// Integer texts refused by a field whose range is `1..=max` (max below i32::MAX).
#[rustfmt::skip] // a value table
fn out_of_range(max_plus_1: &'static str) -> Vec<&'static str> {
    vec![
        "0", "-1", "-0", max_plus_1, I32_MAX, I32_MAX_1, I64_MAX, I64_MAX_1,
        "-9223372036854775808", I64_MIN_1, "100000000000000000000000000000",
    ]
}

/// Path or query values that are not a positive 64-bit integer.
#[rustfmt::skip] // a value table
fn bad_ids() -> Vec<String> {
    [
        "0", "-1", "-0", I64_MAX_1, "18446744073709551616", I64_MIN_1, "abc", "1.5", "1e3", "0x10",
        "1%20", "%201", "%00", "1%00", "%FF", "%EF%BC%91", "%F0%9F%98%80", "null", "true",
    ]
    .into_iter()
    .map(String::from)
    .chain(["9".repeat(8192), "1".repeat(100)])
    .collect()
}

/// RFC 3339-ish strings with the outcome each must have as `startsAt` (no `endsAt`) and as
/// `endsAt` (`startsAt` defaults to now, so a time in the past is refused there).
fn dates() -> Vec<(&'static str, Want, Want)> {
    use Want::*;
    vec![
        ("0000-01-01T00:00:00Z", Refused, Refused),
        ("-0001-01-01T00:00:00Z", Refused, Refused),
        ("-262143-01-01T00:00:00Z", Refused, Refused),
        ("0999-12-31T23:59:59.999999Z", Refused, Refused),
        ("1000-01-01T00:00:00Z", Ok, Refused),
        ("1000-01-01T00:00:00+00:01", Refused, Refused), // 0999-12-31T23:59Z
        ("1000-01-01T00:59:59+01:00", Refused, Refused),
        ("1969-12-31T23:59:59Z", Ok, Refused),
        ("1970-01-01T00:00:00Z", Ok, Refused),
        ("2038-01-19T03:14:08Z", Ok, Ok),
        ("2096-02-29T12:00:00Z", Ok, Ok),
        ("2097-02-29T12:00:00Z", Refused, Refused),
        ("2097-13-01T00:00:00Z", Refused, Refused),
        ("2097-01-32T00:00:00Z", Refused, Refused),
        ("2097-01-01T24:00:00Z", Refused, Refused),
        ("2097-01-01T23:60:00Z", Refused, Refused),
        ("2097-06-30T23:59:60Z", Either, Either), // a leap second
        ("2097-06-30T23:59:61Z", Refused, Refused),
        ("2097-01-01T00:00:00+14:00", Ok, Ok),
        ("2097-01-01T00:00:00-12:00", Ok, Ok),
        ("2097-01-01T00:00:00+23:59", Ok, Ok),
        ("2097-01-01T00:00:00+24:00", Refused, Refused),
        ("2097-01-01T00:00:00.123456789Z", Ok, Ok),
        ("2097-01-01T00:00:00.1234567890123456789Z", Either, Either),
        ("2097-01-01t00:00:00z", Either, Either),
        ("2097-01-01 00:00:00Z", Either, Either),
        ("2097-01-01T00:00:00", Refused, Refused),
        ("2097-01-01", Refused, Refused),
        ("2097-01-01T00:00Z", Refused, Refused),
        ("20970101T000000Z", Refused, Refused),
        ("9999-12-31T23:59:59Z", Ok, Ok),
        ("9999-12-31T23:59:59.999999Z", Ok, Ok),
        ("9999-12-31T23:59:59.9999999Z", Ok, Ok),
        ("9999-12-31T22:59:59-01:00", Ok, Ok),
        ("9999-12-31T23:59:59-00:01", Refused, Refused), // 10000-01-01T00:00:59Z
        ("9999-12-31T23:59:60Z", Refused, Refused),      // a leap second past the last storable one
        ("9999-12-31T23:59:60.5Z", Refused, Refused),
        ("+10000-01-01T00:00:00Z", Refused, Refused),
        ("+262143-12-31T23:59:59Z", Refused, Refused),
        ("+999999-01-01T00:00:00Z", Refused, Refused),
        ("", Refused, Refused),
        (" ", Refused, Refused),
        ("now", Refused, Refused),
        ("2097-01-01T00:00:00Z\u{0}", Refused, Refused),
    ]
}

#[rustfmt::skip] // a value table
fn date_cases(field: &str, base: &[(&str, &str)]) -> Vec<(String, String, Want)> {
    let mut out: Vec<(String, String, Want)> = dates()
        .into_iter()
        .map(|(d, as_starts, as_ends)| {
            let want = if field == "endsAt" { as_ends } else { as_starts };
            (d.to_string(), with(base, field, Some(&json_string(d))), want)
        })
        .collect();
    out.push(("null".into(), with(base, field, Some("null")), Want::Ok));
    let wrong = ["0", "1700000000", "-1", I64_MAX, I64_MAX_1, "1e30", "true", "[]", "{}", "[\"2097-01-01T00:00:00Z\"]"];
    for raw in wrong {
        out.push((raw.into(), with(base, field, Some(raw)), Want::Refused));
    }
    out
}

#[rustfmt::skip] // a value table
fn create_cases(body_limit: usize) -> Vec<Case> {
    use Want::*;
    let path = "/api/v1/campaigns";
    let post = |field: &str, value: &str, body: String, want: Want| {
        Case::new(Method::POST, path, path.into(), field, value, want).body(body).admin()
    };
    // `base` with `field` set to the raw JSON text `raw`.
    let set = |base: &[(&str, &str)], field: &str, raw: &str, want: Want| {
        post(field, raw, with(base, field, Some(raw)), want)
    };
    let base: &[(&str, &str)] = &[("name", "\"sweep\""), ("totalStock", "10")];
    let mut cases = Vec::new();

    // name
    let names: Vec<(String, Want)> = vec![
        (String::new(), Refused), (" ".into(), Refused), ("\t\n\r \u{3000}".into(), Refused),
        ("a".into(), Ok), (" a ".into(), Ok), ("\ta\n".into(), Ok),
        ("x".repeat(200), Ok), (format!(" {} ", "x".repeat(198)), Ok), ("x".repeat(201), Refused),
        ("😀".repeat(200), Ok), ("😀".repeat(201), Refused), ("e\u{301}".repeat(100), Ok),
        ("𝔘𝔫𝔦𝔠𝔬𝔡𝔢 名前 اسم".into(), Ok),
        ("a\u{0}b".into(), Refused), ("\u{0}".into(), Refused), ("a\tb".into(), Refused),
        ("a\nb".into(), Refused), ("a\u{7f}b".into(), Refused), ("a\u{9b}b".into(), Refused),
        ("\u{85}".into(), Refused), ("\u{200b}".into(), Either), ("\u{feff}x".into(), Either),
        ("x".repeat(body_limit - 64), Refused), // just below the body limit
        ("x".repeat(1 << 20), Refused),         // 1 MiB: 413
    ];
    for (name, want) in names {
        cases.push(post("name", &name, with(base, "name", Some(&json_string(&name))), want));
    }
    for raw in ["\"\\ud800\"", "\"\\udfff\\ud800\"", "null", "true", "1", "1.5", "[]", "[\"a\"]", "{}"] {
        cases.push(set(base, "name", raw, Refused));
    }
    cases.push(post("name", "(absent)", with(base, "name", None), Refused));

    // totalStock
    for raw in ["1", "9999999", "10000000"] {
        cases.push(set(base, "totalStock", raw, Ok));
    }
    for raw in out_of_range("10000001").into_iter().chain(NOT_INTEGERS) {
        cases.push(set(base, "totalStock", raw, Refused));
    }
    cases.push(post("totalStock", "(absent)", with(base, "totalStock", None), Refused));

    // perUserLimit, against the largest stock so that only its own range matters
    let big: &[(&str, &str)] = &[("name", "\"sweep\""), ("totalStock", "10000000")];
    for raw in ["1", "10000000", "null"] {
        cases.push(set(big, "perUserLimit", raw, Ok));
    }
    for raw in out_of_range("10000001").into_iter().chain(NOT_INTEGERS.into_iter().filter(|v| *v != "null")) {
        cases.push(set(big, "perUserLimit", raw, Refused));
    }
    let small: &[(&str, &str)] = &[("name", "\"sweep\""), ("totalStock", "3")];
    cases.push(set(small, "perUserLimit", "3", Ok)); // = totalStock
    cases.push(set(small, "perUserLimit", "4", Refused)); // > totalStock

    // startsAt (no endsAt) and endsAt (startsAt defaults to now), then the two together
    for field in ["startsAt", "endsAt"] {
        for (value, body, want) in date_cases(field, base) {
            cases.push(post(field, &value, body, want));
        }
    }
    for (starts, ends, want) in [
        ("2097-01-01T00:00:00Z", "2097-01-01T00:00:00.000001Z", Ok),
        ("2097-01-01T00:00:00Z", "2097-01-01T00:00:00Z", Refused),
        ("2097-01-01T00:00:00Z", "2097-01-01T00:00:00.0000001Z", Refused), // equal in µs
        ("2097-01-01T01:00:00+01:00", "2097-01-01T00:00:00Z", Refused),
        ("1000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", Ok),
        ("9999-12-31T23:59:59Z", "1000-01-01T00:00:00Z", Refused),
        ("2097-01-01T00:00:00Z", "9999-12-31T23:59:60Z", Refused),
    ] {
        let with_start = [("name", "\"sweep\""), ("totalStock", "10"), ("startsAt", &json_string(starts))];
        let body = with(&with_start, "endsAt", Some(&json_string(ends)));
        cases.push(post("startsAt..endsAt", &format!("{starts}..{ends}"), body, want));
    }

    // The body as a whole
    let valid = with(base, "name", Some("\"padded\""));
    let pad = |len: usize| format!("{valid}{}", " ".repeat(len - valid.len()));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for (what, body, want) in [
        ("(empty)".to_string(), String::new(), Refused),
        ("null".into(), "null".into(), Refused),
        ("[]".into(), "[]".into(), Refused),
        ("1".into(), "1".into(), Refused),
        ("\"s\"".into(), "\"s\"".into(), Refused),
        ("{}".into(), "{}".into(), Refused),
        ("{ (truncated)".into(), "{\"name\":\"x\",".into(), Refused),
        ("BOM then object".into(), format!("\u{feff}{valid}"), Either),
        ("unknown field".into(), with(base, "stock", Some("1")), Refused),
        ("duplicate key".into(), "{\"name\":\"a\",\"name\":\"b\",\"totalStock\":1}".into(), Either),
        ("nested 10000 deep".into(), with(base, "name", Some(&deep)), Refused),
        (format!("exactly {body_limit} bytes"), pad(body_limit), Ok),
        (format!("{} bytes", body_limit + 1), pad(body_limit + 1), Refused),
    ] {
        cases.push(post("body", &what, body, want));
    }
    cases.push(post("body", "invalid UTF-8", String::new(), Refused)
        .body(b"{\"name\":\"\xff\xfe\",\"totalStock\":1}".to_vec()));
    let mut text_plain = post("content-type", "text/plain", valid.clone(), Refused);
    text_plain.headers.push(("content-type", b"text/plain".to_vec()));
    cases.push(text_plain);
    cases.extend(ep("POST", path, true).auth(path, Some(&valid)));
    cases
}

/// One route of the API, as the report names it; `admin` sends the admin token.
#[derive(Clone, Copy)]
struct Endpoint {
    method: &'static str,
    template: &'static str,
    admin: bool,
}

const fn ep(method: &'static str, template: &'static str, admin: bool) -> Endpoint {
    Endpoint {
        method,
        template,
        admin,
    }
}

impl Endpoint {
    fn case(&self, path: impl Into<String>, field: &str, value: &str, want: Want) -> Case {
        let method = Method::from_bytes(self.method.as_bytes()).expect("method");
        let case = Case::new(method, self.template, path.into(), field, value, want);
        if self.admin {
            case.admin()
        } else {
            case
        }
    }

    /// `?name=value` on `path`: the `ok` values succeed, the `refused` ones are refused.
    fn query(&self, path: &str, name: &str, ok: &[&str], refused: &[String]) -> Vec<Case> {
        let ok = ok.iter().map(|v| (v.to_string(), Want::Ok));
        let refused = refused.iter().map(|v| (v.clone(), Want::Refused));
        ok.chain(refused)
            .map(|(v, want)| self.case(format!("{path}?{name}={v}"), name, &v, want))
            .collect()
    }

    /// `Authorization` values other than the admin token on `path`: 401, in the JSON shape.
    fn auth(&self, path: &str, body: Option<&str>) -> Vec<Case> {
        let values: Vec<Option<Vec<u8>>> = vec![
            None,
            Some(b"".to_vec()),
            Some(b"Bearer".to_vec()),
            Some(b"Bearer ".to_vec()),
            Some(b"Bearer wrong".to_vec()),
            Some(format!("Bearer {ADMIN_TOKEN}x").into_bytes()),
            Some(format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]).into_bytes()),
            Some(format!("Basic {ADMIN_TOKEN}").into_bytes()),
            Some(format!("Bearer {ADMIN_TOKEN} {ADMIN_TOKEN}").into_bytes()),
            Some(format!("Bearer {}", "t".repeat(8192)).into_bytes()),
            Some(b"Bearer \xff\xfe".to_vec()),
        ];
        values
            .into_iter()
            .map(|auth| {
                let shown = auth
                    .as_deref()
                    .map_or("(none)".into(), String::from_utf8_lossy);
                let mut case = self.case(path, "Authorization", &shown, Want::Refused);
                case.auth = auth;
                case.body = body.map(|b| b.as_bytes().to_vec());
                case
            })
            .collect()
    }
}

/// Page sizes `1..=max`: the bounds, their neighbours and junk.
#[rustfmt::skip] // a value table
fn limit_values(max: u32) -> (Vec<String>, Vec<String>) {
    let ok = vec!["1".into(), max.to_string(), (max - 1).to_string()];
    let mut refused: Vec<String> = [
        "0", "-1", "4294967295", "4294967296", I64_MAX, I64_MAX_1, "1.5", "1e2", "abc", "%00", "",
        "1%20",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    refused.push((max + 1).to_string());
    refused.push("9".repeat(4096));
    (ok, refused)
}

/// Cursors from `min` (0 or 1) up: the bounds, their neighbours and junk.
#[rustfmt::skip] // a value table
fn cursor_values(min: i64) -> (Vec<&'static str>, Vec<String>) {
    let ok = if min == 0 { vec!["0", "1", I64_MAX] } else { vec!["1", "2", I64_MAX] };
    let mut refused: Vec<String> = [
        "-1", I64_MAX_1, I64_MIN_1, "1.5", "abc", "%00", "", "null", "-9223372036854775808",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if min == 1 {
        refused.push("0".into());
    }
    refused.push("9".repeat(4096));
    (ok, refused)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn campaign_create_fields_at_and_past_every_boundary() {
    let settings = test_settings().await;
    let body_limit = settings.http.body_limit;
    let app = spawn_app_with(settings).await;
    let n = sweep(&app, create_cases(body_limit)).await;
    assert!(n > 200, "{n} cases");
    // Whatever the sweep created reads back: no row that a later list or get cannot decode.
    let mut cursor = String::new();
    let mut names = std::collections::HashSet::new();
    let mut listed = 0;
    loop {
        let page = app
            .get(&format!("/api/v1/campaigns?limit=100{cursor}"))
            .await;
        assert_eq!(page.status, 200, "{page:?}");
        for c in page.body["items"].as_array().expect("items") {
            let one = app.get(&format!("/api/v1/campaigns/{}", c["id"])).await;
            assert_eq!(one.status, 200, "{one:?}");
            names.insert(one.body["name"].as_str().expect("name").to_string());
            listed += 1;
        }
        match page.body["nextCursor"].as_i64() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(listed, app.scalar("SELECT COUNT(*) FROM campaign").await);
    // Names come back as sent, less the surrounding whitespace, 4-byte characters included.
    let sent = [
        "a",
        &"x".repeat(200),
        &"😀".repeat(200),
        &"e\u{301}".repeat(100),
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 名前 اسم",
    ];
    for name in sent {
        assert!(names.contains(name), "{name} is stored as sent");
    }
}

#[tokio::test]
async fn campaign_reads_with_every_bad_id_limit_and_cursor() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    let list = ep("GET", "/api/v1/campaigns", false);
    let path = list.template;
    let mut cases = Vec::new();
    let (ok, refused) = limit_values(100);
    cases.extend(list.query(path, "limit", &strs(&ok), &refused));
    let (ok, refused) = cursor_values(1);
    cases.extend(list.query(path, "cursor", &ok, &refused));
    let repeated = format!("{path}?limit=1&cursor={I64_MAX}&limit=2");
    cases.push(list.case(repeated, "query", "repeated limit", Want::Either));
    cases.push(list.case(
        format!("{path}?unknown=1"),
        "query",
        "unknown name",
        Want::Either,
    ));

    let one = ep("GET", "/api/v1/campaigns/{id}", false);
    let unknown = [I64_MAX.to_string(), (campaign + 1).to_string()];
    for id in bad_ids().into_iter().chain(unknown) {
        cases.push(one.case(format!("/api/v1/campaigns/{id}"), "id", &id, Want::Refused));
    }
    cases.push(one.case(
        format!("/api/v1/campaigns/{campaign}"),
        "id",
        "(exists)",
        Want::Ok,
    ));
    for method in ["PUT", "DELETE", "PATCH"] {
        let path = format!("/api/v1/campaigns/{campaign}");
        cases.push(ep(method, one.template, false).case(path, "method", method, Want::Refused));
    }
    for (method, path, want) in [
        ("GET", "/health/live?x=%00", Want::Ok),
        ("POST", "/health/live", Want::Refused),
        ("GET", "/openapi.json?x=1", Want::Ok),
        ("GET", "/api/v1/campaigns/", Want::Either),
        ("GET", "/api/v1/campaigns//participations", Want::Refused),
        ("GET", "/api/v1/no/such/route", Want::Refused),
        ("GET", "/%FF", Want::Refused),
    ] {
        cases.push(ep(method, path, false).case(path, "route", path, want));
    }
    sweep(&app, cases).await;
}

/// Join cases (body fields, path id, `traceparent`) for one of the two paths. `campaign` allows
/// 5 units per user; `wide` allows 10,000,000 (the largest `quantity`). Each case that could win
/// takes a new user from `users`.
fn join_cases(join: Endpoint, campaign: i64, wide: i64, users: &mut i64) -> Vec<Case> {
    use Want::*;
    let at = |id: &dyn std::fmt::Display| join.template.replace("{id}", &id.to_string());
    let path = at(&campaign);
    let mut user = || {
        *users += 1;
        users.to_string()
    };
    let post = |path: &str, field: &str, value: &str, body: String, want: Want| {
        join.case(path, field, value, want).body(body)
    };
    let mut cases = Vec::new();

    let bad_users = [
        "0",
        "-1",
        "-0",
        I64_MAX_1,
        "-9223372036854775808",
        I64_MIN_1,
        "18446744073709551615",
        "100000000000000000000000000000",
    ];
    for raw in bad_users.into_iter().chain(NOT_INTEGERS) {
        cases.push(post(
            &path,
            "userId",
            raw,
            object(&[("userId", raw.into())]),
            Refused,
        ));
    }
    let no_user = object(&[("quantity", "1".into())]);
    cases.push(post(&path, "userId", "(absent)", no_user, Refused));
    for raw in ["1", I32_MAX, I32_MAX_1, I64_MAX] {
        cases.push(post(
            &path,
            "userId",
            raw,
            object(&[("userId", raw.into())]),
            Ok,
        ));
    }

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
    for (raw, want) in refused.chain(limits) {
        let body = object(&[("userId", user()), ("quantity", raw.into())]);
        cases.push(post(
            &path,
            "quantity",
            &format!("{raw} (limit 5)"),
            body,
            want,
        ));
    }
    // The largest quantity wins all 10,000,000 units; the next request is SOLD_OUT (409).
    for (raw, want) in [("10000001", Refused), ("10000000", Ok), ("1", Refused)] {
        let body = object(&[("userId", user()), ("quantity", raw.into())]);
        cases.push(post(
            &at(&wide),
            "quantity",
            &format!("{raw} (limit 10000000)"),
            body,
            want,
        ));
    }

    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let mib = json_string(&"x".repeat(1 << 20));
    for (what, body) in [
        ("(empty)", String::new()),
        ("null", "null".into()),
        ("[]", "[]".into()),
        ("{}", "{}".into()),
        (
            "unknown field",
            object(&[("userId", user()), ("campaignId", path.clone())]),
        ),
        ("nested 10000 deep", object(&[("userId", deep)])),
        ("1 MiB", object(&[("userId", user()), ("pad", mib)])),
    ] {
        cases.push(post(&path, "body", what, body, Refused));
    }

    let unknown = [I64_MAX.to_string(), "4611686018427387904".to_string()];
    for id in bad_ids().into_iter().chain(unknown) {
        cases.push(post(
            &at(&id),
            "id",
            &id,
            object(&[("userId", user())]),
            Refused,
        ));
    }

    // traceparent: well-formed or not, it never refuses the join (a bad one starts a new trace;
    // tracing.rs checks what the message carries).
    for (tp, want) in [
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
    ] {
        let shown = String::from_utf8_lossy(&tp).into_owned();
        let mut case = post(
            &path,
            "traceparent",
            &shown,
            object(&[("userId", user())]),
            want,
        );
        case.headers.push(("traceparent", tp));
        cases.push(case);
    }
    // x-request-id: kept, or replaced when too long or odd; never a reason to refuse.
    for id in [
        b"req-1".to_vec(),
        "x".repeat(8000).into_bytes(),
        b"a b\"c".to_vec(),
        b"\xff\xfe".to_vec(),
    ] {
        let shown: String = String::from_utf8_lossy(&id).chars().take(40).collect();
        let mut case = post(
            &path,
            "x-request-id",
            &shown,
            object(&[("userId", user())]),
            Ok,
        );
        case.headers.push(("x-request-id", id));
        cases.push(case);
    }
    cases
}

#[tokio::test]
async fn joins_on_both_paths_with_every_bad_field_value() {
    let app = spawn_app().await;
    let mut cases = Vec::new();
    let mut users = 1_000;
    for template in [
        "/api/v1/campaigns/{id}/participations",
        "/api/v1/campaigns/{id}/participations/sync",
    ] {
        let campaign = app.open_campaign(1_000, 5).await;
        let wide = app.open_campaign(10_000_000, 10_000_000).await;
        cases.extend(join_cases(
            ep("POST", template, false),
            campaign,
            wide,
            &mut users,
        ));
    }
    sweep(&app, cases).await;
}

#[tokio::test]
async fn participation_reads_with_every_bad_id_limit_and_cursor() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    assert_eq!(app.join(campaign, 7, 1).await.status, 201);
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
    sweep(&app, cases).await;
}

#[tokio::test]
async fn admin_outbox_endpoints_with_every_bad_parameter_and_token() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    let key = campaign.to_string();
    let dead = app
        .insert_rows_as(&key, &app.topic, 2, OutboxStatus::Dead)
        .await;
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

    // Redrive by campaign: every refusal first; the one that moves the DEAD rows comes last.
    let by_campaign = ep("POST", "/api/v1/admin/outbox/redrive", true);
    let path = by_campaign.template;
    let unknown = (campaign + 1).to_string();
    cases.extend(by_campaign.query(path, "campaignId", &[&unknown, I64_MAX], &ids));
    cases.push(by_campaign.case(path, "campaignId", "(absent)", Want::Refused));
    let this_campaign = format!("{path}?campaignId={campaign}");
    cases.extend(by_campaign.auth(&this_campaign, None));

    let by_event = ep("POST", "/api/v1/admin/outbox/{eventId}/redrive", true);
    let at = |id: &str| by_event.template.replace("{eventId}", id);
    let event = dead[0].clone();
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
    for id in bad_events {
        cases.push(by_event.case(at(&id), "eventId", &id, Want::Refused));
    }
    cases.extend(by_event.auth(&at(&event), None));
    cases.push(by_event.case(at(&event), "eventId", &event, Want::Ok));
    cases.push(by_event.case(at(&event), "eventId", "(already redriven)", Want::Refused));
    cases.push(by_campaign.case(this_campaign, "campaignId", &key, Want::Ok));
    sweep(&app, cases).await;
    assert_eq!(app.outbox_count("DEAD").await, 0, "the valid redrives ran");
}

/// Sends `request` as raw bytes (what reqwest cannot: chunked bodies, a broken chunk) and
/// returns the status and body of the answer.
async fn raw_http(app: &TestApp, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut answer),
    );
    read.await.expect("the server answers and closes").ok();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[tokio::test]
async fn chunked_bodies_past_the_limit_or_broken_are_refused_and_write_nothing() {
    let settings = test_settings().await;
    let limit = settings.http.body_limit;
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(5, 1).await;
    let before = snapshot(&app).await;
    let chunked = |path: &str, token: bool, chunks: &[u8]| {
        let auth = if token {
            format!("Authorization: Bearer {ADMIN_TOKEN}\r\n")
        } else {
            String::new()
        };
        let mut r = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        r.extend_from_slice(chunks);
        r
    };
    let chunk = |body: &str| format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let over = |json: &str| format!("{json}{}", " ".repeat(limit + 1 - json.len()));
    let join = format!("/api/v1/campaigns/{campaign}/participations");
    let create = "/api/v1/campaigns";
    let valid_create = "{\"name\":\"c\",\"totalStock\":1}";
    let mut failures = Vec::new();
    for (what, request, status) in [
        (
            "join, limit + 1 bytes",
            chunked(&join, false, chunk(&over("{\"userId\":1}")).as_bytes()),
            Some(413),
        ),
        (
            "create, limit + 1 bytes",
            chunked(create, true, chunk(&over(valid_create)).as_bytes()),
            Some(413),
        ),
        (
            "join, broken chunk size",
            chunked(&join, false, b"zz\r\n{}\r\n0\r\n\r\n"),
            None,
        ),
        (
            "create, broken chunk size",
            chunked(create, true, b"zz\r\n{}\r\n0\r\n\r\n"),
            None,
        ),
    ] {
        let (got, body) = raw_http(&app, &request).await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let ok = status.map_or((400..500).contains(&got), |s| s == got)
            && json["code"].as_str().is_some_and(|c| !c.is_empty());
        if !ok {
            failures.push(format!("{what}: {got} {body}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        changed(&before, &snapshot(&app).await),
        Vec::<String>::new(),
        "nothing written"
    );
    // The same chunked framing with a body within the limit is served normally.
    let (got, body) = raw_http(
        &app,
        &chunked(&join, false, chunk("{\"userId\":1}").as_bytes()),
    )
    .await;
    assert_eq!(got, 201, "{body}");
}
