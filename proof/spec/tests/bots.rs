//! Bots at the waiting room's door (design §16 "Bots at the door"; `check::bots`): crafted
//! histories, each anomaly flagged and its clean twin passing.

mod support;

use firstcome_proof_spec::{
    final_state::FinalState,
    history::{Func, Value},
    report::{AnomalyKind, Report},
};
use support::{assert_clean, assert_flags, Sale, CAMPAIGN};

/// A queued campaign with a waitlist whose offers last 5 s.
fn state(s: &Sale) -> FinalState {
    let mut state = s.final_state();
    state.campaigns[0].per_user_limit = Some(1);
    state.campaigns[0].admission = Some("QUEUE".to_owned());
    state.campaigns[0].offer_seconds = Some(5);
    state
}

fn check(s: &Sale) -> Report {
    support::check(&s.history(), &state(s))
}

fn asking(user: i64, bot_check: &str) -> Value {
    Value {
        campaign: Some(CAMPAIGN),
        user: Some(user),
        bot_check: Some(bot_check.to_owned()),
        ..Value::default()
    }
}

/// A ticket's answer at the harness's wall clock `at_ms`.
fn answer(ticket: &str, state: &str, at_ms: i64, expires_ms: Option<i64>) -> Value {
    Value {
        ticket: Some(ticket.to_owned()),
        state: Some(state.to_owned()),
        answered_at_ms: Some(at_ms),
        admission_expires_ms: expires_ms,
        admission_token: expires_ms.map(|_| format!("token-{ticket}")),
        ..Value::default()
    }
}

#[test]
fn a_ticket_given_to_a_client_that_failed_the_bot_check_is_flagged() {
    for failed in ["forged", "none"] {
        let mut s = Sale::new(1);
        s.invoke(1, Func::Queue, asking(7, failed));
        s.ok(1, Func::Queue, answer("t7", "WAITING", 1_000, None));
        assert_flags(&check(&s), AnomalyKind::AdmissionBreach);

        let mut twin = Sale::new(1);
        twin.invoke(1, Func::Queue, asking(7, failed));
        twin.fail(1, Func::Queue, "BOT_CHECK_FAILED");
        assert_clean(&check(&twin));
    }
}

/// User 7 queues when the campaign is sold out (`WAITLISTED`) at 1 s, then says nothing until
/// a poll finds the ticket `ADMITTED` by an offer made `offered_after_ms` after that answer.
fn silent_then_offered(offered_after_ms: i64) -> Sale {
    let mut s = Sale::new(1);
    s.invoke(1, Func::Queue, asking(7, "solved"));
    s.ok(1, Func::Queue, answer("t7", "WAITLISTED", 1_000, None));
    let poll = Value {
        ticket: Some("t7".to_owned()),
        ..asking(7, "solved")
    };
    s.invoke(1, Func::Poll, poll);
    let offered = 1_000 + offered_after_ms;
    s.ok(
        1,
        Func::Poll,
        answer("t7", "ADMITTED", offered + 10, Some(offered + 5_000)),
    );
    s
}

#[test]
fn an_offer_to_a_ticket_silent_past_the_idle_interval_is_flagged() {
    // QUEUE_TICKET_IDLE_MS is 30 s: dropped by then, offered nothing after (1 s for clocks).
    assert_flags(
        &check(&silent_then_offered(32_000)),
        AnomalyKind::AdmissionBreach,
    );
    assert_clean(&check(&silent_then_offered(20_000)));
}
