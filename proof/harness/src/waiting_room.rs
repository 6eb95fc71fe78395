//! The waiting room's clients (design §16): users who queue for a campaign with `admission:
//! QUEUE` (`POST …/queue {userId}` → a ticket), poll their ticket about once a second
//! (`GET …/queue/{ticket}`) until it is `ADMITTED` with a token, and join with the token in the
//! body. A user leaves after `--queue-patience` without an admission, or once told `USED` or
//! `EXPIRED`; a `SOLD_OUT` ticket keeps its place, so the user keeps polling until then.
//!
//! A few users are dishonest, so the history shows that only the room's own tokens win: a join
//! without a token, with another user's token, with another user's token rebound to oneself
//! (its signature then no longer matches), and the winner replaying their own token. A join
//! asking more than the campaign's limit goes first, with the token, and is refused as
//! invalid; the token stays usable (a refusal writes nothing) for the join within the limit.
//!
//! The instances run the bot check (`BOT_CHECK=pow`, design §16): an honest user asks the
//! campaign's challenge and solves it (ALTCHA's scheme, its crate) before queueing, and a few are
//! bots: one sends no solution or a forged one (it must get no ticket), one queues and then stays
//! silent past `QUEUE_TICKET_IDLE_MS` before it polls again (a waitlisted ticket must not be
//! offered a unit after it went silent). The history records which (`botCheck`), when each
//! ticket's answer arrived and when an admission expires, for the checker (`check::bots`).

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use rand::{rngs::StdRng, Rng};
use serde_json::json;

use crate::history::{EntryType, Func, Value};

use super::{
    recorder::Recorder,
    request::Request,
    workload::{lock, seeded, Client, Shared, WorkloadParams},
};

/// One waiting-room process until `shared.stop` or `until`.
pub async fn process(
    id: u64,
    params: Arc<WorkloadParams>,
    shared: Arc<Shared>,
    recorder: Arc<Recorder>,
    http: reqwest::Client,
    started: Instant,
    until: Instant,
) {
    let mut rng = seeded(&params, id);
    let mut client = Client {
        id,
        params: &params,
        shared: &shared,
        recorder: &recorder,
        http: &http,
        started,
        until,
    };
    while !shared.stop.load(Ordering::Relaxed) && Instant::now() < until {
        let queued = shared.joinable(true);
        if queued.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let campaign = queued[rng.random_range(0..queued.len())];
        let user = rng.random_range(1..=params.users);
        client.visit(campaign, user, &mut rng).await;
        let ms = params.think.as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=2 * ms))).await;
    }
}

impl Client<'_> {
    /// One user's visit to a queued campaign.
    async fn visit(&mut self, campaign: i64, user: i64, rng: &mut StdRng) {
        let limit = self.shared.limit(campaign);
        let dishonest = rng.random_range(0..100);
        if dishonest >= 97 {
            let check = if dishonest == 99 { "none" } else { "forged" };
            self.queue(campaign, user, check, rng).await;
            return;
        }
        if dishonest == 96 {
            self.squat(campaign, user, rng).await;
            return;
        }
        if dishonest < 8 {
            let token = match dishonest {
                0..=2 => None,
                3..=5 => self.borrowed(campaign, user, rng),
                _ => self.borrowed(campaign, user, rng).map(|t| rebind(&t, user)),
            };
            self.join_with(campaign, user, 1, token, rng).await;
            return;
        }
        let Some(token) = self.admission(campaign, user, rng).await else {
            return;
        };
        let quantity = self.quantity(campaign, rng);
        if quantity > limit {
            self.join_with(campaign, user, quantity, Some(token.clone()), rng)
                .await;
        }
        let quantity = quantity.min(limit);
        let (kind, _) = self
            .join_with(campaign, user, quantity, Some(token.clone()), rng)
            .await;
        if kind == EntryType::Ok && rng.random_bool(0.1) {
            self.join_with(campaign, user, 1, Some(token), rng).await;
        }
    }

    /// Queues and polls until admitted (the token), or until the user leaves (`None`).
    async fn admission(&mut self, campaign: i64, user: i64, rng: &mut StdRng) -> Option<String> {
        let (kind, mut seen) = self.queue(campaign, user, "solved", rng).await;
        if kind != EntryType::Ok {
            return None;
        }
        let ticket = seen.ticket.clone()?;
        let leave_at = Instant::now() + self.params.patience;
        loop {
            match seen.state.as_deref() {
                Some("ADMITTED") => return seen.admission_token,
                // A waitlisted ticket waits as a waiting one does: an offer is an admission.
                Some("WAITING" | "SOLD_OUT" | "WAITLISTED") => {}
                _ => return None,
            }
            if Instant::now() >= leave_at.min(self.until) {
                return None;
            }
            let every = self.params.poll_every.as_millis() as u64;
            let jitter = rng.random_range(every * 9 / 10..=every * 11 / 10);
            tokio::time::sleep(Duration::from_millis(jitter)).await;
            match self.send(poll(campaign, user, &ticket), rng).await {
                (EntryType::Ok, answer) => seen = answer,
                (EntryType::Fail, _) => return None,
                _ => {}
            }
        }
    }

    /// One queue call with a `solved`, `forged` or no (`none`) answer to the bot check.
    async fn queue(
        &mut self,
        campaign: i64,
        user: i64,
        check: &str,
        rng: &mut StdRng,
    ) -> (EntryType, Value) {
        let answer = match check {
            "solved" => self.solved(campaign).await,
            "forged" => Some(forged()),
            _ => None,
        };
        // What was sent: a user whose challenge could not be had queues without an answer.
        let check = if answer.is_none() { "none" } else { check };
        let mut queue = Request::post(
            Func::Queue,
            format!("/api/v1/campaigns/{campaign}/queue"),
            Value {
                campaign: Some(campaign),
                user: Some(user),
                bot_check: Some(check.to_owned()),
                ..Value::default()
            },
        );
        queue.body = Some(match answer {
            Some(a) => json!({ "userId": user, "botCheck": a }),
            None => json!({ "userId": user }),
        });
        self.send(queue, rng).await
    }

    /// A solution of a challenge the campaign's endpoint gave (an unrecorded call, as a page's
    /// widget makes it); `None` when no instance gave one, and the queue call then goes without.
    async fn solved(&self, campaign: i64) -> Option<String> {
        let up: Vec<&String> = (self.shared.bases.iter().enumerate())
            .filter(|(i, _)| self.shared.up[*i].load(Ordering::Relaxed))
            .map(|(_, b)| b)
            .collect();
        let base = up.first()?;
        let reply = (self
            .http
            .get(format!("{base}/api/v1/campaigns/{campaign}/bot-check")))
        .timeout(self.params.timeout)
        .send()
        .await
        .ok()?;
        let challenge: altcha::Challenge = reply.json().await.ok()?;
        let solution =
            altcha::solve_challenge(altcha::SolveChallengeOptions::new(&challenge)).ok()??;
        let payload = altcha::Payload {
            challenge,
            solution,
        };
        Some(STANDARD.encode(serde_json::to_vec(&payload).ok()?))
    }

    /// A bot that queues with a solution and then says nothing past the room's idle interval
    /// before it polls once: a waitlisted ticket it holds must have been dropped, not offered.
    async fn squat(&mut self, campaign: i64, user: i64, rng: &mut StdRng) {
        let (kind, seen) = self.queue(campaign, user, "solved", rng).await;
        let Some(ticket) = seen.ticket.filter(|_| kind == EntryType::Ok) else {
            return;
        };
        let back = Instant::now() + QUEUE_IDLE + Duration::from_secs(5);
        if back > self.until {
            return;
        }
        tokio::time::sleep_until(back.into()).await;
        self.send(poll(campaign, user, &ticket), rng).await;
    }

    /// A token the room issued to another user of the campaign, if any was seen.
    fn borrowed(&self, campaign: i64, user: i64, rng: &mut StdRng) -> Option<String> {
        let tokens = lock(&self.shared.tokens);
        let theirs: Vec<&String> = tokens
            .iter()
            .filter(|(c, u, _)| *c == campaign && *u != user)
            .map(|(_, _, t)| t)
            .collect();
        (!theirs.is_empty()).then(|| theirs[rng.random_range(0..theirs.len())].clone())
    }
}

/// `GET …/queue/{ticket}`: `user`'s poll of their ticket.
fn poll(campaign: i64, user: i64, ticket: &str) -> Request {
    let mut poll = Request::post(
        Func::Poll,
        format!("/api/v1/campaigns/{campaign}/queue/{ticket}"),
        Value {
            campaign: Some(campaign),
            user: Some(user),
            ticket: Some(ticket.to_owned()),
            ..Value::default()
        },
    );
    poll.get = true;
    poll
}

/// The service's `QUEUE_TICKET_IDLE_MS` (its default, which the harness keeps).
const QUEUE_IDLE: Duration = Duration::from_secs(30);

/// An answer to the bot check that solves nothing: a well-formed payload of a challenge the
/// service never signed.
fn forged() -> String {
    let payload = json!({
        "challenge": {"parameters": {"algorithm": "PBKDF2/SHA-256", "cost": 10, "keyLength": 32,
            "keyPrefix": "00", "nonce": "00", "salt": "00", "data": {"campaignId": 1}},
            "signature": "00"},
        "solution": {"counter": 0, "derivedKey": "00"},
    });
    STANDARD.encode(payload.to_string())
}

/// `<campaign>.<user>.<ticket>.<expires>.<signature>` with the user replaced: a forgery.
fn rebind(token: &str, user: i64) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    if parts.len() > 1 {
        parts[1] = user.to_string();
    }
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::rebind;

    #[test]
    fn a_rebound_token_names_the_new_user_and_keeps_the_rest() {
        assert_eq!(rebind("7.42.abc.1700.sig", 9), "7.9.abc.1700.sig");
    }
}
