//! Verified user identity (issue 26): who a join, confirm, cancel, queue or rewards call acts for,
//! read from a signed JWT instead of trusted from the request's `userId`.
//!
//! With `USER_AUTH=jwt` each such call carries `Authorization: Bearer <JWT>`. The algorithm is
//! pinned by `JWT_ALGORITHM` (a token naming another is refused); HS256 tokens are checked with
//! `JWT_SECRET`, RS256 and ES256 ones with the public keys of a JWKS (a file re-read when it
//! changes, a URL fetched in the background). Checking a token is synchronous and does no I/O:
//! the request path only reads the current keys.
//!
//! # Layout
//! - [`verifier`]: [`UserVerifier`], started from the settings; `verify` turns the header into a
//!   user id;
//! - [`keys`]: a JWKS document's usable keys, the current key set and how a token's `kid` picks
//!   one;
//! - [`jwks`]: keeping the key set current: the file's reload, the URL's background refresh;
//! - [`token`]: `firstcome token`'s signing of HS256 test tokens.

pub mod jwks;
pub mod keys;
pub mod token;
pub mod verifier;

#[cfg(test)]
mod tests;

pub use verifier::UserVerifier;

/// Why a call is not let act for a user. Either way the API answers 401 `UNAUTHENTICATED`; the
/// reason is for the log line, never for the client (it would help an attacker tune a forgery).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No `Authorization` header.
    #[error("no Authorization header")]
    Missing,
    /// A header that is not a valid Bearer JWT of a user: the reason, for the log.
    #[error("invalid bearer token: {0}")]
    Invalid(String),
}
