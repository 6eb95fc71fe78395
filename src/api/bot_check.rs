//! The bot check's challenge as the API documents it (docs/design.md §16): ALTCHA's v2 JSON,
//! field for field, so the ALTCHA widget reads it as its own server's.

use std::collections::BTreeMap;

use poem_openapi::Object;

/// What a challenge asks: derive a key (`algorithm`, `cost` iterations, `salt`) from the
/// `nonce` and a counter, until one starts with `keyPrefix`.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ChallengeParametersDto {
    /// `PBKDF2/SHA-256`.
    pub algorithm: String,
    /// Iterations of one try (`BOT_CHECK_COST`).
    pub cost: u32,
    /// Signed metadata: `campaignId`, the campaign the challenge is good for.
    #[oai(skip_serializing_if_is_none)]
    pub data: Option<BTreeMap<String, serde_json::Value>>,
    /// Unix seconds after which a solution is refused.
    #[oai(skip_serializing_if_is_none)]
    pub expires_at: Option<i64>,
    /// Bytes of the derived key.
    pub key_length: u32,
    /// Hex the derived key must start with.
    pub key_prefix: String,
    /// Hex.
    pub nonce: String,
    /// Hex.
    pub salt: String,
}

/// A signed proof-of-work challenge (ALTCHA v2).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ChallengeDto {
    pub parameters: ChallengeParametersDto,
    /// HMAC-SHA256 of the parameters, hex: nobody can change them.
    pub signature: String,
}

impl From<altcha::Challenge> for ChallengeDto {
    fn from(c: altcha::Challenge) -> Self {
        let p = c.parameters;
        Self {
            parameters: ChallengeParametersDto {
                algorithm: p.algorithm,
                cost: p.cost,
                data: p.data,
                expires_at: p.expires_at,
                key_length: u32::try_from(p.key_length).unwrap_or(u32::MAX),
                key_prefix: p.key_prefix,
                nonce: p.nonce,
                salt: p.salt,
            },
            signature: c.signature.unwrap_or_default(),
        }
    }
}
