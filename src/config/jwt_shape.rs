//! Whether a bearer token is shaped like a JWT, without checking anything it claims
//! (docs/design.md §17, the admin door): three base64url segments, the first a JSON object
//! naming an `alg`, the second a JSON object.
//!
//! The admin door needs the shape alone. A bearer that is shaped like a JWT is a user's (valid,
//! expired or forged: the verifier judges it) and never an admin token, which may not have this
//! shape (`config::values`); so it is never compared with the admin tokens and never counts as a
//! failed admin attempt, and the user behind it never meets another client's failed attempts.
//! Anything else presented as a bearer either is an admin token or is a guess at one.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::{Map, Value};

/// The longest bearer token read at all (the verifier refuses a longer one unread; the shape
/// check calls it no JWT). Here, below both, because the admin tokens' rule needs the shape too.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Whether `token` has a JWT's shape (see the module's doc). A token over the verifier's size
/// limit does not: nothing that long is decoded here either.
pub fn well_formed_jwt(token: &str) -> bool {
    if token.len() > MAX_TOKEN_BYTES {
        return false;
    }
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return false;
    };
    let names_alg = json_object(header).is_some_and(|h| h.get("alg").is_some_and(Value::is_string));
    names_alg && json_object(payload).is_some() && signature.bytes().all(base64url)
}

/// The JSON object a base64url segment encodes, if it encodes one.
fn json_object(segment: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn a_jwt_of_any_algorithm_valid_or_not_has_the_shape() {
        let header = segment(r#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = segment(r#"{"sub":"1","exp":1}"#);
        assert!(well_formed_jwt(&format!("{header}.{payload}.c2ln")));
        // `alg: none` with an empty signature: the shape of a JWT (the verifier refuses it).
        let none = segment(r#"{"alg":"none"}"#);
        assert!(well_formed_jwt(&format!("{none}.{payload}.")));
    }

    #[test]
    fn guesses_at_an_admin_token_do_not() {
        let header = segment(r#"{"alg":"HS256"}"#);
        let payload = segment(r#"{"sub":"1"}"#);
        for token in [
            "",
            "not.a.jwt",
            "abc.def",
            "0123456789abcdef0123456789abcdef",
            "aaaaaaaaaaaaaaab",
            &format!("{header}.{payload}"),
            &format!("{header}.{payload}.sig.more"),
            &format!("{}.{payload}.sig", segment(r#"{"typ":"JWT"}"#)),
            &format!("{}.{payload}.sig", segment(r#"["alg"]"#)),
            &format!("{header}.{}.sig", segment("42")),
            &format!("{header}.{payload}.si+g"),
            &format!("{header}.{payload}.{}", "a".repeat(MAX_TOKEN_BYTES)),
        ] {
            assert!(!well_formed_jwt(token), "{token}");
        }
    }
}
