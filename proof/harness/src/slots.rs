//! Where a campaign's gate state lives in the run's Redis (names read from the service's Lua
//! scripts and design §21, not imported): an unbucketed campaign's keys under the hash tag
//! `{c:<id>}`, a bucketed one's under `{c:<id>:<bucket>}`, one set of keys per bucket. A
//! campaign in a group (design §22) takes the group's tag instead and names itself after it:
//! `{g:<group>}:<id>:<part>`, or `{g:<group>:<bucket>}:<id>:<part>` when bucketed (the
//! service's `src/gate/slot.rs`, read, not imported). Settling and taking the final state both
//! walk every slot of the run's campaigns.

/// One gate state: a campaign's, or one bucket's of a bucketed campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    pub campaign: i64,
    /// The campaign's group, whose hash tag its keys take; `None`: in no group.
    pub group: Option<i64>,
    /// `None`: the campaign is not bucketed.
    pub bucket: Option<i64>,
}

impl Slot {
    /// Every slot of a campaign of `buckets` buckets, in bucket order (one when `buckets` ≤ 1).
    pub fn all(campaign: i64, buckets: i64, group: Option<i64>) -> impl Iterator<Item = Slot> {
        let bucketed = buckets > 1;
        (0..buckets.max(1)).map(move |b| Slot {
            campaign,
            group,
            bucket: bucketed.then_some(b),
        })
    }

    /// `<prefix>{c:<id>}:<part>` or `<prefix>{c:<id>:<bucket>}:<part>`; in a group
    /// `<prefix>{g:<group>}:<id>:<part>` or `<prefix>{g:<group>:<bucket>}:<id>:<part>`.
    pub fn key(self, prefix: &str, part: &str) -> String {
        let c = self.campaign;
        match (self.group, self.bucket) {
            (None, None) => format!("{prefix}{{c:{c}}}:{part}"),
            (None, Some(b)) => format!("{prefix}{{c:{c}:{b}}}:{part}"),
            (Some(g), None) => format!("{prefix}{{g:{g}}}:{c}:{part}"),
            (Some(g), Some(b)) => format!("{prefix}{{g:{g}:{b}}}:{c}:{part}"),
        }
    }

    /// The bucket as the final state and MySQL write it: 0 for an unbucketed campaign.
    pub fn bucket_or_zero(self) -> i64 {
        self.bucket.unwrap_or(0)
    }
}

/// Every slot of the campaigns, each given with its bucket count and its group.
pub fn of_campaigns(campaigns: impl IntoIterator<Item = (i64, i64, Option<i64>)>) -> Vec<Slot> {
    campaigns
        .into_iter()
        .flat_map(|(id, buckets, group)| Slot::all(id, buckets, group))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unbucketed_campaign_has_its_own_tag_and_a_bucketed_one_a_tag_per_bucket() {
        let slots = of_campaigns([(7, 1, None), (9, 3, None)]);
        let keys: Vec<String> = slots.iter().map(|s| s.key("proof:", "meta")).collect();
        assert_eq!(
            keys,
            [
                "proof:{c:7}:meta",
                "proof:{c:9:0}:meta",
                "proof:{c:9:1}:meta",
                "proof:{c:9:2}:meta"
            ]
        );
        let buckets: Vec<i64> = slots.iter().map(|s| s.bucket_or_zero()).collect();
        assert_eq!(buckets, [0, 0, 1, 2]);
    }

    #[test]
    fn a_grouped_campaign_takes_its_groups_tag_and_names_itself_after_it() {
        let slots = of_campaigns([(7, 1, Some(2)), (9, 2, Some(3))]);
        let keys: Vec<String> = slots.iter().map(|s| s.key("proof:", "meta")).collect();
        assert_eq!(
            keys,
            [
                "proof:{g:2}:7:meta",
                "proof:{g:3:0}:9:meta",
                "proof:{g:3:1}:9:meta"
            ]
        );
    }
}
