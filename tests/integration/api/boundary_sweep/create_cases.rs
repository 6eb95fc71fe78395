//! The case table for `POST /api/v1/campaigns`: every field of the create request at and past
//! its bounds, the body as a whole, and every wrong `Authorization`.

use super::{
    runner::{ep, Case, Want, Want::*},
    values::{date_cases, json_string, out_of_range, with, NOT_INTEGERS},
};
use reqwest::Method;

const PATH: &str = "/api/v1/campaigns";

/// A valid request body that each case changes in one field.
const BASE: &[(&str, &str)] = &[("name", "\"sweep\""), ("totalStock", "10")];

/// The create request with `body`, reported as `field=value`.
fn post(field: &str, value: &str, body: String, want: Want) -> Case {
    Case::new(Method::POST, PATH, PATH.into(), field, value, want)
        .body(body)
        .admin()
}

/// `base` with `field` set to the raw JSON text `raw`.
fn set(base: &[(&str, &str)], field: &str, raw: &str, want: Want) -> Case {
    post(field, raw, with(base, field, Some(raw)), want)
}

/// Every case of the create endpoint, in the order they are sent.
pub fn create_cases(body_limit: usize) -> Vec<Case> {
    let valid = with(BASE, "name", Some("\"padded\""));
    let mut cases = name_cases(body_limit);
    cases.extend(total_stock_cases());
    cases.extend(per_user_limit_cases());
    cases.extend(confirm_window_cases());
    cases.extend(admission_cases());
    cases.extend(date_field_cases());
    cases.extend(whole_body_cases(body_limit, &valid));
    cases.extend(ep("POST", PATH, true).auth(PATH, Some(&valid)));
    cases
}

#[rustfmt::skip] // a value table
fn name_cases(body_limit: usize) -> Vec<Case> {
    let names: Vec<(String, Want)> = vec![
        (String::new(), Refused), (" ".into(), Refused), ("\t\n\r \u{3000}".into(), Refused),
        ("a".into(), Ok), (" a ".into(), Ok), ("\ta\n".into(), Ok),
        ("x".repeat(200), Ok), (format!(" {} ", "x".repeat(198)), Ok), ("x".repeat(201), Refused),
        ("😀".repeat(200), Ok), ("😀".repeat(201), Refused), ("e\u{301}".repeat(100), Ok),
        ("𝔘𝔫𝔦𝔠𝔬𝔡𝔢 名前 اسم".into(), Ok),
        ("a\u{0}b".into(), Refused), ("\u{0}".into(), Refused), ("a\tb".into(), Refused),
        ("a\nb".into(), Refused), ("a\u{7f}b".into(), Refused), ("a\u{9b}b".into(), Refused),
        ("\u{85}".into(), Refused), ("\u{200b}".into(), Either), ("\u{feff}x".into(), Either),
        ("x".repeat(body_limit - 64), Refused), // just below the body limit
        ("x".repeat(1 << 20), Refused),         // 1 MiB: 413
    ];
    let mut cases: Vec<Case> = names
        .into_iter()
        .map(|(name, want)| post("name", &name, with(BASE, "name", Some(&json_string(&name))), want))
        .collect();
    for raw in ["\"\\ud800\"", "\"\\udfff\\ud800\"", "null", "true", "1", "1.5", "[]", "[\"a\"]", "{}"] {
        cases.push(set(BASE, "name", raw, Refused));
    }
    cases.push(post("name", "(absent)", with(BASE, "name", None), Refused));
    cases
}

fn total_stock_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for raw in ["1", "9999999", "10000000"] {
        cases.push(set(BASE, "totalStock", raw, Ok));
    }
    for raw in out_of_range("10000001").into_iter().chain(NOT_INTEGERS) {
        cases.push(set(BASE, "totalStock", raw, Refused));
    }
    let absent = with(BASE, "totalStock", None);
    cases.push(post("totalStock", "(absent)", absent, Refused));
    cases
}

/// `perUserLimit` against the largest stock, so that only its own range matters, then against a
/// small stock.
fn per_user_limit_cases() -> Vec<Case> {
    let big: &[(&str, &str)] = &[("name", "\"sweep\""), ("totalStock", "10000000")];
    let mut cases = Vec::new();
    for raw in ["1", "10000000", "null"] {
        cases.push(set(big, "perUserLimit", raw, Ok));
    }
    let not_null = NOT_INTEGERS.into_iter().filter(|v| *v != "null");
    for raw in out_of_range("10000001").into_iter().chain(not_null) {
        cases.push(set(big, "perUserLimit", raw, Refused));
    }
    let small: &[(&str, &str)] = &[("name", "\"sweep\""), ("totalStock", "3")];
    cases.push(set(small, "perUserLimit", "3", Ok)); // = totalStock
    cases.push(set(small, "perUserLimit", "4", Refused)); // > totalStock
    cases
}

/// `confirmWithinSeconds`: 0 to 86,400 seconds.
fn confirm_window_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for raw in ["0", "1", "86400", "null"] {
        cases.push(set(BASE, "confirmWithinSeconds", raw, Ok));
    }
    let beyond = [
        "-1",
        "86401",
        "2147483647",
        "2147483648",
        "-2147483649",
        "1e30",
    ];
    let not_null = NOT_INTEGERS.into_iter().filter(|v| *v != "null");
    for raw in beyond.into_iter().chain(not_null) {
        cases.push(set(BASE, "confirmWithinSeconds", raw, Refused));
    }
    cases
}

/// `admission` and `admissionRatePerSecond` (1 to 10,000, only with `QUEUE` or `RAFFLE`).
fn admission_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for raw in ["\"OPEN\"", "\"QUEUE\"", "\"RAFFLE\"", "null"] {
        cases.push(set(BASE, "admission", raw, Ok));
    }
    for raw in [
        "\"open\"",
        "\"LOTTERY\"",
        "\"\"",
        "\" QUEUE\"",
        "1",
        "true",
        "[]",
        "{}",
    ] {
        cases.push(set(BASE, "admission", raw, Refused));
    }
    let queued: &[(&str, &str)] = &[
        ("name", "\"sweep\""),
        ("totalStock", "10"),
        ("admission", "\"QUEUE\""),
    ];
    for raw in ["1", "10000", "null"] {
        cases.push(set(queued, "admissionRatePerSecond", raw, Ok));
    }
    let not_null = NOT_INTEGERS.into_iter().filter(|v| *v != "null");
    for raw in out_of_range("10001").into_iter().chain(not_null) {
        cases.push(set(queued, "admissionRatePerSecond", raw, Refused));
    }
    // Not allowed without a waiting room.
    cases.push(set(BASE, "admissionRatePerSecond", "5", Refused));
    let open: &[(&str, &str)] = &[
        ("name", "\"sweep\""),
        ("totalStock", "10"),
        ("admission", "\"OPEN\""),
    ];
    cases.push(set(open, "admissionRatePerSecond", "5", Refused));
    cases
}

/// `startsAt` (no `endsAt`) and `endsAt` (`startsAt` defaults to now), then the two together.
#[rustfmt::skip] // a value table
fn date_field_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for field in ["startsAt", "endsAt"] {
        for (value, body, want) in date_cases(field, BASE) {
            cases.push(post(field, &value, body, want));
        }
    }
    for (starts, ends, want) in [
        ("2097-01-01T00:00:00Z", "2097-01-01T00:00:00.000001Z", Ok),
        ("2097-01-01T00:00:00Z", "2097-01-01T00:00:00Z", Refused),
        ("2097-01-01T00:00:00Z", "2097-01-01T00:00:00.0000001Z", Refused), // equal in µs
        ("2097-01-01T01:00:00+01:00", "2097-01-01T00:00:00Z", Refused),
        ("1000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", Ok),
        ("9999-12-31T23:59:59Z", "1000-01-01T00:00:00Z", Refused),
        ("2097-01-01T00:00:00Z", "9999-12-31T23:59:60Z", Refused),
    ] {
        let with_start = [("name", "\"sweep\""), ("totalStock", "10"), ("startsAt", &json_string(starts))];
        let body = with(&with_start, "endsAt", Some(&json_string(ends)));
        cases.push(post("startsAt..endsAt", &format!("{starts}..{ends}"), body, want));
    }
    cases
}

/// The body as a whole: not an object, broken, unknown or duplicate keys, nesting, the size
/// limit and one past it, bytes that are not UTF-8, another content type.
#[rustfmt::skip] // a value table
fn whole_body_cases(body_limit: usize, valid: &str) -> Vec<Case> {
    let pad = |len: usize| format!("{valid}{}", " ".repeat(len - valid.len()));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut cases = Vec::new();
    for (what, body, want) in [
        ("(empty)".to_string(), String::new(), Refused),
        ("null".into(), "null".into(), Refused),
        ("[]".into(), "[]".into(), Refused),
        ("1".into(), "1".into(), Refused),
        ("\"s\"".into(), "\"s\"".into(), Refused),
        ("{}".into(), "{}".into(), Refused),
        ("{ (truncated)".into(), "{\"name\":\"x\",".into(), Refused),
        ("BOM then object".into(), format!("\u{feff}{valid}"), Either),
        ("unknown field".into(), with(BASE, "stock", Some("1")), Refused),
        ("duplicate key".into(), "{\"name\":\"a\",\"name\":\"b\",\"totalStock\":1}".into(), Either),
        ("nested 10000 deep".into(), with(BASE, "name", Some(&deep)), Refused),
        (format!("exactly {body_limit} bytes"), pad(body_limit), Ok),
        (format!("{} bytes", body_limit + 1), pad(body_limit + 1), Refused),
    ] {
        cases.push(post("body", &what, body, want));
    }
    cases.push(post("body", "invalid UTF-8", String::new(), Refused)
        .body(b"{\"name\":\"\xff\xfe\",\"totalStock\":1}".to_vec()));
    cases.push(post("content-type", "text/plain", valid.to_string(), Refused)
        .header("content-type", b"text/plain".to_vec()));
    cases
}
