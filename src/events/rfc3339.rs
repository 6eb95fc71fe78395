//! An event's times (`occurredAt`, `holdExpiresAt`) in its JSON: RFC 3339.
//!
//! Written as chrono's `Serialize` writes them (`Z`, the fraction in 0, 3, 6 or 9 digits, the
//! fewest that hold it), digit by digit: chrono goes through `core::fmt`, a third of an event's
//! JSON. Read with chrono's RFC 3339 parser first: chrono's own `Deserialize` takes its general
//! format parser, several times the work for the same text; a text that parser accepts and RFC
//! 3339 does not still reads as before (its error, if any, is chrono's as before).

use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{
    de::{self, Deserializer, Visitor},
    Serialize, Serializer,
};

/// `#[serde(serialize_with = "rfc3339::serialize")]` on a `DateTime<Utc>`.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut text = [0u8; 30];
    match write(t, &mut text) {
        // Only ASCII digits and separators were written.
        Some(n) => s.serialize_str(std::str::from_utf8(&text[..n]).unwrap_or_default()),
        None => t.serialize(s),
    }
}

/// `#[serde(serialize_with = "rfc3339::serialize_option")]` on an `Option<DateTime<Utc>>`.
pub fn serialize_option<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize(t, s),
        None => s.serialize_none(),
    }
}

/// Writes `t` into `out`, returning its length; `None` for what is left to chrono (a year
/// outside 0–9999, a leap second).
fn write(t: &DateTime<Utc>, out: &mut [u8; 30]) -> Option<usize> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let nano = t.nanosecond();
    if nano >= 1_000_000_000 {
        return None;
    }
    digits(&mut out[0..4], year);
    out[4] = b'-';
    digits(&mut out[5..7], t.month());
    out[7] = b'-';
    digits(&mut out[8..10], t.day());
    out[10] = b'T';
    digits(&mut out[11..13], t.hour());
    out[13] = b':';
    digits(&mut out[14..16], t.minute());
    out[16] = b':';
    digits(&mut out[17..19], t.second());
    let (fraction, width) = match nano {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    let mut len = 19;
    if width > 0 {
        out[len] = b'.';
        digits(&mut out[len + 1..len + 1 + width], fraction);
        len += 1 + width;
    }
    out[len] = b'Z';
    Some(len + 1)
}

/// `value`'s last `out.len()` decimal digits, zero-padded.
fn digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        // A digit: < 10.
        *digit = b'0' + u8::try_from(value % 10).unwrap_or(0);
        value /= 10;
    }
}

/// `#[serde(deserialize_with = "rfc3339::deserialize")]` on a `DateTime<Utc>`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_str(Rfc3339)
}

/// `#[serde(default, deserialize_with = "rfc3339::option")]` on an `Option<DateTime<Utc>>`.
pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    d.deserialize_option(Optional)
}

struct Rfc3339;

impl Visitor<'_> for Rfc3339 {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 date and time")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match DateTime::parse_from_rfc3339(v) {
            Ok(t) => Ok(t.with_timezone(&Utc)),
            Err(_) => v.parse::<DateTime<Utc>>().map_err(E::custom),
        }
    }
}

struct Optional;

impl<'de> Visitor<'de> for Optional {
    type Value = Option<DateTime<Utc>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 date and time, or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    #[derive(serde::Serialize)]
    struct Written {
        #[serde(serialize_with = "super::serialize")]
        at: DateTime<Utc>,
        #[serde(serialize_with = "super::serialize_option")]
        until: Option<DateTime<Utc>>,
    }

    #[test]
    fn times_are_written_as_chronos_own_serialize_writes_them() {
        let base = Utc.with_ymd_and_hms(2026, 11, 26, 2, 1, 18).unwrap();
        let mut times = vec![
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
        ];
        for nanos in [
            0,
            1,
            999,
            1_000,
            490_648_000,
            490_000_000,
            5_000_000,
            999_999_999,
            10,
        ] {
            times.push(base + chrono::Duration::nanoseconds(nanos));
        }
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("a leap second");
        times.push(leap.and_utc());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = i64::try_from(x % 253_402_300_800).expect("fits");
            let nanos = u32::try_from((x >> 20) % 1_000_000_000).expect("fits");
            let nanos =
                [nanos, nanos / 1_000 * 1_000, nanos / 1_000_000 * 1_000_000][(x % 3) as usize];
            times.push(DateTime::from_timestamp(secs, nanos).expect("in range"));
        }
        for t in times {
            let ours = serde_json::to_string(&Written {
                at: t,
                until: Some(t),
            })
            .expect("json");
            let chronos = serde_json::to_string(&t).expect("json");
            assert_eq!(ours, format!(r#"{{"at":{chronos},"until":{chronos}}}"#));
        }
        let none = serde_json::to_string(&Written {
            at: base,
            until: None,
        })
        .expect("json");
        assert_eq!(none, r#"{"at":"2026-11-26T02:01:18Z","until":null}"#);
    }

    #[derive(serde::Deserialize)]
    struct At {
        #[serde(deserialize_with = "super::deserialize")]
        at: chrono::DateTime<chrono::Utc>,
        #[serde(default, deserialize_with = "super::option")]
        until: Option<chrono::DateTime<chrono::Utc>>,
    }

    fn read(json: &str) -> Result<At, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn times_read_as_chronos_own_deserialize_reads_them() {
        let texts = [
            "2026-11-26T02:01:18.490648Z",
            "2026-11-26T02:01:18Z",
            "2026-11-26T03:01:18.490648+01:00",
            "2026-11-26t02:01:18z",
            "2026-11-26 02:01:18.490648Z",
            "2026-11-26T02:01:18",
            "yesterday",
            "2026-13-26T02:01:18Z",
        ];
        for text in texts {
            let ours = read(&format!(r#"{{"at":"{text}"}}"#)).map(|a| a.at);
            let chronos =
                serde_json::from_str::<chrono::DateTime<chrono::Utc>>(&format!("\"{text}\""));
            assert_eq!(ours.is_ok(), chronos.is_ok(), "{text}");
            if let (Ok(ours), Ok(chronos)) = (ours, chronos) {
                assert_eq!(ours, chronos, "{text}");
            }
        }
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 26, 2, 1, 18)
            .unwrap();
        let read = read(r#"{"at":"2026-11-26T02:01:18Z","until":"2026-11-26T02:01:18Z"}"#);
        let read = read.expect("both times");
        assert_eq!((read.at, read.until), (at, Some(at)));
    }

    #[test]
    fn a_missing_or_null_optional_time_is_none() {
        let a = read(r#"{"at":"2026-11-26T02:01:18Z"}"#).expect("no until");
        assert_eq!(a.until, None);
        let a = read(r#"{"at":"2026-11-26T02:01:18Z","until":null}"#).expect("a null until");
        assert_eq!(a.until, None);
        assert!(read(r#"{"at":"2026-11-26T02:01:18Z","until":7}"#).is_err());
    }
}
