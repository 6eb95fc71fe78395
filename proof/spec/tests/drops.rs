//! Groups and carts (design §22): a clean sale of a group passes, and each check has a flagged
//! twin — the same sale with one planted fault — that it catches.

mod support;

use firstcome_proof_spec::{
    check::SAME_USER_GROUP,
    final_state::Purchase,
    history::{EntryType, Func, Value},
    report::AnomalyKind,
};
use support::{
    assert_clean, assert_flags,
    drops::{check_with, Drop, GROUP},
};

/// Three campaigns of 3 units, a limit of 2: singles, carts in both item orders, a cart past
/// the limit, a replayed key, and sold-out items refused.
fn clean() -> Drop {
    let mut d = Drop::new(3, 3, 2);
    d.join(1, 1, 10, 1);
    d.cart(2, 11, &[(1, 1), (2, 1)], "k1");
    d.cart(3, 12, &[(2, 1), (1, 1)], "k2");
    // User 10 has 1 unit; a cart of 2 more passes the limit.
    d.cart_refused(
        4,
        (10, &[(2, 1), (3, 1)], "k3"),
        "GROUP_LIMIT_REACHED",
        None,
    );
    d.join_refused(5, 3, 11, 1, "GROUP_LIMIT_REACHED");
    // Campaign 1 is sold out (3 units: users 10, 11, 12).
    d.cart_refused(6, (13, &[(3, 1), (1, 1)], "k4"), "SOLD_OUT", Some(1));
    d
}

#[test]
fn a_clean_group_sale_with_carts_passes() {
    let d = clean();
    let r = d.check();
    assert_clean(&r);
    assert_eq!(r.operations["cart"]["ok"], 2);
    assert_eq!(r.operations["cart"]["fail"], 2);
}

#[test]
fn a_replayed_key_answering_its_purchase_again_passes() {
    let mut d = clean();
    let asked = Drop::cart_value(11, &[(1, 1), (2, 1)], "k1");
    d.entry(EntryType::Invoke, 7, Func::Cart, asked.clone());
    let pids: Vec<i64> = d
        .participations
        .iter()
        .filter(|p| p.1 == Some(500))
        .map(|p| p.0.id)
        .collect();
    d.answer_cart(7, asked, 500, &pids);
    assert_clean(&d.check());
}

#[test]
fn group_limit_a_user_past_it_at_the_end() {
    let mut d = clean();
    // The service let user 11 (2 units by a cart) win one more.
    d.join(7, 3, 11, 1);
    assert_flags(&d.check(), AnomalyKind::GroupLimit);
}

#[test]
fn group_limit_mysqls_holding_not_the_wins_sum() {
    let d = clean();
    let mut groups = d.group_state();
    if let Some(h) = groups.group_holdings.as_mut() {
        h[0].units += 1;
    }
    assert_flags(
        &check_with(&d.history(), &d.final_state(), &groups),
        AnomalyKind::GroupLimit,
    );
}

#[test]
fn group_limit_reached_with_room_left_is_unjustified() {
    let mut d = clean();
    // User 20 has nothing in the group.
    d.cart_refused(
        7,
        (20, &[(2, 1), (3, 1)], "k9"),
        "GROUP_LIMIT_REACHED",
        None,
    );
    assert_flags(&d.check(), AnomalyKind::GroupLimit);
}

/// The gate counts a reservation against the limit while its request runs: a refusal then is
/// excused (and counted), even when that request wins nothing in the end.
#[test]
fn group_limit_reached_while_the_users_other_cart_is_in_flight_is_excused() {
    let mut d = Drop::new(3, 1, 2);
    d.join(1, 3, 30, 1);
    let first = Drop::cart_value(20, &[(2, 1), (3, 1)], "k1");
    d.entry(EntryType::Invoke, 2, Func::Cart, first.clone());
    d.cart_refused(3, (20, &[(1, 1)], "k2"), "GROUP_LIMIT_REACHED", None);
    let refused = Value {
        code: Some("SOLD_OUT".to_owned()),
        campaign: Some(3),
        ..first
    };
    d.entry(EntryType::Fail, 2, Func::Cart, refused);
    let r = d.check();
    assert_clean(&r);
    assert_eq!(r.relaxations.get(SAME_USER_GROUP), Some(&1));
}

/// A cart in flight whose wins the refusal may have seen justifies it outright.
#[test]
fn group_limit_reached_after_the_users_cart_may_have_committed_is_justified() {
    let mut d = Drop::new(3, 3, 2);
    let first = Drop::cart_value(20, &[(2, 1), (3, 1)], "k1");
    d.entry(EntryType::Invoke, 1, Func::Cart, first.clone());
    d.cart_refused(2, (20, &[(1, 1)], "k2"), "GROUP_LIMIT_REACHED", None);
    let (purchase, pids) = d.commit_cart(20, &[(2, 1), (3, 1)], "k1");
    d.answer_cart(1, first, purchase, &pids);
    let r = d.check();
    assert_clean(&r);
    assert_eq!(r.relaxations.get(SAME_USER_GROUP), None);
}

#[test]
fn cart_breach_a_purchase_with_an_item_missing() {
    let mut d = Drop::new(3, 3, 2);
    let asked = Drop::cart_value(11, &[(1, 1), (2, 1)], "k1");
    d.entry(EntryType::Invoke, 1, Func::Cart, asked);
    // The service wrote one item of two and then the request timed out.
    d.commit_cart(11, &[(1, 1)], "k1");
    d.entry(EntryType::Info, 1, Func::Cart, Value::default());
    assert_flags(&d.check(), AnomalyKind::CartBreach);
}

#[test]
fn an_unknown_cart_absent_or_whole_passes() {
    let mut d = Drop::new(3, 3, 2);
    let asked = Drop::cart_value(11, &[(1, 1), (2, 1)], "k1");
    d.entry(EntryType::Invoke, 1, Func::Cart, asked.clone());
    d.entry(EntryType::Info, 1, Func::Cart, Value::default());
    d.entry(
        EntryType::Invoke,
        2,
        Func::Cart,
        Drop::cart_value(12, &[(2, 1), (3, 1)], "k2"),
    );
    d.commit_cart(12, &[(2, 1), (3, 1)], "k2");
    d.entry(EntryType::Info, 2, Func::Cart, Value::default());
    assert_clean(&d.check());
}

#[test]
fn cart_breach_a_refused_cart_that_wrote() {
    let mut d = clean();
    // The refused k3 was written after all (and past the limit).
    d.commit_cart(10, &[(2, 1), (3, 1)], "k3");
    assert_flags(&d.check(), AnomalyKind::CartBreach);
}

#[test]
fn lost_win_an_answered_cart_mysql_lacks() {
    let d = clean();
    let mut state = d.final_state();
    let mut groups = d.group_state();
    let gone: Vec<i64> = d
        .participations
        .iter()
        .filter(|p| p.1 == Some(501))
        .map(|p| p.0.id)
        .collect();
    state.participations.retain(|p| !gone.contains(&p.id));
    state
        .events
        .retain(|e| !gone.iter().any(|g| e.payload["participationId"] == *g));
    groups.participations.retain(|p| !gone.contains(&p.id));
    if let Some(p) = groups.purchases.as_mut() {
        p.retain(|p| p.id != 501);
    }
    if let Some(h) = groups.group_holdings.as_mut() {
        h.retain(|h| h.user != 12);
    }
    assert_flags(
        &check_with(&d.history(), &state, &groups),
        AnomalyKind::LostWin,
    );
}

#[test]
fn cart_breach_an_item_whose_purchase_row_is_missing() {
    let d = clean();
    let mut groups = d.group_state();
    if let Some(p) = groups.purchases.as_mut() {
        p.retain(|p| p.id != 500);
    }
    assert_flags(
        &check_with(&d.history(), &d.final_state(), &groups),
        AnomalyKind::CartBreach,
    );
}

#[test]
fn cart_breach_a_purchase_no_request_asked() {
    let d = clean();
    let mut groups = d.group_state();
    if let Some(p) = groups.purchases.as_mut() {
        p.push(Purchase {
            id: 777,
            group: GROUP,
            user: 50,
            idempotency_key: Some("nobody".to_owned()),
        });
    }
    assert_flags(
        &check_with(&d.history(), &d.final_state(), &groups),
        AnomalyKind::CartBreach,
    );
}

#[test]
fn cart_breach_items_of_one_purchase_in_different_states() {
    let d = clean();
    let mut state = d.final_state();
    let first = d.items_of(500).first().copied();
    for p in state
        .participations
        .iter_mut()
        .filter(|p| Some(p.id) == first)
    {
        p.status = "CANCELLED".to_owned();
        p.cancel_reason = Some("USER".to_owned());
    }
    assert_flags(
        &check_with(&d.history(), &state, &d.group_state()),
        AnomalyKind::CartBreach,
    );
}

#[test]
fn cart_breach_an_items_event_without_its_purchase() {
    let d = clean();
    let mut state = d.final_state();
    let first = d.items_of(500).first().copied();
    for r in state.events.iter_mut() {
        if r.payload["participationId"].as_i64() == first {
            if let Some(o) = r.payload.as_object_mut() {
                o.remove("purchaseId");
            }
        }
    }
    assert_flags(
        &check_with(&d.history(), &state, &d.group_state()),
        AnomalyKind::CartBreach,
    );
}

#[test]
fn cart_breach_a_carts_item_written_without_its_purchase() {
    let mut d = Drop::new(3, 3, 2);
    let asked = Drop::cart_value(11, &[(1, 1), (2, 1)], "k1");
    d.entry(EntryType::Invoke, 1, Func::Cart, asked);
    // One item written as if a single join: no purchase, no purchase row.
    d.commit(1, 11, 1, None);
    d.entry(EntryType::Info, 1, Func::Cart, Value::default());
    assert_flags(&d.check(), AnomalyKind::CartBreach);
}

#[test]
fn a_cart_refused_sold_out_with_the_named_item_free_is_unjustified() {
    let mut d = Drop::new(3, 3, 2);
    d.cart_refused(1, (13, &[(3, 1), (1, 1)], "k1"), "SOLD_OUT", Some(1));
    assert_flags(&d.check(), AnomalyKind::UnjustifiedRefusal);
}

#[test]
fn an_ok_cart_item_answered_otherwise_than_mysql_has_it() {
    let mut d = clean();
    let asked = Drop::cart_value(14, &[(3, 1), (2, 1)], "k5");
    d.entry(EntryType::Invoke, 8, Func::Cart, asked.clone());
    let (purchase, mut pids) = d.commit_cart(14, &[(3, 1), (2, 1)], "k5");
    pids[1] = 9_999;
    d.answer_cart(8, asked, purchase, &pids);
    assert_flags(&d.check(), AnomalyKind::CartBreach);
}

#[test]
fn a_purchase_refunded_whole_passes() {
    let mut d = clean();
    let items = d.items_of(500);
    d.refund_purchase(7, 500, &items);
    assert_clean(&d.check());
}

/// A refund's events may name the purchase (the service's do) or not (§22 asks it of the
/// accepted events); one that names another purchase is a cart breach.
#[test]
fn a_refunds_events_name_their_own_purchase_or_none() {
    let refunded = |named: Option<i64>| {
        let mut d = clean();
        let items = d.items_of(500);
        d.refund_purchase(7, 500, &items);
        let mut state = d.final_state();
        for r in state.events.iter_mut() {
            let cancelled = r.payload["eventType"] == "ParticipationCancelled";
            if let (true, Some(id), Some(o)) = (cancelled, named, r.payload.as_object_mut()) {
                o.insert("purchaseId".to_owned(), id.into());
            }
        }
        check_with(&d.history(), &state, &d.group_state())
    };
    assert_clean(&refunded(None));
    assert_clean(&refunded(Some(500)));
    assert_flags(&refunded(Some(501)), AnomalyKind::CartBreach);
}

/// The service answered the purchase's refund but cancelled one item only: the other item's
/// answered `CANCELLED` is not in the order, and the purchase's items part ways.
#[test]
fn a_purchase_refund_that_cancelled_one_item_is_caught() {
    let mut d = clean();
    let items = d.items_of(500);
    d.refund_purchase(7, 500, &items[..1]);
    let r = d.check();
    assert_flags(&r, AnomalyKind::CartBreach);
    assert_flags(&r, AnomalyKind::LostWin);
}

/// A cancel of one item (the per-campaign endpoint) closes its siblings too: their events are
/// caused by it, not phantoms.
#[test]
fn one_items_refund_closing_its_siblings_passes() {
    let mut d = clean();
    let items = d.items_of(500);
    let user = Some(11);
    let asked = Value {
        campaign: Some(1),
        user,
        ..Value::default()
    };
    d.entry(EntryType::Invoke, 7, Func::Refund, asked.clone());
    for &pid in &items {
        d.commit_refund(pid);
    }
    let answer = Value {
        status: Some("CANCELLED".to_owned()),
        participation_id: Some(items[0]),
        ..asked
    };
    d.entry(EntryType::Ok, 7, Func::Refund, answer);
    assert_clean(&d.check());
}

#[test]
fn cart_breach_a_replay_of_an_answered_key_refused() {
    let mut d = clean();
    d.cart_refused(
        7,
        (11, &[(1, 1), (2, 1)], "k1"),
        "ALREADY_PARTICIPATED",
        Some(1),
    );
    assert_flags(&d.check(), AnomalyKind::CartBreach);
}
