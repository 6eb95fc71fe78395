//! The case table for `Authorization` on the calls that act for a user, under `USER_AUTH=jwt`:
//! every header that is not the user's own valid JWT is refused and writes nothing; the user's
//! own token (any case of the scheme) passes.

use super::runner::{ep, Case, Want};
use crate::jwt::{claims, hs256, token, JWT_SECRET};

/// `Authorization` values, each with what it must get on a call for user 7.
fn authorizations() -> Vec<(String, Option<Vec<u8>>, Want)> {
    let own = token(7);
    let long = format!(
        "{}.{}.{}",
        "a".repeat(2_731),
        "b".repeat(2_731),
        "c".repeat(2_731)
    );
    let mut huge_claims = claims(7);
    huge_claims["pad"] = serde_json::json!("x".repeat(9_000));
    let bytes = |s: &str| Some(s.as_bytes().to_vec());
    vec![
        ("(none)".into(), None, Want::Refused),
        ("empty".into(), bytes(""), Want::Refused),
        ("Bearer".into(), bytes("Bearer"), Want::Refused),
        ("Bearer + space".into(), bytes("Bearer "), Want::Refused),
        ("one word".into(), bytes("Bearer x"), Want::Refused),
        (
            "two tokens".into(),
            bytes(&format!("Bearer {own} {own}")),
            Want::Refused,
        ),
        (
            "8 KiB + 2".into(),
            bytes(&format!("Bearer {long}")),
            Want::Refused,
        ),
        (
            "signed, over 8 KiB".into(),
            bytes(&format!(
                "Bearer {}",
                hs256(JWT_SECRET.as_bytes(), &huge_claims)
            )),
            Want::Refused,
        ),
        (
            "not UTF-8".into(),
            Some(b"Bearer \xff\xfe.\xfd".to_vec()),
            Want::Refused,
        ),
        (
            "user 8's".into(),
            bytes(&format!("Bearer {}", token(8))),
            Want::Refused,
        ),
        (
            "user 7's, lower-case scheme".into(),
            bytes(&format!("bearer {own}")),
            Want::Ok,
        ),
        ("user 7's".into(), bytes(&format!("Bearer {own}")), Want::Ok),
    ]
}

/// Each call for user 7 with each `Authorization`; `campaign` exists and user 7 holds a win in
/// it, so the valid token's calls succeed: a second join is refused whatever the token.
pub fn user_token_cases(campaign: i64) -> Vec<Case> {
    let calls = [
        (
            "POST",
            "/api/v1/campaigns/{id}/participations",
            Some(r#"{"userId": 7}"#),
            false,
        ),
        (
            "POST",
            "/api/v1/campaigns/{id}/participations/sync",
            Some(r#"{"userId": 7}"#),
            false,
        ),
        (
            "POST",
            "/api/v1/campaigns/{id}/participations/{userId}/confirm",
            Some("{}"),
            true,
        ),
        ("GET", "/api/v1/users/{userId}/rewards", None, true),
    ];
    let mut cases = Vec::new();
    for (method, template, body, ok_with_own) in calls {
        let path = template
            .replace("{id}", &campaign.to_string())
            .replace("{userId}", "7");
        for (name, auth, want) in authorizations() {
            let want = if want == Want::Ok && !ok_with_own {
                Want::Refused
            } else {
                want
            };
            let mut case =
                ep(method, template, false).case(path.clone(), "Authorization", &name, want);
            case.auth = auth;
            case.body = body.map(|b| b.as_bytes().to_vec());
            cases.push(case);
        }
    }
    cases
}
