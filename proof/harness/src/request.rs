//! One operation over HTTP: the request as the recorder and the call both see it, the call
//! itself (recorded as an `invoke` and its completion), and how an answer is read — `ok` for a
//! 2xx, `fail` with the code for a 4xx, `info` for a timeout, a transport error, a 408, a 429
//! or a 5xx (it may have taken effect, or the history cannot say it did not).

use std::{sync::atomic::Ordering, time::Duration};

use rand::{rngs::StdRng, Rng};

use crate::history::{EntryType, Func, Value};

use super::workload::Client;

/// An operation's request, described once for the recorder and the HTTP call.
pub(super) struct Request {
    pub f: Func,
    /// `GET` (a poll) rather than `POST`.
    pub get: bool,
    pub path: String,
    pub body: Option<serde_json::Value>,
    pub admin: bool,
    pub idempotency_key: Option<String>,
    pub value: Value,
    /// The client's own timeout, when not the run's (`--timeout-ms`).
    pub timeout: Option<Duration>,
    /// The instance (index) to send it to while that one is up; otherwise one drawn.
    pub instance: Option<usize>,
}

impl Request {
    pub fn post(f: Func, path: String, value: Value) -> Self {
        Self {
            f,
            get: false,
            path,
            body: None,
            admin: false,
            idempotency_key: None,
            value,
            timeout: None,
            instance: None,
        }
    }
}

impl Client<'_> {
    /// Records the invoke, sends to an instance that is up, records the completion; returns it.
    /// The history names the instance (`value.instance`): a fault on another one does not bear
    /// on the request (design §18.1).
    pub(super) async fn send(&mut self, mut r: Request, rng: &mut StdRng) -> (EntryType, Value) {
        let preferred = r.instance.filter(|&i| {
            self.shared
                .up
                .get(i)
                .is_some_and(|u| u.load(Ordering::Relaxed))
        });
        let instance = if let Some(i) = preferred {
            i
        } else {
            let up: Vec<usize> = (0..self.shared.bases.len())
                .filter(|&i| self.shared.up[i].load(Ordering::Relaxed))
                .collect();
            if up.is_empty() {
                rng.random_range(0..self.shared.bases.len())
            } else {
                up[rng.random_range(0..up.len())]
            }
        };
        r.value.instance = self.shared.names.get(instance).cloned();
        let url = format!("{}{}", self.shared.bases[instance], r.path);
        let mut builder = if r.get {
            self.http.get(url)
        } else {
            self.http.post(url)
        };
        builder = builder.timeout(r.timeout.unwrap_or(self.params.timeout));
        if r.admin {
            builder = builder.bearer_auth(&self.shared.admin_token);
        }
        if let Some(key) = &r.idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        builder = match (&r.body, r.get) {
            (Some(body), _) => builder.json(body),
            (None, false) => builder.header("content-length", "0"),
            (None, true) => builder,
        };
        self.recorder
            .client(EntryType::Invoke, self.id, r.f, r.value.clone());
        let (kind, value) = answer(builder.send().await, r.value).await;
        self.learn(r.f, kind, &value);
        self.recorder.client(kind, self.id, r.f, value.clone());
        (kind, value)
    }
}

/// The completion of an operation from its HTTP answer.
async fn answer(
    result: reqwest::Result<reqwest::Response>,
    mut value: Value,
) -> (EntryType, Value) {
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            value.error = Some(if e.is_timeout() {
                "timeout".to_owned()
            } else if e.is_connect() {
                "connect".to_owned()
            } else {
                "transport".to_owned()
            });
            return (EntryType::Info, value);
        }
    };
    let status = response.status();
    let body: serde_json::Value = match response.json().await {
        Ok(b) => b,
        Err(e) => {
            value.error = Some(if e.is_timeout() {
                format!("{} timeout reading the body", status.as_u16())
            } else {
                format!("{} unreadable body", status.as_u16())
            });
            return (EntryType::Info, value);
        }
    };
    let int = |k: &str| body.get(k).and_then(serde_json::Value::as_i64);
    let text = |k: &str| {
        body.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    if status.is_success() {
        value.gate = text("gate");
        if body.get("purchaseId").is_some() {
            super::carts::answered(&body, &mut value);
            return (EntryType::Ok, value);
        }
        value.participation_id = int("participationId");
        value.status = text("status");
        value.sequence = int("sequence");
        value.control_seq = int("controlCount");
        if value.control_seq.is_some() {
            value.total_stock = int("totalStock");
            value.remaining_stock = int("remainingStock");
        }
        // A ticket of the waiting room: the user it names is the one it was issued to.
        if let Some(ticket) = text("ticket") {
            value.ticket = Some(ticket);
            value.user = int("userId").or(value.user);
            value.state = text("state");
            value.position = int("position");
            value.admission_token = text("admissionToken");
            value.answered_at_ms = Some(chrono::Utc::now().timestamp_millis());
            value.admission_expires_ms = text("admissionExpiresAt")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.timestamp_millis());
        }
        (EntryType::Ok, value)
    } else if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        value.code = text("code").or_else(|| Some(format!("HTTP_{}", status.as_u16())));
        value.participation_id = int("participationId");
        // A cart's refusal names the item that could not be had.
        value.campaign = int("campaignId").or(value.campaign);
        (EntryType::Fail, value)
    } else {
        value.error = Some(format!(
            "{} {}",
            status.as_u16(),
            text("code").unwrap_or_default()
        ));
        (EntryType::Info, value)
    }
}
