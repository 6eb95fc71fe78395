//! The gate's side of live controls, step by step against a real Redis (docs/design.md §15,
//! `lua/control.lua`, `lua/release.lua`): a control is applied once however often it arrives,
//! stock changes add up in any order, the latest pause/resume/close wins and a close is final,
//! and a sold-out release (which sets the stock MySQL read) counts each control exactly once,
//! whether it ran before or after the control reached the gate, and never erases a return that
//! reached the gate after MySQL's reading. These interleavings are what a
//! burst racing a withdrawal produces by chance; here each one is forced.

use firstcome::gate::{
    reservation_value,
    scripts::{Loaded, RebuildToken, Seed},
    Applied, Decision, Entry, Gate, GateControl, Release, Slot,
};

const CAMPAIGN: i64 = 7;
const EPOCH: i64 = 1_700_000_000_000_000;

/// A gate over the test Redis with a key prefix of its own, and the campaign loaded with
/// `stock` at control number `ctl`.
async fn loaded(stock: i64, ctl: i64) -> Gate {
    crate::support::gate::loaded_gate(&seed(stock, ctl)).await
}

fn seed(stock: i64, ctl: i64) -> Seed {
    Seed {
        control_seq: ctl,
        ..crate::support::gate::open_seed(CAMPAIGN, EPOCH, stock)
    }
}

async fn apply(gate: &Gate, seq: i64, control: GateControl) -> Applied {
    gate.apply_control(Slot::solo(CAMPAIGN), seq, control, EPOCH)
        .await
        .expect("control")
}

/// The stock the gate would sell: reserve with a fresh user and read what SOLD_OUT says, or
/// count the units a reservation left.
async fn stock(gate: &Gate) -> i64 {
    let holding = gate
        .holding(Slot::solo(CAMPAIGN), EPOCH)
        .await
        .expect("audit read")
        .expect("loaded");
    holding.stock
}

/// The value of a reservation [`reserved`] made (one unit at 1 ms), which its release names.
static OWN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| reservation_value(1, 1));

/// Reserves one unit for `user`; returns the count of returns the reservation saw, which a
/// sold-out release hands back (as the service does).
async fn reserved(gate: &Gate, user: i64) -> i64 {
    match gate
        .reserve(&entry(user), None, (EPOCH, None), 1)
        .await
        .expect("reserve")
    {
        Decision::Reserved { returns_seen, .. } => returns_seen,
        other => panic!("not reserved: {other:?}"),
    }
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

#[tokio::test]
async fn a_stock_change_is_applied_once_and_changes_add_up_in_any_order() {
    let gate = loaded(10, 0).await;
    assert_eq!(
        apply(&gate, 2, GateControl::Stock(-4)).await,
        Applied::Applied
    );
    assert_eq!(
        apply(&gate, 1, GateControl::Stock(5)).await,
        Applied::Applied
    );
    assert_eq!(
        apply(&gate, 1, GateControl::Stock(5)).await,
        Applied::AlreadyApplied
    );
    assert_eq!(
        apply(&gate, 2, GateControl::Stock(-4)).await,
        Applied::AlreadyApplied
    );
    assert_eq!(stock(&gate).await, 11);
    // A rebuild at control 3 includes everything up to it: older numbers are no-ops.
    let rebuilt = loaded(20, 3).await;
    assert_eq!(
        apply(&rebuilt, 3, GateControl::Stock(1)).await,
        Applied::AlreadyApplied
    );
    assert_eq!(
        apply(&rebuilt, 4, GateControl::Stock(1)).await,
        Applied::Applied
    );
    assert_eq!(stock(&rebuilt).await, 21);
    let wrong_epoch = gate
        .apply_control(Slot::solo(CAMPAIGN), 9, GateControl::Stock(1), EPOCH + 1)
        .await
        .expect("control");
    assert_eq!(wrong_epoch, Applied::NotLoaded);
}

#[tokio::test]
async fn the_latest_state_control_decides_and_a_close_is_final() {
    let gate = loaded(10, 0).await;
    let reserve = |user| {
        let gate = gate.clone();
        async move {
            gate.reserve(&entry(user), None, (EPOCH, None), 1)
                .await
                .expect("reserve")
        }
    };
    assert_eq!(apply(&gate, 2, GateControl::Resume).await, Applied::Applied);
    // The pause (1) arrives after the resume (2) that followed it: superseded.
    assert_eq!(
        apply(&gate, 1, GateControl::Pause).await,
        Applied::AlreadyApplied
    );
    assert!(matches!(reserve(1).await, Decision::Reserved { .. }));
    assert_eq!(apply(&gate, 3, GateControl::Pause).await, Applied::Applied);
    assert_eq!(reserve(2).await, Decision::Paused);
    assert_eq!(apply(&gate, 5, GateControl::Close).await, Applied::Applied);
    assert_eq!(reserve(3).await, Decision::Ended);
    assert_eq!(
        apply(&gate, 6, GateControl::Resume).await,
        Applied::AlreadyApplied
    );
    assert_eq!(
        apply(&gate, 4, GateControl::Resume).await,
        Applied::AlreadyApplied
    );
    assert_eq!(reserve(4).await, Decision::Ended, "closed for good");
}

/// A withdrawal of 4 (control 1) commits while a reservation is in flight; MySQL's guard refuses
/// the reservation, whose release sets the stock MySQL read (with control 1 in it). Whichever
/// of the release and the control reaches the gate first, the withdrawal counts once.
#[tokio::test]
async fn a_sold_out_release_counts_a_withdrawal_once_whichever_comes_first() {
    for control_first in [true, false] {
        let gate = loaded(5, 0).await;
        let returns_seen = reserved(&gate, 1).await;
        // MySQL: 5 − 4 withdrawn = 1 unsold, read at control 1; the reservation's guard asks
        // for 1 of them and is refused only if another win took it: say one did.
        let refused = Release::SoldOut {
            remaining_stock: 0,
            control_seq: 1,
            returns_seen,
        };
        if control_first {
            assert_eq!(
                apply(&gate, 1, GateControl::Stock(-4)).await,
                Applied::Applied
            );
            gate.release(&entry(1), None, refused.clone(), &OWN)
                .await
                .expect("release");
        } else {
            gate.release(&entry(1), None, refused.clone(), &OWN)
                .await
                .expect("release");
            assert_eq!(
                apply(&gate, 1, GateControl::Stock(-4)).await,
                Applied::AlreadyApplied
            );
        }
        assert_eq!(stock(&gate).await, 0, "control first: {control_first}");
    }
}

/// A release whose MySQL read predates a control the gate already applied adds that control to
/// the stock it sets; one whose read is older than the gate's own base only gives its unit back.
#[tokio::test]
async fn a_sold_out_release_keeps_the_controls_its_read_did_not_include() {
    let gate = loaded(3, 0).await;
    let returns_seen = reserved(&gate, 1).await;
    assert_eq!(
        apply(&gate, 1, GateControl::Stock(-1)).await,
        Applied::Applied
    );
    assert_eq!(
        apply(&gate, 2, GateControl::Stock(10)).await,
        Applied::Applied
    );
    assert_eq!(stock(&gate).await, 11);
    // MySQL read 1 unsold at control 1 (the +10 of control 2 not committed yet).
    let read_at_1 = Release::SoldOut {
        remaining_stock: 1,
        control_seq: 1,
        returns_seen,
    };
    gate.release(&entry(1), None, read_at_1, &OWN)
        .await
        .expect("release");
    assert_eq!(stock(&gate).await, 11, "1 read + 10 of control 2");
    assert_eq!(
        apply(&gate, 2, GateControl::Stock(10)).await,
        Applied::AlreadyApplied
    );

    let returns_seen = reserved(&gate, 2).await;
    let read_at_0 = Release::SoldOut {
        remaining_stock: 0,
        control_seq: 0,
        returns_seen,
    };
    gate.release(&entry(2), None, read_at_0, &OWN)
        .await
        .expect("release");
    assert_eq!(
        stock(&gate).await,
        11,
        "an older read only gives its unit back"
    );
}

/// MySQL refused a reservation with the stock it read (0), and a win closed just after that
/// reading gave its unit back to the gate before the release ran: setting the stock read would
/// erase the returned unit from the sale until the drift audit noticed (the proof run saw joins
/// refused SOLD_OUT meanwhile). The release sees the return since its reservation and only gives
/// its own unit back; with no return since, it sets the stock read.
#[tokio::test]
async fn a_sold_out_release_never_erases_a_return_that_came_after_its_reading() {
    let gate = loaded(1, 0).await;
    let returns_seen = reserved(&gate, 1).await;
    gate.return_units(Slot::solo(CAMPAIGN), 41, 1, EPOCH)
        .await
        .expect("return");
    let read_before_the_return = Release::SoldOut {
        remaining_stock: 0,
        control_seq: 0,
        returns_seen,
    };
    gate.release(&entry(1), None, read_before_the_return, &OWN)
        .await
        .expect("release");
    assert_eq!(
        stock(&gate).await,
        2,
        "the returned unit and the reservation's"
    );

    let returns_seen = reserved(&gate, 2).await;
    let read_now = Release::SoldOut {
        remaining_stock: 1,
        control_seq: 0,
        returns_seen,
    };
    gate.release(&entry(2), None, read_now, &OWN)
        .await
        .expect("release");
    assert_eq!(
        stock(&gate).await,
        1,
        "no return since: the stock MySQL read"
    );
}

/// A reservation made on keys that a Redis flush then replaced: the new keys were loaded from
/// a MySQL snapshot newer than the reservation's guard reading (returns committed in between
/// are in the new stock, and their ids in the new returned set). The release must not set the
/// stock from that older reading. Every load used to start its count of returns at 0, so a
/// reservation made before any return found "no return since" on the new keys and erased the
/// units (a proof run with Redis faults lost two units for good this way). Now each load starts
/// the count at a random value. And the new keys never counted the reservation (it is not among
/// their open ones): the release gives nothing back, and the stock stays MySQL's (it used to give
/// its unit back on top, one above MySQL: a drift the audit repaired after the proof runs' Redis
/// faults).
#[tokio::test]
async fn a_sold_out_release_after_the_keys_were_reloaded_never_lowers_the_new_stock() {
    let gate = loaded(1, 0).await;
    let returns_seen = reserved(&gate, 1).await;
    // Redis loses the keys; they are loaded again with the 3 units MySQL has now (2 wins
    // closed since the reservation's reading, the reservation's own unit not committed).
    let mut redis = redis::Client::open(crate::spawn::redis_url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let [meta, users, pending] = gate.keys(Slot::solo(CAMPAIGN));
    let doomed = [
        meta.replace(":meta", ":returned"),
        meta.replace(":meta", ":controls"),
        meta,
        users,
        pending,
    ];
    let _: () = redis::AsyncCommands::del(&mut redis, &doomed)
        .await
        .expect("DEL");
    let seed = Seed {
        remaining_stock: 3,
        returned: vec![101, 102],
        ..seed(1, 0)
    };
    let token = RebuildToken::new();
    assert_eq!(
        gate.prepare(Slot::solo(CAMPAIGN), EPOCH, &token)
            .await
            .expect("prepare"),
        firstcome::gate::scripts::Prepared::Load
    );
    assert_eq!(
        gate.load(&seed, &token).await.expect("load"),
        Loaded::Written
    );
    // MySQL's guard read 0 before those wins closed.
    let refused = Release::SoldOut {
        remaining_stock: 0,
        control_seq: 0,
        returns_seen,
    };
    gate.release(&entry(1), None, refused.clone(), &OWN)
        .await
        .expect("release");
    assert_eq!(
        stock(&gate).await,
        3,
        "MySQL's stock: the reloaded gate never counted the reservation"
    );
}

/// A request's transaction outlived `RESERVATION_TIMEOUT_MS` (MySQL stalled, its instance was
/// stopped): the reconciler gave its reservation back, then MySQL refused the win (a pause, an
/// error) and the request gives the reservation back too. Only the first gives the units back;
/// the second would put the gate a unit above MySQL (the drift audit's +1 repairs of the proof
/// runs). The same for a reservation the user made again since: the late release leaves it.
#[tokio::test]
async fn a_reservation_given_back_by_the_reconciler_is_not_given_back_again_by_its_request() {
    for late in [
        Release::Undo,
        Release::KeepUser,
        Release::SoldOut {
            remaining_stock: 0,
            control_seq: 0,
            returns_seen: 0,
        },
        Release::Expire,
    ] {
        let gate = loaded(1, 0).await;
        reserved(&gate, 1).await;
        assert!(gate
            .release(&entry(1), None, Release::Expire, &OWN)
            .await
            .expect("the reconciler's release"));
        assert_eq!(stock(&gate).await, 1);
        assert!(
            !gate
                .release(&entry(1), None, late.clone(), &OWN)
                .await
                .expect("the request's release"),
            "{late:?}"
        );
        assert_eq!(stock(&gate).await, 1, "given back once: {late:?}");

        // The user reserves again (at 2 ms): the first request's late release leaves it.
        assert!(matches!(
            gate.reserve(&entry(1), None, (EPOCH, None), 2)
                .await
                .expect("reserve"),
            Decision::Reserved { .. }
        ));
        assert!(!gate
            .release(&entry(1), None, late.clone(), &OWN)
            .await
            .expect("release"));
        assert_eq!(
            stock(&gate).await,
            0,
            "the newer reservation stands: {late:?}"
        );
    }
}
