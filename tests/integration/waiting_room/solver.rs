//! `firstcome solve-bot-check` (docs/design.md §16 "Bots at the door"): the binary solves a
//! campaign's challenge as the ALTCHA widget does, so a shell can try the check (the README's
//! drop does), and says what is wrong with anything else it is given.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::{bot_check::pow_settings, room_campaign};
use crate::spawn::spawn_app_with;

/// Runs `firstcome solve-bot-check` with `stdin`: (exit success, stdout, stderr).
async fn solve(stdin: &str) -> (bool, String, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_firstcome"))
        .arg("solve-bot-check")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start firstcome solve-bot-check");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    let out = child.wait_with_output().await.expect("its output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn the_binary_solves_a_campaigns_challenge_and_the_room_gives_a_ticket_for_it() {
    let app = spawn_app_with(pow_settings().await).await;
    let campaign = room_campaign(&app, "QUEUE", 5, 50, serde_json::json!({})).await;
    let challenge = app
        .get(&format!("/api/v1/campaigns/{campaign}/bot-check"))
        .await;
    assert_eq!(challenge.status, 200, "{challenge:?}");

    let (ok, payload, err) = solve(&challenge.body.to_string()).await;
    assert!(ok, "solve-bot-check failed: {err}");
    let queued = app
        .post_json(
            &format!("/api/v1/campaigns/{campaign}/queue"),
            &serde_json::json!({"userId": 7, "botCheck": payload}),
            None,
        )
        .await;
    assert_eq!(queued.status, 202, "{queued:?}");

    // Anything but a challenge: a failure that says what it wanted, nothing on stdout.
    let (ok, out, err) = solve("{\"code\":\"NO_WAITING_ROOM\"}").await;
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("is not a challenge"), "{err}");
}
