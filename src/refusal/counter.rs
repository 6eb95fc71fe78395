//! [`RefusalCounter`]: the refusals this instance answered since its last flush, in memory. A
//! refusal costs a map increment under a short lock; nothing leaves the process on its path.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use chrono::{NaiveDate, Utc};

use crate::{
    refusal::Reason,
    telemetry::metrics::{registry::ReasonLabels, Metrics},
};

/// One count's place: the campaign, the UTC day it was refused and why.
pub type CountKey = (i64, NaiveDate, Reason);

/// Distinct places kept between two flushes; past it new places are dropped (and counted in
/// [`RefusalCounter::dropped`]): a flood over more campaigns than any sale has cannot grow memory.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct RefusalCounter {
    counts: Mutex<BTreeMap<CountKey, i64>>,
    dropped: AtomicU64,
    /// `firstcome_refusals_total{reason}`: this instance's refusals, for Prometheus.
    metrics: std::sync::Arc<Metrics>,
}

impl RefusalCounter {
    pub fn new(metrics: std::sync::Arc<Metrics>) -> Self {
        Self {
            counts: Mutex::default(),
            dropped: AtomicU64::new(0),
            metrics,
        }
    }

    /// Counts one refusal of `campaign_id`, today (UTC).
    pub fn record(&self, campaign_id: i64, reason: Reason) {
        self.metrics
            .refusals
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
        let key = (campaign_id, Utc::now().date_naive(), reason);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&key) {
            *n += 1;
        } else if counts.len() < MAX_KEYS {
            counts.insert(key, 1);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one refusal answered with `code`, when that answer is a refusal.
    pub fn record_code(&self, campaign_id: i64, code: &str) {
        if let Some(reason) = Reason::of_code(code) {
            self.record(campaign_id, reason);
        }
    }

    /// Everything counted since the last take, in key order (so that instances adding at once
    /// lock the table's rows in one order).
    pub fn take(&self) -> BTreeMap<CountKey, i64> {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Gives back counts a flush could not write, to go with the next one.
    pub fn restore(&self, unwritten: BTreeMap<CountKey, i64>) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (key, n) in unwritten {
            let room = counts.len() < MAX_KEYS;
            match counts.get_mut(&key) {
                Some(m) => *m += n,
                None if room => {
                    counts.insert(key, n);
                }
                None => {
                    self.dropped.fetch_add(n.max(0) as u64, Ordering::Relaxed);
                }
            }
        }
    }

    /// Refusals not counted because the map was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str) -> Reason {
        Reason::of_code(code).expect("a counted code")
    }

    #[test]
    fn counts_add_up_per_campaign_and_reason_and_survive_a_failed_flush() {
        let counter = RefusalCounter::new(std::sync::Arc::new(Metrics::new()));
        for _ in 0..3 {
            counter.record(7, reason("SOLD_OUT"));
        }
        counter.record_code(7, "ALREADY_PARTICIPATED");
        counter.record_code(7, "CAMPAIGN_NOT_FOUND");
        counter.record(8, reason("SOLD_OUT"));
        let taken = counter.take();
        let by = |id: i64, code: &str| -> i64 {
            taken
                .iter()
                .filter(|((c, _, r), _)| *c == id && r.as_str() == code)
                .map(|(_, n)| *n)
                .sum()
        };
        assert_eq!(by(7, "SOLD_OUT"), 3);
        assert_eq!(by(7, "ALREADY_PARTICIPATED"), 1);
        assert_eq!(by(8, "SOLD_OUT"), 1);
        assert_eq!(taken.len(), 3);
        assert!(counter.take().is_empty());

        counter.record(7, reason("SOLD_OUT"));
        counter.restore(taken);
        let again = counter.take();
        assert_eq!(again.values().sum::<i64>(), 6);
        assert_eq!(counter.dropped(), 0);
    }
}
