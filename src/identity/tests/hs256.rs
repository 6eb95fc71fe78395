//! HS256 with `JWT_SECRET`: the header, the time claims, the signature, `iss`/`aud`, the user
//! claim, and `firstcome token`'s tokens.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    config::Secret,
    identity::{tests::*, token::mint},
};

async fn hs() -> UserVerifier {
    verifier(&[("JWT_SECRET", SECRET)]).await.expect("starts")
}

#[tokio::test]
async fn user_auth_none_gives_no_verifier() {
    let settings = Settings::from_pairs(&[("JWT_SECRET", SECRET)]).expect("valid");
    let verifier = UserVerifier::start(
        &settings.user_auth,
        CancellationToken::new(),
        &TaskTracker::new(),
    )
    .await
    .expect("starts");
    assert!(verifier.is_none());
}

#[tokio::test]
async fn a_valid_token_gives_its_user() {
    let v = hs().await;
    let token = hs256(SECRET.as_bytes(), &claims(json!("42")));
    assert_eq!(v.verify(Some(&bearer(&token))).ok(), Some(42));
    for scheme in ["bearer", "BEARER", "  Bearer"] {
        let header = format!("{scheme} {token} ");
        assert_eq!(v.verify(Some(&header)).ok(), Some(42), "{scheme}");
    }
}

#[tokio::test]
async fn no_header_is_missing_and_another_scheme_is_invalid() {
    let v = hs().await;
    assert!(matches!(v.verify(None), Err(IdentityError::Missing)));
    let token = hs256(SECRET.as_bytes(), &claims(json!(42)));
    for header in [
        "".to_string(),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        format!("Basic {token}"),
        format!("Bearer{token}"),
        token.clone(),
    ] {
        assert!(is_invalid(v.verify(Some(&header))), "{header:?}");
    }
}

#[tokio::test]
async fn exp_is_required_and_checked_with_the_leeway() {
    let v = hs().await;
    let verify = |claims: Value| v.verify(Some(&bearer(&hs256(SECRET.as_bytes(), &claims))));
    assert!(is_invalid(verify(with(
        claims(json!(42)),
        "exp",
        now_plus(-120)
    ))));
    assert!(is_invalid(verify(with(
        claims(json!(42)),
        "exp",
        Value::Null
    ))));
    assert!(is_invalid(verify(with(
        claims(json!(42)),
        "exp",
        json!("soon")
    ))));
    // Within JWT_LEEWAY_SECONDS (30 by default): a clock a little ahead still accepts it.
    assert_eq!(
        verify(with(claims(json!(42)), "exp", now_plus(-10))).ok(),
        Some(42)
    );
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let v = hs().await;
    let verify = |claims: Value| v.verify(Some(&bearer(&hs256(SECRET.as_bytes(), &claims))));
    assert!(is_invalid(verify(with(
        claims(json!(42)),
        "nbf",
        now_plus(300)
    ))));
    assert_eq!(
        verify(with(claims(json!(42)), "nbf", now_plus(10))).ok(),
        Some(42)
    );
    let strict = verifier(&[("JWT_SECRET", SECRET), ("JWT_LEEWAY_SECONDS", "0")])
        .await
        .expect("starts");
    let token = hs256(
        SECRET.as_bytes(),
        &with(claims(json!(42)), "nbf", now_plus(10)),
    );
    assert!(is_invalid(strict.verify(Some(&bearer(&token)))));
}

#[tokio::test]
async fn a_wrong_signature_is_refused() {
    let v = hs().await;
    let other = hs256(b"another-secret-0123456789abcdef-0123", &claims(json!(42)));
    assert!(is_invalid(v.verify(Some(&bearer(&other)))));
    // The signature of user 1's token on user 2's claims.
    let one = hs256(SECRET.as_bytes(), &claims(json!(1)));
    let two = hs256(SECRET.as_bytes(), &claims(json!(2)));
    let forged: Vec<&str> = two
        .split('.')
        .take(2)
        .chain(one.split('.').skip(2))
        .collect();
    assert!(is_invalid(v.verify(Some(&bearer(&forged.join("."))))));
}

#[tokio::test]
async fn the_none_algorithm_is_refused() {
    let v = hs().await;
    let payload = URL_SAFE_NO_PAD.encode(claims(json!(42)).to_string());
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None"}"#,
    ] {
        let header = URL_SAFE_NO_PAD.encode(header);
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert!(is_invalid(v.verify(Some(&bearer(&token)))), "{token}");
        }
    }
    // Another HMAC than the pinned one, with the right secret.
    let header = Header::new(Algorithm::HS512);
    let hs512 = encode(
        &header,
        &claims(json!(42)),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signs");
    assert!(is_invalid(v.verify(Some(&bearer(&hs512)))));
}

#[tokio::test]
async fn issuer_and_audience_are_checked_and_required_when_configured() {
    let v = verifier(&[
        ("JWT_SECRET", SECRET),
        ("JWT_ISSUER", "https://idp.example"),
        ("JWT_AUDIENCE", "firstcome"),
    ])
    .await
    .expect("starts");
    let good = with(
        with(claims(json!(42)), "iss", json!("https://idp.example")),
        "aud",
        json!("firstcome"),
    );
    let verify = |claims: Value| v.verify(Some(&bearer(&hs256(SECRET.as_bytes(), &claims))));
    assert_eq!(verify(good.clone()).ok(), Some(42));
    assert_eq!(
        verify(with(good.clone(), "aud", json!(["x", "firstcome"]))).ok(),
        Some(42)
    );
    for (claim, value) in [
        ("iss", json!("https://evil.example")),
        ("iss", Value::Null),
        ("aud", json!("another-service")),
        ("aud", json!(["another-service"])),
        ("aud", Value::Null),
    ] {
        assert!(
            is_invalid(verify(with(good.clone(), claim, value.clone()))),
            "{claim}={value}"
        );
    }
    // Unconfigured, neither is looked at.
    let open = hs().await;
    let token = hs256(
        SECRET.as_bytes(),
        &with(good, "aud", json!("another-service")),
    );
    assert_eq!(open.verify(Some(&bearer(&token))).ok(), Some(42));
}

#[tokio::test]
async fn the_user_claim_is_a_positive_integer_or_its_decimal_string() {
    let v = hs().await;
    let verify = |user: Value| v.verify(Some(&bearer(&hs256(SECRET.as_bytes(), &claims(user)))));
    assert_eq!(verify(json!(42)).ok(), Some(42));
    assert_eq!(verify(json!("42")).ok(), Some(42));
    assert_eq!(verify(json!(i64::MAX)).ok(), Some(i64::MAX));
    assert_eq!(verify(json!(i64::MAX.to_string())).ok(), Some(i64::MAX));
    for bad in [
        Value::Null,
        json!(0),
        json!(-1),
        json!("-1"),
        json!("0"),
        json!("042"),
        json!("+42"),
        json!(" 42"),
        json!("abc"),
        json!(""),
        json!(42.5),
        json!(u64::MAX),
        json!("9223372036854775808"),
        json!([42]),
        json!(true),
    ] {
        assert!(is_invalid(verify(bad.clone())), "{bad}");
    }
    let uid = verifier(&[("JWT_SECRET", SECRET), ("JWT_USER_CLAIM", "uid")])
        .await
        .expect("starts");
    let token = hs256(SECRET.as_bytes(), &with(claims(json!(1)), "uid", json!(7)));
    assert_eq!(uid.verify(Some(&bearer(&token))).ok(), Some(7));
    let token = hs256(SECRET.as_bytes(), &claims(json!(7)));
    assert!(is_invalid(uid.verify(Some(&bearer(&token)))));
}

#[tokio::test]
async fn huge_and_malformed_tokens_are_refused() {
    let v = hs().await;
    let huge = format!("Bearer {}", "a".repeat(64 * 1024));
    match v.verify(Some(&huge)) {
        Err(IdentityError::Invalid(reason)) => assert!(reason.contains("8192"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // A valid token padded past the limit is refused too: the size is checked first.
    let token = hs256(
        SECRET.as_bytes(),
        &with(claims(json!(42)), "pad", json!("x".repeat(9_000))),
    );
    assert!(is_invalid(v.verify(Some(&bearer(&token)))));
    for token in [
        "abc",
        "a.b",
        "a.b.c",
        "..",
        "a.b.c.d",
        "e30.e30.",
        "!!!.???.***",
        "é.é.é",
    ] {
        assert!(is_invalid(v.verify(Some(&bearer(token)))), "{token}");
    }
}

#[tokio::test]
async fn minted_tokens_verify() {
    let secret = Secret::new(SECRET);
    let v = verifier(&[
        ("JWT_SECRET", SECRET),
        ("JWT_ISSUER", "firstcome"),
        ("JWT_AUDIENCE", "k6"),
        ("JWT_USER_CLAIM", "uid"),
    ])
    .await
    .expect("starts");
    let hour = Duration::from_secs(3_600);
    let token = mint(&secret, 42, hour, Some("firstcome"), Some("k6"), "uid").expect("mints");
    assert_eq!(v.verify(Some(&bearer(&token))).ok(), Some(42));
    let token = mint(&secret, 42, hour, None, None, "uid").expect("mints");
    assert!(is_invalid(v.verify(Some(&bearer(&token)))));
    let plain = mint(&secret, i64::MAX, hour, None, None, "sub").expect("mints");
    assert_eq!(
        hs().await.verify(Some(&bearer(&plain))).ok(),
        Some(i64::MAX)
    );
    assert!(mint(&secret, 0, hour, None, None, "sub").is_err());
    assert!(mint(&secret, -5, hour, None, None, "sub").is_err());
    assert!(mint(&secret, 42, hour, None, None, "exp").is_err());
}
