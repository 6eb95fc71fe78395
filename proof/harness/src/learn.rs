//! What the clients keep from the answers they get: wins to confirm, cancel or refund later,
//! purchases to confirm or cancel whole, which campaigns are paused or closed, the tokens the
//! waiting room issued. It steers the mix and is never trusted by the checker.

use std::time::Instant;

use crate::history::{EntryType, Func, Value};

use super::workload::{lock, Client, Win};

impl Client<'_> {
    /// What the clients keep from an answer, to steer later operations.
    pub(super) fn learn(&self, f: Func, kind: EntryType, v: &Value) {
        if f.is_purchase() {
            self.learn_purchase(f, kind, v);
        }
        if let (Func::Cart, EntryType::Ok) = (f, kind) {
            // One item only: a confirm, cancel or refund of it acts on the whole purchase, and
            // a purchase whose every item is a target is all but sure to end cancelled.
            if let Some(item) = v.items.iter().flatten().next() {
                let one = Value {
                    campaign: Some(item.campaign),
                    user: v.user,
                    status: item.status.clone(),
                    ..Value::default()
                };
                self.learn(Func::Join, kind, &one);
            }
            return;
        }
        let (Some(campaign), EntryType::Ok) = (v.campaign, kind) else {
            return;
        };
        // A campaign the clients were not given (the burst's) stays out of the mix: nobody
        // returns its units, so its tail is the sale's own.
        if !self.shared.plans.contains_key(&campaign) {
            return;
        }
        match f {
            Func::Join => {
                if let Some(user) = v.user {
                    lock(&self.shared.wins).push(Win {
                        campaign,
                        user,
                        confirmed: v.status.as_deref() == Some("CONFIRMED"),
                        at: Instant::now(),
                    });
                }
            }
            Func::Confirm | Func::Cancel | Func::Refund => {
                let mut wins = lock(&self.shared.wins);
                let same = |w: &Win| w.campaign == campaign && Some(w.user) == v.user;
                if f == Func::Confirm {
                    wins.iter_mut().filter(|w| same(w)).for_each(|w| {
                        w.confirmed = true;
                        w.at = Instant::now();
                    });
                } else {
                    wins.retain(|w| !same(w));
                }
            }
            Func::Pause | Func::Resume => {
                lock(&self.shared.paused).insert(campaign, f == Func::Pause);
            }
            Func::Close => lock(&self.shared.closed).push(campaign),
            Func::Queue | Func::Poll => {
                if let (Some(user), Some(token)) = (v.user, &v.admission_token) {
                    let mut tokens = lock(&self.shared.tokens);
                    if tokens.len() >= 64 {
                        tokens.remove(0);
                    }
                    tokens.push((campaign, user, token.clone()));
                }
            }
            _ => {}
        }
    }
}
