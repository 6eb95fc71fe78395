//! The checker's holes of issue 56, each a crafted history written from the contract (design
//! §18.1) that the checker used to pass: every one must now be flagged, and its clean twin, the
//! same sale as a correct service runs it, must still pass.

mod support;

use chrono::Duration;
use firstcome_proof_spec::{
    check::{Options, ARRIVING, CLIENT_TIMEOUT, RESUMING},
    history::{Func, Value},
    report::AnomalyKind,
};
use support::{assert_clean, assert_flags, Sale, CAMPAIGN};

fn of_user(user: i64) -> Value {
    Value {
        campaign: Some(CAMPAIGN),
        user: Some(user),
        ..Value::default()
    }
}

fn of_campaign() -> Value {
    Value {
        campaign: Some(CAMPAIGN),
        ..Value::default()
    }
}

/// The last entry (an `ok` control) restated with other figures.
fn restate(s: &mut Sale, total: i64, remaining: i64) {
    let (_, last) = s.entries.last_mut().expect("an entry");
    last.value.total_stock = Some(total);
    last.value.remaining_stock = Some(remaining);
}

/// The harness's deadlines (its instances answer within 2 s).
fn harness() -> Options {
    Options {
        request_timeout: 2_000_000_000,
        reservation_timeout: 3_000_000_000,
        ..Options::default()
    }
}

// ---- a control's answered figures -------------------------------------------------------

/// Five units, one sold, then a stock change of `delta`, answered as `restated` (or as the
/// event says).
fn stock_change(delta: i64, restated: Option<(i64, i64)>) -> Sale {
    let mut s = Sale::new(5);
    s.join(1, 10);
    s.control(9, Func::Stock, delta);
    if let Some((total, remaining)) = restated {
        restate(&mut s, total, remaining);
    }
    s
}

#[test]
fn a_stock_addition_answered_with_figures_its_event_lacks() {
    assert_clean(&stock_change(3, None).check());
    // The event and the replay say 8 / 7.
    assert_flags(&stock_change(3, Some((9, 9))).check(), AnomalyKind::LostWin);
}

#[test]
fn a_withdrawal_answered_with_figures_its_event_lacks() {
    assert_clean(&stock_change(-4, None).check());
    // The event and the replay say 1 / 0.
    assert_flags(
        &stock_change(-4, Some((5, 4))).check(),
        AnomalyKind::LostWin,
    );
}

#[test]
fn a_pause_answered_with_no_unit_free_while_four_were() {
    let sale = |remaining: Option<i64>| {
        let mut s = Sale::new(5);
        s.join(1, 10);
        s.control(9, Func::Pause, 0);
        if let Some(r) = remaining {
            restate(&mut s, 5, r);
        }
        s
    };
    assert_clean(&sale(None).check());
    assert_flags(&sale(Some(0)).check(), AnomalyKind::LostWin);
}

/// A pause of a paused campaign writes nothing and answers the campaign as it read it: the
/// figures of some prefix while its control was the last one.
#[test]
fn a_pause_that_changed_nothing_answered_with_other_figures() {
    let sale = |remaining: i64| {
        let mut s = Sale::new(5);
        s.join(1, 10);
        s.control(9, Func::Pause, 0);
        s.invoke(8, Func::Pause, of_campaign());
        s.ok(
            8,
            Func::Pause,
            Value {
                control_seq: Some(1),
                total_stock: Some(5),
                remaining_stock: Some(remaining),
                ..Value::default()
            },
        );
        s
    };
    assert_clean(&sale(4).check());
    assert_flags(&sale(0).check(), AnomalyKind::LostWin);
}

// ---- a join in doubt that committed is a win, not held units ---------------------------

/// Two units. Join 10 ends indeterminate but commits; join 11, overlapping it, is refused
/// SOLD_OUT: before the commit one unit was free besides the reservation, after it one was
/// free in the order. Counting the in-doubt join as held units on top of its win excused it.
#[test]
fn a_join_in_doubt_that_committed_does_not_excuse_a_sold_out_twice() {
    let sale = |another_in_doubt: bool| {
        let mut s = Sale::new(2);
        s.invoke_join(1, 10);
        if another_in_doubt {
            s.invoke_join(3, 12);
        }
        s.invoke_join(2, 11);
        s.commit_win(10, 1);
        s.fail(2, Func::Join, "SOLD_OUT");
        s.info(1, Func::Join);
        if another_in_doubt {
            s.info(3, Func::Join);
        }
        s.check_with(&harness())
    };
    assert_flags(&sale(false), AnomalyKind::UnjustifiedRefusal);
    // The twin: a second join in doubt, never committed, held the other unit.
    let r = sale(true);
    assert_clean(&r);
    assert_eq!(r.relaxations[CLIENT_TIMEOUT], 1);
}

// ---- a returned unit is counted once ----------------------------------------------------

/// Two units, one sold; a cancel of it commits while join 11 runs, and join 11 is refused:
/// before the cancel's commit one unit was free anyway, after it two were with one on its way
/// to the gate. Neither prefix justifies the refusal.
#[test]
fn a_sold_out_straddling_a_return_is_not_excused_by_it() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    s.invoke(9, Func::Refund, of_user(10));
    s.invoke_join(2, 11);
    s.commit_cancel(10, "ADMIN");
    s.fail(2, Func::Join, "SOLD_OUT");
    let cancelled = Value {
        status: Some("CANCELLED".into()),
        ..Value::default()
    };
    s.ok(9, Func::Refund, cancelled);
    assert_flags(&s.check(), AnomalyKind::UnjustifiedRefusal);
}

/// Three units; `refunds` refunds of user 10's win (the second answers the cancelled win
/// again), committed once, unanswered while join 11 is refused after another win took a unit:
/// with `sold` units sold besides, the returned unit on its way to the gate excuses the refusal
/// only if it was the last one free.
fn refunds_of_one_win(refunds: u64, sold: &[i64]) -> Sale {
    let mut s = Sale::new(3);
    s.join(1, 10);
    for &user in sold {
        s.join(4, user);
    }
    for p in 0..refunds {
        s.invoke(8 + p, Func::Refund, of_user(10));
    }
    s.commit_cancel(10, "ADMIN");
    s.join(3, 12);
    s.join_refused(2, 11, "SOLD_OUT");
    for p in 0..refunds {
        let cancelled = Value {
            status: Some("CANCELLED".into()),
            ..Value::default()
        };
        s.ok(8 + p, Func::Refund, cancelled);
    }
    s
}

#[test]
fn a_unit_returned_once_is_counted_once_however_many_answered() {
    // One unit free in the order, one on its way: counted twice, it excused the refusal.
    assert_flags(
        &refunds_of_one_win(2, &[]).check(),
        AnomalyKind::UnjustifiedRefusal,
    );
    // The twin: the returned unit was the only one free.
    let r = refunds_of_one_win(2, &[13]).check();
    assert_clean(&r);
    assert_eq!(r.relaxations[ARRIVING], 1);
}

/// A refund commits; a win after it is answered, which bounds the refund's commit; the refund
/// is answered only much later. Its unit is at the gate ≤ 1 s after its commit: a refusal
/// `wait_ms` after that win is excused within the second, an anomaly past it.
#[test]
fn a_return_on_its_way_to_the_gate_excuses_for_a_second_at_most() {
    let sale = |wait_ms: u64| {
        let mut s = Sale::new(2);
        s.join(1, 10);
        s.invoke(9, Func::Refund, of_user(10));
        s.commit_cancel(10, "ADMIN");
        s.join(3, 12);
        s.sleep_ms(wait_ms);
        s.join_refused(2, 11, "SOLD_OUT");
        let cancelled = Value {
            status: Some("CANCELLED".into()),
            ..Value::default()
        };
        s.ok(9, Func::Refund, cancelled);
        s.check()
    };
    let r = sale(500);
    assert_clean(&r);
    assert_eq!(r.relaxations[ARRIVING], 1);
    assert_flags(&sale(1_500), AnomalyKind::UnjustifiedRefusal);
}

// ---- a control that changed nothing excuses nothing -------------------------------------

/// A paused campaign is resumed (process 5) while a second resume (process 6), which finds it
/// running, changes nothing and answers the same control; a join refused CAMPAIGN_PAUSED after
/// the real resume answered is an anomaly, however long the no-op runs. The twin: refused
/// before any answer observed the resume, it is excused.
#[test]
fn a_resume_that_changed_nothing_does_not_excuse_a_paused_refusal() {
    let sale = |real_answered_first: bool| {
        let mut s = Sale::new(5);
        s.join(1, 10);
        s.control(9, Func::Pause, 0);
        s.invoke(5, Func::Resume, of_campaign());
        let seq = s.commit_control("RESUME", 0);
        s.invoke(6, Func::Resume, of_campaign());
        let answer = Value {
            control_seq: Some(seq),
            ..Value::default()
        };
        if real_answered_first {
            s.ok(5, Func::Resume, answer.clone());
        }
        s.join(4, 13);
        s.join_refused(3, 12, "CAMPAIGN_PAUSED");
        if !real_answered_first {
            s.ok(5, Func::Resume, answer.clone());
        }
        s.ok(6, Func::Resume, answer);
        s.check()
    };
    assert_flags(&sale(true), AnomalyKind::UnjustifiedRefusal);
    let r = sale(false);
    assert_clean(&r);
    assert_eq!(r.relaxations[RESUMING], 1);
}

// ---- never judged before ----------------------------------------------------------------

#[test]
fn a_join_answered_with_a_sequence_its_event_does_not_carry() {
    let sale = |off_by: i64| {
        let mut s = Sale::new(2);
        s.invoke_join(1, 10);
        let pid = s.commit_win(10, 1);
        // The support's events carry the participation id as the sequence.
        s.ok(
            1,
            Func::Join,
            Value {
                participation_id: Some(pid),
                status: Some("CONFIRMED".into()),
                sequence: Some(pid + off_by),
                ..Value::default()
            },
        );
        s.check()
    };
    assert_clean(&sale(0));
    assert_flags(&sale(1), AnomalyKind::LostWin);
}

/// Two wins 5 s apart, the campaign's `endsAt` between them (or after both: the twin).
#[test]
fn a_win_committed_after_ends_at() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    let between = s.wall() + Duration::seconds(2);
    s.sleep_ms(5_000);
    s.join(2, 11);
    let after = s.wall() + Duration::seconds(1);
    let mut state = s.final_state();
    state.campaigns[0].ends_at = Some(after);
    assert_clean(&support::check(&s.history(), &state));
    state.campaigns[0].ends_at = Some(between);
    assert_flags(
        &support::check(&s.history(), &state),
        AnomalyKind::IllegalTransition,
    );
    // Real time places the commit after endsAt whatever its occurredAt says.
    let early = state.events[0].payload["occurredAt"].clone();
    state.events[1].payload["occurredAt"] = early;
    let r = support::check(&s.history(), &state);
    assert!(
        r.anomalies
            .iter()
            .any(|a| a.detail.contains("after endsAt")),
        "{}",
        r.render(10)
    );
}

/// A one-second hold still HELD in MySQL once the run settled three seconds later: the
/// sweeper's expiry never came. The twin: it expired.
#[test]
fn a_hold_left_held_past_its_deadline_once_settled() {
    let sale = |expired: bool| {
        let mut s = Sale::new(1).with_holds(1);
        s.join(1, 10);
        s.sleep_ms(3_000);
        if expired {
            s.commit_cancel(10, "EXPIRED");
            s.join(2, 11);
        } else {
            s.join_refused(2, 11, "SOLD_OUT");
        }
        s.check()
    };
    assert_flags(&sale(false), AnomalyKind::IllegalTransition);
    // The twin ends with a hold too, within its deadline.
    assert_clean(&sale(true));
}

/// CAMPAIGN_ENDED while the campaign still ran (before its `endsAt`, never closed); the twin
/// is refused past `endsAt`.
#[test]
fn campaign_ended_answered_inside_the_window() {
    let mut s = Sale::new(5);
    s.join(1, 10);
    let ends = s.wall() + Duration::milliseconds(500);
    s.sleep_ms(2_000);
    s.join_refused(2, 11, "CAMPAIGN_ENDED");
    let mut state = s.final_state();
    state.campaigns[0].ends_at = Some(ends);
    assert_clean(&support::check(&s.history(), &state));
    state.campaigns[0].ends_at = Some(s.wall() + Duration::hours(1));
    assert_flags(
        &support::check(&s.history(), &state),
        AnomalyKind::UnjustifiedRefusal,
    );
}
