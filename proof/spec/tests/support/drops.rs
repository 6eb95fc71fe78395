//! Crafted sales of a group (design §22): campaigns 1..=n of one group with a per-user limit,
//! joined singly and bought in carts. Like `Sale`, a `Drop` records operations as the harness
//! would and commits what a correct service would (every win final at once, so no holds), and
//! never refuses anything by itself: a test plants an anomaly by committing what a correct
//! service would not, or by editing the history or the final state afterwards.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use firstcome_proof_spec::{
    check::{self, Options},
    final_state::{
        BucketState, Campaign, CampaignGroup, FinalState, Group, GroupHolding, GroupState,
        Participation, ParticipationPurchase, Purchase, TopicRecord,
    },
    history::{self, Entry, EntryType, Func, History, Item, Process, Value},
    report::Report,
};
use serde_json::json;

pub const GROUP: i64 = 9;
const STEP: u64 = 1_000_000;

pub struct Drop {
    entries: Vec<(usize, Entry)>,
    records: Vec<TopicRecord>,
    now: u64,
    stock: i64,
    campaigns: i64,
    pub limit: i64,
    free: BTreeMap<i64, i64>,
    next_pid: i64,
    next_purchase: i64,
    pub participations: Vec<(Participation, Option<i64>)>,
    pub purchases: Vec<Purchase>,
}

impl Drop {
    /// `campaigns` campaigns of `stock` units in group [`GROUP`] with `limit` units a user.
    pub fn new(campaigns: i64, stock: i64, limit: i64) -> Self {
        Self {
            entries: Vec::new(),
            records: Vec::new(),
            now: 0,
            stock,
            campaigns,
            limit,
            free: (1..=campaigns).map(|c| (c, stock)).collect(),
            next_pid: 100,
            next_purchase: 500,
            participations: Vec::new(),
            purchases: Vec::new(),
        }
    }

    fn wall(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_790_000_000, 0).unwrap_or_default()
            + Duration::nanoseconds(self.now as i64)
    }

    pub fn entry(&mut self, kind: EntryType, process: u64, f: Func, value: Value) {
        self.now += STEP;
        let line = self.entries.len() + 1;
        let entry = Entry {
            kind,
            process: Process::Client(process),
            time: self.now,
            f,
            value,
        };
        self.entries.push((line, entry));
    }

    /// Commits a win (with its event, naming `purchase`) and returns its participation id.
    pub fn commit(
        &mut self,
        campaign: i64,
        user: i64,
        quantity: i64,
        purchase: Option<i64>,
    ) -> i64 {
        let pid = self.next_pid;
        self.next_pid += 1;
        let mut payload = json!({"eventId": format!("0193a5f2-0000-7000-8000-{pid:012}"),
            "eventType": "ParticipationAccepted", "occurredAt": self.wall(),
            "campaignId": campaign, "participationId": pid, "userId": user,
            "quantity": quantity, "sequence": pid, "rewardPoints": 0, "status": "CONFIRMED"});
        if let Some(p) = purchase {
            payload["purchaseId"] = json!(p);
        }
        self.publish(campaign, payload);
        *self.free.entry(campaign).or_default() -= quantity;
        let p = Participation {
            id: pid,
            campaign,
            user,
            quantity,
            status: "CONFIRMED".to_owned(),
            accepted_at: None,
            hold_expires_at: None,
            cancel_reason: None,
            cancelled_at: None,
        };
        self.participations.push((p, purchase));
        pid
    }

    fn join_value(campaign: i64, user: i64, quantity: i64) -> Value {
        Value {
            campaign: Some(campaign),
            user: Some(user),
            quantity: Some(quantity),
            ..Value::default()
        }
    }

    /// A single join that wins.
    pub fn join(&mut self, process: u64, campaign: i64, user: i64, quantity: i64) -> i64 {
        let asked = Self::join_value(campaign, user, quantity);
        self.entry(EntryType::Invoke, process, Func::Join, asked.clone());
        let pid = self.commit(campaign, user, quantity, None);
        let answer = Value {
            participation_id: Some(pid),
            status: Some("CONFIRMED".to_owned()),
            sequence: Some(pid),
            ..asked
        };
        self.entry(EntryType::Ok, process, Func::Join, answer);
        pid
    }

    /// A single join refused with `code`.
    pub fn join_refused(&mut self, process: u64, campaign: i64, user: i64, qty: i64, code: &str) {
        let asked = Self::join_value(campaign, user, qty);
        self.entry(EntryType::Invoke, process, Func::Join, asked.clone());
        let answer = Value {
            code: Some(code.to_owned()),
            ..asked
        };
        self.entry(EntryType::Fail, process, Func::Join, answer);
    }

    pub fn cart_value(user: i64, items: &[(i64, i64)], key: &str) -> Value {
        Value {
            group: Some(GROUP),
            user: Some(user),
            items: Some(
                (items.iter())
                    .map(|&(campaign, quantity)| Item {
                        campaign,
                        quantity,
                        ..Item::default()
                    })
                    .collect(),
            ),
            idempotency_key: Some(key.to_owned()),
            ..Value::default()
        }
    }

    /// Commits a purchase of `items` for `user` under `key`; returns its id and the items' ids.
    pub fn commit_cart(&mut self, user: i64, items: &[(i64, i64)], key: &str) -> (i64, Vec<i64>) {
        let purchase = self.next_purchase;
        self.next_purchase += 1;
        self.purchases.push(Purchase {
            id: purchase,
            group: GROUP,
            user,
            idempotency_key: Some(key.to_owned()),
        });
        let pids = (items.iter())
            .map(|&(c, q)| self.commit(c, user, q, Some(purchase)))
            .collect();
        (purchase, pids)
    }

    /// A cart that wins every item; returns the purchase id.
    pub fn cart(&mut self, process: u64, user: i64, items: &[(i64, i64)], key: &str) -> i64 {
        let asked = Self::cart_value(user, items, key);
        self.entry(EntryType::Invoke, process, Func::Cart, asked.clone());
        let (purchase, pids) = self.commit_cart(user, items, key);
        self.answer_cart(process, asked, purchase, &pids);
        purchase
    }

    /// Records the `ok` of a cart as the service answers it.
    pub fn answer_cart(&mut self, process: u64, asked: Value, purchase: i64, pids: &[i64]) {
        let mut answer = asked;
        answer.purchase = Some(purchase);
        for (item, &pid) in answer.items.iter_mut().flatten().zip(pids) {
            item.participation_id = Some(pid);
            item.sequence = Some(pid);
            item.status = Some("CONFIRMED".to_owned());
        }
        self.entry(EntryType::Ok, process, Func::Cart, answer);
    }

    /// A cart refused with `code`, naming `named` (the item that could not be had).
    pub fn cart_refused(
        &mut self,
        process: u64,
        (user, items, key): (i64, &[(i64, i64)], &str),
        code: &str,
        named: Option<i64>,
    ) {
        let asked = Self::cart_value(user, items, key);
        self.entry(EntryType::Invoke, process, Func::Cart, asked.clone());
        let answer = Value {
            code: Some(code.to_owned()),
            campaign: named,
            ..asked
        };
        self.entry(EntryType::Fail, process, Func::Cart, answer);
    }

    /// Appends `payload` to its campaign's partition, keyed by the campaign.
    fn publish(&mut self, campaign: i64, payload: serde_json::Value) {
        let offset = self
            .records
            .iter()
            .filter(|r| r.partition == campaign as i32)
            .count();
        self.records.push(TopicRecord {
            partition: campaign as i32,
            offset: offset as i64,
            key: Some(campaign.to_string()),
            payload,
        });
    }

    /// Commits an admin's cancel (a refund) of a confirmed win: its event and its row.
    pub fn commit_refund(&mut self, pid: i64) {
        let Some(i) = self.participations.iter().position(|p| p.0.id == pid) else {
            return;
        };
        let (campaign, user, quantity) = {
            let p = &self.participations[i].0;
            (p.campaign, p.user, p.quantity)
        };
        let payload = json!({"eventId": format!("0193a5f2-0000-7000-9000-{pid:012}"),
            "eventType": "ParticipationCancelled", "occurredAt": self.wall(),
            "campaignId": campaign, "participationId": pid, "userId": user,
            "quantity": quantity, "reason": "ADMIN", "previousStatus": "CONFIRMED",
            "rewardPoints": 0});
        self.publish(campaign, payload);
        *self.free.entry(campaign).or_default() += quantity;
        let p = &mut self.participations[i].0;
        p.status = "CANCELLED".to_owned();
        p.cancel_reason = Some("ADMIN".to_owned());
    }

    /// An admin's cancel of a whole purchase, answered with every item `CANCELLED`.
    pub fn refund_purchase(&mut self, process: u64, purchase: i64, commit: &[i64]) {
        let user = self
            .purchases
            .iter()
            .find(|p| p.id == purchase)
            .map(|p| p.user);
        let asked = Value {
            group: Some(GROUP),
            purchase: Some(purchase),
            user,
            ..Value::default()
        };
        self.entry(
            EntryType::Invoke,
            process,
            Func::PurchaseRefund,
            asked.clone(),
        );
        for &pid in commit {
            self.commit_refund(pid);
        }
        let items = (self.participations.iter())
            .filter(|p| p.1 == Some(purchase))
            .map(|p| Item {
                campaign: p.0.campaign,
                quantity: p.0.quantity,
                participation_id: Some(p.0.id),
                status: Some("CANCELLED".to_owned()),
                ..Item::default()
            })
            .collect();
        let answer = Value {
            items: Some(items),
            ..asked
        };
        self.entry(EntryType::Ok, process, Func::PurchaseRefund, answer);
    }

    /// The participation ids of a purchase's items.
    pub fn items_of(&self, purchase: i64) -> Vec<i64> {
        (self.participations.iter())
            .filter(|p| p.1 == Some(purchase))
            .map(|p| p.0.id)
            .collect()
    }

    pub fn history(&self) -> History {
        history::pair(self.entries.clone()).expect("a well-formed history")
    }

    pub fn final_state(&self) -> FinalState {
        FinalState {
            campaigns: (1..=self.campaigns)
                .map(|id| Campaign {
                    id,
                    total_stock: self.stock,
                    remaining_stock: self.free[&id],
                    initial_stock: Some(self.stock),
                    per_user_limit: Some(self.limit),
                    admission: Some("OPEN".to_owned()),
                    ..Campaign::default()
                })
                .collect(),
            participations: self.participations.iter().map(|p| p.0.clone()).collect(),
            events: self.records.clone(),
            ..FinalState::default()
        }
    }

    pub fn group_state(&self) -> GroupState {
        let mut holdings: BTreeMap<i64, i64> = BTreeMap::new();
        for (p, _) in &self.participations {
            *holdings.entry(p.user).or_default() += p.quantity;
        }
        GroupState {
            campaigns: (1..=self.campaigns)
                .map(|id| CampaignGroup {
                    id,
                    group: Some(GROUP),
                })
                .collect(),
            participations: (self.participations.iter())
                .map(|(p, purchase)| ParticipationPurchase {
                    id: p.id,
                    purchase: *purchase,
                })
                .collect(),
            groups: Some(vec![Group {
                id: GROUP,
                per_user_limit: self.limit,
                buckets: 1,
            }]),
            purchases: Some(self.purchases.clone()),
            group_holdings: Some(
                (holdings.into_iter())
                    .map(|(user, units)| GroupHolding {
                        group: GROUP,
                        user,
                        units,
                    })
                    .collect(),
            ),
        }
    }

    pub fn check(&self) -> Report {
        check_with(&self.history(), &self.final_state(), &self.group_state())
    }
}

pub fn check_with(history: &History, state: &FinalState, groups: &GroupState) -> Report {
    let buckets = BucketState::default();
    check::check_all(history, state, &buckets, groups, &Options::default())
}
