//! Crafted histories with one planted fault each: the checker must flag its kind.

mod support;

use firstcome_proof_spec::{
    final_state::OutboxRow,
    history::{Func, Value},
    report::AnomalyKind,
};
use support::{assert_clean, assert_flags, Sale, CAMPAIGN};

fn user_op(user: i64) -> Value {
    Value {
        campaign: Some(CAMPAIGN),
        user: Some(user),
        ..Value::default()
    }
}

#[test]
fn oversell_a_win_with_no_unit_free() {
    let mut s = Sale::new(1);
    s.join(1, 10);
    s.join(2, 11); // the service let a second win through
    assert_flags(&s.check(), AnomalyKind::Oversell);
}

#[test]
fn oversell_in_mysql_at_the_end() {
    let mut s = Sale::new(1);
    s.join(1, 10);
    let mut state = s.final_state();
    let mut extra = state.participations[0].clone();
    extra.id = 999;
    extra.user = 77;
    state.participations.push(extra);
    let r = support::check(&s.history(), &state);
    assert_flags(&r, AnomalyKind::Oversell);
}

#[test]
fn lost_win_an_ok_join_that_nothing_kept() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    s.join(2, 11);
    let mut state = s.final_state();
    let lost = s.wins[&11].pid;
    state
        .events
        .retain(|r| r.payload["participationId"] != lost);
    state.participations.retain(|p| p.id != lost);
    let r = support::check(&s.history(), &state);
    assert_flags(&r, AnomalyKind::LostWin);
}

#[test]
fn an_event_mysql_has_but_the_topic_lacks() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    let mut state = s.final_state();
    state.events.clear();
    let r = support::check(&s.history(), &state);
    assert_flags(&r, AnomalyKind::MissingOrDuplicatedEvent);
}

#[test]
fn phantom_win_never_invoked() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    s.commit_win(55, 1);
    assert_flags(&s.check(), AnomalyKind::PhantomWin);
}

#[test]
fn phantom_win_of_a_refused_join() {
    let mut s = Sale::new(2);
    s.invoke_join(1, 10);
    s.commit_win(10, 1);
    s.fail(1, Func::Join, "DEPENDENCY_UNAVAILABLE");
    assert_flags(&s.check(), AnomalyKind::PhantomWin);
}

#[test]
fn double_win_of_one_user() {
    let mut s = Sale::new(3);
    s.invoke_join(1, 10);
    s.commit_win(10, 1);
    s.info(1, Func::Join);
    s.invoke_join(1, 10);
    s.commit_win(10, 1);
    s.info(1, Func::Join);
    assert_flags(&s.check(), AnomalyKind::DoubleWin);
}

#[test]
fn double_win_after_an_expiry() {
    let mut s = Sale::new(3).with_holds(1);
    s.join(1, 10);
    s.sleep_ms(1_500);
    s.commit_cancel(10, "EXPIRED");
    s.join(1, 10); // an expired user must stay refused
    assert_flags(&s.check(), AnomalyKind::DoubleWin);
}

#[test]
fn illegal_transition_confirm_after_cancel() {
    let mut s = Sale::new(1).with_holds(60);
    s.join(1, 10);
    s.cancel(1, 10, Func::Cancel);
    s.invoke(1, Func::Confirm, user_op(10));
    s.commit_confirm(10);
    s.ok(
        1,
        Func::Confirm,
        Value {
            status: Some("CONFIRMED".into()),
            ..Value::default()
        },
    );
    assert_flags(&s.check(), AnomalyKind::IllegalTransition);
}

#[test]
fn illegal_transition_expiry_before_the_deadline() {
    let mut s = Sale::new(1).with_holds(60);
    s.join(1, 10);
    let mut state = s.final_state();
    s.commit_cancel(10, "EXPIRED");
    let mut expiry = s.records.last().unwrap().clone();
    expiry.payload["occurredAt"] = s.records[0].payload["occurredAt"].clone();
    state.events.push(expiry);
    let r = support::check(&s.history(), &state);
    assert_flags(&r, AnomalyKind::IllegalTransition);
}

#[test]
fn illegal_transition_a_unit_returned_twice() {
    let mut s = Sale::new(1);
    s.join(1, 10);
    s.cancel(9, 10, Func::Refund);
    s.invoke(9, Func::Refund, user_op(10));
    s.commit_cancel(10, "ADMIN");
    s.ok(
        9,
        Func::Refund,
        Value {
            status: Some("CANCELLED".into()),
            ..Value::default()
        },
    );
    assert_flags(&s.check(), AnomalyKind::IllegalTransition);
}

#[test]
fn illegal_transition_a_withdrawal_below_what_is_held() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    s.control(9, Func::Stock, -2);
    assert_flags(&s.check(), AnomalyKind::IllegalTransition);
}

#[test]
fn unjustified_sold_out_with_units_free_throughout() {
    let mut s = Sale::new(5);
    s.join(1, 10);
    s.join_refused(2, 11, "SOLD_OUT");
    let r = s.check();
    assert_flags(&r, AnomalyKind::UnjustifiedRefusal);
    assert!(
        r.anomalies[0].detail.contains("4..=4 unit(s) free"),
        "{}",
        r.anomalies[0].detail
    );
}

#[test]
fn unjustified_sold_out_names_reservations_in_flight() {
    let mut s = Sale::new(2);
    s.invoke_join(1, 10);
    s.invoke_join(2, 11);
    s.invoke_join(3, 12);
    s.fail(3, Func::Join, "SOLD_OUT");
    // Refused in the end (a join that ends indeterminate may hold its units: the in-doubt
    // relaxation, tests/clean.rs).
    s.fail(1, Func::Join, "SERVICE_UNAVAILABLE");
    s.fail(2, Func::Join, "SERVICE_UNAVAILABLE");
    let r = s.check();
    assert_flags(&r, AnomalyKind::UnjustifiedRefusal);
    let said = &r.anomalies[0].detail;
    assert!(said.contains("reservations still in flight"), "{said}");
    // And how the joins that may have held the units ended.
    assert!(
        said.contains("overlapping joins that never won: 2 × fail SERVICE_UNAVAILABLE (2 unit(s))"),
        "{said}"
    );
}

#[test]
fn unjustified_already_participated_and_pause_and_expiry() {
    let mut s = Sale::new(5).with_holds(60);
    s.join_refused(1, 10, "ALREADY_PARTICIPATED");
    s.join_refused(2, 11, "CAMPAIGN_PAUSED");
    s.join(3, 12);
    s.invoke(3, Func::Confirm, user_op(12));
    s.fail(3, Func::Confirm, "HOLD_EXPIRED");
    let r = s.check();
    assert_eq!(
        r.count(AnomalyKind::UnjustifiedRefusal),
        3,
        "{}",
        r.render(10)
    );
}

#[test]
fn real_time_inversion_of_two_acknowledged_wins() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    s.join(2, 11);
    let mut state = s.final_state();
    state.events.swap(0, 1);
    state.events[0].offset = 0;
    state.events[1].offset = 1;
    let r = support::check(&s.history(), &state);
    assert_flags(&r, AnomalyKind::RealTimeInversion);
}

/// The topic in the order real time allows, the outbox ids the other way round: a campaign's
/// events must be first delivered in ascending outbox id (design §2.5), and only the ids say so
/// when no answer orders the two. In order, the same sale is clean.
#[test]
fn order_breach_against_the_outbox_ids() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    s.join(2, 11);
    let rows = |ids: [i64; 2]| {
        let state = s.final_state();
        Some(
            state
                .events
                .iter()
                .zip(ids)
                .map(|(record, id)| OutboxRow {
                    id,
                    event_id: record.payload["eventId"]
                        .as_str()
                        .expect("eventId")
                        .to_owned(),
                })
                .collect::<Vec<_>>(),
        )
    };
    let mut state = s.final_state();
    state.outbox = rows([5, 6]);
    support::assert_clean(&support::check(&s.history(), &state));
    state.outbox = rows([6, 5]);
    let r = support::check(&s.history(), &state);
    assert_flags(&r, AnomalyKind::OrderBreach);
    assert_eq!(r.count(AnomalyKind::OrderBreach), 1, "{}", r.render(10));
}

#[test]
fn duplicated_event_with_another_payload() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    let mut copy = s.records[0].payload.clone();
    copy["quantity"] = serde_json::json!(2);
    s.publish(copy);
    assert_flags(&s.check(), AnomalyKind::MissingOrDuplicatedEvent);
}

#[test]
fn a_control_missing_from_the_topic() {
    let mut s = Sale::new(2);
    s.control(9, Func::Pause, 0);
    s.control(9, Func::Resume, 0);
    let mut state = s.final_state();
    state.events.remove(0);
    let r = support::check(&s.history(), &state);
    assert_flags(&r, AnomalyKind::MissingOrDuplicatedEvent);
}

#[test]
fn consumer_mismatch_in_stats_and_rewards() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    let mut state = s.final_state();
    state.stats.as_mut().unwrap()[0].accepted_count = Some(2);
    let r = support::check(&s.history(), &state);
    assert_flags(&r, AnomalyKind::ConsumerMismatch);
    let mut state = s.final_state();
    state.rewards.as_mut().unwrap()[0].points = 20; // granted twice
    let r = support::check(&s.history(), &state);
    assert_flags(&r, AnomalyKind::ConsumerMismatch);
}

#[test]
fn gate_drift_after_settling() {
    let mut s = Sale::new(3);
    s.join(1, 10);
    s.cancel(9, 10, Func::Refund);
    let mut state = s.final_state();
    state.gates.as_mut().unwrap()[0].stock = Some(2); // the return never reached the gate
    let r = support::check(&s.history(), &state);
    assert_flags(&r, AnomalyKind::GateDrift);
}

#[test]
fn gate_drift_a_loaded_gates_returned_set_missing_a_refund_and_not_an_unloaded_ones() {
    let mut s = Sale::new(3);
    s.join(1, 10);
    s.cancel(9, 10, Func::Refund);
    let mut state = s.final_state();
    state.gates.as_mut().unwrap()[0].returned = Some(vec![]);
    let r = support::check(&s.history(), &state);
    assert_flags(&r, AnomalyKind::GateDrift);
    // Keys lost in a flush and not loaded again: their next load reads MySQL.
    let gate = &mut state.gates.as_mut().unwrap()[0];
    (gate.stock, gate.users) = (None, Some(vec![]));
    let r = support::check(&s.history(), &state);
    assert_clean(&r);
}

#[test]
fn an_ok_confirm_after_the_win_was_cancelled() {
    let mut s = Sale::new(1).with_holds(60);
    s.join(1, 10);
    s.cancel(1, 10, Func::Cancel);
    s.invoke(2, Func::Confirm, user_op(10));
    s.ok(
        2,
        Func::Confirm,
        Value {
            status: Some("CONFIRMED".into()),
            ..Value::default()
        },
    );
    assert_flags(&s.check(), AnomalyKind::LostWin);
}
