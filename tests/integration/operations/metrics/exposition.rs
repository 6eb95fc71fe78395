//! The text exposition as the tests read it: a strict parser (every sample under a declared
//! family, escaped labels, numeric values, `# EOF` for OpenMetrics), sums and lookups by labels,
//! and scraping an app's or a process's `/metrics`.

use std::collections::BTreeMap;

use crate::spawn::TestApp;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the text exposition (OpenMetrics, or Prometheus' 0.0.4 format), panicking on anything
/// malformed: every sample belongs to a family declared by a `# TYPE` line before it, label
/// values are quoted and escaped, values are numbers, and OpenMetrics ends with `# EOF`.
pub fn parse(text: &str) -> Vec<Sample> {
    let mut families: Vec<(String, String)> = Vec::new();
    let mut samples = Vec::new();
    let mut eof = false;
    for line in text.lines() {
        assert!(!eof, "a line after # EOF: {line:?}");
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                matches!(
                    kind,
                    "counter" | "gauge" | "histogram" | "summary" | "unknown"
                ),
                "{line:?}"
            );
            families.push((name.to_string(), kind.to_string()));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# UNIT "),
                "{line:?}"
            );
            continue;
        }
        let sample = parse_sample(line);
        let (family, kind) = families.last().expect("a # TYPE before the first sample");
        let suffixes: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            _ => &[""],
        };
        assert!(
            suffixes
                .iter()
                .any(|s| sample.name == format!("{family}{s}")),
            "sample {} outside its family {family} ({kind})",
            sample.name
        );
        samples.push(sample);
    }
    assert!(eof, "the exposition ends with # EOF");
    samples
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("{line:?}"));
    let name = &line[..name_end];
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "metric name {name:?}"
    );
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        // `key="value"` pairs separated by `,`, up to `}`.
        let end = loop {
            match chars.peek() {
                Some(&(i, '}')) => break i,
                Some(_) => {}
                None => panic!("unterminated labels: {line:?}"),
            }
            let key: String = chars
                .by_ref()
                .map(|(_, c)| c)
                .take_while(|c| *c != '=')
                .collect();
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line:?}");
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(c @ ('\\' | '"')) => value.push(c),
                        other => panic!("bad escape {other:?} in {line:?}"),
                    },
                    Some(c) => value.push(c),
                    None => panic!("unterminated label value: {line:?}"),
                }
            }
            assert!(
                labels.insert(key, value).is_none(),
                "duplicate label: {line:?}"
            );
            if let Some(&(_, ',')) = chars.peek() {
                chars.next();
            }
        };
        rest = &inner[end + 1..];
    }
    let value = rest
        .trim()
        .split(' ')
        .next()
        .expect("a value")
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("value of {line:?}: {e}"));
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// The sum of `name`'s samples whose labels include every pair of `filter`.
pub fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && filter
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// Whether any sample of `name` carries every pair of `filter`.
pub fn has(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> bool {
    samples.iter().any(|s| {
        s.name == name
            && filter
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// GETs an exposition at `url`: 200, a Prometheus content type, and a body that parses.
pub async fn scrape_url(client: &reqwest::Client, url: &str) -> Vec<Sample> {
    let resp = client.get(url).send().await.expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0")
            || content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&resp.text().await.expect("body"))
}

/// The app's own `/metrics`.
pub async fn scrape(app: &TestApp) -> Vec<Sample> {
    scrape_url(&app.client, &app.url("/metrics")).await
}
