//! Admission tokens (docs/design.md §16): what the waiting room hands an admitted user, signed
//! with `ADMISSION_SECRET` (HMAC-SHA256) and bound to the campaign, the user, the ticket and an
//! expiry. The signature is checked here, before the gate; whether the admission is live and
//! unused is the gate's to say, in the same step as the stock (`lua/reserve.lua`).
//!
//! A token reads `<campaign>.<user>.<ticket>.<expires ms>.<signature>`: the fields in the clear
//! (clients may show the expiry), the signature base64url over all four.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ring::hmac;

use crate::gate::AdmissionPass;

/// Longest token accepted (a real one is about 80 characters).
pub const MAX_TOKEN_LEN: usize = 256;

/// Why a presented token is refused before the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// Malformed, or its signature does not verify (forged, or signed with another secret).
    #[error("the admission token is not valid")]
    Invalid,
    /// A valid token of another campaign or another user.
    #[error("the admission token was issued for another campaign or user")]
    NotYours,
}

/// Signs and checks admission tokens, and draws raffle places, with one key. Cheap to share.
pub struct AdmissionSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for AdmissionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdmissionSigner { key: <redacted> }")
    }
}

impl AdmissionSigner {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A signer with a key of its own (no `ADMISSION_SECRET`): its tokens verify only here.
    pub fn random() -> Self {
        Self::new(&rand::random::<[u8; 32]>())
    }

    /// The token of `pass` for `user_id` in `campaign_id`.
    pub fn sign(&self, campaign_id: i64, user_id: i64, pass: &AdmissionPass) -> String {
        let fields = format!(
            "{campaign_id}.{user_id}.{}.{}",
            pass.ticket, pass.expires_ms
        );
        let tag = hmac::sign(&self.key, fields.as_bytes());
        format!("{fields}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The admission `token` grants, if it is genuine and for this campaign and user.
    pub fn verify(
        &self,
        token: &str,
        campaign_id: i64,
        user_id: i64,
    ) -> Result<AdmissionPass, TokenRefusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenRefusal::Invalid);
        }
        let (fields, signature) = token.rsplit_once('.').ok_or(TokenRefusal::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenRefusal::Invalid)?;
        hmac::verify(&self.key, fields.as_bytes(), &signature)
            .map_err(|_| TokenRefusal::Invalid)?;
        let mut parts = fields.split('.');
        let (Some(campaign), Some(user), Some(ticket), Some(expires), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenRefusal::Invalid);
        };
        let expires_ms = expires.parse().map_err(|_| TokenRefusal::Invalid)?;
        if campaign != campaign_id.to_string() || user != user_id.to_string() {
            return Err(TokenRefusal::NotYours);
        }
        Ok(AdmissionPass {
            ticket: ticket.to_string(),
            expires_ms,
        })
    }

    /// A raffle arrival's place, below 2^48: fixed per campaign and user (queueing again does
    /// not draw again), unrelated to when they arrived, and unpredictable without the key.
    pub fn raffle_place(&self, campaign_id: i64, user_id: i64) -> u64 {
        let tag = hmac::sign(
            &self.key,
            format!("raffle.{campaign_id}.{user_id}").as_bytes(),
        );
        tag.as_ref()[..6]
            .iter()
            .fold(0u64, |place, byte| (place << 8) | u64::from(*byte))
    }
}

/// A fresh ticket id: 128 random bits, base64url (no `.`, so it fits in a token).
pub fn new_ticket() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

impl AdmissionSigner {
    /// A ticket id that carries a passed bot check (docs/design.md §16): 64 random bits, then
    /// 64 bits of the HMAC of the campaign, the user and those bits. It looks like any other
    /// ticket id, and the admission token that names it carries the pass with it.
    pub fn passed_ticket(&self, campaign_id: i64, user_id: i64) -> String {
        let random = rand::random::<[u8; 8]>();
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&random);
        id[8..].copy_from_slice(&self.pass_mark(campaign_id, user_id, &random));
        URL_SAFE_NO_PAD.encode(id)
    }

    /// Whether `ticket` was issued to `user_id` of `campaign_id` after a passed bot check.
    pub fn ticket_passed(&self, campaign_id: i64, user_id: i64, ticket: &str) -> bool {
        let Ok(id) = URL_SAFE_NO_PAD.decode(ticket) else {
            return false;
        };
        let Ok(id) = <[u8; 16]>::try_from(id.as_slice()) else {
            return false;
        };
        let mark = self.pass_mark(campaign_id, user_id, &id[..8]);
        // Every byte compared, whatever differs first.
        mark.iter().zip(&id[8..]).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }

    fn pass_mark(&self, campaign_id: i64, user_id: i64, random: &[u8]) -> [u8; 8] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(format!("bot-pass.{campaign_id}.{user_id}.").as_bytes());
        ctx.update(random);
        let tag = ctx.sign();
        let mut mark = [0u8; 8];
        mark.copy_from_slice(&tag.as_ref()[..8]);
        mark
    }

    /// The key the bot check signs its challenges with: derived from this signer's, so every
    /// instance with the same `ADMISSION_SECRET` verifies every other's challenges.
    pub fn bot_check_key(&self) -> Vec<u8> {
        hmac::sign(&self.key, b"bot-check.challenge-key")
            .as_ref()
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass() -> AdmissionPass {
        AdmissionPass {
            ticket: new_ticket(),
            expires_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_signed_token_verifies_for_its_campaign_and_user_only() {
        let signer = AdmissionSigner::new(&[7; 32]);
        let pass = pass();
        let token = signer.sign(3, 42, &pass);
        assert_eq!(signer.verify(&token, 3, 42), Ok(pass));
        assert_eq!(signer.verify(&token, 4, 42), Err(TokenRefusal::NotYours));
        assert_eq!(signer.verify(&token, 3, 43), Err(TokenRefusal::NotYours));
    }

    #[test]
    fn a_token_changed_or_signed_with_another_key_is_invalid() {
        let signer = AdmissionSigner::new(&[7; 32]);
        let token = signer.sign(3, 42, &pass());
        let other = AdmissionSigner::new(&[8; 32]);
        assert_eq!(other.verify(&token, 3, 42), Err(TokenRefusal::Invalid));
        // A later expiry written over the signed one.
        let (fields, sig) = token.rsplit_once('.').expect("signed");
        let (head, _) = fields.rsplit_once('.').expect("expiry");
        let longer = format!("{head}.9999999999999.{sig}");
        assert_eq!(signer.verify(&longer, 3, 42), Err(TokenRefusal::Invalid));
        for junk in ["", ".", "a.b.c.d.e", &"x".repeat(MAX_TOKEN_LEN + 1)] {
            assert_eq!(
                signer.verify(junk, 3, 42),
                Err(TokenRefusal::Invalid),
                "{junk}"
            );
        }
    }

    #[test]
    fn only_a_ticket_issued_after_the_check_carries_the_pass_and_only_for_its_holder() {
        let signer = AdmissionSigner::new(&[7; 32]);
        let ticket = signer.passed_ticket(3, 42);
        assert_eq!(ticket.len(), 22, "as long as any ticket id");
        assert!(signer.ticket_passed(3, 42, &ticket));
        assert!(!signer.ticket_passed(3, 43, &ticket), "another user");
        assert!(!signer.ticket_passed(4, 42, &ticket), "another campaign");
        assert!(!AdmissionSigner::new(&[8; 32]).ticket_passed(3, 42, &ticket));
        assert!(
            !signer.ticket_passed(3, 42, &new_ticket()),
            "a plain ticket"
        );
        assert!(!signer.ticket_passed(3, 42, "junk"));
    }

    #[test]
    fn raffle_places_are_fixed_per_user_and_below_2_pow_48() {
        let signer = AdmissionSigner::new(&[7; 32]);
        let places: Vec<u64> = (1..=100).map(|u| signer.raffle_place(1, u)).collect();
        assert!(places.iter().all(|p| *p < 1 << 48));
        assert_eq!(places[0], signer.raffle_place(1, 1));
        assert_ne!(places[0], signer.raffle_place(2, 1));
        let distinct: std::collections::HashSet<_> = places.iter().collect();
        assert_eq!(distinct.len(), places.len());
    }
}
