//! A purchase's items at the gate (`lua/cart.lua`, docs/design.md §22): reserved all or none in
//! one atomic step, in the group's slot of the user's home bucket.

use std::sync::LazyLock;

use redis::Script;

use crate::gate::{
    group::Sibling,
    scripts::{reply_int, reply_status, Decision, Gate, GateError},
    Slot,
};

static CART: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../../lua/entry.lua"),
        include_str!("../../lua/cart.lua")
    ))
});

/// One item of a cart: which of the group's campaigns (its index in the group's list), how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CartItem {
    pub campaign: usize,
    pub quantity: i32,
}

/// One item's reservation: its FCFS sequence, its campaign's count of returns then and its
/// gate's generation (see [`Decision::Reserved`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemReserved {
    pub sequence: i64,
    pub returns_seen: i64,
    pub gate_gen: i64,
}

/// What the gate decided for a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartDecision {
    /// Every item reserved, in item order.
    Reserved(Vec<ItemReserved>),
    /// The keys of the group's campaign at this index are not loaded: load them, ask again.
    Missing(usize),
    /// The user holds `held` units of the group; the cart would pass its limit.
    GroupLimit { held: i64 },
    /// Item `item` (its index in the cart) refused, as a join of it would be.
    Refused { item: usize, decision: Decision },
}

impl Gate {
    /// Reserves `items` for `user_id` all or none. `slot` is the group's slot of the user's home
    /// bucket (any of its campaigns'); `campaigns` every campaign of the group, in one order.
    #[tracing::instrument(level = "debug", skip(self, campaigns), err(level = "warn"))]
    pub async fn reserve_cart(
        &self,
        (slot, user_id, now_ms): (Slot, i64, i64),
        (campaigns, limit): (&[Sibling], i32),
        items: &[CartItem],
    ) -> Result<CartDecision, GateError> {
        for item in items {
            if let Some(sibling) = campaigns.get(item.campaign) {
                self.mark_busy(sibling.campaign_id, slot.bucket.is_some())
                    .await;
            }
        }
        let mut inv = CART.prepare_invoke();
        for sibling in campaigns {
            let base = self.campaign_key_base(slot.sibling(sibling.campaign_id));
            for suffix in ["meta", "users", "pending", "held"] {
                inv.key(format!("{base}{suffix}"));
            }
        }
        inv.arg(user_id).arg(now_ms).arg(limit).arg(campaigns.len());
        for sibling in campaigns {
            inv.arg(sibling.epoch);
        }
        for item in items {
            inv.arg(item.campaign + 1).arg(item.quantity);
        }
        let reply: Vec<redis::Value> = self.run(inv).await?;
        parse(&reply, items.len())
    }
}

fn parse(reply: &[redis::Value], items: usize) -> Result<CartDecision, GateError> {
    let int = |i: usize| reply_int(reply, i);
    let status = reply_status(reply)?;
    let item = usize::try_from(int(1) - 1).unwrap_or(0);
    let refused = |decision| Ok(CartDecision::Refused { item, decision });
    match status.as_str() {
        "OK" if reply.len() == 2 + 3 * items => Ok(CartDecision::Reserved(
            (0..items)
                .map(|n| ItemReserved {
                    sequence: int(2 + 3 * n),
                    returns_seen: int(3 + 3 * n),
                    gate_gen: int(4 + 3 * n),
                })
                .collect(),
        )),
        "MISSING" => Ok(CartDecision::Missing(item)),
        "GROUP_LIMIT" => Ok(CartDecision::GroupLimit { held: int(2) }),
        "NOT_OPEN" => refused(Decision::NotOpen),
        "ENDED" => refused(Decision::Ended),
        "PAUSED" => refused(Decision::Paused),
        "OVER_LIMIT" => refused(Decision::OverLimit),
        "ALREADY" => refused(Decision::AlreadyParticipated),
        "SOLD_OUT" => refused(Decision::SoldOut {
            remaining: int(2),
            winners: int(3),
            in_flight: int(4),
            latest_reserved_ms_ago: int(5),
        }),
        other => Err(GateError::Protocol(format!("cart.lua answered {other}"))),
    }
}
