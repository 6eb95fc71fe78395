//! A join of a campaign with a waiting room wins only with a live admission token of its own
//! (docs/design.md §2.1, §16): without one, with another user's or campaign's, forged, signed
//! with another secret, replayed or expired, it is refused with its code and nothing is written:
//! no participation, no outbox row, MySQL's and the gate's stock untouched.

use std::time::Duration;

use firstcome::{gate::AdmissionPass, waiting_room::AdmissionSigner};

use super::{admission_token, enqueue, join_with, poll, poll_until, room_campaign, room_settings};
use crate::{
    operations::metrics::exposition::{has, scrape, sum},
    spawn::spawn_app_with,
};

#[tokio::test]
async fn a_missing_borrowed_forged_replayed_or_expired_token_never_wins_and_writes_nothing() {
    let mut settings = room_settings().await;
    settings.waiting_room.token_lifetime = Duration::from_secs(1);
    let app = spawn_app_with(settings).await;
    let a = room_campaign(&app, "QUEUE", 10, 100, serde_json::json!({})).await;
    let b = room_campaign(&app, "QUEUE", 10, 100, serde_json::json!({})).await;
    let token = admission_token(&app, a, 1).await;
    let gate_stock = app.redis_stock(a).await;

    let refused = |status: u16, code: &'static str| {
        move |r: crate::http::Reply| {
            assert_eq!((r.status, r.code()), (status, code), "{r:?}");
        }
    };
    refused(403, "ADMISSION_REQUIRED")(join_with(&app, a, 1, None).await);
    refused(403, "ADMISSION_TOKEN_INVALID")(join_with(&app, a, 2, Some(&token)).await);
    refused(403, "ADMISSION_TOKEN_INVALID")(join_with(&app, b, 1, Some(&token)).await);
    // Altered: a later expiry written over the signed one, or a changed signature.
    let (fields, signature) = token.rsplit_once('.').expect("signed");
    let (head, _) = fields.rsplit_once('.').expect("expiry");
    let stretched = format!("{head}.9999999999999.{signature}");
    refused(403, "ADMISSION_TOKEN_INVALID")(join_with(&app, a, 1, Some(&stretched)).await);
    let flipped = format!("{fields}.{}", signature.replace(|c: char| c != 'A', "A"));
    refused(403, "ADMISSION_TOKEN_INVALID")(join_with(&app, a, 1, Some(&flipped)).await);
    // Signed with another secret, for the right campaign, user, ticket and expiry.
    let mut parts = fields.split('.').skip(2);
    let pass = AdmissionPass {
        ticket: parts.next().expect("ticket").to_string(),
        expires_ms: parts.next().expect("expiry").parse().expect("number"),
    };
    let forged = AdmissionSigner::new(&[1; 32]).sign(a, 1, &pass);
    refused(403, "ADMISSION_TOKEN_INVALID")(join_with(&app, a, 1, Some(&forged)).await);
    // The sync path has no waiting room to check a token against.
    let sync = app
        .post_json(
            &format!("/api/v1/campaigns/{a}/participations/sync"),
            &serde_json::json!({"userId": 1, "admissionToken": token}),
            None,
        )
        .await;
    refused(403, "ADMISSION_REQUIRED")(sync);
    assert_eq!(app.remaining_stock(a).await, 10);
    assert_eq!(app.redis_stock(a).await, gate_stock);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 0);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM outbox_event").await, 0);

    // The genuine token wins once; replayed, it is refused and writes nothing more.
    let won = join_with(&app, a, 1, Some(&token)).await;
    assert_eq!(won.status, 201, "{won:?}");
    let replayed = join_with(&app, a, 1, Some(&token)).await;
    assert_eq!(
        (replayed.status, replayed.code()),
        (409, "ALREADY_PARTICIPATED"),
        "{replayed:?}"
    );
    assert_eq!(app.remaining_stock(a).await, 9);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 1);

    // A token not used within its lifetime is refused; its unit went back to the queue.
    let queued = enqueue(&app, a, 3).await;
    let ticket = queued.body["ticket"].as_str().expect("ticket").to_string();
    let admitted = poll_until(&app, a, &ticket, &["ADMITTED"]).await;
    let late = admitted.body["admissionToken"]
        .as_str()
        .expect("token")
        .to_string();
    poll_until(&app, a, &ticket, &["EXPIRED"]).await;
    refused(409, "ADMISSION_TOKEN_EXPIRED")(join_with(&app, a, 3, Some(&late)).await);
    assert_eq!(app.remaining_stock(a).await, 9);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 1);
    assert_eq!(poll(&app, a, &ticket).await.body["state"], "EXPIRED");

    // Each refusal counted once by reason; the admissions and the queue seen by this instance.
    let m = scrape(&app).await;
    for (reason, n) in [
        ("REQUIRED", 2.0),
        ("INVALID", 5.0),
        ("USED", 0.0),
        ("EXPIRED", 1.0),
    ] {
        assert_eq!(
            sum(
                &m,
                "firstcome_admission_refused_total",
                &[("reason", reason)]
            ),
            n,
            "{reason}"
        );
    }
    let of_a = [("campaign", a.to_string())];
    let of_a: Vec<(&str, &str)> = of_a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(sum(&m, "firstcome_queue_admitted_total", &of_a), 2.0);
    assert_eq!(sum(&m, "firstcome_queue_length", &of_a), 0.0);
    assert!(has(&m, "firstcome_queue_wait_seconds_total", &of_a));
}
