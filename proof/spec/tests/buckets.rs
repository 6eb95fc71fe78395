//! Bucketed campaigns (design §21): clean sales over many buckets, whose topic interleaves the
//! buckets' keys otherwise than they committed, and one planted fault per new check.

mod support;

use firstcome_proof_spec::{
    final_state::{self, FinalState},
    history::{Func, Value},
    report::{AnomalyKind, Report},
};
use support::{assert_clean, assert_flags, bucketed::home, Sale, CAMPAIGN};

fn user_op(user: i64) -> Value {
    Value {
        campaign: Some(CAMPAIGN),
        user: Some(user),
        ..Value::default()
    }
}

/// Answers a join whose win is committed: its participation and status.
fn answer_join(s: &mut Sale, process: u64, user: i64) {
    let w = s.wins[&user].clone();
    s.ok(
        process,
        Func::Join,
        Value {
            participation_id: Some(w.pid),
            status: Some(w.status.to_owned()),
            ..Value::default()
        },
    );
}

fn answer(s: &mut Sale, process: u64, f: Func, status: &str) {
    s.ok(
        process,
        f,
        Value {
            status: Some(status.to_owned()),
            ..Value::default()
        },
    );
}

/// The event ids of the topic as read (partition by partition) and by outbox id.
fn topic_and_commit_order(state: &FinalState) -> (Vec<String>, Vec<String>) {
    let mut records = state.events.clone();
    records.sort_by_key(|r| (r.partition, r.offset));
    let topic = records
        .iter()
        .map(|r| r.payload["eventId"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut outbox = state.outbox.clone().unwrap_or_default();
    outbox.sort_by_key(|r| r.id);
    (topic, outbox.into_iter().map(|r| r.event_id).collect())
}

fn check(s: &Sale, state: &FinalState) -> Report {
    support::check_buckets(&s.history(), state, &s.bucket_state())
}

/// The record of the event `ty` of `user`.
fn record_of<'a>(
    state: &'a mut FinalState,
    ty: &str,
    user: i64,
) -> &'a mut final_state::TopicRecord {
    state
        .events
        .iter_mut()
        .find(|r| r.payload["eventType"] == ty && r.payload["userId"] == user)
        .expect("the record")
}

#[test]
fn the_test_users_homes_are_spread_over_the_buckets() {
    // Users 10–21 over four buckets, as the tests below rely on.
    let homes: Vec<i64> = (10..=21).map(|u| home(u, 4)).collect();
    assert_eq!(homes, [0, 3, 2, 1, 0, 3, 2, 1, 0, 3, 3, 0]);
}

#[test]
fn a_clean_sale_over_four_buckets_with_returns_controls_and_refusals() {
    let mut s = Sale::new(6).with_holds(60).with_buckets(4);
    s.join(1, 10);
    s.join(2, 11);
    // Two joins of different buckets in flight: the later one commits first.
    s.invoke_join(3, 12);
    s.invoke_join(4, 13);
    s.commit_win(13, 1);
    s.commit_win(12, 1);
    answer_join(&mut s, 4, 13);
    answer_join(&mut s, 3, 12);
    s.confirm(1, 10);
    s.cancel(2, 11, Func::Cancel);
    s.join(5, 15); // bucket 3 again: the unit user 11 gave back
    s.control(9, Func::Stock, 2); // to the pool
    s.join(6, 16);
    s.join(7, 17);
    s.control(9, Func::Pause, 0);
    s.join_refused(8, 18, "CAMPAIGN_PAUSED");
    s.control(9, Func::Resume, 0);
    s.join(8, 18);
    s.join(1, 19);
    assert_eq!(s.free(), 0);
    s.join_refused(2, 20, "SOLD_OUT");
    s.join_refused(1, 10, "ALREADY_PARTICIPATED");
    s.cancel(9, 10, Func::Refund);
    s.join(2, 21);
    let state = s.final_state();
    let (topic, committed) = topic_and_commit_order(&state);
    assert_ne!(
        topic, committed,
        "the topic must interleave the keys otherwise"
    );
    let r = check(&s, &state);
    assert_clean(&r);
    assert!(r.relaxations.is_empty(), "{}", r.render(5));
    assert_eq!(r.operations["join"]["ok"], 10);
}

#[test]
fn a_clean_sale_over_sixteen_buckets_with_holds_that_expire() {
    let mut s = Sale::new(5).with_holds(1).with_buckets(16);
    for (p, user) in (10..15).enumerate() {
        s.join(p as u64, user);
    }
    s.join_refused(6, 15, "SOLD_OUT");
    s.confirm(1, 11);
    s.sleep_ms(1_500);
    s.commit_cancel(10, "EXPIRED");
    s.commit_cancel(12, "EXPIRED");
    s.invoke(0, Func::Confirm, user_op(10));
    s.fail(0, Func::Confirm, "HOLD_EXPIRED");
    s.join(6, 15);
    s.join(7, 16);
    s.join_refused(8, 17, "SOLD_OUT");
    let r = s.check();
    assert_clean(&r);
    assert!(r.relaxations.is_empty(), "{}", r.render(5));
}

/// Without the outbox the keys are merged by occurredAt, and the report says so.
#[test]
fn without_the_outbox_the_keys_merge_by_occurred_at() {
    let mut s = Sale::new(3).with_buckets(4);
    s.join(1, 10);
    s.join(2, 11);
    s.control(9, Func::Stock, 1);
    s.join(3, 12);
    let mut state = s.final_state();
    state.outbox = None;
    let r = check(&s, &state);
    assert_clean(&r);
    assert!(
        r.skipped.iter().any(|n| n.contains("occurredAt")),
        "{:?}",
        r.skipped
    );
}

/// A SOLD_OUT read while a return of another bucket had its outbox id but not its commit: the
/// merged order has the unit back, the read did not. Justified, no relaxation needed.
#[test]
fn a_sold_out_read_before_a_return_of_another_bucket_committed_is_justified() {
    let mut s = Sale::new(2).with_holds(60).with_buckets(4);
    s.join(1, 10); // bucket 0
    s.join(2, 13); // bucket 1
    s.invoke(1, Func::Cancel, user_op(10));
    s.commit_cancel(10, "USER"); // its id is taken: its commit is not yet known
    s.confirm(2, 13); // bucket 1, a later id, committed and answered
    s.join_refused(3, 12, "SOLD_OUT");
    answer(&mut s, 1, Func::Cancel, "CANCELLED");
    let r = s.check();
    assert_clean(&r);
    assert!(r.relaxations.is_empty(), "{}", r.render(5));
}

/// A confirm refused PARTICIPATION_NOT_FOUND while the user's own win was still committing:
/// another bucket's later id was answered before it, which says nothing of bucket 0's commits.
#[test]
fn a_refusal_about_one_win_is_judged_on_its_own_key() {
    let mut s = Sale::new(3).with_holds(60).with_buckets(4);
    s.invoke_join(1, 10); // bucket 0
    s.commit_win(10, 1);
    s.join(2, 11); // bucket 3, answered
    s.invoke(3, Func::Confirm, user_op(10));
    s.fail(3, Func::Confirm, "PARTICIPATION_NOT_FOUND");
    answer_join(&mut s, 1, 10);
    assert_clean(&s.check());
}

/// A join refused CAMPAIGN_PAUSED while a resume was committing: a bucket's confirm with a
/// later id was answered before, which says nothing of the campaign key's commits.
#[test]
fn a_pause_is_judged_on_the_campaigns_own_key() {
    let mut s = Sale::new(4).with_holds(60).with_buckets(4);
    s.join(1, 13);
    s.control(9, Func::Pause, 0);
    let campaign = Value {
        campaign: Some(CAMPAIGN),
        ..Value::default()
    };
    s.invoke(9, Func::Resume, campaign);
    let seq = s.commit_control("RESUME", 0);
    s.confirm(1, 13);
    s.join_refused(2, 11, "CAMPAIGN_PAUSED");
    s.ok(
        9,
        Func::Resume,
        Value {
            control_seq: Some(seq),
            total_stock: Some(4),
            remaining_stock: Some(3),
            ..Value::default()
        },
    );
    let r = s.check();
    assert_clean(&r);
    assert!(r.relaxations.is_empty(), "{}", r.render(5));
}

#[test]
fn a_campaign_of_one_bucket_is_judged_as_before() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    s.join(2, 11);
    s.join_refused(3, 12, "SOLD_OUT");
    let mut buckets = s.bucket_state();
    buckets.campaigns.push(final_state::CampaignBuckets {
        id: CAMPAIGN,
        buckets: Some(1),
        pool: None,
    });
    assert_clean(&support::check_buckets(
        &s.history(),
        &s.final_state(),
        &buckets,
    ));
}

#[test]
fn final_states_with_and_without_bucket_fields_read() {
    let doc = r#"{"campaigns": [{"id": 1, "totalStock": 4, "remainingStock": 3, "buckets": 4,
        "pool": 1}], "participations": [{"id": 7, "campaign": 1, "user": 42, "quantity": 1,
        "status": "HELD", "bucket": 3}], "events": [],
        "gates": [{"campaign": 1, "bucket": 3, "stock": 1, "users": [42]}],
        "bucketRows": [{"campaign": 1, "bucket": 3, "remainingStock": 1, "acceptedCount": 1}]}"#;
    let (state, buckets) = final_state::read_with_buckets(doc.as_bytes()).expect("reads");
    assert_eq!(state.campaigns[0].remaining_stock, 3);
    assert_eq!(buckets.buckets(1), 4);
    assert_eq!(buckets.campaign(1).and_then(|c| c.pool), Some(1));
    assert_eq!(buckets.participations[0].bucket, 3);
    let gates = buckets.gates.expect("gates");
    assert_eq!((gates[0].bucket, gates[0].gate.stock), (3, Some(1)));
    assert_eq!(
        buckets.bucket_rows.expect("rows")[0].accepted_count,
        Some(1)
    );
    let old = r#"{"campaigns": [{"id": 1, "totalStock": 4, "remainingStock": 3}],
        "participations": [], "events": []}"#;
    let (_, buckets) = final_state::read_with_buckets(old.as_bytes()).expect("reads");
    assert_eq!(buckets.buckets(1), 1);
    assert!(buckets.gates.is_none() && buckets.bucket_rows.is_none());
}

// ---- planted faults ----------------------------------------------------------------------

#[test]
fn wrong_key_a_win_under_another_bucket() {
    let mut s = Sale::new(4).with_buckets(4);
    s.join(1, 10);
    s.join(2, 11); // home bucket 3
    let mut state = s.final_state();
    record_of(&mut state, "ParticipationAccepted", 11).key = Some("1:2".into());
    let r = check(&s, &state);
    assert_flags(&r, AnomalyKind::WrongKey);
    assert_eq!(r.count(AnomalyKind::WrongKey), 1, "{}", r.render(5));
}

#[test]
fn wrong_key_a_control_under_a_buckets_key() {
    let mut s = Sale::new(4).with_buckets(4);
    s.join(1, 10);
    s.control(9, Func::Pause, 0);
    let mut state = s.final_state();
    let control = state
        .events
        .iter_mut()
        .find(|r| r.payload["eventType"] == "CampaignPaused")
        .expect("the pause");
    (control.key, control.partition) = (Some("1:0".into()), 1);
    assert_flags(&check(&s, &state), AnomalyKind::WrongKey);
}

#[test]
fn split_win_a_confirmation_under_another_key_than_its_win() {
    let mut s = Sale::new(4).with_holds(60).with_buckets(4);
    s.join(1, 10);
    s.confirm(1, 10);
    let mut state = s.final_state();
    record_of(&mut state, "ParticipationConfirmed", 10).key = Some("1:1".into());
    let r = check(&s, &state);
    assert_flags(&r, AnomalyKind::SplitWin);
    assert_eq!(r.count(AnomalyKind::WrongKey), 0, "{}", r.render(5));
}

/// Unbucketed keys stay `<campaign>`: a bucket's key on an unbucketed campaign is malformed.
#[test]
fn an_unbucketed_campaign_keyed_with_a_bucket_is_malformed() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    let mut state = s.final_state();
    state.events[0].key = Some("1:0".into());
    let r = support::check_buckets(&s.history(), &state, &s.bucket_state());
    assert_flags(&r, AnomalyKind::MalformedInput);
}

/// The sale is clean as run; with user 11's win given user 10's sequence, exactly one repeated
/// sequence is found.
fn user_11_takes_user_10s_sequence(s: &Sale) {
    let mut state = s.final_state();
    assert_clean(&check(s, &state));
    let first = record_of(&mut state, "ParticipationAccepted", 10).payload["sequence"].clone();
    record_of(&mut state, "ParticipationAccepted", 11).payload["sequence"] = first;
    let r = check(s, &state);
    assert_flags(&r, AnomalyKind::BucketSequence);
    assert_eq!(r.count(AnomalyKind::BucketSequence), 1, "{}", r.render(5));
}

#[test]
fn bucket_sequence_repeated_within_a_bucket() {
    let mut s = Sale::new(4).with_buckets(4);
    s.join(1, 10);
    s.join(2, 14); // bucket 0 too: its second sequence
    s.join(3, 11); // bucket 3: its first, distinct from bucket 0's
    user_11_takes_user_10s_sequence(&s);
}

/// An unbucketed campaign's sequences are judged too (the gate's generation, design §2.1).
#[test]
fn a_sequence_repeated_in_an_unbucketed_campaign() {
    let mut s = Sale::new(4);
    s.join(1, 10);
    s.join(2, 11);
    user_11_takes_user_10s_sequence(&s);
}

#[test]
fn wrong_bucket_a_participation_outside_its_home_bucket() {
    let mut s = Sale::new(4).with_buckets(4);
    s.join(1, 10);
    let mut buckets = s.bucket_state();
    buckets.participations[0].bucket = 2;
    let r = support::check_buckets(&s.history(), &s.final_state(), &buckets);
    assert_flags(&r, AnomalyKind::WrongBucket);
}

#[test]
fn wrong_bucket_a_gate_holding_a_user_homed_elsewhere() {
    let mut s = Sale::new(4).with_buckets(4);
    s.join(1, 10); // home 0
    let mut buckets = s.bucket_state();
    let gates = buckets.gates.as_mut().expect("gates");
    gates[0].gate.users = Some(Vec::new());
    gates[1].gate.users = Some(vec![10]);
    let r = support::check_buckets(&s.history(), &s.final_state(), &buckets);
    assert_flags(&r, AnomalyKind::WrongBucket);
    assert_flags(&r, AnomalyKind::GateDrift); // and missing from its own bucket's gate
}

#[test]
fn bucket_stock_a_bucket_row_below_zero() {
    let mut s = Sale::new(8).with_buckets(4);
    s.join(1, 10);
    let mut buckets = s.bucket_state();
    // The sum kept: one unit too few in bucket 2, one too many in the pool.
    let rows = buckets.bucket_rows.as_mut().expect("rows");
    let below = rows[2].remaining_stock + 1;
    rows[2].remaining_stock -= below;
    buckets.campaigns[0].pool = buckets.campaigns[0].pool.map(|p| p + below);
    buckets.gates.as_mut().expect("gates")[2].gate.stock = Some(-1);
    let r = support::check_buckets(&s.history(), &s.final_state(), &buckets);
    assert_flags(&r, AnomalyKind::BucketStock);
    assert_eq!(r.count(AnomalyKind::BucketStock), 1, "{}", r.render(5));
}

#[test]
fn bucket_stock_the_pool_and_the_rows_must_make_the_remaining_stock() {
    let mut s = Sale::new(4).with_buckets(4);
    s.join(1, 10);
    let mut buckets = s.bucket_state();
    assert_clean(&support::check_buckets(
        &s.history(),
        &s.final_state(),
        &buckets,
    ));
    buckets.campaigns[0].pool = buckets.campaigns[0].pool.map(|p| p + 1);
    let r = support::check_buckets(&s.history(), &s.final_state(), &buckets);
    assert_flags(&r, AnomalyKind::BucketStock);
}

#[test]
fn a_bucket_rows_accepted_count_must_be_its_wins() {
    let mut s = Sale::new(4).with_buckets(4);
    s.join(1, 10);
    s.join(2, 14);
    let mut buckets = s.bucket_state();
    buckets.bucket_rows.as_mut().expect("rows")[0].accepted_count = Some(1);
    let r = support::check_buckets(&s.history(), &s.final_state(), &buckets);
    assert_flags(&r, AnomalyKind::DatabaseMismatch);
}

#[test]
fn gate_drift_a_buckets_gate_off_its_row() {
    let mut s = Sale::new(8).with_buckets(4);
    s.join(1, 10);
    let mut buckets = s.bucket_state();
    let gate = &mut buckets.gates.as_mut().expect("gates")[3].gate;
    gate.stock = gate.stock.map(|n| n + 1);
    let r = support::check_buckets(&s.history(), &s.final_state(), &buckets);
    assert_flags(&r, AnomalyKind::GateDrift);
}

/// The campaign's last unit won in two buckets: an oversell of the campaign, whatever each
/// bucket's row says.
#[test]
fn oversell_across_two_buckets() {
    let mut s = Sale::new(1).with_buckets(4);
    s.join(1, 10);
    s.join(2, 11);
    assert_flags(&s.check(), AnomalyKind::Oversell);
}

/// A SOLD_OUT from an empty home bucket while the campaign had units elsewhere (§21: only when
/// the whole campaign had none).
#[test]
fn unjustified_sold_out_while_other_buckets_had_units() {
    let mut s = Sale::new(8).with_buckets(4);
    s.join(1, 10);
    s.join(2, 14);
    s.join_refused(3, 18, "SOLD_OUT"); // bucket 0 again; 6 units free elsewhere
    assert_flags(&s.check(), AnomalyKind::UnjustifiedRefusal);
}

#[test]
fn order_breach_within_one_bucket() {
    let mut s = Sale::new(4).with_buckets(4);
    s.join(1, 10);
    s.join(2, 14); // both bucket 0
    let mut state = s.final_state();
    let outbox = state.outbox.as_mut().expect("outbox");
    (outbox[0].id, outbox[1].id) = (outbox[1].id, outbox[0].id);
    assert_flags(&check(&s, &state), AnomalyKind::OrderBreach);
}

#[test]
fn one_buckets_events_in_two_partitions() {
    let mut s = Sale::new(4).with_buckets(4);
    s.join(1, 10);
    s.join(2, 14);
    let mut state = s.final_state();
    let record = record_of(&mut state, "ParticipationAccepted", 14);
    (record.partition, record.offset) = (2, 99);
    assert_flags(&check(&s, &state), AnomalyKind::MalformedInput);
}

#[test]
fn buckets_outside_1_to_1024_are_malformed() {
    let mut s = Sale::new(2);
    s.join(1, 10);
    let mut buckets = s.bucket_state();
    buckets.campaigns.push(final_state::CampaignBuckets {
        id: CAMPAIGN,
        buckets: Some(0),
        pool: None,
    });
    let r = support::check_buckets(&s.history(), &s.final_state(), &buckets);
    assert_flags(&r, AnomalyKind::MalformedInput);
}

/// A bucket's gate whose keys were lost (a Redis flush) and that no join loaded again holds
/// nothing: its next load reads its winners and returned wins from MySQL. Judged only when
/// loaded, as its users are (the short run met it: a bucketed waiting room's quiet buckets).
#[test]
fn an_unloaded_buckets_gate_is_not_judged_on_its_returned_set() {
    let mut s = Sale::new(6).with_holds(60).with_buckets(4);
    s.join(1, 10);
    s.cancel(2, 10, Func::Cancel);
    let b = usize::try_from(home(10, 4)).expect("a bucket");
    let mut buckets = s.bucket_state();
    let gate = &mut buckets.gates.as_mut().expect("gates")[b].gate;
    (gate.stock, gate.users, gate.returned) = (None, Some(vec![]), Some(vec![]));
    let r = support::check_buckets(&s.history(), &s.final_state(), &buckets);
    assert_clean(&r);
}

/// Its clean twin's hole: a loaded bucket gate without the cancelled win in its returned set
/// would give the units back a second time.
#[test]
fn gate_drift_a_loaded_buckets_returned_set_missing_a_cancel() {
    let mut s = Sale::new(6).with_holds(60).with_buckets(4);
    s.join(1, 10);
    s.cancel(2, 10, Func::Cancel);
    let b = usize::try_from(home(10, 4)).expect("a bucket");
    let mut buckets = s.bucket_state();
    buckets.gates.as_mut().expect("gates")[b].gate.returned = Some(vec![]);
    let r = support::check_buckets(&s.history(), &s.final_state(), &buckets);
    assert_flags(&r, AnomalyKind::GateDrift);
}
