//! A cart's step at the gate: one `lua/cart.lua` call for every item, asked again as a join's
//! reservation is (docs/design.md §6, §21): the group's keys rebuilt when missing, a SOLD_OUT of
//! an item asked again while reservations of it are in flight, after MySQL's owed returns reached
//! the gate, and, in a bucketed group, after its home bucket looked for units in the pool and the
//! siblings. Only then does an item's refusal stand, and it refuses the whole cart.

use std::{sync::Arc, time::Instant};

use crate::{
    bucket::policy::Next,
    campaign::Campaign,
    gate::{
        cart::{CartDecision, CartItem, ItemReserved},
        Decision, Entry, Slot,
    },
    group::GroupMembers,
    join::{
        in_flight::{
            dry_bucket_wait, in_flight_wait, settling, undo_lost_reservation, IN_FLIGHT_FIRST_WAIT,
            IN_FLIGHT_LONGEST_WAIT,
        },
        reserve::Reserve,
        JoinError,
    },
    upkeep::loader,
};

use super::CartError;

/// Rounds of "the keys are missing, load them" before giving up.
const LOAD_ROUNDS: u32 = 3;

/// The cart as the gate takes it: the group, the items' campaigns and the user's slot.
pub(super) struct GateCart<'a> {
    pub members: &'a GroupMembers,
    /// Each item's campaign, in cart order.
    pub campaigns: &'a [Arc<Campaign>],
    pub items: &'a [CartItem],
    /// The group's slot of the user's home bucket.
    pub slot: Slot,
    pub user_id: i64,
    pub now_ms: i64,
}

/// Every item reserved, or the refusal that stands (naming its item): the reserve step's gate,
/// rebuilds, in-flight wait and dry-bucket search, through its methods.
pub(super) async fn reserve_cart(
    reserve: &Reserve,
    cart: &GateCart<'_>,
    commit_by: Instant,
) -> Result<Vec<ItemReserved>, CartError> {
    let started = Instant::now();
    let bound = in_flight_wait(reserve.commit_within());
    let (mut wait, mut owed_asked, mut loads) = (IN_FLIGHT_FIRST_WAIT, false, 0);
    // A dry bucket's search, as a join's (`join::tail`).
    let mut waiting = dry_bucket_wait(reserve.commit_within(), started);
    let group = &cart.members.campaigns;
    loop {
        let (item, refusal) = match ask_gate(reserve, cart).await? {
            CartDecision::Reserved(reserved) => return Ok(reserved),
            CartDecision::Missing(_) if loads < LOAD_ROUNDS => {
                loads += 1;
                reserve.load_group(cart.slot, group).await?;
                continue;
            }
            CartDecision::Missing(_) => return Err(missing().into()),
            CartDecision::GroupLimit { held } => {
                return Err(JoinError::GroupLimit {
                    limit: cart.members.group.per_user_limit,
                    held,
                }
                .into())
            }
            CartDecision::Refused { item, decision } => (item, decision),
        };
        let campaign = &cart.campaigns[item];
        let slot = cart.slot.sibling(campaign.id);
        match refusal {
            Decision::SoldOut { .. } if campaign.buckets > 1 => {
                let quantity = i64::from(cart.items[item].quantity);
                let found = reserve
                    .tail()
                    .find(campaign, slot, quantity, commit_by)
                    .await;
                match found.map(|found| waiting.after(found, Instant::now())) {
                    Ok(Next::Search) => {}
                    Ok(Next::Sleep(pause)) => tokio::time::sleep(pause).await,
                    Ok(Next::Busy) => return Err(JoinError::Busy.into()),
                    Ok(Next::SoldOut) => return Err(refused(campaign, refusal, item, cart)),
                    Err(e) => {
                        return Err(JoinError::Unavailable {
                            what: "the campaign's buckets",
                            source: e.into(),
                        }
                        .into())
                    }
                }
            }
            Decision::SoldOut {
                in_flight,
                latest_reserved_ms_ago,
                ..
            } if started.elapsed() < bound
                && settling(in_flight, latest_reserved_ms_ago, reserve.commit_within()) =>
            {
                tokio::time::sleep(wait.min(bound.saturating_sub(started.elapsed()))).await;
                wait = (wait * 2).min(IN_FLIGHT_LONGEST_WAIT);
            }
            Decision::SoldOut { .. } | Decision::Paused if !owed_asked => {
                owed_asked = true;
                if reserve.gave_owed(campaign, slot, Instant::now()).await == loader::Owed::Skipped
                {
                    return Err(refused(campaign, refusal, item, cart));
                }
            }
            _ => return Err(refused(campaign, refusal, item, cart)),
        }
    }
}

/// One `lua/cart.lua` call for the whole cart; a call that failed is undone once Redis answers
/// ([`undo_lost_items`]).
async fn ask_gate(reserve: &Reserve, cart: &GateCart<'_>) -> Result<CartDecision, CartError> {
    let asked = (reserve.gate())
        .reserve_cart(
            (cart.slot, cart.user_id, cart.now_ms),
            (&cart.members.campaigns, cart.members.group.per_user_limit),
            cart.items,
        )
        .await;
    asked.map_err(|e| {
        undo_lost_items(reserve, cart);
        JoinError::from(e).into()
    })
}

/// The cart's call failed (a timeout, a reset): Redis may still run it, as a join's
/// (`in_flight::undo_lost_reservation`), and every item's reservation it makes is undone once
/// Redis answers; nothing was written to MySQL for this request. A proof run (seed 146) saw a
/// cart sent into a Redis hang keep its user `ALREADY_PARTICIPATED` until the reconciler.
fn undo_lost_items(reserve: &Reserve, cart: &GateCart<'_>) {
    for (item, campaign) in cart.items.iter().zip(cart.campaigns) {
        let slot = cart.slot.sibling(campaign.id);
        let entry = Entry::in_slot(slot, cart.user_id, item.quantity);
        undo_lost_reservation(reserve.gate().clone(), entry, cart.now_ms);
    }
}

fn missing() -> JoinError {
    JoinError::Unavailable {
        what: "Redis",
        source: anyhow::anyhow!(
            "the group's keys vanished right after each of {LOAD_ROUNDS} loads"
        ),
    }
}

/// An item's refusal as its join would have met it.
fn refused(campaign: &Campaign, decision: Decision, item: usize, cart: &GateCart<'_>) -> CartError {
    let error = match decision {
        Decision::SoldOut { .. } => JoinError::SoldOut,
        Decision::NotOpen => JoinError::NotOpen(campaign.starts_at),
        Decision::Ended => JoinError::Ended,
        Decision::Paused => JoinError::Paused,
        Decision::OverLimit => JoinError::OverLimit {
            quantity: cart.items[item].quantity,
            limit: campaign.per_user_limit,
        },
        Decision::AlreadyParticipated => JoinError::AlreadyParticipated {
            participation_id: None,
        },
        other => JoinError::Unavailable {
            what: "Redis",
            source: anyhow::anyhow!("cart.lua answered {other:?} for an item"),
        },
    };
    CartError::Item {
        campaign_id: campaign.id,
        error,
    }
}
