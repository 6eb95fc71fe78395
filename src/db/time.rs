//! Times as MySQL's `DATETIME(6)` columns keep them: UTC, to the microsecond. The one place the
//! service converts a time for the database, so a value written and read back compares equal to
//! the one the API returned.

use chrono::{DateTime, NaiveDateTime, Utc};

/// `t` truncated to the microsecond, the precision `DATETIME(6)` keeps.
pub fn precision(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// `t` as a `DATETIME(6)` column stores it: UTC, truncated to the microsecond.
pub fn to_db(t: DateTime<Utc>) -> NaiveDateTime {
    precision(t).naive_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanoseconds_are_cut_to_microseconds() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid");
        assert_eq!(precision(t).timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(to_db(t), precision(t).naive_utc());
        assert_eq!(precision(precision(t)), precision(t));
    }
}
