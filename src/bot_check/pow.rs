//! The built-in proof of work: ALTCHA's v2 scheme through its official crate (`altcha`), so the
//! ALTCHA widget that sites already embed solves it (docs/design.md §16).
//!
//! A challenge is stateless: a random nonce and salt, the cost (`BOT_CHECK_COST` PBKDF2-SHA256
//! iterations), a key prefix `00` (a try succeeds with odds 1 in 256), an expiry, all signed with
//! HMAC-SHA256 under a key derived from `ADMISSION_SECRET`, so any instance verifies any other's
//! and nobody can lower the cost. The client sends back, base64-encoded, the JSON `{challenge,
//! solution}` the widget produces. The cheap refusals come first (what the signature covers, the
//! expiry, the signature), then the challenge is spent in Redis (`SET NX`, living until the
//! challenge's own expiry), then its one derivation runs (on a blocking thread; the benchmark
//! `scripts/bench-bot-check.sh` measures it): a second use is refused without a derivation,
//! whichever instance it reaches and whatever solution it carries.

use std::time::Duration;

use base64::{engine::general_purpose::STANDARD, Engine};

use super::BotRefusal;
use crate::{config::BotCheckSettings, gate::Gate};

/// The derived key's required first byte: 1 try in 256 succeeds.
const KEY_PREFIX: &str = "00";

/// The challenge's `data` entry naming the campaign it is good for.
const CAMPAIGN: &str = "campaignId";

pub struct ProofOfWork {
    secret: String,
    cost: u32,
    lifetime: Duration,
    gate: Gate,
}

impl ProofOfWork {
    pub fn new(settings: &BotCheckSettings, key: &[u8], gate: Gate) -> Self {
        Self {
            secret: key.iter().map(|b| format!("{b:02x}")).collect(),
            cost: settings.cost,
            lifetime: settings.challenge_ttl,
            gate,
        }
    }

    /// A fresh signed challenge, good for `campaign_id` only (named in its signed `data`).
    pub fn challenge(&self, campaign_id: i64) -> altcha::Challenge {
        let expires_at = chrono::Utc::now().timestamp()
            + i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        altcha::create_challenge(altcha::CreateChallengeOptions {
            algorithm: "PBKDF2/SHA-256".to_string(),
            cost: self.cost,
            expires_at: Some(expires_at),
            key_prefix: KEY_PREFIX.to_string(),
            data: Some(std::collections::BTreeMap::from([(
                CAMPAIGN.to_string(),
                serde_json::Value::from(campaign_id),
            )])),
            hmac_signature_secret: Some(self.secret.clone()),
            ..Default::default()
        })
        // Only a malformed key prefix or algorithm fails, and both are constants here.
        .unwrap_or_else(|e| unreachable!("a challenge of constant parameters: {e}"))
    }

    /// Whether `response` (base64 of the payload's JSON, or the JSON itself) solves a challenge
    /// of ours for `campaign_id`, unexpired, used for the first time.
    ///
    /// The cheap refusals come first and the derivation last: what the signature covers (cost,
    /// algorithm, campaign), the expiry, the signature itself (one HMAC), then the challenge is
    /// spent in Redis until its own expiry, right or wrong, before the one derivation. So a
    /// challenge buys one derivation whatever is sent with it: a second try, another solution
    /// included, is `Reused` without one.
    pub async fn verify(&self, campaign_id: i64, response: &str) -> Result<(), BotRefusal> {
        let payload = parse(response).ok_or(BotRefusal::Invalid)?;
        let parameters = &payload.challenge.parameters;
        let campaign = (parameters.data.as_ref()).and_then(|d| d.get(CAMPAIGN)?.as_i64());
        if parameters.cost != self.cost
            || parameters.algorithm != "PBKDF2/SHA-256"
            || campaign != Some(campaign_id)
        {
            return Err(BotRefusal::Invalid);
        }
        let lives = self.lives(parameters.expires_at)?;
        let Some(id) = self.signed(&payload.challenge) else {
            return Err(BotRefusal::Invalid);
        };
        match self.gate.spend_bot_pass(&id, lives).await {
            Ok(true) => {}
            Ok(false) => return Err(BotRefusal::Reused),
            Err(e) => {
                tracing::warn!(error = %e, "Could not spend a bot-check pass in Redis; the client is refused for now.");
                return Err(BotRefusal::Unavailable);
            }
        }
        let secret = self.secret.clone();
        let verdict = tokio::task::spawn_blocking(move || {
            altcha::verify_solution(altcha::VerifySolutionOptions::new(
                &payload.challenge,
                &payload.solution,
                secret,
            ))
        })
        .await
        .map_err(|_| BotRefusal::Unavailable)?
        .map_err(|_| BotRefusal::Invalid)?;
        match verdict {
            v if v.expired => Err(BotRefusal::Expired),
            v if v.verified => Ok(()),
            _ => Err(BotRefusal::Invalid),
        }
    }

    /// How long a challenge expiring at `expires_at` (Unix seconds) is still good for: its spent
    /// mark lives that long (plus a second for clocks that disagree), so no instance accepts it
    /// again before it expires, whatever its own `BOT_CHECK_CHALLENGE_TTL_MS`. Ours always expire.
    fn lives(&self, expires_at: Option<i64>) -> Result<Duration, BotRefusal> {
        let left = expires_at.ok_or(BotRefusal::Invalid)? - chrono::Utc::now().timestamp();
        if left < 0 {
            return Err(BotRefusal::Expired);
        }
        Ok(Duration::from_secs(u64::try_from(left).unwrap_or(0) + 1))
    }

    /// The challenge's signature when it is ours (its parameters signed with our key), else
    /// `None`. One HMAC, no derivation.
    fn signed(&self, challenge: &altcha::Challenge) -> Option<String> {
        let given = challenge.signature.as_deref()?;
        let mut parameters = challenge.parameters.clone();
        let ours = altcha::sign_challenge(
            &altcha::HmacAlgorithm::Sha256,
            &mut parameters,
            None,
            &self.secret,
            None,
        )
        .ok()?
        .signature?;
        let same = given.len() == ours.len()
            && (given.bytes().zip(ours.bytes())).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        same.then(|| given.to_string())
    }
}

/// The widget's payload: base64 of its JSON (the form field ALTCHA fills), or the JSON as is.
fn parse(response: &str) -> Option<altcha::Payload> {
    let json = if response.starts_with('{') {
        response.as_bytes().to_vec()
    } else {
        STANDARD.decode(response).ok()?
    };
    serde_json::from_slice(&json).ok()
}

/// A client's answer to `challenge` (the widget's work, for tests, the proof's bots and the
/// benchmark): base64 of `{challenge, solution}`.
pub fn solve(challenge: &altcha::Challenge) -> Option<String> {
    let solution =
        altcha::solve_challenge(altcha::SolveChallengeOptions::new(challenge)).ok()??;
    let payload = altcha::Payload {
        challenge: challenge.clone(),
        solution,
    };
    Some(STANDARD.encode(serde_json::to_vec(&payload).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_reads_as_base64_or_as_json_and_nothing_else() {
        let challenge = altcha::create_challenge(altcha::CreateChallengeOptions {
            cost: 1,
            key_prefix: "0".into(),
            hmac_signature_secret: Some("k".into()),
            ..Default::default()
        })
        .expect("challenge");
        let encoded = solve(&challenge).expect("solved");
        let json = String::from_utf8(STANDARD.decode(&encoded).expect("base64")).expect("utf8");
        assert!(parse(&encoded).is_some());
        assert!(parse(&json).is_some());
        for junk in ["", "e30=", "{}", "not base64!", "{\"challenge\":1}"] {
            assert!(parse(junk).is_none(), "{junk}");
        }
    }
}
