//! A captcha provider's token, checked with its `siteverify` call (Cloudflare Turnstile,
//! hCaptcha: the same documented API, docs/design.md §16): a form POST of `secret`, `response`
//! and `remoteip`, answered `{"success": true|false, "error-codes": [...]}`. The provider keeps
//! each token single-use (a second check answers `timeout-or-duplicate`).
//!
//! The call has a deadline (`BOT_CHECK_SITEVERIFY_TIMEOUT_MS`). A provider that does not answer
//! in time, answers a 5xx, or answers 2xx without that JSON, is out: that fails closed by default
//! (the client is answered 503 and may retry); `BOT_CHECK_FAIL_OPEN=true` lets it through
//! instead, counted apart, for an operator who would rather sell to a bot than to nobody during
//! the provider's outage. A 4xx is the provider refusing the call, never an outage: its JSON
//! verdict when it sent one (403 for the client), else 503 and an ERROR (a call it will never
//! accept: the URL is wrong).

use std::{sync::Arc, time::Instant};

use tokio::sync::Semaphore;

use super::{BotRefusal, Passed};
use crate::config::{BotCheckSettings, Secret};

pub struct SiteVerify {
    client: reqwest::Client,
    url: url::Url,
    secret: Secret,
    /// `BOT_CHECK_SITEVERIFY_TIMEOUT_MS`, set on each call.
    deadline: std::time::Duration,
    fail_open: bool,
    /// `BOT_CHECK_SITEVERIFY_MAX_IN_FLIGHT` permits: the calls in flight at once.
    in_flight: Arc<Semaphore>,
}

/// The part of the provider's answer read here.
#[derive(serde::Deserialize)]
struct Answer {
    success: bool,
    #[serde(rename = "error-codes", default)]
    error_codes: Vec<String>,
}

impl SiteVerify {
    pub fn new(settings: &BotCheckSettings, url: url::Url) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            client,
            url,
            secret: settings.siteverify_secret.clone(),
            deadline: settings.siteverify_timeout,
            fail_open: settings.fail_open,
            in_flight: Arc::new(Semaphore::new(settings.siteverify_max_in_flight)),
        }
    }

    /// The provider's verdict on `token`.
    pub async fn verify(&self, token: &str, client_ip: Option<&str>) -> Result<Passed, BotRefusal> {
        let started = Instant::now();
        // At most so many calls in flight; waiting for one counts against the call's deadline.
        let Ok(Ok(_permit)) = tokio::time::timeout(self.deadline, self.in_flight.acquire()).await
        else {
            return self.no_answer(
                "no siteverify call free within the deadline (BOT_CHECK_SITEVERIFY_MAX_IN_FLIGHT)",
            );
        };
        let left = self.deadline.saturating_sub(started.elapsed());
        let mut form = vec![("secret", self.secret.expose()), ("response", token)];
        if let Some(ip) = client_ip {
            form.push(("remoteip", ip));
        }
        let answer = async {
            let reply = self
                .client
                .post(self.url.clone())
                // To the end of the body (the client is reqwest's default if its builder failed).
                .timeout(left)
                .form(&form)
                .send()
                .await?;
            let status = reply.status();
            let body = reply.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        let parsed = match answer {
            Ok((status, body)) if status.is_success() => {
                serde_json::from_slice::<Answer>(&body).map_err(|e| e.to_string())
            }
            // A refusal of the call is an answer, not an outage: the provider's verdict when it
            // gave one (Turnstile answers 400 `{"success":false}` to a token over 2,048
            // characters), else a call it will never accept, ours to fix; never let through.
            Ok((status, body)) if status.is_client_error() => {
                match serde_json::from_slice::<Answer>(&body) {
                    Ok(answer) => Ok(answer),
                    Err(_) => {
                        tracing::error!(%status, url = %self.url, "The bot check's provider refused the call without its answer: check BOT_CHECK_SITEVERIFY_URL; the client is answered 503.");
                        return Err(BotRefusal::Unavailable);
                    }
                }
            }
            Ok((status, _)) => Err(format!("answered HTTP {status}")),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(Answer { success: true, .. }) => Ok(Passed::Passed),
            Ok(Answer { error_codes, .. }) => Err(refusal_of(&error_codes)),
            Err(error) => self.no_answer(&error),
        }
    }

    /// The provider did not answer in time (or answered nothing it could mean): the client is let
    /// through with `BOT_CHECK_FAIL_OPEN`, else answered 503.
    fn no_answer(&self, error: &str) -> Result<Passed, BotRefusal> {
        if self.fail_open {
            tracing::warn!(%error, url = %self.url, "The bot check's provider did not answer; the client is let through (BOT_CHECK_FAIL_OPEN).");
            Ok(Passed::LetThrough)
        } else {
            tracing::warn!(%error, url = %self.url, "The bot check's provider did not answer; the client is answered 503 (fail closed).");
            Err(BotRefusal::Unavailable)
        }
    }
}

/// The provider's refusal as ours: a token used twice or too old is `Reused`/`Expired`; a
/// configuration error on our side (bad secret) is ours to fix, not the client's, so it is
/// `Unavailable`; anything else `Invalid`.
fn refusal_of(codes: &[String]) -> BotRefusal {
    let has = |c: &str| codes.iter().any(|e| e == c);
    if has("timeout-or-duplicate") || has("already-seen-response") {
        BotRefusal::Reused
    } else if has("missing-input-secret")
        || has("invalid-input-secret")
        || has("sitekey-secret-mismatch")
    {
        tracing::error!(
            ?codes,
            "The bot check's provider refused our secret: check BOT_CHECK_SITEVERIFY_SECRET."
        );
        BotRefusal::Unavailable
    } else {
        BotRefusal::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_providers_error_codes_map_to_our_refusals() {
        let of = |c: &[&str]| refusal_of(&c.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(of(&["timeout-or-duplicate"]), BotRefusal::Reused);
        assert_eq!(of(&["invalid-input-response"]), BotRefusal::Invalid);
        assert_eq!(of(&["invalid-input-secret"]), BotRefusal::Unavailable);
        assert_eq!(of(&[]), BotRefusal::Invalid);
    }
}
