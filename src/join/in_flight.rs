//! Reservations in flight (docs/design.md §6 step 2, §18.1): how long a refusal waits for them (a
//! SOLD_OUT answered while a reservation may still commit or come back is one MySQL's committed
//! order may not justify; joins, carts and a dry bucket's search all wait so), and a reservation
//! whose call failed undone once Redis answers.

use std::time::Duration;

use crate::{
    bucket::policy::TailWait,
    gate::{reservation_value, Entry, Gate, Release},
};

/// A SOLD_OUT with reservations in flight is asked again after 5 ms, then at doubling intervals
/// up to 160 ms, for at most [`in_flight_wait`] in all. A group commit settles within the first
/// rounds; a commit slowed by load or a MySQL stall takes longer, and a SOLD_OUT answered before
/// it settles is one MySQL's committed order may not justify (a 30-minute proof run found one
/// after the old 155 ms bound). It waits only while the campaign's latest reservation is
/// younger than [`IN_FLIGHT_YOUNG`]: when even that one is older, what is open was leaked by a
/// crashed instance (the reconciler gives it back after `RESERVATION_TIMEOUT_MS`) or waits on a
/// stalled MySQL, and a flood of refusals must not wait a second each for it.
pub const IN_FLIGHT_FIRST_WAIT: Duration = Duration::from_millis(5);
pub const IN_FLIGHT_LONGEST_WAIT: Duration = Duration::from_millis(160);
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);
const IN_FLIGHT_YOUNG: Duration = Duration::from_secs(2);

/// How long a SOLD_OUT waits for the reservations in flight: a second, or half the commit
/// window when that is shorter (a reservation made then can still commit in time).
pub fn in_flight_wait(commit_within: Duration) -> Duration {
    IN_FLIGHT_WAIT.min(commit_within / 2)
}

/// A dry bucket's wait for units that settle (`bucket::policy::TailWait`), a join's or a cart
/// item's: it refuses once MySQL's count stood still for [`in_flight_wait`], and answers busy
/// past half the commit window.
pub fn dry_bucket_wait(commit_within: Duration, now: std::time::Instant) -> TailWait {
    TailWait::new(in_flight_wait(commit_within), commit_within / 2, now)
}

/// Whether a SOLD_OUT is worth asking again: reservations are open, and the latest was made
/// recently enough that they may still be settling (see [`IN_FLIGHT_YOUNG`]).
pub fn settling(in_flight: i64, latest_reserved_ms_ago: i64, commit_within: Duration) -> bool {
    // Negative when another instance's clock is ahead: recent.
    let young = i64::try_from(IN_FLIGHT_YOUNG.min(commit_within).as_millis()).unwrap_or(i64::MAX);
    in_flight > 0 && latest_reserved_ms_ago < young
}

/// A failed reservation call is undone once Redis has answered the undo this many times (each
/// "nothing to undo"), or given up after this long (the reconciler then has it).
const IN_DOUBT_ANSWERS: u32 = 3;
const IN_DOUBT_GIVE_UP: Duration = Duration::from_secs(60);
const IN_DOUBT_LONGEST_WAIT: Duration = Duration::from_millis(250);

/// The reservation call failed (a timeout, a reset): the script may still run, or may have
/// run with its answer lost. A Redis that hung runs the scripts queued in it when it
/// resumes, and their units would stay out of the sale until the reconciler gives them back
/// (`RESERVATION_TIMEOUT_MS`; the proof run saw joins refused SOLD_OUT meanwhile). Nothing
/// was written to MySQL for this request, so its reservation, if Redis makes it, is undone at
/// once: `lua/release.lua` "expire" removes exactly this request's entry (`<now>:<quantity>`)
/// and nothing else. Redis keeps one connection's commands in order, but the call may be
/// retried on a new connection, so it is asked again a few times after Redis answers.
pub fn undo_lost_reservation(gate: Gate, entry: Entry, now_ms: i64) {
    let reservation = reservation_value(now_ms, entry.quantity);
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(100);
        let (mut answered, mut waited) = (0, Duration::ZERO);
        while answered < IN_DOUBT_ANSWERS && waited < IN_DOUBT_GIVE_UP {
            match gate
                .release(&entry, None, Release::Expire, &reservation)
                .await
            {
                Ok(true) => {
                    tracing::debug!(
                        campaign_id = entry.campaign_id,
                        user_id = entry.user_id,
                        "Undid a reservation Redis made after its call had failed."
                    );
                    return;
                }
                Ok(false) => answered += 1,
                Err(_) => {}
            }
            tokio::time::sleep(wait).await;
            waited += wait;
            // At most a quarter second between tries: once Redis answers again the units
            // are back within that (docs/design.md §18.1).
            wait = (wait * 2).min(IN_DOUBT_LONGEST_WAIT);
        }
    });
}
