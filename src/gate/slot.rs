//! [`Slot`]: which gate state a call addresses. An unbucketed campaign has one, under the hash
//! tag `{c:<id>}`; a bucketed campaign has one per bucket, under `{c:<id>:<bucket>}`, each in its
//! own Redis Cluster slot, so that one campaign's joins spread over several primaries
//! (docs/design.md §21). Every key of one slot shares its tag, so each script stays in one slot.
//!
//! A campaign in a group (docs/design.md §22) takes the group's tag instead, `{g:<group>}` or
//! `{g:<group>:<bucket>}`, and its keys name the campaign after the tag: every campaign of a
//! group keeps a user's state in one cluster slot (the user's home bucket, the same in each,
//! since a group's campaigns share its number of buckets), so one script checks the group's
//! per-user limit with the stock.

use std::fmt;

/// One campaign's gate state, or one bucket's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    pub campaign_id: i64,
    /// The campaign's group, whose tag its keys take; `None` for a campaign in no group.
    pub group: Option<i64>,
    /// `None`: the campaign is not bucketed (`{c:<id>}`, as every campaign was before buckets).
    pub bucket: Option<u16>,
}

impl Slot {
    /// Bucket `bucket` of a campaign of `buckets` buckets; the campaign's one state when
    /// `buckets` is 1.
    pub fn new(campaign_id: i64, group: Option<i64>, buckets: u16, bucket: u16) -> Self {
        Self {
            campaign_id,
            group,
            bucket: (buckets > 1).then_some(bucket),
        }
    }

    /// Every slot of a campaign of `buckets` buckets, in bucket order.
    pub fn all(campaign_id: i64, group: Option<i64>, buckets: u16) -> impl Iterator<Item = Slot> {
        (0..buckets.max(1)).map(move |b| Self::new(campaign_id, group, buckets, b))
    }

    /// The one slot of a campaign in no group and without buckets.
    pub fn solo(campaign_id: i64) -> Self {
        Self::new(campaign_id, None, 1, 0)
    }

    /// The same bucket of another campaign of this slot's group: a sibling's state of the same
    /// user lives there (docs/design.md §22).
    pub fn sibling(self, campaign_id: i64) -> Self {
        Self {
            campaign_id,
            ..self
        }
    }

    /// What every key of the slot starts with after the prefix: `{c:<id>}:`, or for a campaign
    /// in a group `{g:<group>}:<id>:` (the tag shared by the group, then the campaign).
    pub fn key_base(self) -> String {
        match self.group {
            None => format!("{{{self}}}:"),
            Some(_) => format!("{{{self}}}:{}:", self.campaign_id),
        }
    }

    /// The bucket as MySQL stores it (`participation.bucket`, `campaign_bucket.bucket`): 0 for
    /// an unbucketed campaign.
    pub fn bucket_or_zero(self) -> u16 {
        self.bucket.unwrap_or(0)
    }
}

/// The hash tag's content: `c:<id>` or `c:<id>:<bucket>`; `g:<group>` or `g:<group>:<bucket>`
/// for a campaign in a group.
impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, id) = match self.group {
            None => ('c', self.campaign_id),
            Some(group) => ('g', group),
        };
        match self.bucket {
            None => write!(f, "{kind}:{id}"),
            Some(b) => write!(f, "{kind}:{id}:{b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bucket_is_the_campaigns_own_tag() {
        assert_eq!(Slot::new(7, None, 1, 3).to_string(), "c:7");
        assert_eq!(Slot::solo(7), Slot::new(7, None, 1, 0));
        assert_eq!(Slot::new(7, None, 16, 3).to_string(), "c:7:3");
        assert_eq!(
            Slot::all(7, None, 1).collect::<Vec<_>>(),
            vec![Slot::solo(7)]
        );
        assert_eq!(Slot::all(7, None, 4).count(), 4);
        assert_eq!(Slot::solo(7).key_base(), "{c:7}:");
    }

    #[test]
    fn a_groups_campaigns_share_its_tag_and_keep_their_own_keys() {
        let a = Slot::new(7, Some(2), 4, 1);
        let b = a.sibling(9);
        assert_eq!(a.to_string(), b.to_string());
        assert_eq!(a.to_string(), "g:2:1");
        assert_eq!(a.key_base(), "{g:2:1}:7:");
        assert_eq!(b.key_base(), "{g:2:1}:9:");
        assert_eq!(Slot::new(7, Some(2), 1, 0).key_base(), "{g:2}:7:");
    }
}
