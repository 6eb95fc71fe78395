//! A purchase composed of the join's steps over all its items (docs/design.md §22): checked
//! against the group, reserved at the gate in one step, written in one transaction, then its
//! reservations closed; any refusal gives every reservation back and names the item.

use std::{sync::Arc, time::Instant};

use chrono::Utc;
use uuid::Uuid;

use crate::{
    campaign::Campaign,
    gate::{cart::CartItem, Entry, Release, Slot},
    group::GroupMembers,
    join::{
        request::{JoinError, JoinRequest},
        reserve::Reserve,
        settle::{Refusal, Settle},
    },
    write::{
        error::{Refused, WriteError},
        in_doubt::{InDoubt, Verdict},
        rows::{NewParticipation, PurchaseRow},
    },
};

use super::{
    reserve::{reserve_cart, GateCart},
    store::{self, StoredPurchase},
    CartError, CartRequest,
};

/// A cart to write: its items' wins, in the order the cart asked for them (each carries the
/// group's limit), and the purchase's own row; written by the one transaction every win takes
/// (`write::transaction::write_wins`).
#[derive(Debug, Clone)]
pub struct NewPurchase {
    pub row: PurchaseRow,
    pub items: Vec<NewParticipation>,
    /// Each item's campaign's count of returns when the gate reserved it (a refusal by MySQL
    /// gives it back with it, see `Release::SoldOut`).
    pub returns_seen: Vec<i64>,
}

/// A purchase's answer: as stored, and whether this request wrote it (`false`: a retry of the
/// same Idempotency-Key answered with the purchase it wrote).
#[derive(Debug, Clone)]
pub struct Purchased {
    pub purchase: StoredPurchase,
    pub created: bool,
}

/// Purchases: the join's reserve and settle steps over a cart's items. Cheap to clone.
#[derive(Clone)]
pub struct Carts {
    reserve: Arc<Reserve>,
    settle: Arc<Settle>,
}

impl Carts {
    pub(in crate::join) fn new(reserve: Arc<Reserve>, settle: Arc<Settle>) -> Self {
        Self { reserve, settle }
    }

    /// Every item won, or none (docs/design.md §22).
    #[tracing::instrument(level = "debug", skip_all, fields(group_id = req.group_id, user_id = req.user_id, items = req.items.len()))]
    pub async fn purchase(&self, req: CartRequest) -> Result<Purchased, CartError> {
        let commit_by = Instant::now() + self.reserve.commit_within();
        let asked = req.items.iter().map(|&(campaign, _)| campaign);
        let members = match self.reserve.groups().get_with(req.group_id, asked).await {
            Ok(members) => members,
            Err(sea_orm::DbErr::RecordNotFound(_)) => {
                return Err(CartError::GroupNotFound(req.group_id))
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(key) = &req.idempotency_key {
            if let Some(found) = store::find_by_key(self.settle.db(), req.user_id, key).await? {
                return replayed(found, &req);
            }
        }
        let campaigns = self.cart_campaigns(&members, &req).await?;
        let this = self.clone();
        let work = async move {
            let home = crate::bucket::home(req.user_id, members.group.buckets);
            let slot = campaigns[0].slot(home);
            let items: Vec<CartItem> = req
                .items
                .iter()
                .map(|&(campaign_id, quantity)| CartItem {
                    campaign: members
                        .campaigns
                        .iter()
                        .position(|s| s.campaign_id == campaign_id)
                        .unwrap_or(0),
                    quantity,
                })
                .collect();
            let now = Utc::now();
            let cart = GateCart {
                members: &members,
                campaigns: &campaigns,
                items: &items,
                slot,
                user_id: req.user_id,
                now_ms: now.timestamp_millis(),
            };
            let reserved = reserve_cart(&this.reserve, &cart, commit_by).await?;
            let purchase = new_purchase(
                &req,
                (&members, &campaigns, slot),
                (commit_by, now.timestamp_millis(), this.settle.topic()),
                &reserved,
            );
            this.write(purchase, &campaigns, &req).await
        };
        let task = tokio::spawn(tracing::Instrument::in_current_span(work));
        task.await.unwrap_or_else(|e| {
            Err(JoinError::Unavailable {
                what: "the purchase task",
                source: e.into(),
            }
            .into())
        })
    }

    /// Purchase `id` as stored, with its items.
    pub async fn find_purchase(&self, id: i64) -> Result<Option<StoredPurchase>, sea_orm::DbErr> {
        store::find(self.settle.db(), id).await
    }

    /// The items' campaigns, each in the group, each once, none with a waiting room.
    async fn cart_campaigns(
        &self,
        members: &GroupMembers,
        req: &CartRequest,
    ) -> Result<Vec<Arc<Campaign>>, CartError> {
        let mut campaigns: Vec<Arc<Campaign>> = Vec::with_capacity(req.items.len());
        for &(campaign_id, quantity) in &req.items {
            if !members
                .campaigns
                .iter()
                .any(|s| s.campaign_id == campaign_id)
            {
                return Err(CartError::Invalid(format!(
                    "campaign {campaign_id} is not in group {}",
                    req.group_id
                )));
            }
            if campaigns.iter().any(|c| c.id == campaign_id) {
                return Err(CartError::Invalid(format!(
                    "campaign {campaign_id} is named twice; ask for its quantity once"
                )));
            }
            let campaign = self.reserve.groups().campaign(campaign_id).await?;
            if campaign.admission.queued() {
                return Err(CartError::Invalid(format!(
                    "campaign {campaign_id} has a waiting room: join it on its own"
                )));
            }
            if quantity > campaign.per_user_limit {
                return Err(CartError::Item {
                    campaign_id,
                    error: JoinError::OverLimit {
                        quantity,
                        limit: campaign.per_user_limit,
                    },
                });
            }
            campaigns.push(campaign);
        }
        Ok(campaigns)
    }
}

/// A retry of a request whose purchase committed: the same items get it again, others are
/// refused as a reused key.
fn replayed(found: StoredPurchase, req: &CartRequest) -> Result<Purchased, CartError> {
    if found.group_id == req.group_id && found.holds(&req.items) {
        return Ok(Purchased {
            purchase: found.into_accepted(),
            created: false,
        });
    }
    let stored = found.items.iter().map(|p| p.quantity).sum();
    Err(JoinError::IdempotencyKeyReused { stored }.into())
}

/// The transaction's input: each item's win. The purchase is held as a whole: every item until
/// the earliest deadline among its campaigns' confirmation windows (confirmed at once when none
/// has one), so its items are confirmed, cancelled or expired together.
fn new_purchase(
    req: &CartRequest,
    (members, campaigns, slot): (&GroupMembers, &[Arc<Campaign>], Slot),
    (commit_by, reserved_at_ms, topic): (Instant, i64, Arc<str>),
    reserved: &[crate::gate::cart::ItemReserved],
) -> NewPurchase {
    let hold = campaigns
        .iter()
        .map(|c| c.confirm_within_seconds)
        .filter(|&s| s > 0)
        .min()
        .unwrap_or(0);
    let trace = req.trace.map(|t| t.to_string());
    let limit = crate::group::Limit {
        group_id: members.group.id,
        per_user: members.group.per_user_limit,
    };
    let items = campaigns
        .iter()
        .zip(&req.items)
        .zip(reserved)
        .map(|((campaign, &(_, quantity)), r)| {
            let slot = slot.sibling(campaign.id);
            let entry = Entry::in_slot(slot, req.user_id, quantity);
            NewParticipation {
                entry,
                sequence: crate::bucket::sequence(r.sequence, slot.bucket, campaign.buckets),
                gate_gen: r.gate_gen,
                reward_points: campaign.reward_points,
                event_id: Uuid::now_v7(),
                topic: topic.clone(),
                traceparent: trace.clone(),
                idempotency_key: None,
                confirm_within_seconds: hold,
                commit_by,
                ends_at: campaign.ends_at,
                reserved_at_ms,
                group: Some(limit),
            }
        })
        .collect();
    NewPurchase {
        row: PurchaseRow {
            group_id: members.group.id,
            user_id: req.user_id,
            idempotency_key: req.idempotency_key.clone(),
        },
        items,
        returns_seen: reserved.iter().map(|r| r.returns_seen).collect(),
    }
}

impl Carts {
    /// Writes the purchase; its reservations are closed, or every one of them given back.
    async fn write(
        &self,
        purchase: NewPurchase,
        campaigns: &[Arc<Campaign>],
        req: &CartRequest,
    ) -> Result<Purchased, CartError> {
        match self
            .settle
            .write_purchase(&purchase.items, &purchase.row)
            .await
        {
            Ok(wrote) => {
                let id = wrote.purchase_id.unwrap_or_default();
                self.written(id).await
            }
            Err(refused) => self.refused(refused, &purchase, campaigns, req).await,
        }
    }

    /// The committed purchase `id`, as its request answers it (as accepted, whatever became of
    /// it since the commit).
    async fn written(&self, id: i64) -> Result<Purchased, CartError> {
        let found = store::find(self.settle.db(), id).await?;
        found
            .map(|purchase| Purchased {
                purchase: purchase.into_accepted(),
                created: true,
            })
            .ok_or_else(|| {
                CartError::from(sea_orm::DbErr::RecordNotFound(format!(
                    "purchase {id} after its commit"
                )))
            })
    }

    /// A purchase not written: its taken key answers the purchase that took it; anything else
    /// as the join's settle step maps it ([`Settle::refusal`]), the item it is about going back
    /// as it says and the others undone.
    async fn refused(
        &self,
        Refused { index, error }: Refused,
        purchase: &NewPurchase,
        campaigns: &[Arc<Campaign>],
        req: &CartRequest,
    ) -> Result<Purchased, CartError> {
        if let WriteError::KeyUsed = error {
            self.give_back_items(purchase, index, Release::Undo).await;
            let key = req.idempotency_key.as_deref().unwrap_or_default();
            return match store::find_by_key(self.settle.db(), req.user_id, key).await? {
                Some(found) => replayed(found, req),
                None => Err(JoinError::Busy.into()),
            };
        }
        let item = &purchase.items[index];
        match self
            .settle
            .refusal(error, &item.entry, purchase.returns_seen[index])
        {
            Refusal::Back { how, answer } => {
                self.give_back_items(purchase, index, how).await;
                Err(match answer {
                    one @ (JoinError::SoldOut
                    | JoinError::Busy
                    | JoinError::Paused
                    | JoinError::Ended
                    | JoinError::AlreadyParticipated { .. }) => CartError::Item {
                        campaign_id: campaigns[index].id,
                        error: one,
                    },
                    whole => whole.into(),
                })
            }
            Refusal::InDoubt(doubt) => self.in_doubt(purchase, &doubt).await,
            // Only a join's batch ends unanswered; were it a purchase, MySQL decides later.
            Refusal::Unanswered(e) => {
                self.give_back_items(purchase, index, Release::Expire).await;
                Err(JoinError::from(e).into())
            }
        }
    }

    /// A COMMIT that went unanswered: its settlement (`write::in_doubt`, started by the write)
    /// ends the session and reads the items, all written or none; the first item's verdict is
    /// the purchase's, if it comes within the statement deadline (else 503, and the settlement
    /// goes on).
    async fn in_doubt(
        &self,
        purchase: &NewPurchase,
        doubt: &InDoubt,
    ) -> Result<Purchased, CartError> {
        let first = &purchase.items[0].entry;
        let within = self.settle.db().statement_timeout();
        match doubt
            .verdict(first.campaign_id, first.user_id, within)
            .await
        {
            Some(Verdict::Committed(item)) => {
                tracing::info!(
                    group_id = purchase.row.group_id,
                    user_id = first.user_id,
                    "The purchase committed although its answer was lost."
                );
                self.written(item.purchase_id.unwrap_or_default()).await
            }
            Some(_) => Err(JoinError::from(doubt.error().clone()).into()),
            None => {
                tracing::warn!(error = %doubt.error(), group_id = purchase.row.group_id, user_id = first.user_id,
                    "The purchase's commit is in doubt; its reservations are settled as soon as MySQL answers.");
                Err(JoinError::from(doubt.error().clone()).into())
            }
        }
    }

    /// Every item's reservation given back: item `index` as `how`, the others undone (nothing
    /// was written); an `Expire` applies to every item (the reconciler may have given them back
    /// already).
    async fn give_back_items(&self, purchase: &NewPurchase, index: usize, how: Release) {
        let expire_all = matches!(how, Release::Expire);
        for (i, item) in purchase.items.iter().enumerate() {
            let how = match () {
                _ if expire_all => Release::Expire,
                _ if i == index => how.clone(),
                _ => Release::Undo,
            };
            let req = JoinRequest {
                entry: item.entry,
                trace: None,
                idempotency_key: None,
                admission_token: None,
                bot_check: None,
            };
            self.settle
                .compensate(&req, None, how, item.reserved_at_ms)
                .await;
        }
    }
}
