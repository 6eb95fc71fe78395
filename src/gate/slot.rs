//! [`Slot`]: which gate state a call addresses. An unbucketed campaign has one, under the hash
//! tag `{c:<id>}`; a bucketed campaign has one per bucket, under `{c:<id>:<bucket>}`, each in its
//! own Redis Cluster slot, so that one campaign's joins spread over several primaries
//! (docs/design.md §21). Every key of one slot shares its tag, so each script stays in one slot.

use std::fmt;

/// One campaign's gate state, or one bucket's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    pub campaign_id: i64,
    /// `None`: the campaign is not bucketed (`{c:<id>}`, as every campaign was before buckets).
    pub bucket: Option<u16>,
}

impl Slot {
    /// Bucket `bucket` of a campaign of `buckets` buckets; the campaign's one state when
    /// `buckets` is 1.
    pub fn new(campaign_id: i64, buckets: u16, bucket: u16) -> Self {
        Self {
            campaign_id,
            bucket: (buckets > 1).then_some(bucket),
        }
    }

    /// Every slot of a campaign of `buckets` buckets, in bucket order.
    pub fn all(campaign_id: i64, buckets: u16) -> impl Iterator<Item = Slot> {
        (0..buckets.max(1)).map(move |b| Self::new(campaign_id, buckets, b))
    }

    /// The bucket as MySQL stores it (`participation.bucket`, `campaign_bucket.bucket`): 0 for
    /// an unbucketed campaign.
    pub fn bucket_or_zero(self) -> u16 {
        self.bucket.unwrap_or(0)
    }
}

/// An unbucketed campaign's one slot.
impl From<i64> for Slot {
    fn from(campaign_id: i64) -> Self {
        Self {
            campaign_id,
            bucket: None,
        }
    }
}

/// The hash tag's content: `c:<id>` or `c:<id>:<bucket>`.
impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.bucket {
            None => write!(f, "c:{}", self.campaign_id),
            Some(b) => write!(f, "c:{}:{b}", self.campaign_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bucket_is_the_campaigns_own_tag() {
        assert_eq!(Slot::new(7, 1, 3).to_string(), "c:7");
        assert_eq!(Slot::from(7), Slot::new(7, 1, 0));
        assert_eq!(Slot::new(7, 16, 3).to_string(), "c:7:3");
        assert_eq!(Slot::all(7, 1).collect::<Vec<_>>(), vec![Slot::from(7)]);
        assert_eq!(Slot::all(7, 4).count(), 4);
    }
}
