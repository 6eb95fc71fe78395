//! `firstcome token` (the real binary): what it signs, the service accepts for that user only
//! (one token, or one per user with `--count`);
//! every argument or setting outside its bounds is refused with a message and a non-zero exit,
//! never a panic and never a token.

use crate::{
    binary::run_firstcome,
    jwt::{with_jwt, AUDIENCE, ISSUER, JWT_SECRET},
    spawn::{spawn_app_with, test_settings},
};

const ENV: [(&str, &str); 3] = [
    ("JWT_SECRET", JWT_SECRET),
    ("JWT_ISSUER", ISSUER),
    ("JWT_AUDIENCE", AUDIENCE),
];

#[tokio::test]
async fn a_minted_token_acts_for_its_user_only() {
    let run = run_firstcome(&["token", "--user", "42", "--ttl", "15m"], &ENV).await;
    assert!(run.status.success(), "{}", run.stderr);
    let token = run.stdout.trim();
    assert_eq!(
        token.split('.').count(),
        3,
        "one JWT alone on stdout: {:?}",
        run.stdout
    );

    let app = spawn_app_with(with_jwt(test_settings().await)).await;
    let rewards = |user: i64| {
        app.client
            .get(app.url(&format!("/api/v1/users/{user}/rewards")))
            .bearer_auth(token)
    };
    assert_eq!(app.send(rewards(42)).await.status, 200);
    let other = app.send(rewards(43)).await;
    assert_eq!((other.status, other.code()), (403, "USER_MISMATCH"));

    // --count: one token per line, each for its own user, as k6 reads them.
    let run = run_firstcome(&["token", "--user", "100", "--count", "3"], &ENV).await;
    assert!(run.status.success(), "{}", run.stderr);
    let tokens: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(tokens.len(), 3, "{:?}", run.stdout);
    for (i, token) in tokens.iter().enumerate() {
        let user = 100 + i as i64;
        let mine = app
            .client
            .get(app.url(&format!("/api/v1/users/{user}/rewards")))
            .bearer_auth(token);
        assert_eq!(app.send(mine).await.status, 200, "user {user}");
    }
}

/// The environment of one run.
type Env = Vec<(&'static str, &'static str)>;

#[tokio::test]
async fn arguments_and_settings_out_of_bounds_are_refused_without_a_token() {
    let cases: Vec<(Vec<&str>, Env)> = vec![
        (vec!["--user", "0"], ENV.to_vec()),
        (vec!["--user", "-1"], ENV.to_vec()),
        (vec!["--user", "9223372036854775808"], ENV.to_vec()),
        (vec!["--user", "abc"], ENV.to_vec()),
        (vec!["--user", ""], ENV.to_vec()),
        (vec![], ENV.to_vec()),
        (vec!["--user", "1", "--ttl", "0s"], ENV.to_vec()),
        (vec!["--user", "1", "--count", "0"], ENV.to_vec()),
        (vec!["--user", "1", "--count", "1000001"], ENV.to_vec()),
        (
            vec!["--user", "9223372036854775807", "--count", "2"],
            ENV.to_vec(),
        ),
        (vec!["--user", "1", "--ttl", "367d"], ENV.to_vec()),
        (vec!["--user", "1", "--ttl", "1x"], ENV.to_vec()),
        (
            vec!["--user", "1", "--ttl", "99999999999999999999d"],
            ENV.to_vec(),
        ),
        (vec!["--user", "1"], vec![]),
        (vec!["--user", "1"], vec![("JWT_SECRET", "too-short")]),
        (
            vec!["--user", "1"],
            vec![("JWT_SECRET", JWT_SECRET), ("JWT_ALGORITHM", "ES256")],
        ),
        (
            vec!["--user", "1"],
            vec![("JWT_SECRET", JWT_SECRET), ("JWT_USER_CLAIM", "exp")],
        ),
    ];
    for (args, env) in cases {
        let mut argv = vec!["token"];
        argv.extend(&args);
        let run = run_firstcome(&argv, &env).await;
        let code = run.status.code();
        assert!(
            matches!(code, Some(1) | Some(2)),
            "{args:?} {env:?}: exit {code:?}, stderr {}",
            run.stderr
        );
        assert!(
            run.stdout.trim().is_empty(),
            "{args:?}: no token: {}",
            run.stdout
        );
        assert!(!run.stderr.trim().is_empty(), "{args:?}: says why");
        assert!(
            !run.stderr.contains(JWT_SECRET),
            "{args:?}: the secret is never echoed"
        );
    }
}
