//! A bucketed campaign's MySQL rows (docs/design.md §21): the stock dealt at creation, and the
//! transfers between the pool and the buckets' rows, which race each other without creating,
//! losing or overdrawing a unit and without deadlocking (their locks are taken in one order).

use std::time::{Duration, Instant};

use chrono::Utc;
use firstcome::{
    bucket::{
        markers,
        store::{self, Steal},
        Deal,
    },
    campaign::{
        repo::{self, NewCampaign},
        Admission,
    },
    db::Db,
    hooks::NoHooks,
};
use futures::future::join_all;
use uuid::Uuid;

use crate::spawn::{spawn_app, TestApp};

fn db_of(app: &TestApp) -> Db {
    Db::new(app.db.clone(), Duration::from_secs(10))
}

async fn bucketed(db: &Db, stock: i64, buckets: u16) -> i64 {
    let created = repo::insert(
        db,
        &NewCampaign {
            name: "buckets".into(),
            total_stock: stock,
            per_user_limit: 1,
            reward_points: 0,
            confirm_within_seconds: 0,
            starts_at: Utc::now(),
            ends_at: None,
            admission: Admission::Open,
            admission_rate_per_second: 0,
            buckets,
            group_id: None,
            offer_seconds: 0,
            bot_check: None,
            key: None,
        },
    )
    .await
    .expect("campaign created");
    created.campaign.id
}

/// The pool (`campaign.remaining_stock`) and the rows, as MySQL holds them.
async fn ledger(app: &TestApp, campaign: i64) -> (i64, Vec<store::BucketRow>) {
    let pool = app.remaining_stock(campaign).await;
    (pool, store::rows(&app.db, campaign).await.expect("rows"))
}

#[tokio::test]
async fn a_bucketed_campaign_is_dealt_its_stock_and_reads_as_one() {
    let app = spawn_app().await;
    let db = db_of(&app);
    let id = bucketed(&db, 1_000, 16).await;

    let (pool, rows) = ledger(&app, id).await;
    let (slices, expected_pool) = Deal::of(1_000, 16).slices(1_000, 16);
    assert_eq!(pool, expected_pool);
    assert_eq!(
        rows.iter().map(|r| r.remaining_stock).collect::<Vec<_>>(),
        slices
    );
    let campaign = repo::find(&app.db, id).await.expect("read").expect("found");
    assert_eq!(campaign.campaign.buckets, 16);
    assert_eq!(campaign.campaign.remaining_stock, 1_000, "pool + buckets");
    assert_eq!(
        store::campaign_remaining(&app.db, id).await.expect("read"),
        1_000
    );

    let plain = bucketed(&db, 7, 1).await;
    assert!(store::rows(&app.db, plain).await.expect("rows").is_empty());
    assert_eq!(
        app.remaining_stock(plain).await,
        7,
        "one bucket: today's row"
    );
}

#[tokio::test]
async fn refills_and_steals_racing_keep_every_unit() {
    let app = spawn_app().await;
    let db = db_of(&app);
    let (stock, buckets) = (120, 8u16);
    let id = bucketed(&db, stock, buckets).await;
    let deadline = Instant::now() + Duration::from_secs(60);

    let moves = (0..64u16).map(|i| {
        let db = db.clone();
        async move {
            let (to, from) = (i % buckets, (i * 3 + 1) % buckets);
            if i % 2 == 0 || from == to {
                store::refill(&db, id, to, 7)
                    .await
                    .map(|m| m.map_or(0, |m| m.units))
            } else {
                match store::steal(&db, id, (from, to), (2, Uuid::now_v7()), deadline, &NoHooks)
                    .await
                {
                    Ok(Steal::Moved(m)) => Ok(m.units),
                    Ok(Steal::Short) => Ok(0),
                    Ok(Steal::Stale) => panic!("not past its deadline"),
                    Err(e) => Err(e.error),
                }
            }
        }
    });
    let moved: i64 = join_all(moves)
        .await
        .into_iter()
        .map(|r| r.expect("no transfer fails (no deadlock)"))
        .sum();
    assert!(moved > 0);

    let (pool, rows) = ledger(&app, id).await;
    let (slices, _) = Deal::of(stock, buckets).slices(stock, buckets);
    assert!(pool >= 0 && rows.iter().all(|r| r.remaining_stock >= 0));
    assert_eq!(
        pool + rows.iter().map(|r| r.remaining_stock).sum::<i64>(),
        stock
    );
    for (row, slice) in rows.iter().zip(slices) {
        assert_eq!(
            row.remaining_stock,
            slice + row.units_in - row.units_out,
            "{row:?}"
        );
    }
    let owed = app
        .scalar(&format!(
            "SELECT CAST(SUM(units) AS SIGNED) FROM gate_transfer WHERE campaign_id = {id}"
        ))
        .await;
    assert_eq!(owed, moved, "every transfer tells its gate");
    let markers = markers::pending_gate_transfers(&app.db, 0, 1_000)
        .await
        .expect("markers");
    assert_eq!(markers.iter().map(|m| m.units).sum::<i64>(), moved);
    markers::forget_gate_transfer(&app.db, markers[0].transfer_id)
        .await
        .expect("forget");
    assert_eq!(
        markers::pending_gate_transfers(&app.db, 0, 1_000)
            .await
            .expect("markers")
            .len(),
        markers.len() - 1
    );
}

#[tokio::test]
async fn an_empty_pool_refills_nothing() {
    let app = spawn_app().await;
    let db = db_of(&app);
    let id = bucketed(&db, 10, 2).await;
    let mut got = 0;
    while let Some(moved) = store::refill(&db, id, 1, 3).await.expect("refill") {
        assert!(moved.units <= 3);
        got += moved.units;
    }
    let (pool, rows) = ledger(&app, id).await;
    assert_eq!(pool, 0);
    assert_eq!(rows[1].units_in, got);
    assert_eq!(rows.iter().map(|r| r.remaining_stock).sum::<i64>(), 10);
}

#[tokio::test]
async fn a_steal_past_its_deadline_or_beyond_the_row_moves_nothing() {
    let app = spawn_app().await;
    let db = db_of(&app);
    let id = bucketed(&db, 400, 4).await;
    let (_, before) = ledger(&app, id).await;

    let stale = Uuid::now_v7();
    let past = Instant::now() - Duration::from_millis(1);
    let outcome = store::steal(&db, id, (0, 1), (1, stale), past, &NoHooks)
        .await
        .expect("steal");
    assert_eq!(outcome, Steal::Stale);
    assert!(!store::take_committed(&db, id, 0, stale)
        .await
        .expect("read"));

    let too_many = before[0].remaining_stock + 1;
    let far = Instant::now() + Duration::from_secs(60);
    let outcome = store::steal(&db, id, (0, 1), (too_many, Uuid::now_v7()), far, &NoHooks).await;
    assert_eq!(outcome.expect("steal"), Steal::Short);
    assert_eq!(ledger(&app, id).await.1, before, "nothing moved");

    let taken = Uuid::now_v7();
    let outcome = store::steal(&db, id, (2, 0), (5, taken), far, &NoHooks)
        .await
        .expect("steal");
    assert!(matches!(outcome, Steal::Moved(m) if m.units == 5 && m.bucket == 0));
    assert!(store::take_committed(&db, id, 2, taken)
        .await
        .expect("read"));
    let (_, after) = ledger(&app, id).await;
    assert_eq!(after[0].remaining_stock, before[0].remaining_stock + 5);
    assert_eq!(after[2].remaining_stock, before[2].remaining_stock - 5);
}
