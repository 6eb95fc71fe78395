//! The waiting room's Redis step (`lua/queue.lua`) and the join's gate step (`lua/reserve.lua`)
//! against a real Redis, at instants the test chooses: nothing here waits on a clock.

use std::time::Duration;

use firstcome::gate::{
    queue::{RoomAnswer, RoomCaps, RoomOp, RoomPace, TicketState},
    reservation_value,
    scripts::Seed,
    AdmissionPass, Decision, Entry, Gate, Release, Slot,
};
use uuid::Uuid;

const CAMPAIGN: i64 = 9;
const EPOCH: i64 = 1_700_000_000_000_000;
/// The campaign opens at this instant (ms); the test's clock starts there.
const T0: i64 = 1_800_000_000_000;

fn pace(rate: i32) -> RoomPace {
    RoomPace {
        epoch: EPOCH,
        rate_per_second: rate,
        token_lifetime: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
        offer_lifetime: Duration::ZERO,
        bucketed: None,
        caps: RoomCaps::default(),
    }
}

/// A gate over the test Redis with a prefix of its own, the campaign loaded with `stock`.
async fn loaded(stock: i64) -> Gate {
    let seed = Seed {
        starts_at_ms: T0,
        ..crate::support::gate::open_seed(CAMPAIGN, EPOCH, stock)
    };
    crate::support::gate::loaded_gate(&seed).await
}

/// What the room says about a ticket after one step at `now`.
async fn step(gate: &Gate, pace: RoomPace, now: i64, op: RoomOp) -> (String, TicketState) {
    match gate
        .room(Slot::solo(CAMPAIGN), pace, now, &op)
        .await
        .expect("room")
    {
        RoomAnswer::Found { ticket, .. } => (ticket.ticket, ticket.state),
        other => panic!("unexpected {other:?}"),
    }
}

async fn enqueue(gate: &Gate, pace: RoomPace, now: i64, user: i64) -> (String, TicketState) {
    let op = RoomOp::Enqueue {
        user_id: user,
        ticket: Uuid::now_v7().simple().to_string(),
        raffle_place: None,
        client: format!("client-{user}"),
    };
    step(gate, pace, now, op).await
}

/// A poll as the service makes it: the ticket's holder read first, then the step for them.
async fn poll(gate: &Gate, pace: RoomPace, now: i64, ticket: &str) -> TicketState {
    let user_id = gate
        .ticket_holder(Slot::solo(CAMPAIGN), pace.epoch, ticket)
        .await
        .expect("holder")
        .expect("a ticket of this room");
    let op = RoomOp::Poll {
        ticket: ticket.to_string(),
        user_id,
    };
    step(gate, pace, now, op).await.1
}

fn entry(user: i64) -> Entry {
    Entry {
        campaign_id: CAMPAIGN,
        user_id: user,
        quantity: 1,
        bucket: None,
        group: None,
    }
}

fn admitted(state: TicketState) -> Option<i64> {
    match state {
        TicketState::Admitted { expires_ms } => Some(expires_ms),
        _ => None,
    }
}

#[tokio::test]
async fn the_queue_admits_in_arrival_order_at_its_rate_and_never_past_the_free_stock() {
    let gate = loaded(1_000).await;
    let pace = pace(5);
    // 20 arrivals at the opening: the bucket holds one second's admissions (5).
    let mut tickets = Vec::new();
    for user in 1..=20 {
        tickets.push(enqueue(&gate, pace, T0, user).await.0);
    }
    let states = |gate: Gate, at: i64, tickets: Vec<String>| async move {
        let mut out = Vec::new();
        // Polled from the back: a later arrival admitted before an earlier one would show.
        for t in tickets.iter().rev() {
            out.push(poll(&gate, pace, at, t).await);
        }
        out.reverse();
        out
    };
    let now = states(gate.clone(), T0, tickets.clone()).await;
    let admitted_now = now.iter().filter(|s| admitted(**s).is_some()).count();
    assert_eq!(admitted_now, 5, "{now:?}");
    for (i, s) in now.iter().enumerate().skip(5) {
        assert_eq!(
            *s,
            TicketState::Waiting {
                position: i as i64 - 4
            }
        );
    }
    // 200 ms later one more is due, and it is the next arrival. 1.4 s later five more, not
    // seven: unclaimed admissions accrue up to one second's worth (the bucket), no further.
    let later = states(gate.clone(), T0 + 200, tickets.clone()).await;
    assert!(
        admitted(later[5]).is_some() && admitted(later[6]).is_none(),
        "{later:?}"
    );
    let later = states(gate.clone(), T0 + 1_600, tickets.clone()).await;
    let prefix = later.iter().take_while(|s| admitted(**s).is_some()).count();
    assert_eq!(prefix, 11, "{later:?}");
    assert!(later[11..]
        .iter()
        .all(|s| matches!(s, TicketState::Waiting { .. })));

    // Slots: with 2 units, only 2 are admitted while their tokens live, however many are due.
    let small = loaded(2).await;
    let mut tickets = Vec::new();
    for user in 1..=5 {
        tickets.push(enqueue(&small, pace, T0, user).await.0);
    }
    let far = states(small.clone(), T0 + 5_000, tickets.clone()).await;
    assert_eq!(
        far.iter().filter(|s| admitted(**s).is_some()).count(),
        2,
        "{far:?}"
    );
}

#[tokio::test]
async fn nothing_is_admitted_before_the_opening_and_the_bucket_does_not_fill_while_closed_to_it() {
    let gate = loaded(1_000).await;
    let pace = pace(5);
    for user in 1..=3 {
        let (_, state) = enqueue(&gate, pace, T0 - 20_000, user).await;
        assert!(matches!(state, TicketState::Waiting { .. }), "{state:?}");
    }
    // Twenty seconds of waiting before the opening accrue nothing beyond the one-second bucket.
    let mut tickets = Vec::new();
    for user in 4..=12 {
        tickets.push(enqueue(&gate, pace, T0, user).await.0);
    }
    let last = poll(&gate, pace, T0, tickets.last().expect("ticket")).await;
    assert_eq!(last, TicketState::Waiting { position: 7 });
}

#[tokio::test]
async fn abandoned_tickets_leave_the_queue_and_positions_never_count_them() {
    let gate = loaded(1).await;
    let pace = RoomPace {
        idle_timeout: Duration::from_secs(1),
        ..pace(100)
    };
    let mut tickets = Vec::new();
    for user in 1..=5 {
        tickets.push(enqueue(&gate, pace, T0, user).await.0);
    }
    // User 1 holds the one slot; 2..5 wait. Only user 4 polls within the idle time.
    assert_eq!(
        poll(&gate, pace, T0 + 900, &tickets[3]).await,
        TicketState::Waiting { position: 3 }
    );
    assert_eq!(
        poll(&gate, pace, T0 + 1_500, &tickets[3]).await,
        TicketState::Waiting { position: 1 }
    );
    assert_eq!(
        poll(&gate, pace, T0 + 1_500, &tickets[1]).await,
        TicketState::Expired
    );
    // A dropped user may queue again, behind user 4, with a new ticket.
    let (again, state) = enqueue(&gate, pace, T0 + 1_600, 2).await;
    assert_ne!(again, tickets[1]);
    assert_eq!(state, TicketState::Waiting { position: 2 });
    // Queueing again while holding a live ticket answers that ticket.
    let (same, _) = enqueue(&gate, pace, T0 + 1_700, 4).await;
    assert_eq!(same, tickets[3]);
}

#[tokio::test]
async fn an_admission_that_lapses_unused_frees_its_slot_for_the_next_in_line() {
    let gate = loaded(1).await;
    let pace = pace(100);
    let (first, state) = enqueue(&gate, pace, T0, 1).await;
    let expires = admitted(state).expect("admitted at once");
    assert_eq!(expires, T0 + 10_000);
    let (second, _) = enqueue(&gate, pace, T0, 2).await;
    assert_eq!(
        poll(&gate, pace, expires - 1, &second).await,
        TicketState::Waiting { position: 1 }
    );
    // At its expiry instant the first admission is gone and the slot passes on.
    assert_eq!(
        admitted(poll(&gate, pace, expires, &second).await),
        Some(expires + 10_000)
    );
    assert_eq!(
        poll(&gate, pace, expires, &first).await,
        TicketState::Expired
    );
}

#[tokio::test]
async fn the_gate_decides_a_token_at_its_expiry_instant_and_takes_it_with_the_stock() {
    let gate = loaded(5).await;
    let pace = pace(100);
    let (ticket, state) = enqueue(&gate, pace, T0, 1).await;
    let expires_ms = admitted(state).expect("admitted");
    let pass = AdmissionPass {
        ticket: ticket.clone(),
        expires_ms,
    };
    let stock_before = gate
        .holding(Slot::solo(CAMPAIGN), EPOCH)
        .await
        .expect("read")
        .expect("loaded")
        .stock;
    // At the instant it expires: refused, nothing taken.
    assert_eq!(
        gate.reserve(&entry(1), Some(&pass), (EPOCH, None), expires_ms)
            .await
            .expect("reserve"),
        Decision::TokenExpired
    );
    // Another user presenting it, or a pass whose expiry differs from the admission's: refused.
    assert_eq!(
        gate.reserve(&entry(2), Some(&pass), (EPOCH, None), expires_ms - 1)
            .await
            .expect("reserve"),
        Decision::TokenInvalid
    );
    let stretched = AdmissionPass {
        expires_ms: expires_ms + 60_000,
        ..pass.clone()
    };
    assert_eq!(
        gate.reserve(&entry(1), Some(&stretched), (EPOCH, None), expires_ms - 1)
            .await
            .expect("reserve"),
        Decision::TokenInvalid
    );
    let after = gate
        .holding(Slot::solo(CAMPAIGN), EPOCH)
        .await
        .expect("read")
        .expect("loaded")
        .stock;
    assert_eq!(after, stock_before, "refusals took no stock");
    // One millisecond before: the win takes the stock and the admission together.
    assert!(matches!(
        gate.reserve(&entry(1), Some(&pass), (EPOCH, None), expires_ms - 1)
            .await
            .expect("reserve"),
        Decision::Reserved { .. }
    ));
    assert_eq!(
        poll(&gate, pace, expires_ms - 1, &ticket).await,
        TicketState::Used
    );
    // The transaction fails: the reservation is undone and the admission is live again.
    gate.release(
        &entry(1),
        Some(&pass),
        Release::Undo,
        &reservation_value(expires_ms - 1, 1),
    )
    .await
    .expect("release");
    assert_eq!(
        admitted(poll(&gate, pace, expires_ms - 1, &ticket).await),
        Some(expires_ms)
    );
    assert!(matches!(
        gate.reserve(&entry(1), Some(&pass), (EPOCH, None), expires_ms - 1)
            .await
            .expect("reserve"),
        Decision::Reserved { .. }
    ));
    // Its user forgotten by the gate (as a lost winners set would), the used token still never
    // wins twice.
    let users = gate.keys(Slot::solo(CAMPAIGN))[1].clone();
    gate.release(
        &entry(1),
        None,
        Release::KeepUser,
        &reservation_value(expires_ms - 1, 1),
    )
    .await
    .expect("settle-like");
    redis_srem(&users, 1).await;
    assert_eq!(
        gate.reserve(&entry(1), Some(&pass), (EPOCH, None), expires_ms - 1)
            .await
            .expect("reserve"),
        Decision::TokenUsed
    );
}

/// A connection to the test Redis.
async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(crate::spawn::redis_url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection")
}

/// Removes `member` from the set `key` in the test Redis.
async fn redis_srem(key: &str, member: i64) {
    let mut conn = redis_conn().await;
    let _: i64 = redis::cmd("SREM")
        .arg(key)
        .arg(member)
        .query_async(&mut conn)
        .await
        .expect("SREM");
}

#[tokio::test]
async fn a_user_whose_used_admission_was_undone_without_it_may_queue_again() {
    let gate = loaded(5).await;
    let pace = pace(100);
    let (ticket, state) = enqueue(&gate, pace, T0, 1).await;
    let pass = AdmissionPass {
        ticket: ticket.clone(),
        expires_ms: admitted(state).expect("admitted"),
    };
    assert!(matches!(
        gate.reserve(&entry(1), Some(&pass), (EPOCH, None), T0 + 1)
            .await
            .expect("reserve"),
        Decision::Reserved { .. }
    ));
    // While the reservation stands, queueing again answers the used ticket.
    assert_eq!(
        enqueue(&gate, pace, T0 + 2, 1).await,
        (ticket.clone(), TicketState::Used)
    );
    // The reconciler undoes a crashed instance's reservation; it does not know the admission.
    gate.release(
        &entry(1),
        None,
        Release::Undo,
        &reservation_value(T0 + 1, 1),
    )
    .await
    .expect("release");
    let (again, state) = enqueue(&gate, pace, T0 + 3, 1).await;
    assert_ne!(again, ticket);
    assert!(admitted(state).is_some(), "{state:?}");
}

/// The length of the hash `key` and the time to live of `keys` (ms; -1 without one, -2 absent)
/// in the test Redis.
async fn redis_sizes(hashes: &[&str], keys: &[String]) -> (Vec<i64>, Vec<i64>) {
    let mut conn = redis_conn().await;
    let mut lens = Vec::new();
    for key in hashes {
        lens.push(
            redis::cmd("HLEN")
                .arg(*key)
                .query_async(&mut conn)
                .await
                .expect("HLEN"),
        );
    }
    let mut ttls = Vec::new();
    for key in keys {
        ttls.push(
            redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .expect("PTTL"),
        );
    }
    (lens, ttls)
}

/// Issue 72: the room's ticket hash only grew (forgotten tickets stayed for good) and a campaign
/// without an end gave its room keys no time to live. 300 users queue once and never poll: they
/// are forgotten after the idle time (a poll answers EXPIRED), their records leave the room ten
/// minutes later, and every room key has a time to live.
#[tokio::test]
async fn forgotten_tickets_leave_the_room_and_every_room_key_has_a_time_to_live() {
    use firstcome::gate::queue::{FORGOTTEN_KEPT, IDLE_ROOM_KEPT};
    let gate = loaded(1).await;
    let pace = RoomPace {
        idle_timeout: Duration::from_secs(1),
        ..pace(100)
    };
    let mut silent = Vec::new();
    for user in 1..=300 {
        silent.push(enqueue(&gate, pace, T0, user).await.0);
    }
    let keys = gate.room_keys(Slot::solo(CAMPAIGN));
    let (tickets, users) = (keys[1].clone(), keys[2].clone());
    assert_eq!(
        redis_sizes(&[&tickets, &users], &[]).await.0,
        vec![300, 300]
    );

    // Past the idle time a step forgets them; a poll of one answers EXPIRED while it is kept.
    enqueue(&gate, pace, T0 + 2_000, 1_000).await;
    assert_eq!(
        poll(&gate, pace, T0 + 2_001, &silent[10]).await,
        TicketState::Expired
    );
    // Ten minutes after, steps take their records out, a bounded number at a time.
    let later = T0 + 2_000 + i64::try_from(FORGOTTEN_KEPT.as_millis()).expect("ms") + 1;
    for (i, user) in (2_000..2_003).enumerate() {
        enqueue(&gate, pace, later + i as i64, user).await;
    }
    // Left: the three new tickets, and the two forgotten in the last ten minutes (user 1,000's,
    // and user 1's admission, which lapsed unused); users map the live tickets only.
    let (lens, _) = redis_sizes(&[&tickets, &users], &[]).await;
    assert_eq!(lens, vec![5, 3], "the room holds the recent tickets only");
    let holder = gate
        .ticket_holder(Slot::solo(CAMPAIGN), pace.epoch, &silent[10])
        .await
        .expect("holder");
    assert_eq!(holder, None, "a ticket forgotten long ago is unknown");

    // The campaign has no end: every room key that exists lives at most a day past the last step.
    let (_, ttls) = redis_sizes(&[], &keys).await;
    let most = i64::try_from(IDLE_ROOM_KEPT.as_millis()).expect("ms");
    for (key, ttl) in keys.iter().zip(ttls) {
        assert!(
            ttl == -2 || (0..=most).contains(&ttl),
            "{key}: a time to live of {ttl} ms"
        );
    }
}

/// The room's real pace at a step (`pace_ms` of its answer).
async fn pace_at(gate: &Gate, pace: RoomPace, now: i64, ticket: &str, user_id: i64) -> i64 {
    let op = RoomOp::Poll {
        ticket: ticket.to_string(),
        user_id,
    };
    match gate
        .room(Slot::solo(CAMPAIGN), pace, now, &op)
        .await
        .expect("room")
    {
        RoomAnswer::Found { pace_ms, .. } => pace_ms,
        other => panic!("unexpected {other:?}"),
    }
}

/// Issue 72: a ticket's estimate divided its place by the configured rate, however slowly the
/// room really admitted. One unit, a rate of 100 a second: each admission waits for the one
/// before to lapse unused (10 s), and the room's pace says so; waiting since the last admission
/// counts too (user 3's token lives a minute: nobody is admitted for 30 s, at least 30 s a place).
#[tokio::test]
async fn the_rooms_pace_follows_its_admissions_not_its_configured_rate() {
    let gate = loaded(1).await;
    let pace = pace(100);
    enqueue(&gate, pace, T0, 1).await; // admitted at once, its token lapses at T0 + 10 s
    let mut waiting = Vec::new();
    for user in 2..=5 {
        waiting.push(enqueue(&gate, pace, T0 + 1, user).await.0);
    }
    assert_eq!(
        pace_at(&gate, pace, T0 + 2, &waiting[3], 5).await,
        0,
        "no interval measured yet"
    );
    // User 2 is admitted when user 1's token lapses, user 3 when user 2's does.
    assert!(admitted(poll(&gate, pace, T0 + 10_000, &waiting[0]).await).is_some());
    let long_token = RoomPace {
        token_lifetime: Duration::from_secs(60),
        ..pace
    };
    assert!(admitted(poll(&gate, long_token, T0 + 20_000, &waiting[1]).await).is_some());
    let measured = pace_at(&gate, pace, T0 + 20_001, &waiting[3], 5).await;
    assert!(
        (9_000..=10_000).contains(&measured),
        "about 10 s a place, not 10 ms: {measured}"
    );
    let stalled = pace_at(&gate, pace, T0 + 50_000, &waiting[3], 5).await;
    assert!(stalled >= 29_999, "nobody admitted for 30 s: {stalled}");
}

/// The room's caps (issue 72): one client address holds at most `tickets_per_client` live
/// tickets (forgotten ones no longer count), and the room keeps at most `max_waiting` waiting;
/// a newcomer over either is given no ticket, and nothing of theirs is written.
#[tokio::test]
async fn the_room_caps_one_clients_live_tickets_and_the_tickets_it_keeps_waiting() {
    let gate = loaded(0).await;
    let mut capped = pace(1);
    capped.caps = RoomCaps {
        tickets_per_client: 3,
        max_waiting: 5,
    };
    let queue = |user: i64, client: &str, now: i64| {
        let op = RoomOp::Enqueue {
            user_id: user,
            ticket: Uuid::now_v7().simple().to_string(),
            raffle_place: None,
            client: client.to_string(),
        };
        let gate = gate.clone();
        async move { (gate.room(Slot::solo(CAMPAIGN), capped, now, &op).await).expect("room") }
    };
    let found = |a: &RoomAnswer| matches!(a, RoomAnswer::Found { .. });
    for user in 1..=3 {
        assert!(found(&queue(user, "bot", T0).await), "user {user}");
    }
    assert_eq!(queue(4, "bot", T0).await, RoomAnswer::ClientLimit);
    // The same user again answers the ticket they hold: no new ticket, no cap.
    assert!(found(&queue(1, "bot", T0).await));
    let users = gate.room_keys(Slot::solo(CAMPAIGN))[2].clone();
    let mut redis = redis_conn().await;
    let held: Option<String> = redis::cmd("HGET")
        .arg(&users)
        .arg(4)
        .query_async(&mut redis)
        .await
        .expect("HGET");
    assert_eq!(held, None, "nothing written for the refused newcomer");

    // Tickets the bot stopped polling are forgotten: they no longer count against it.
    let later = T0 + 31_000;
    assert!(found(&queue(4, "bot", later).await));
    for user in 10..14 {
        assert!(found(&queue(user, &format!("c{user}"), later).await));
    }
    assert_eq!(queue(20, "someone", later).await, RoomAnswer::Full);
}

/// Issue 72's measure of a room that only grew: 2,000 enqueues from 20 addresses made 2,000
/// records. With the per-client cap (50 here) the room holds at most 20 × 50 tickets, whatever
/// user ids the addresses name; once they all go silent they are forgotten, and ten minutes
/// later their records have left (the hashes of tickets and users are empty but for the
/// newcomers of the last step).
#[tokio::test]
async fn two_thousand_enqueues_from_twenty_addresses_leave_a_bounded_room() {
    use firstcome::gate::queue::FORGOTTEN_KEPT;
    let gate = loaded(0).await;
    let mut capped = pace(100);
    capped.caps = RoomCaps {
        tickets_per_client: 50,
        max_waiting: 0,
    };
    let mut issued = 0;
    for n in 0..2_000_i64 {
        let op = RoomOp::Enqueue {
            user_id: 1 + n,
            ticket: Uuid::now_v7().simple().to_string(),
            raffle_place: None,
            client: format!("10.0.0.{}", n % 20),
        };
        match (gate.room(Slot::solo(CAMPAIGN), capped, T0, &op).await).expect("room") {
            RoomAnswer::Found { .. } => issued += 1,
            RoomAnswer::ClientLimit => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(issued, 1_000, "20 addresses × 50 tickets");
    let keys = gate.room_keys(Slot::solo(CAMPAIGN));
    let (tickets, users) = (keys[1].clone(), keys[2].clone());
    assert_eq!(
        redis_sizes(&[&tickets, &users], &[]).await.0,
        vec![1_000, 1_000]
    );
    // Silent past the idle time: forgotten; ten minutes on, steps take the records out (200 a
    // step), each step's newcomer aside.
    enqueue(&gate, capped, T0 + 31_000, 9_000).await;
    let later = T0 + 31_000 + i64::try_from(FORGOTTEN_KEPT.as_millis()).expect("ms") + 1;
    for (i, user) in (9_001..9_006).enumerate() {
        enqueue(&gate, capped, later + i as i64, user).await;
    }
    let (sizes, _) = redis_sizes(&[&tickets, &users], &[]).await;
    assert!(
        sizes.iter().all(|&n| n <= 6),
        "only the last steps' newcomers and the one forgotten last are left: {sizes:?}"
    );
}
