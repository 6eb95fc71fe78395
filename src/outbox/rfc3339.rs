//! Reading an event's times (`occurredAt`, `holdExpiresAt`): RFC 3339, as the writer serializes
//! them, parsed by chrono's RFC 3339 parser first. chrono's own `Deserialize` takes the general
//! format parser, several times the work for the same text; a text that parser accepts and RFC
//! 3339 does not still reads as before (its error, if any, is chrono's as before).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, Visitor};

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
    use chrono::TimeZone;

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
