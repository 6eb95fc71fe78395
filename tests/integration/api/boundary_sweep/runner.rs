//! The sweep's runner: what a case is (`Case`, `Want`, the `Endpoint` it targets), the snapshot of
//! everything a request could write, and `sweep`, which sends every case and reports every case
//! that broke the invariant by its name.

use std::{collections::BTreeMap, time::Duration};

use redis::AsyncCommands;
use reqwest::{header::HeaderValue, Method};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::{
    spawn::{TestApp, ADMIN_TOKEN},
    wait::wait_until,
};

/// What a case must get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// 2xx.
    Ok,
    /// 4xx with the JSON error body, and nothing written.
    Refused,
    /// Either of the above (the contract does not say which), but never a 5xx.
    Either,
    /// Exactly this status and, for a 4xx, this `code` (and, like any refusal, nothing written).
    Exactly(u16, &'static str),
}

/// One row of a case table: one request and what it must get back.
pub struct Case {
    /// `METHOD path-template field=value`, for the failure report.
    pub what: String,
    pub method: Method,
    pub path: String,
    pub body: Option<Vec<u8>>,
    /// `Authorization` header value, verbatim (`None`: no header).
    pub auth: Option<Vec<u8>>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    pub want: Want,
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
    pub fn new(
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
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
    pub fn admin(mut self) -> Self {
        self.auth = bearer();
        self
    }
    pub fn header(mut self, name: &'static str, value: Vec<u8>) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// One route of the API, as the report names it; `admin` sends the admin token.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    pub template: &'static str,
    pub admin: bool,
}

pub const fn ep(method: &'static str, template: &'static str, admin: bool) -> Endpoint {
    Endpoint {
        method,
        template,
        admin,
    }
}

/// `Authorization` values other than the admin token: each must be refused with a 401.
fn wrong_authorizations() -> Vec<Option<Vec<u8>>> {
    vec![
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
    ]
}

impl Endpoint {
    pub fn case(&self, path: impl Into<String>, field: &str, value: &str, want: Want) -> Case {
        let method = Method::from_bytes(self.method.as_bytes()).expect("method");
        let case = Case::new(method, self.template, path.into(), field, value, want);
        if self.admin {
            case.admin()
        } else {
            case
        }
    }

    /// `?name=value` on `path`: the `ok` values succeed, the `refused` ones are refused.
    pub fn query(&self, path: &str, name: &str, ok: &[&str], refused: &[String]) -> Vec<Case> {
        let ok = ok.iter().map(|v| (v.to_string(), Want::Ok));
        let refused = refused.iter().map(|v| (v.clone(), Want::Refused));
        ok.chain(refused)
            .map(|(v, want)| self.case(format!("{path}?{name}={v}"), name, &v, want))
            .collect()
    }

    /// `Authorization` values other than the admin token on `path`: 401, in the JSON shape.
    pub fn auth(&self, path: &str, body: Option<&str>) -> Vec<Case> {
        wrong_authorizations()
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

/// The rows of every table the API writes, one summary line each.
const TABLE_SNAPSHOTS: [(&str, &str); 6] = [
    ("campaign", "SELECT CAST(COUNT(*) AS CHAR), CAST(COALESCE(SUM(remaining_stock), 0) AS CHAR), CAST(COALESCE(MAX(updated_at), '') AS CHAR) FROM campaign"),
    // What a live control changes on the campaign row (docs/design.md §15).
    ("campaign controls", "SELECT CAST(COALESCE(SUM(total_stock), 0) AS CHAR), CAST(COALESCE(SUM(control_seq), 0) AS CHAR), CONCAT(COALESCE(SUM(paused), 0), ':', COUNT(closed_at)) FROM campaign"),
    ("campaign_control", "SELECT CAST(COUNT(*) AS CHAR), CAST(COALESCE(SUM(seq), 0) AS CHAR), COALESCE(MAX(event_id), '') FROM campaign_control"),
    ("gate_control", "SELECT CAST(COUNT(*) AS CHAR), CAST(COALESCE(SUM(seq), 0) AS CHAR), CAST(COALESCE(SUM(delta), 0) AS CHAR) FROM gate_control"),
    ("participation", "SELECT CAST(COUNT(*) AS CHAR), CAST(COALESCE(MAX(id), 0) AS CHAR), '' FROM participation"),
    ("outbox_event", "SELECT CAST(COUNT(*) AS CHAR), COALESCE(GROUP_CONCAT(status, ':', attempts ORDER BY id), ''), CAST(COALESCE(MAX(available_at), '') AS CHAR) FROM outbox_event"),
];

/// Everything a request could have written: the rows of every table the API writes and the
/// dump of every Redis key under this app's prefix (but the instances' heartbeats).
pub async fn snapshot(app: &TestApp) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (table, sql) in TABLE_SNAPSHOTS {
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
    // The instances' heartbeats change every second whatever the requests do.
    let heartbeats = format!("{}writers", app.redis_prefix);
    for key in keys.into_iter().filter(|k| *k != heartbeats) {
        let dump: Option<Vec<u8>> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("DUMP");
        out.insert(format!("redis {key}"), dump.unwrap_or_default());
    }
    out
}

/// Waits until no gate of this app is being rebuilt (no `…:building` key left).
async fn gates_primed(app: &TestApp) {
    wait_until(
        "the new campaign's gates to be primed",
        Duration::from_secs(30),
        || async {
            let mut conn = app.redis.clone();
            let pattern = format!("{}*:building", app.redis_prefix);
            let mut iter = (conn.scan_match::<_, String>(pattern).await).expect("SCAN");
            iter.next_item().await.is_none()
        },
    )
    .await;
}

pub fn changed(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

/// The request `case` describes, with its body, token and headers as given.
fn request(app: &TestApp, case: &Case) -> reqwest::RequestBuilder {
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
    req
}

/// How an answer broke the invariant for `want`, if it did; `wrote` is what changed.
fn problem(want: Want, status: u16, body: &str, wrote: &[String]) -> Option<&'static str> {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let shaped = json["code"].as_str().is_some_and(|c| !c.is_empty())
        && json["message"].as_str().is_some_and(|m| !m.is_empty());
    match (want, status) {
        (_, s) if s >= 500 => Some("a 5xx"),
        (Want::Exactly(w, _), s) if w != s => Some("not the status the contract names"),
        (Want::Exactly(_, code), s) if (400..500).contains(&s) && json["code"] != code => {
            Some("not the code the contract names")
        }
        (Want::Ok, s) if !(200..300).contains(&s) => Some("not a 2xx for a valid value"),
        (Want::Refused, s) if !(400..500).contains(&s) => Some("not a 4xx for an invalid value"),
        (Want::Either, s) if !(200..500).contains(&s) || (300..400).contains(&s) => {
            Some("neither 2xx nor 4xx")
        }
        (_, s) if (400..500).contains(&s) && !shaped => Some("a 4xx without {code, message}"),
        (_, s) if (400..500).contains(&s) && !wrote.is_empty() => Some("a refusal wrote"),
        _ => None,
    }
}

/// Sends every case in order against `app` and panics listing every case that broke the
/// invariant. Returns how many cases ran.
pub async fn sweep(app: &TestApp, cases: Vec<Case>) -> usize {
    let mut failures = Vec::new();
    let mut before = snapshot(app).await;
    for case in &cases {
        let (status, body) = match request(app, case).send().await {
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
        if let Some(problem) = problem(case.want, status, &body, &wrote) {
            let body: String = body.chars().take(200).collect();
            failures.push(format!(
                "{}: {problem}: {status} {body} (changed: {wrote:?})",
                case.what
            ));
        }
        println!("{status} {}", case.what);
        before = after;
        if (200..300).contains(&status) {
            // A creation answers once its gates are primed or after PRIME_WAIT, the priming
            // going on behind it: what it still writes is not the next case's.
            gates_primed(app).await;
            before = snapshot(app).await;
        }
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

/// Sends `request` as raw bytes (what reqwest cannot: chunked bodies, a broken chunk) and
/// returns the status and body of the answer.
pub async fn raw_http(app: &TestApp, request: &[u8]) -> (u16, String) {
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
