//! W3C trace context (<https://www.w3.org/TR/trace-context/>): the `traceparent` header, parsed
//! and written, and the ids of new spans.
//!
//! The service makes its own ids (a random 128-bit trace id, a random 64-bit span id) rather than
//! asking the OpenTelemetry SDK for them: propagation then costs two random numbers and one short
//! string per request, with or without an exporter. When spans are exported (`export.rs`), they
//! are given exactly these ids, so what Kafka carries and what the collector receives agree.

use std::fmt;

/// The `sampled` bit of `trace-flags`.
const SAMPLED: u8 = 0x01;

/// One span's place in a trace: what a `traceparent` header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// Never zero.
    trace_id: u128,
    /// Never zero.
    span_id: u64,
    /// `trace-flags`, kept as received (only bit 0, `sampled`, has a meaning in version 00).
    flags: u8,
}

impl TraceContext {
    /// Reads a `traceparent` value. `None` for anything the spec says to ignore: a malformed
    /// value, upper-case hex, version `ff`, an all-zero trace or span id. A version above `00`
    /// is read as `00` (its first four fields), as the spec asks.
    pub fn parse(value: &str) -> Option<Self> {
        let bytes = value.as_bytes();
        let version = hex_field(bytes.get(0..2)?)?;
        if version == 0xff {
            return None;
        }
        let fits = match version {
            0 => bytes.len() == 55,
            _ => bytes.len() == 55 || (bytes.len() > 55 && bytes[55] == b'-'),
        };
        if !fits || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace_id = hex_field(&bytes[3..35])?;
        let span_id = u64::try_from(hex_field(&bytes[36..52])?).ok()?;
        let flags = u8::try_from(hex_field(&bytes[53..55])?).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The first span of a new trace.
    pub fn new_root(sampled: bool) -> Self {
        Self {
            trace_id: nonzero(rand::random::<u128>),
            span_id: nonzero(rand::random::<u64>),
            flags: if sampled { SAMPLED } else { 0 },
        }
    }

    /// A new span of the same trace, with the same flags (this span is its parent).
    pub fn child(&self) -> Self {
        Self {
            span_id: nonzero(rand::random::<u64>),
            ..*self
        }
    }

    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the trace is recorded (the `sampled` flag).
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The trace id as 32 lower-case hex digits (what log lines carry), without allocating:
    /// every request's span carries it.
    pub fn trace_id_hex(&self) -> TraceIdHex {
        TraceIdHex(hex::<32>(self.trace_id))
    }
}

/// A trace id's 32 lower-case hex digits ([`TraceContext::trace_id_hex`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIdHex([u8; 32]);

impl fmt::Display for TraceIdHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ascii(&self.0))
    }
}

/// The `traceparent` header value, version `00`: `00-<trace id>-<span id>-<flags>`, written
/// digit by digit (every win's event carries one, every request's span a trace id; the
/// formatter's padded `{:032x}` of a `u128` cost several times as much).
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        out[3..35].copy_from_slice(&self.trace_id_hex().0);
        out[36..52].copy_from_slice(&hex::<16>(u128::from(self.span_id)));
        out[53..].copy_from_slice(&hex::<2>(u128::from(self.flags)));
        f.write_str(ascii(&out))
    }
}

/// The low `N` hex digits of `value`, lower case, most significant first, zero-padded.
fn hex<const N: usize>(value: u128) -> [u8; N] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; N];
    for (i, digit) in out.iter_mut().enumerate() {
        let shift = 4 * (N - 1 - i);
        *digit = DIGITS[((value >> shift) & 0xf) as usize];
    }
    out
}

/// Hex digits and dashes as text (ASCII, so always valid).
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// Lower-case hex digits only (the spec forbids upper case), up to 32 of them.
fn hex_field(digits: &[u8]) -> Option<u128> {
    if digits.is_empty() || digits.len() > 32 {
        return None;
    }
    digits.iter().try_fold(0u128, |acc, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u128::from(digit))
    })
}

/// A random id; zero means "invalid" in W3C, so it is drawn again (odds 2^-64 or less).
fn nonzero<T: PartialEq + Default>(draw: impl Fn() -> T) -> T {
    loop {
        let id = draw();
        if id != T::default() {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_digits_are_the_formatters_zero_padded_lower_case_hex() {
        let padded = "00-00000000000000000000000000000a01-000000000000000b-00";
        let tc = TraceContext::parse(padded).expect("valid");
        assert_eq!(tc.to_string(), padded);
        assert_eq!(tc.trace_id_hex().to_string(), &padded[3..35]);
        for _ in 0..1_000 {
            let tc = TraceContext::new_root(rand::random());
            assert_eq!(
                tc.to_string(),
                format!(
                    "00-{:032x}-{:016x}-{:02x}",
                    tc.trace_id(),
                    tc.span_id(),
                    tc.flags()
                )
            );
            assert_eq!(
                tc.trace_id_hex().to_string(),
                format!("{:032x}", tc.trace_id())
            );
        }
    }

    #[test]
    fn a_valid_traceparent_round_trips() {
        let tc = TraceContext::parse(EXAMPLE).expect("valid");
        assert_eq!(tc.trace_id(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(tc.span_id(), 0x00f067aa0ba902b7);
        assert!(tc.sampled());
        assert_eq!(tc.to_string(), EXAMPLE);
        assert_eq!(
            tc.trace_id_hex().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn what_the_spec_says_to_ignore_is_refused() {
        for bad in [
            "",
            "evil\r\nheader",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_as_version_00() {
        let tc = TraceContext::parse(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next",
        )
        .expect("valid");
        assert_eq!(tc.to_string(), EXAMPLE);
    }

    #[test]
    fn a_child_keeps_the_trace_and_the_flags_with_a_new_span_id() {
        let parent = TraceContext::parse(EXAMPLE).expect("valid");
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_eq!(child.flags(), parent.flags());
        assert_ne!(child.span_id(), parent.span_id());
        assert_eq!(TraceContext::parse(&child.to_string()), Some(child));
    }

    #[test]
    fn new_roots_are_valid_and_distinct() {
        let a = TraceContext::new_root(false);
        let b = TraceContext::new_root(true);
        assert_ne!(a.trace_id(), b.trace_id());
        assert!(!a.sampled() && b.sampled());
        assert_eq!(TraceContext::parse(&a.to_string()), Some(a));
    }
}
