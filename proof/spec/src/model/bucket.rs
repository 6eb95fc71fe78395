//! Buckets (design §21): a campaign may split its stock into buckets, each served by its own
//! Redis keys and MySQL row. What the checker needs of the contract is here: a user's home
//! bucket, and the key each event goes to on the topic.
//!
//! - A user's home bucket is FNV-1a 64 over the ASCII decimal of the user id, modulo `buckets`
//!   (everything of one user in one campaign lives there: the one-win rule, the limit, the token).
//! - A bucketed campaign's win events (`ParticipationAccepted` and every later event of that win)
//!   are keyed `<campaign>:<bucket>`, the win's bucket being its user's home; its control events
//!   are keyed `<campaign>`. An unbucketed campaign keys every event `<campaign>`, as before.
//!
//! The order §2.5 promises is per key: one [`Lane`] of events per key, none across them.

use std::fmt;

use crate::event::{Envelope, Event};

/// The most buckets a campaign may have (§21: 1–1024).
pub const MAX_BUCKETS: i64 = 1024;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The user's home bucket among `buckets` (D2). `buckets` below 1 reads as 1.
pub fn home(user: i64, buckets: i64) -> i64 {
    let mut hash = FNV_OFFSET;
    for byte in user.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    let buckets = u64::try_from(buckets.max(1)).unwrap_or(1);
    // Below `buckets` ≤ i64::MAX, so it fits.
    i64::try_from(hash % buckets).unwrap_or(0)
}

/// One key of a campaign on the topic: the campaign's own, or one bucket's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// `<campaign>`: every event of an unbucketed campaign, the controls of a bucketed one.
    Campaign,
    /// `<campaign>:<bucket>`: the wins of one bucket and everything that follows them.
    Bucket(i64),
}

impl Lane {
    /// The record key this lane has for `campaign`.
    pub fn key(self, campaign: i64) -> String {
        match self {
            Lane::Campaign => campaign.to_string(),
            Lane::Bucket(b) => format!("{campaign}:{b}"),
        }
    }

    /// The lane the contract gives an event of a campaign with `buckets` buckets: a win's
    /// events go to its user's home bucket, controls (and everything unbucketed) to the
    /// campaign's key.
    pub fn of_event(e: &Envelope, buckets: i64) -> Lane {
        match e.event {
            _ if buckets <= 1 => Lane::Campaign,
            Event::Accepted { user, .. }
            | Event::Confirmed { user, .. }
            | Event::Cancelled { user, .. } => Lane::Bucket(home(user, buckets)),
            Event::Control { .. } => Lane::Campaign,
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lane::Campaign => f.write_str("the campaign's key"),
            Lane::Bucket(b) => write!(f, "bucket {b}'s key"),
        }
    }
}

/// Reads a record key: `<campaign>` or `<campaign>:<bucket>`, both decimal. `None` for
/// anything else.
pub fn parse_key(key: &str) -> Option<(i64, Lane)> {
    match key.split_once(':') {
        None => Some((key.parse().ok()?, Lane::Campaign)),
        Some((c, b)) => Some((c.parse().ok()?, Lane::Bucket(b.parse().ok()?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed apart (Python, FNV-1a 64 over the decimal bytes).
    #[test]
    fn the_home_bucket_is_fnv_1a_of_the_decimal_id() {
        // "42" hashes to 0x07ee7e07b4b19223.
        assert_eq!(home(42, 1 << 62), 0x07ee_7e07_b4b1_9223);
        assert_eq!(home(42, 4), 3);
        assert_eq!(home(42, 16), 3);
        // "-7" hashes to 0x07d01107b497db5d: the sign is one of the bytes.
        assert_eq!(home(-7, 16), 13);
        assert_eq!(home(10, 4), 0);
        assert_eq!(home(11, 4), 3);
        assert_eq!(home(12, 16), 10);
        assert_eq!(home(12, 1), 0);
        assert_eq!(home(12, 0), 0);
    }

    #[test]
    fn keys_read_as_the_campaigns_or_a_buckets() {
        assert_eq!(parse_key("7"), Some((7, Lane::Campaign)));
        assert_eq!(parse_key("7:3"), Some((7, Lane::Bucket(3))));
        assert_eq!(parse_key("7:"), None);
        assert_eq!(parse_key("x:1"), None);
        assert_eq!(Lane::Bucket(3).key(7), "7:3");
        assert_eq!(Lane::Campaign.key(7), "7");
    }
}
