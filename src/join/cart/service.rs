//! A purchase composed of the join's steps over all its items (docs/design.md §22): checked
//! against the group, reserved at the gate in one step, written in one transaction, then its
//! reservations closed; any refusal gives every reservation back and names the item.

use std::{sync::Arc, time::Instant};

use chrono::Utc;
use uuid::Uuid;

use crate::{
    campaign::Campaign,
    gate::{cart::CartItem, Committed, Entry, Release, Slot},
    group::GroupMembers,
    join::{
        request::{JoinError, JoinRequest},
        service::ParticipationService,
        settle::Settle,
        transaction::{NewParticipation, WriteError},
    },
};

use super::{
    reserve::GateCart,
    store::{self, PurchaseRow, StoredPurchase},
    write::{self, NewPurchase, PurchaseWriteError},
    CartError, CartRequest,
};

/// A purchase in doubt is asked again as a join's batch is (`join::in_doubt::RetryPause`), for
/// at most a minute (then the reconciler has its reservations).
const IN_DOUBT_GIVE_UP: std::time::Duration = std::time::Duration::from_secs(60);

/// A purchase's answer: as stored, and whether this request wrote it (`false`: a retry of the
/// same Idempotency-Key answered with the purchase it wrote).
#[derive(Debug, Clone)]
pub struct Purchased {
    pub purchase: StoredPurchase,
    pub created: bool,
}

impl ParticipationService {
    /// Every item won, or none (docs/design.md §22).
    #[tracing::instrument(level = "debug", skip_all, fields(group_id = req.group_id, user_id = req.user_id, items = req.items.len()))]
    pub async fn purchase(&self, req: CartRequest) -> Result<Purchased, CartError> {
        let commit_by = Instant::now() + self.reserve.commit_within;
        let asked = req.items.iter().map(|&(campaign, _)| campaign);
        let members = match self.reserve.groups.get_with(req.group_id, asked).await {
            Ok(members) => members,
            Err(sea_orm::DbErr::RecordNotFound(_)) => {
                return Err(CartError::GroupNotFound(req.group_id))
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(key) = &req.idempotency_key {
            if let Some(found) = store::find_by_key(&self.settle.db, req.user_id, key).await? {
                return replayed(found, &req);
            }
        }
        let campaigns = self.cart_campaigns(&members, &req).await?;
        let (reserve, settle) = (self.reserve.clone(), self.settle.clone());
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
            let reserved = reserve.reserve_cart(&cart, commit_by).await?;
            let purchase = new_purchase(
                &req,
                (&members, &campaigns, slot),
                (commit_by, now.timestamp_millis(), settle.sink.topic.clone()),
                &reserved,
            );
            settle.purchase(purchase, &campaigns, &req).await
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
        store::find(&self.settle.db, id).await
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
            let campaign = self.reserve.groups.campaign(campaign_id).await?;
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
            purchase: found,
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
            let entry = Entry {
                campaign_id: campaign.id,
                user_id: req.user_id,
                quantity,
                bucket: slot.bucket,
                group: slot.group,
            };
            NewParticipation {
                entry,
                sequence: crate::bucket::sequence(r.sequence, slot.bucket, campaign.buckets),
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

impl Settle {
    /// Writes the purchase; closes its reservations, or gives every one of them back.
    async fn purchase(
        &self,
        purchase: NewPurchase,
        campaigns: &[Arc<Campaign>],
        req: &CartRequest,
    ) -> Result<Purchased, CartError> {
        let written = write::write(&self.db, &purchase, &*self.hooks).await;
        let refusal = match written {
            Ok(done) => {
                self.sink.wakeup.notify_one();
                self.close_items(&purchase).await;
                let found = store::find(&self.db, done.purchase_id).await?;
                return found
                    .map(|purchase| Purchased {
                        purchase,
                        created: true,
                    })
                    .ok_or_else(|| {
                        CartError::from(sea_orm::DbErr::RecordNotFound(format!(
                            "purchase {} after its commit",
                            done.purchase_id
                        )))
                    });
            }
            Err(refusal) => refusal,
        };
        self.purchase_refused(refusal, &purchase, campaigns, req)
            .await
    }

    async fn purchase_refused(
        &self,
        refusal: PurchaseWriteError,
        purchase: &NewPurchase,
        campaigns: &[Arc<Campaign>],
        req: &CartRequest,
    ) -> Result<Purchased, CartError> {
        let item_error = |index: usize, error: JoinError| CartError::Item {
            campaign_id: campaigns[index].id,
            error,
        };
        match refusal {
            PurchaseWriteError::Item { index, refused } => {
                let (how, error) = match refused {
                    // The gate ran ahead of the row: it takes the row's stock. A bucket's row says
                    // nothing about the campaign (units may be in the siblings): SERVICE_BUSY.
                    WriteError::SoldOut {
                        remaining_stock,
                        control_seq,
                    } => (
                        Some(Release::SoldOut {
                            remaining_stock,
                            control_seq,
                            returns_seen: purchase.returns_seen[index],
                        }),
                        match purchase.items[index].entry.bucket {
                            None => JoinError::SoldOut,
                            Some(_) => JoinError::Busy,
                        },
                    ),
                    WriteError::Paused => (None, JoinError::Paused),
                    WriteError::Closed => (None, JoinError::Ended),
                    WriteError::Duplicate => (
                        Some(Release::KeepUser),
                        JoinError::AlreadyParticipated {
                            participation_id: None,
                        },
                    ),
                    other => (
                        None,
                        JoinError::from(sea_orm::DbErr::Custom(other.to_string())),
                    ),
                };
                self.give_back_items(purchase, Some((index, how))).await;
                Err(item_error(index, error))
            }
            PurchaseWriteError::GroupLimit { limit, held } => {
                self.give_back_items(purchase, None).await;
                Err(JoinError::GroupLimit { limit, held }.into())
            }
            PurchaseWriteError::KeyUsed => {
                self.give_back_items(purchase, None).await;
                let key = req.idempotency_key.as_deref().unwrap_or_default();
                match store::find_by_key(&self.db, req.user_id, key).await? {
                    Some(found) => replayed(found, req),
                    None => Err(JoinError::Busy.into()),
                }
            }
            PurchaseWriteError::Stale => {
                self.give_back_items(purchase, Some((0, Some(Release::Expire))))
                    .await;
                Err(JoinError::Busy.into())
            }
            PurchaseWriteError::InDoubt(doubt) => self.purchase_in_doubt(purchase, &doubt).await,
            PurchaseWriteError::Db(e) => {
                self.give_back_items(purchase, None).await;
                Err(JoinError::from(e).into())
            }
        }
    }

    /// A COMMIT that went unanswered: once MySQL answers and the session is gone, the first
    /// item's win (by its event id) says whether the purchase committed, all of it or none. Asked
    /// again every ≤ 200 ms while MySQL does not answer (a failover): given up, the reservations
    /// would withhold their units until the reconciler (a 30-minute proof run saw a cart's do so
    /// for its 15 s), as a join's batch in doubt is settled (`join::in_doubt`).
    async fn purchase_in_doubt(
        &self,
        purchase: &NewPurchase,
        doubt: &crate::join::in_doubt::InDoubt,
    ) -> Result<Purchased, CartError> {
        let started = Instant::now();
        let mut pause = crate::join::in_doubt::RetryPause::new();
        let committed = loop {
            match self.in_doubt_verdict(purchase, doubt).await {
                Ok(committed) => break committed,
                Err(e) if started.elapsed() < IN_DOUBT_GIVE_UP => {
                    tracing::debug!(error = %e, "A purchase in doubt: MySQL does not answer yet.");
                    pause.wait().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e,
                        "A purchase in doubt could not be settled; the reconciler will.");
                    return Err(e.into());
                }
            }
        };
        match committed {
            Some(purchase_id) => {
                self.close_items(purchase).await;
                let stored = store::find(&self.db, purchase_id).await?;
                stored
                    .map(|purchase| Purchased {
                        purchase,
                        created: true,
                    })
                    .ok_or_else(|| JoinError::Busy.into())
            }
            None => {
                self.give_back_items(purchase, Some((0, Some(Release::Expire))))
                    .await;
                Err(JoinError::Busy.into())
            }
        }
    }

    /// The purchase's id when its first item's win (by its event id) is in MySQL, once the
    /// COMMIT's session is gone; `None` when it is not (nothing committed).
    async fn in_doubt_verdict(
        &self,
        purchase: &NewPurchase,
        doubt: &crate::join::in_doubt::InDoubt,
    ) -> Result<Option<i64>, sea_orm::DbErr> {
        crate::join::in_doubt::end_session(&self.db, doubt.session()).await?;
        let first = &purchase.items[0];
        let found =
            crate::win::store::find(&self.db, first.entry.campaign_id, first.entry.user_id).await?;
        Ok(found
            .filter(|p| p.event_id.as_deref() == Some(first.event_id.to_string().as_str()))
            .map(|p| p.purchase_id.unwrap_or_default()))
    }

    /// The committed items' reservations closed (best effort: the reconciler finds them won).
    async fn close_items(&self, purchase: &NewPurchase) {
        for item in &purchase.items {
            let won = [Committed::from(&item.entry)];
            if let Err(e) = self.gate.settle(item.entry.slot(), &won).await {
                tracing::debug!(error = %e, "Could not close a purchase's reservation; the reconciler will.");
            }
        }
    }

    /// Every item's reservation given back: undone (nothing was written), but for `special`,
    /// the item a refusal was about and how it goes back (`None`: undone too). An `Expire` there
    /// applies to every item (the reconciler may have given them back already).
    async fn give_back_items(
        &self,
        purchase: &NewPurchase,
        special: Option<(usize, Option<Release>)>,
    ) {
        let expire_all = matches!(special, Some((_, Some(Release::Expire))));
        for (index, item) in purchase.items.iter().enumerate() {
            let how = match &special {
                _ if expire_all => Release::Expire,
                Some((i, Some(how))) if *i == index => how.clone(),
                _ => Release::Undo,
            };
            let req = JoinRequest {
                entry: item.entry,
                trace: None,
                idempotency_key: None,
                admission_token: None,
            };
            self.compensate(&req, None, how, item.reserved_at_ms).await;
        }
    }
}
