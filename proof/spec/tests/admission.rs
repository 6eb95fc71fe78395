//! The waiting room and the per-user limit (design §3, §16; `check::admission`): crafted
//! histories, each anomaly flagged and its clean twin passing.

mod support;

use firstcome_proof_spec::{
    final_state::FinalState,
    history::{Func, Value},
    report::{AnomalyKind, Report},
};
use support::{assert_clean, assert_flags, Sale, CAMPAIGN};

/// The sale's final state with the campaign's limit and admission mode.
fn state(s: &Sale, limit: i64, admission: &str) -> FinalState {
    let mut state = s.final_state();
    state.campaigns[0].per_user_limit = Some(limit);
    state.campaigns[0].admission = Some(admission.to_owned());
    state
}

fn check(s: &Sale, limit: i64, admission: &str) -> Report {
    support::check(&s.history(), &state(s, limit, admission))
}

fn user(user: i64) -> Value {
    Value {
        campaign: Some(CAMPAIGN),
        user: Some(user),
        ..Value::default()
    }
}

/// What the room answered: a ticket's state, its position while it waits, a token once
/// admitted.
fn ticket(t: &str, state: &str, position: Option<i64>, token: Option<&str>) -> Value {
    Value {
        ticket: Some(t.to_owned()),
        state: Some(state.to_owned()),
        position,
        admission_token: token.map(str::to_owned),
        ..Value::default()
    }
}

fn queue(s: &mut Sale, p: u64, u: i64, t: &str, position: i64) {
    s.invoke(p, Func::Queue, user(u));
    s.ok(p, Func::Queue, ticket(t, "WAITING", Some(position), None));
}

fn poll(s: &mut Sale, p: u64, u: i64, answer: Value) {
    let asked = Value {
        ticket: answer.ticket.clone(),
        ..user(u)
    };
    s.invoke(p, Func::Poll, asked);
    s.ok(p, Func::Poll, answer);
}

fn admit(s: &mut Sale, p: u64, u: i64, t: &str, token: &str) {
    poll(s, p, u, ticket(t, "ADMITTED", None, Some(token)));
}

fn join_with(s: &mut Sale, p: u64, u: i64, quantity: i64, token: Option<&str>) -> i64 {
    s.invoke(
        p,
        Func::Join,
        Value {
            quantity: Some(quantity),
            admission_token: token.map(str::to_owned),
            ..user(u)
        },
    );
    let pid = s.commit_win(u, quantity);
    s.ok(
        p,
        Func::Join,
        Value {
            participation_id: Some(pid),
            status: Some("CONFIRMED".into()),
            ..Value::default()
        },
    );
    pid
}

fn join_refused(s: &mut Sale, p: u64, u: i64, quantity: i64, code: &str) {
    s.invoke(
        p,
        Func::Join,
        Value {
            quantity: Some(quantity),
            ..user(u)
        },
    );
    s.fail(p, Func::Join, code);
}

// ---- the per-user limit ------------------------------------------------------------------

#[test]
fn joins_within_the_limit_win_and_one_past_it_is_refused_as_invalid() {
    let mut s = Sale::new(10);
    join_with(&mut s, 1, 10, 2, None);
    join_refused(&mut s, 2, 11, 3, "VALIDATION_FAILED");
    let r = check(&s, 2, "OPEN");
    assert_clean(&r);
}

#[test]
fn a_win_past_the_limit_is_flagged() {
    let mut s = Sale::new(10);
    join_with(&mut s, 1, 10, 3, None);
    assert_flags(&check(&s, 2, "OPEN"), AnomalyKind::PerUserLimit);
}

#[test]
fn a_join_past_the_limit_refused_as_sold_out_went_past_validation() {
    let mut s = Sale::new(10);
    join_refused(&mut s, 1, 10, 3, "SOLD_OUT");
    let r = check(&s, 2, "OPEN");
    assert_eq!(r.count(AnomalyKind::PerUserLimit), 1, "{}", r.render(10));
}

#[test]
fn a_join_within_the_limit_refused_as_invalid_is_flagged() {
    let mut s = Sale::new(10);
    join_refused(&mut s, 1, 10, 1, "VALIDATION_FAILED");
    assert_flags(&check(&s, 2, "OPEN"), AnomalyKind::PerUserLimit);
}

#[test]
fn mysql_holding_more_units_than_the_limit_is_flagged() {
    let mut s = Sale::new(10);
    join_with(&mut s, 1, 10, 2, None);
    let mut state = state(&s, 2, "OPEN");
    state.participations[0].quantity = 3;
    let r = support::check(&s.history(), &state);
    assert_flags(&r, AnomalyKind::PerUserLimit);
}

// ---- admission tokens --------------------------------------------------------------------

/// Users 10 and 11 queue, are admitted in turn, and join with their tokens.
fn honest_room(s: &mut Sale) {
    queue(s, 1, 10, "tA", 1);
    queue(s, 2, 11, "tB", 2);
    admit(s, 1, 10, "tA", "1.10.tA.9.sig");
    admit(s, 2, 11, "tB", "1.11.tB.9.sig");
    join_with(s, 1, 10, 1, Some("1.10.tA.9.sig"));
    join_with(s, 2, 11, 2, Some("1.11.tB.9.sig"));
}

#[test]
fn wins_with_the_tokens_the_room_issued_pass() {
    let mut s = Sale::new(10);
    honest_room(&mut s);
    // A dishonest join refused: nothing to judge beyond that it wrote nothing.
    join_refused(&mut s, 3, 12, 1, "ADMISSION_REQUIRED");
    assert_clean(&check(&s, 2, "QUEUE"));
}

#[test]
fn a_win_without_a_token_is_flagged() {
    let mut s = Sale::new(10);
    honest_room(&mut s);
    join_with(&mut s, 3, 12, 1, None);
    assert_flags(&check(&s, 2, "QUEUE"), AnomalyKind::AdmissionBreach);
}

#[test]
fn a_win_with_another_users_token_is_flagged() {
    let mut s = Sale::new(10);
    queue(&mut s, 1, 10, "tA", 1);
    admit(&mut s, 1, 10, "tA", "1.10.tA.9.sig");
    join_with(&mut s, 2, 12, 1, Some("1.10.tA.9.sig"));
    let r = check(&s, 2, "QUEUE");
    assert_flags(&r, AnomalyKind::AdmissionBreach);
}

#[test]
fn a_win_with_a_token_never_issued_is_flagged() {
    let mut s = Sale::new(10);
    join_with(&mut s, 1, 10, 1, Some("1.10.forged.9.sig"));
    assert_flags(&check(&s, 2, "QUEUE"), AnomalyKind::AdmissionBreach);
}

#[test]
fn a_token_that_wins_twice_is_flagged() {
    let mut s = Sale::new(10);
    queue(&mut s, 1, 10, "tA", 1);
    admit(&mut s, 1, 10, "tA", "1.10.tA.9.sig");
    join_with(&mut s, 1, 10, 1, Some("1.10.tA.9.sig"));
    join_with(&mut s, 1, 10, 1, Some("1.10.tA.9.sig"));
    let r = check(&s, 2, "QUEUE");
    assert!(
        r.anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::AdmissionBreach && a.detail.contains("won twice")),
        "{}",
        r.render(10)
    );
}

#[test]
fn a_win_mysql_holds_from_an_indeterminate_join_without_a_token_is_flagged() {
    let mut s = Sale::new(10);
    honest_room(&mut s);
    s.invoke(3, Func::Join, user(12));
    s.commit_win(12, 1);
    s.info(3, Func::Join);
    assert_flags(&check(&s, 2, "QUEUE"), AnomalyKind::AdmissionBreach);
}

#[test]
fn a_win_mysql_holds_from_an_indeterminate_join_with_its_token_passes() {
    let mut s = Sale::new(10);
    queue(&mut s, 3, 12, "tC", 1);
    admit(&mut s, 3, 12, "tC", "1.12.tC.9.sig");
    s.invoke(
        3,
        Func::Join,
        Value {
            admission_token: Some("1.12.tC.9.sig".into()),
            ..user(12)
        },
    );
    s.commit_win(12, 1);
    s.info(3, Func::Join);
    assert_clean(&check(&s, 2, "QUEUE"));
}

// ---- first come, first admitted ----------------------------------------------------------

#[test]
fn a_ticket_still_waiting_after_a_later_one_was_admitted_is_flagged() {
    let mut s = Sale::new(10);
    queue(&mut s, 1, 10, "tA", 1);
    queue(&mut s, 2, 11, "tB", 2);
    admit(&mut s, 2, 11, "tB", "1.11.tB.9.sig");
    poll(&mut s, 1, 10, ticket("tA", "WAITING", Some(1), None));
    assert_flags(&check(&s, 2, "QUEUE"), AnomalyKind::QueueOrder);
}

#[test]
fn tickets_admitted_in_arrival_order_pass() {
    let mut s = Sale::new(10);
    queue(&mut s, 1, 10, "tA", 1);
    queue(&mut s, 2, 11, "tB", 2);
    poll(&mut s, 2, 11, ticket("tB", "WAITING", Some(2), None));
    admit(&mut s, 1, 10, "tA", "1.10.tA.9.sig");
    poll(&mut s, 2, 11, ticket("tB", "WAITING", Some(1), None));
    admit(&mut s, 2, 11, "tB", "1.11.tB.9.sig");
    assert_clean(&check(&s, 2, "QUEUE"));
}

/// A waitlist (design §22): a unit that comes back is offered to the next waitlisted ticket in
/// order; an offer to a later ticket while an earlier one still waits on the list is out of order.
#[test]
fn an_offer_to_a_later_waitlisted_ticket_while_an_earlier_one_waits_is_flagged() {
    let mut s = Sale::new(10);
    queue(&mut s, 1, 10, "tA", 1);
    queue(&mut s, 2, 11, "tB", 2);
    poll(&mut s, 1, 10, ticket("tA", "WAITLISTED", Some(1), None));
    admit(&mut s, 2, 11, "tB", "1.11.tB.9.sig");
    poll(&mut s, 1, 10, ticket("tA", "WAITLISTED", Some(1), None));
    assert_flags(&check(&s, 2, "QUEUE"), AnomalyKind::QueueOrder);
}

#[test]
fn offers_to_waitlisted_tickets_in_order_pass() {
    let mut s = Sale::new(10);
    queue(&mut s, 1, 10, "tA", 1);
    queue(&mut s, 2, 11, "tB", 2);
    poll(&mut s, 2, 11, ticket("tB", "WAITLISTED", Some(2), None));
    admit(&mut s, 1, 10, "tA", "1.10.tA.9.sig");
    poll(&mut s, 2, 11, ticket("tB", "WAITLISTED", Some(1), None));
    admit(&mut s, 2, 11, "tB", "1.11.tB.9.sig");
    assert_clean(&check(&s, 2, "QUEUE"));
}

#[test]
fn a_ticket_that_expired_may_be_passed_by_a_later_one() {
    let mut s = Sale::new(10);
    queue(&mut s, 1, 10, "tA", 1);
    queue(&mut s, 2, 11, "tB", 2);
    admit(&mut s, 2, 11, "tB", "1.11.tB.9.sig");
    poll(&mut s, 1, 10, ticket("tA", "EXPIRED", None, None));
    assert_clean(&check(&s, 2, "QUEUE"));
}

#[test]
fn tickets_queued_concurrently_have_no_order_to_keep() {
    let mut s = Sale::new(10);
    // Both queue calls overlap: either may have arrived first.
    s.invoke(1, Func::Queue, user(10));
    s.invoke(2, Func::Queue, user(11));
    s.ok(1, Func::Queue, ticket("tA", "WAITING", Some(2), None));
    s.ok(2, Func::Queue, ticket("tB", "WAITING", Some(1), None));
    admit(&mut s, 2, 11, "tB", "1.11.tB.9.sig");
    poll(&mut s, 1, 10, ticket("tA", "WAITING", Some(1), None));
    assert_clean(&check(&s, 2, "QUEUE"));
}

#[test]
fn the_order_is_judged_on_queue_campaigns_only() {
    let mut s = Sale::new(10);
    queue(&mut s, 1, 10, "tA", 1);
    queue(&mut s, 2, 11, "tB", 2);
    admit(&mut s, 2, 11, "tB", "1.11.tB.9.sig");
    poll(&mut s, 1, 10, ticket("tA", "WAITING", Some(1), None));
    // A raffle places its early arrivals by lot: no arrival order to keep.
    assert_eq!(check(&s, 2, "RAFFLE").count(AnomalyKind::QueueOrder), 0);
}

#[test]
fn a_ticket_moved_back_in_the_queue_is_flagged() {
    let mut s = Sale::new(10);
    queue(&mut s, 1, 10, "tA", 3);
    poll(&mut s, 1, 10, ticket("tA", "WAITING", Some(4), None));
    assert_flags(&check(&s, 2, "QUEUE"), AnomalyKind::QueueOrder);
}

#[test]
fn a_ticket_moving_up_passes() {
    let mut s = Sale::new(10);
    queue(&mut s, 1, 10, "tA", 3);
    poll(&mut s, 1, 10, ticket("tA", "SOLD_OUT", Some(3), None));
    poll(&mut s, 1, 10, ticket("tA", "WAITING", Some(1), None));
    assert_clean(&check(&s, 2, "QUEUE"));
}
