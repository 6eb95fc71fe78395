//! The typed values of the settings and the clap value parsers that read them, so that a
//! setting's declaration (its `#[arg(...)]`) yields the type the service uses: `millis(100..=600_000)`
//! is a `Duration`, `number(1..=256)` a count in its range, `secret` a [`Secret`].
//!
//! A parser's error is clap's (`0 is not in 1..=256`) or a sentence; [`crate::config::cli`] prefixes the
//! variable's name (and redacts the value of a secret). A parser that has to choose what of the
//! value may be shown returns a whole [`ConfigError`], which is reported as it is.
//!
//! A setting whose empty value means "unset" but which must not be a plain `Option` for clap
//! (clap would not let its parser see the text) is typed `std::option::Option<T>` (which clap does
//! not treat as optional), with `default_value = ""` hidden from `--help`.

use std::{convert::Infallible, fmt, ops::RangeInclusive, str::FromStr, time::Duration};

use clap::builder::{
    PossibleValuesParser, RangedI64ValueParser, RangedU64ValueParser, TypedValueParser,
};

use crate::config::{
    consumers::ConsumerName,
    invalid,
    user_auth::{JwtAlgorithm, UserAuthMode},
    ConfigError, KafkaProperties,
};

/// A secret string: shown as `***` in logs and `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            _ => Err("expected `pretty` or `json`".into()),
        }
    }
}

/// The group protocol of the consumers' Kafka groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// The classic rebalance protocol (every Kafka version).
    Classic,
    /// KIP-848 (`group.protocol=consumer`, Kafka 4.0+): members join without a group-wide pause.
    Consumer,
}

impl FromStr for GroupProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classic" => Ok(Self::Classic),
            "consumer" => Ok(Self::Consumer),
            _ => Err("expected `classic` or `consumer`".into()),
        }
    }
}

/// A whole number in `range`, as `T` (`usize`, `u32`). Read as clap reads a `u32` (through
/// `i64`), so `-1` is "not in 1..=256" rather than "invalid digit".
pub(super) fn number<T>(range: RangeInclusive<i64>) -> RangedI64ValueParser<T>
where
    T: TryFrom<i64> + Clone + Send + Sync + 'static,
    <T as TryFrom<i64>>::Error: std::error::Error + Send + Sync + 'static,
{
    RangedI64ValueParser::new().range(range)
}

/// Milliseconds in `range`, as a `Duration` (read as clap reads a `u64`).
pub(super) fn millis(range: RangeInclusive<u64>) -> impl TypedValueParser<Value = Duration> {
    RangedU64ValueParser::<u64>::new()
        .range(range)
        .map(Duration::from_millis)
}

/// Hours in `range`, as a `Duration` (read as clap reads a `u64`).
pub(super) fn hours(range: RangeInclusive<u64>) -> impl TypedValueParser<Value = Duration> {
    RangedU64ValueParser::<u64>::new()
        .range(range)
        .map(|hours| Duration::from_secs(3_600 * hours))
}

/// A duration written as a number with a unit (`90s`, `30m`, `24h`, `7d`) or as plain seconds;
/// between one second and a year.
pub(super) fn age(text: &str) -> Result<Duration, String> {
    with_unit(text, 365).map_err(|()| "must be between 1s and 365d (e.g. 24h)".into())
}

/// `firstcome token --ttl`: as [`age`], up to 366 days (a year's test token, leap years too).
pub fn token_ttl(text: &str) -> Result<Duration, String> {
    with_unit(text, 366).map_err(|()| "must be between 1s and 366d (e.g. 30s, 15m, 1h, 7d)".into())
}

/// A number with a unit (`s`, `m`, `h`, `d`) or plain seconds, from one second to `max_days`.
fn with_unit(text: &str, max_days: u64) -> Result<Duration, ()> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(()),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|s| (1..=max_days * 86_400).contains(s))
        .map(Duration::from_secs)
        .ok_or(())
}

/// Whole seconds in `range`, as a `Duration` (read as clap reads a `u64`).
pub(super) fn seconds(range: RangeInclusive<u64>) -> impl TypedValueParser<Value = Duration> {
    RangedU64ValueParser::<u64>::new()
        .range(range)
        .map(Duration::from_secs)
}

/// Any text, kept as a [`Secret`].
pub(super) fn secret(text: &str) -> Result<Secret, Infallible> {
    Ok(Secret::new(text))
}

/// `DATABASE_URL`: a `mysql://` URL (the value is a secret: it holds the password).
pub(super) fn mysql_url(text: &str) -> Result<Secret, String> {
    if text.starts_with("mysql://") {
        Ok(Secret::new(text))
    } else {
        Err("must start with mysql://".into())
    }
}

/// `REDIS_KEY_PREFIX`: no braces, so the hash tag `{c:<id>}` that follows is the key's first.
pub(super) fn key_prefix(text: &str) -> Result<String, String> {
    if text.contains(['{', '}']) {
        Err("must not contain { or }".into())
    } else {
        Ok(text.to_string())
    }
}

/// `JWT_SECRET`: empty is unset; otherwise 32 bytes or more (RFC 7518 §3.2: an HS256 key at
/// least as long as the hash).
pub(super) fn jwt_secret(text: &str) -> Result<Option<Secret>, String> {
    match text {
        "" => Ok(None),
        t if t.len() < 32 => Err("must be at least 32 bytes".into()),
        t => Ok(Some(Secret::new(t))),
    }
}

/// `USER_AUTH`: one of the listed values (`--help` shows them); empty is unset.
pub(super) fn user_auth_mode() -> impl TypedValueParser<Value = UserAuthMode> {
    // "" is the (hidden) default: how the settings tell "unset" from `none` said out loud.
    use clap::builder::PossibleValue;
    let unset = PossibleValue::new("").hide(true);
    PossibleValuesParser::new([PossibleValue::new("none"), PossibleValue::new("jwt"), unset]).map(
        |name| match name.as_str() {
            "jwt" => UserAuthMode::Jwt,
            "none" => UserAuthMode::None,
            _ => UserAuthMode::Unset,
        },
    )
}

/// `JWT_ALGORITHM`: one of the listed values (`--help` shows them).
pub(super) fn jwt_algorithm() -> impl TypedValueParser<Value = JwtAlgorithm> {
    PossibleValuesParser::new(["HS256", "RS256", "ES256"]).map(|name| match name.as_str() {
        "RS256" => JwtAlgorithm::Rs256,
        "ES256" => JwtAlgorithm::Es256,
        _ => JwtAlgorithm::Hs256,
    })
}

/// `JWT_JWKS_URL`: an `https` URL with a host and no credentials (the URL is logged when a fetch
/// fails); `http` only to a loopback host (`localhost`, 127.0.0.0/8, ::1), where nobody between
/// could swap the keys.
pub(super) fn jwks_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err("must be an https:// URL with a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.to_canonical().is_loopback(),
        None => false,
    };
    if url.scheme() == "http" && !loopback {
        return Err(
            "must be https:// (whoever is on the path of an http:// fetch could hand \
                    over keys of their own); http:// is allowed to a loopback host only"
                .into(),
        );
    }
    Ok(url)
}

/// `BOT_CHECK_SITEVERIFY_URL`: blank is unset (the provider's own); otherwise as
/// `JWT_JWKS_URL` (a secret goes with each call).
pub(super) fn siteverify_url(text: &str) -> Result<Option<url::Url>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    jwks_url(text).map(Some)
}

/// `JWT_USER_CLAIM`: a claim's name, not blank.
pub(super) fn claim_name(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must name a claim (e.g. sub)".into())
    } else {
        Ok(text.to_string())
    }
}

/// Text that is unset when blank (`KAFKA_BOOTSTRAP_SERVERS`).
pub(super) fn unless_blank(text: &str) -> Result<Option<String>, Infallible> {
    Ok(Some(text.to_string()).filter(|t| !t.trim().is_empty()))
}

/// `KAFKA_TOPIC`: what Kafka accepts as a topic name.
pub(super) fn topic(topic: &str) -> Result<String, String> {
    let ok = !topic.is_empty()
        && topic.len() <= 240
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(topic.to_string())
    } else {
        Err("must be 1-240 characters of [a-zA-Z0-9._-]".into())
    }
}

/// `KAFKA_PROPERTIES` (see [`KafkaProperties::parse`], which chooses what may be shown).
pub(super) fn kafka_properties(text: &str) -> Result<KafkaProperties, ConfigError> {
    KafkaProperties::parse(text)
}

/// `CONSUMERS`: the names in order, without repeats; empty is none.
pub(super) fn consumers(text: &str) -> Result<Vec<ConsumerName>, String> {
    let mut names = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let name: ConsumerName = part.parse()?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// `CONSUMER_GROUP_PROTOCOL`
pub(super) fn group_protocol(text: &str) -> Result<GroupProtocol, String> {
    text.trim().parse()
}

/// `LOG_FORMAT`: one of the listed values (`--help` shows them).
pub(super) fn log_format() -> impl TypedValueParser<Value = LogFormat> {
    PossibleValuesParser::new(["pretty", "json"]).try_map(|name| name.parse::<LogFormat>())
}

/// `RUST_LOG`: a filter tracing's `EnvFilter` accepts.
pub(super) fn log_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT`: blank is unset; otherwise an `http` or `https` URL with a host
/// and no credentials (those go in `OTEL_EXPORTER_OTLP_HEADERS`, which is never logged), query or
/// fragment.
pub(super) fn otlp_endpoint(text: &str) -> Result<Option<url::Url>, ConfigError> {
    const VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    if text.trim().is_empty() {
        return Ok(None);
    }
    let url = url::Url::parse(text.trim()).map_err(|e| {
        invalid(
            VAR,
            text,
            &format!("not a URL ({e}); e.g. http://localhost:4318"),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            VAR,
            "<redacted>",
            "must not contain credentials; put them in OTEL_EXPORTER_OTLP_HEADERS",
        ));
    }
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(invalid(
            VAR,
            text,
            "must be an http:// or https:// URL with a host (OTLP/HTTP, e.g. http://localhost:4318)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(VAR, text, "must not have a query or a fragment"));
    }
    Ok(Some(url))
}

/// `TRUSTED_PROXY_HEADER`: an HTTP header name (lower-cased), e.g. `x-forwarded-for`.
pub(super) fn header_name(text: &str) -> Result<String, String> {
    let name = text.trim().to_ascii_lowercase();
    poem::http::HeaderName::from_bytes(name.as_bytes())
        .map(|_| name.clone())
        .map_err(|_| "must be an HTTP header name, e.g. x-forwarded-for".to_string())
}
