//! The values the case tables are built from: integer bounds and junk, bad ids, dates with the
//! outcome each must have, page sizes and cursors, and JSON bodies written by hand.

use super::runner::Want;

pub const I32_MAX: &str = "2147483647";
pub const I32_MAX_1: &str = "2147483648";
pub const I64_MAX: &str = "9223372036854775807";
pub const I64_MAX_1: &str = "9223372036854775808";
pub const I64_MIN_1: &str = "-9223372036854775809";

/// JSON values of the wrong type for an integer field.
pub const NOT_INTEGERS: [&str; 12] = [
    "null", "true", "[]", "[1]", "{}", "\"1\"", "\"\"", "1.5", "1.0", "1e3", "1e30", "-1e30",
];

/// A JSON object written by hand from raw member texts, so that values serde_json would never
/// produce (`9223372036854775808`, `1e30`, duplicate keys) reach the server as typed.
pub fn object(members: &[(&str, String)]) -> String {
    let inner: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// `base` with `field` set to the raw JSON `value` (or removed when `value` is `None`).
pub fn with(base: &[(&str, &str)], field: &str, value: Option<&str>) -> String {
    let mut members: Vec<(&str, String)> = base
        .iter()
        .filter(|(k, _)| *k != field)
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    if let Some(v) = value {
        members.push((field, v.to_string()));
    }
    object(&members)
}

pub fn json_string(s: &str) -> String {
    serde_json::Value::String(s.into()).to_string()
}

/// Integer texts refused by a field whose range is `1..=max` (max below i32::MAX).
#[rustfmt::skip] // a value table
pub fn out_of_range(max_plus_1: &'static str) -> Vec<&'static str> {
    vec![
        "0", "-1", "-0", max_plus_1, I32_MAX, I32_MAX_1, I64_MAX, I64_MAX_1,
        "-9223372036854775808", I64_MIN_1, "100000000000000000000000000000",
    ]
}

/// Path or query values that are not a positive 64-bit integer.
#[rustfmt::skip] // a value table
pub fn bad_ids() -> Vec<String> {
    [
        "0", "-1", "-0", I64_MAX_1, "18446744073709551616", I64_MIN_1, "abc", "1.5", "1e3", "0x10",
        "1%20", "%201", "%00", "1%00", "%FF", "%EF%BC%91", "%F0%9F%98%80", "null", "true",
    ]
    .into_iter()
    .map(String::from)
    .chain(["9".repeat(8192), "1".repeat(100)])
    .collect()
}

/// RFC 3339-ish strings with the outcome each must have as `startsAt` (no `endsAt`) and as
/// `endsAt` (`startsAt` defaults to now, so a time in the past is refused there).
pub fn dates() -> Vec<(&'static str, Want, Want)> {
    use Want::*;
    vec![
        ("0000-01-01T00:00:00Z", Refused, Refused),
        ("-0001-01-01T00:00:00Z", Refused, Refused),
        ("-262143-01-01T00:00:00Z", Refused, Refused),
        ("0999-12-31T23:59:59.999999Z", Refused, Refused),
        ("1000-01-01T00:00:00Z", Ok, Refused),
        ("1000-01-01T00:00:00+00:01", Refused, Refused), // 0999-12-31T23:59Z
        ("1000-01-01T00:59:59+01:00", Refused, Refused),
        ("1969-12-31T23:59:59Z", Ok, Refused),
        ("1970-01-01T00:00:00Z", Ok, Refused),
        ("2038-01-19T03:14:08Z", Ok, Ok),
        ("2096-02-29T12:00:00Z", Ok, Ok),
        ("2097-02-29T12:00:00Z", Refused, Refused),
        ("2097-13-01T00:00:00Z", Refused, Refused),
        ("2097-01-32T00:00:00Z", Refused, Refused),
        ("2097-01-01T24:00:00Z", Refused, Refused),
        ("2097-01-01T23:60:00Z", Refused, Refused),
        ("2097-06-30T23:59:60Z", Either, Either), // a leap second
        ("2097-06-30T23:59:61Z", Refused, Refused),
        ("2097-01-01T00:00:00+14:00", Ok, Ok),
        ("2097-01-01T00:00:00-12:00", Ok, Ok),
        ("2097-01-01T00:00:00+23:59", Ok, Ok),
        ("2097-01-01T00:00:00+24:00", Refused, Refused),
        ("2097-01-01T00:00:00.123456789Z", Ok, Ok),
        ("2097-01-01T00:00:00.1234567890123456789Z", Either, Either),
        ("2097-01-01t00:00:00z", Either, Either),
        ("2097-01-01 00:00:00Z", Either, Either),
        ("2097-01-01T00:00:00", Refused, Refused),
        ("2097-01-01", Refused, Refused),
        ("2097-01-01T00:00Z", Refused, Refused),
        ("20970101T000000Z", Refused, Refused),
        ("9999-12-31T23:59:59Z", Ok, Ok),
        ("9999-12-31T23:59:59.999999Z", Ok, Ok),
        ("9999-12-31T23:59:59.9999999Z", Ok, Ok),
        ("9999-12-31T22:59:59-01:00", Ok, Ok),
        ("9999-12-31T23:59:59-00:01", Refused, Refused), // 10000-01-01T00:00:59Z
        ("9999-12-31T23:59:60Z", Refused, Refused),      // a leap second past the last storable one
        ("9999-12-31T23:59:60.5Z", Refused, Refused),
        ("+10000-01-01T00:00:00Z", Refused, Refused),
        ("+262143-12-31T23:59:59Z", Refused, Refused),
        ("+999999-01-01T00:00:00Z", Refused, Refused),
        ("", Refused, Refused),
        (" ", Refused, Refused),
        ("now", Refused, Refused),
        ("2097-01-01T00:00:00Z\u{0}", Refused, Refused),
    ]
}

/// `(value, body, want)` for the date `field` set on `base`: every date of `dates()`, `null`,
/// and JSON values of the wrong type.
#[rustfmt::skip] // a value table
pub fn date_cases(field: &str, base: &[(&str, &str)]) -> Vec<(String, String, Want)> {
    let mut out: Vec<(String, String, Want)> = dates()
        .into_iter()
        .map(|(d, as_starts, as_ends)| {
            let want = if field == "endsAt" { as_ends } else { as_starts };
            (d.to_string(), with(base, field, Some(&json_string(d))), want)
        })
        .collect();
    out.push(("null".into(), with(base, field, Some("null")), Want::Ok));
    let wrong = ["0", "1700000000", "-1", I64_MAX, I64_MAX_1, "1e30", "true", "[]", "{}", "[\"2097-01-01T00:00:00Z\"]"];
    for raw in wrong {
        out.push((raw.into(), with(base, field, Some(raw)), Want::Refused));
    }
    out
}

/// Page sizes `1..=max`: the bounds, their neighbours and junk.
#[rustfmt::skip] // a value table
pub fn limit_values(max: u32) -> (Vec<String>, Vec<String>) {
    let ok = vec!["1".into(), max.to_string(), (max - 1).to_string()];
    let mut refused: Vec<String> = [
        "0", "-1", "4294967295", "4294967296", I64_MAX, I64_MAX_1, "1.5", "1e2", "abc", "%00", "",
        "1%20",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    refused.push((max + 1).to_string());
    refused.push("9".repeat(4096));
    (ok, refused)
}

/// Cursors from `min` (0 or 1) up: the bounds, their neighbours and junk.
#[rustfmt::skip] // a value table
pub fn cursor_values(min: i64) -> (Vec<&'static str>, Vec<String>) {
    let ok = if min == 0 { vec!["0", "1", I64_MAX] } else { vec!["1", "2", I64_MAX] };
    let mut refused: Vec<String> = [
        "-1", I64_MAX_1, I64_MIN_1, "1.5", "abc", "%00", "", "null", "-9223372036854775808",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if min == 1 {
        refused.push("0".into());
    }
    refused.push("9".repeat(4096));
    (ok, refused)
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
