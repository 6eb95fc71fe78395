//! Joins of one slot reserved in one Redis call (docs/design.md §10 "Serial sections",
//! `gate::batch`, `lua/reserve_batch.lua`), against a real Redis: the joins that arrive while a
//! call is in flight go together in the next one and are decided one by one in arrival order,
//! each as `lua/reserve.lua` decides a join (exactly the stock reserved, sequences 1…N without a
//! gap or a repeat, one reservation a user, the limit, SOLD_OUT for the rest), and a join that
//! stopped waiting for its answer has the reservation made in its name undone.

use std::time::Duration;

use firstcome::gate::{Decision, Entry, Gate, Slot};
use futures::future::join_all;

use crate::{spawn::spawn_app, wait::wait_until};

const CAMPAIGN: i64 = 11;
const EPOCH: i64 = 1_700_000_000_000_000;
const STOCK: i64 = 5;

async fn loaded() -> Gate {
    let seed = crate::support::gate::open_seed(CAMPAIGN, EPOCH, STOCK);
    crate::support::gate::loaded_gate(&seed).await
}

fn entry(user: i64, quantity: i32) -> Entry {
    Entry {
        campaign_id: CAMPAIGN,
        user_id: user,
        quantity,
        bucket: None,
        group: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_batched_together_are_decided_one_by_one_as_single_calls_would() {
    let gate = loaded().await;
    // 40 users, one of them twice, and one asking for more than the limit, all at once.
    let mut entries: Vec<Entry> = (1..=40).map(|u| entry(u, 1)).collect();
    entries.push(entry(3, 1));
    entries.push(entry(41, 2));
    let decisions: Vec<Decision> =
        join_all((entries.iter()).map(|e| async { gate.reserve(e, None, (EPOCH, None), 1).await }))
            .await
            .into_iter()
            .map(|d| d.expect("a decision"))
            .collect();

    let mut sequences: Vec<i64> = (decisions.iter())
        .filter_map(|d| match d {
            Decision::Reserved { sequence, .. } => Some(*sequence),
            _ => None,
        })
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=STOCK).collect::<Vec<_>>(), "{decisions:?}");
    let count = |wanted: fn(&Decision) -> bool| decisions.iter().filter(|d| wanted(d)).count();
    assert_eq!(count(|d| matches!(d, Decision::OverLimit)), 1);
    let already = count(|d| matches!(d, Decision::AlreadyParticipated));
    let sold_out = count(|d| matches!(d, Decision::SoldOut { .. }));
    assert!(already <= 1, "{decisions:?}");
    assert_eq!(
        STOCK as usize + 1 + already + sold_out,
        decisions.len(),
        "every other join is told SOLD_OUT: {decisions:?}"
    );
    // User 3's two joins: one reserved and one ALREADY, or both SOLD_OUT.
    let user3: Vec<&Decision> = (entries.iter().zip(&decisions))
        .filter(|(e, _)| e.user_id == 3)
        .map(|(_, d)| d)
        .collect();
    let user3_won = user3.iter().any(|d| matches!(d, Decision::Reserved { .. }));
    assert_eq!(user3_won, already == 1, "{user3:?}");

    let holding = (gate.holding(Slot::solo(CAMPAIGN), EPOCH).await)
        .expect("read")
        .expect("loaded");
    assert_eq!(
        (holding.stock, holding.open_reservations),
        (0, STOCK),
        "the gate holds exactly the reservations it answered"
    );
    let (calls, joins) = gate.reserve_batches();
    assert_eq!(joins, decisions.len() as u64);
    assert!(
        calls < joins,
        "{joins} joins in {calls} calls: none went together"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_whose_join_stopped_waiting_is_undone() {
    let gate = loaded().await;
    let first = entry(1, 1);
    {
        let join = gate.reserve(&first, None, (EPOCH, None), 1);
        tokio::pin!(join);
        // Queued (its slot's call started), then dropped before the answer.
        assert!(futures::poll!(&mut join).is_pending());
    }
    wait_until("the call made", Duration::from_secs(5), || async {
        gate.reserve_batches().0 == 1
    })
    .await;
    wait_until("the reservation undone", Duration::from_secs(5), || async {
        let holding = (gate.holding(Slot::solo(CAMPAIGN), EPOCH).await)
            .expect("read")
            .expect("loaded");
        (holding.stock, holding.open_reservations) == (STOCK, 0)
    })
    .await;
    // The user was never answered: it may join again and win.
    assert!(matches!(
        gate.reserve(&entry(1, 1), None, (EPOCH, None), 2).await,
        Ok(Decision::Reserved { .. })
    ));
}

#[tokio::test]
async fn the_service_exports_its_batched_calls_and_their_joins() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);
    let text = app.probe.metrics_text();
    let value = |name: &str| -> Option<u64> {
        (text.lines()).find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    assert_eq!(
        (
            value("firstcome_gate_reserve_batch_calls_total"),
            value("firstcome_gate_reserve_batched_joins_total")
        ),
        (Some(1), Some(1)),
        "{text}"
    );
}
