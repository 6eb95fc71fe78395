//! Carts (design §22): a client buys 2–3 campaigns of one of the run's groups at once
//! (`POST /api/v1/groups/{id}/purchases`), every item won or none. The items come in a random
//! order (so two carts of the same campaigns lock them in opposite orders), one unit each, now
//! and then two of one (past the group's limit of 2 with another item: `GROUP_LIMIT_REACHED`).
//!
//! Every cart request carries an `Idempotency-Key` of its own: MySQL keeps it on the purchase
//! row, which is how the checker ties each purchase to the request that asked it. A cart that
//! timed out is retried with the same key (at most twice, as a join), and now and then an
//! answered cart is sent again with its key, which must answer the same purchase.
//!
//! A purchase the answers told of is later, now and then, confirmed, cancelled by its user or
//! cancelled by an admin (a refund) as a whole (`…/purchases/{id}/confirm|cancel`), beside the
//! per-campaign confirms and cancels of its items, which close the whole purchase too.

use rand::{rngs::StdRng, seq::SliceRandom, Rng};
use serde_json::json;

use crate::history::{EntryType, Func, Item, Value};

use super::{
    request::Request,
    workload::{lock, Client},
};

/// Share of answered carts sent once more with the same key and items.
const REPLAY_SHARE: f64 = 0.1;

/// Share of confirms, cancels and refunds that act on a whole purchase, when one is known.
const WHOLE_SHARE: f64 = 0.3;

/// A purchase a client was answered.
#[derive(Debug, Clone, Copy)]
pub struct Bought {
    group: i64,
    purchase: i64,
    user: i64,
    confirmed: bool,
    at: std::time::Instant,
}

impl Client<'_> {
    /// One cart of a random group of the run; nothing when the group has fewer than two
    /// campaigns left open.
    pub(super) async fn cart(&mut self, rng: &mut StdRng) {
        let g = rng.random_range(0..self.shared.groups.len());
        let group = self.shared.groups[g];
        // Now and then with a closed campaign, for CAMPAIGN_ENDED.
        let mut campaigns = self.shared.group_campaigns(g, rng.random_bool(0.03));
        if campaigns.len() < 2 {
            return;
        }
        campaigns.shuffle(rng);
        campaigns.truncate(rng.random_range(2..=campaigns.len().min(3)));
        let items: Vec<Item> = campaigns
            .iter()
            .map(|&campaign| Item {
                campaign,
                quantity: 1,
                ..Item::default()
            })
            .collect();
        let mut items = items;
        if rng.random_bool(0.1) {
            items[0].quantity = 2;
        }
        let user = rng.random_range(1..=self.params.group_users);
        let key = format!("cart-{}", self.shared.next_key(self.id));
        let last = self.buy(group, user, &items, &key, rng).await;
        if last.0 == EntryType::Ok && rng.random_bool(REPLAY_SHARE) {
            self.buy(group, user, &items, &key, rng).await;
        }
    }

    /// A confirm, cancel or refund of a whole purchase the answers told of, now and then.
    pub(super) fn purchase_lifecycle(&mut self, f: Func, rng: &mut StdRng) -> Option<Request> {
        if !rng.random_bool(WHOLE_SHARE) {
            return None;
        }
        let b = {
            let mut known = lock(&self.shared.purchases);
            known.retain(|b| b.at.elapsed() < std::time::Duration::from_secs(20));
            let mut fits = |b: &Bought| match f {
                Func::Refund => b.confirmed || rng.random_bool(0.2),
                _ => !b.confirmed,
            };
            let candidates: Vec<usize> = (0..known.len()).filter(|&i| fits(&known[i])).collect();
            let i = *candidates.get(rng.random_range(0..candidates.len().max(1)))?;
            // One whole-purchase call each: the few purchases would all end cancelled otherwise.
            known.swap_remove(i)
        };
        let (whole, action) = match f {
            Func::Confirm => (Func::PurchaseConfirm, "confirm"),
            Func::Cancel => (Func::PurchaseCancel, "cancel"),
            _ => (Func::PurchaseRefund, "cancel"),
        };
        let mut request = Request::post(
            whole,
            format!(
                "/api/v1/groups/{}/purchases/{}/{action}",
                b.group, b.purchase
            ),
            Value {
                group: Some(b.group),
                purchase: Some(b.purchase),
                user: Some(b.user),
                ..Value::default()
            },
        );
        request.admin = whole == Func::PurchaseRefund;
        Some(request)
    }

    /// What the clients keep of a purchase's answers.
    pub(super) fn learn_purchase(&self, f: Func, kind: EntryType, v: &Value) {
        let (EntryType::Ok, Some(purchase)) = (kind, v.purchase) else {
            return;
        };
        let mut known = lock(&self.shared.purchases);
        match f {
            Func::Cart => {
                let confirmed =
                    (v.items.iter().flatten()).all(|i| i.status.as_deref() == Some("CONFIRMED"));
                if let (Some(group), Some(user)) = (v.group, v.user) {
                    known.retain(|b| b.purchase != purchase);
                    known.push(Bought {
                        group,
                        purchase,
                        user,
                        confirmed,
                        at: std::time::Instant::now(),
                    });
                }
            }
            Func::PurchaseConfirm => known
                .iter_mut()
                .filter(|b| b.purchase == purchase)
                .for_each(|b| b.confirmed = true),
            _ => known.retain(|b| b.purchase != purchase),
        }
    }

    /// Sends the cart, retried with its key after an unknown outcome; returns the last answer.
    async fn buy(
        &mut self,
        group: i64,
        user: i64,
        items: &[Item],
        key: &str,
        rng: &mut StdRng,
    ) -> (EntryType, Value) {
        let asked: Vec<serde_json::Value> = (items.iter())
            .map(|i| json!({"campaignId": i.campaign, "quantity": i.quantity}))
            .collect();
        let mut last = (EntryType::Info, Value::default());
        for _attempt in 0..3 {
            let mut request = Request::post(
                Func::Cart,
                format!("/api/v1/groups/{group}/purchases"),
                Value {
                    group: Some(group),
                    user: Some(user),
                    items: Some(items.to_vec()),
                    idempotency_key: Some(key.to_owned()),
                    ..Value::default()
                },
            );
            request.body = Some(json!({"userId": user, "items": asked}));
            request.idempotency_key = Some(key.to_owned());
            last = self.send(request, rng).await;
            if last.0 != EntryType::Info || std::time::Instant::now() >= self.until {
                break;
            }
        }
        last
    }
}

/// A cart's answer: the purchase and each item's win, matched to the items asked by campaign.
pub(super) fn answered(body: &serde_json::Value, value: &mut Value) {
    let int = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_i64);
    value.purchase = int(body, "purchaseId");
    value.group = int(body, "groupId").or(value.group);
    let won = body.get("items").and_then(serde_json::Value::as_array);
    if value.items.is_none() {
        // A purchase's confirm or cancel asked no items: its answer lists them.
        let listed = won.into_iter().flatten().filter_map(|w| {
            Some(Item {
                campaign: int(w, "campaignId")?,
                quantity: int(w, "quantity").unwrap_or(1),
                ..Item::default()
            })
        });
        value.items = Some(listed.collect());
    }
    for item in value.items.iter_mut().flatten() {
        let Some(w) = won
            .into_iter()
            .flatten()
            .find(|w| int(w, "campaignId") == Some(item.campaign))
        else {
            continue;
        };
        item.participation_id = int(w, "participationId");
        item.sequence = int(w, "sequence");
        item.status = w.get("status").and_then(|s| s.as_str()).map(str::to_owned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_carts_answer_is_matched_to_the_items_asked_by_campaign() {
        let mut value = Value {
            items: Some(vec![
                Item {
                    campaign: 9,
                    quantity: 1,
                    ..Item::default()
                },
                Item {
                    campaign: 7,
                    quantity: 2,
                    ..Item::default()
                },
            ]),
            ..Value::default()
        };
        let body = json!({"purchaseId": 5, "groupId": 3, "items": [
            {"campaignId": 7, "participationId": 70, "sequence": 1, "status": "HELD"},
            {"campaignId": 9, "participationId": 90, "sequence": 4, "status": "HELD"}]});
        answered(&body, &mut value);
        assert_eq!((value.purchase, value.group), (Some(5), Some(3)));
        let items = value.items.unwrap_or_default();
        assert_eq!(items[0].participation_id, Some(90));
        assert_eq!(items[1].participation_id, Some(70));
        assert_eq!(items[1].quantity, 2);
        assert_eq!(items[0].status.as_deref(), Some("HELD"));
    }

    #[test]
    fn a_purchase_calls_answer_lists_its_items() {
        let mut value = Value {
            purchase: Some(5),
            ..Value::default()
        };
        let body = json!({"purchaseId": 5, "groupId": 3, "items": [
            {"campaignId": 7, "participationId": 70, "quantity": 1, "status": "CANCELLED"}]});
        answered(&body, &mut value);
        let items = value.items.unwrap_or_default();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].campaign, 7);
        assert_eq!(items[0].status.as_deref(), Some("CANCELLED"));
    }
}
