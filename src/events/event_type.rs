//! A message's `eventType`, read up to that key only: the contract check needs it to know which
//! type to parse the value as, and the writer puts it second, so the rest of the value is left to
//! that one full parse (which checks all of it). Reading every key of the value twice was a
//! sixth of a consumer's work per message.

use std::{borrow::Cow, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The name of the key.
const EVENT_TYPE: &str = "eventType";

/// The value's top-level `eventType` when it is a string met before anything malformed; `None`
/// otherwise (not an object, no such key, not a string, or bad JSON before it), for the caller's
/// general way, which names what is wrong. A later duplicate of the key is the full parse's to
/// refuse.
pub fn event_type(value: &[u8]) -> Option<Cow<'_, str>> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(value);
    // Stopping at the key leaves the object unfinished, which serde_json reports as an error
    // once the visitor has returned: expected, and the answer is in `found` by then.
    let _ = UpToEventType { found: &mut found }.deserialize(&mut de);
    found
}

struct UpToEventType<'a, 'de> {
    found: &'a mut Option<Cow<'de, str>>,
}

impl<'de> DeserializeSeed<'de> for UpToEventType<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for UpToEventType<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with an eventType")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(is_event_type) = map.next_key_seed(KeyIs(EVENT_TYPE))? {
            if is_event_type {
                *self.found = Some(map.next_value_seed(Text)?);
                return Ok(());
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// Whether a key is the one named, compared where the JSON holds it.
struct KeyIs(&'static str);

impl<'de> DeserializeSeed<'de> for KeyIs {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

/// A string value, borrowed unless it had escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::event_type;

    #[test]
    fn the_type_is_read_wherever_the_key_is_and_only_at_the_top() {
        for (value, expected) in [
            (
                r#"{"eventId":"x","eventType":"A","campaignId":1}"#,
                Some("A"),
            ),
            (r#"{"eventType":"A"}"#, Some("A")),
            (
                r#" { "n" : [1, {"eventType":"B"}], "eventType" : "A" } "#,
                Some("A"),
            ),
            (r#"{"x":{"eventType":"B"}}"#, None),
            (r#"{"eventType":"A\u0042"}"#, Some("AB")),
            (r#"{"eventType":7}"#, None),
            (r#"{"eventType":null}"#, None),
            (r#"["eventType","A"]"#, None),
            (r#""eventType""#, None),
            (r#"{"#, None),
            ("not json", None),
            ("", None),
            (r#"{"a":"\"eventType\":\"B\"","eventType":"A"}"#, Some("A")),
        ] {
            assert_eq!(event_type(value.as_bytes()).as_deref(), expected, "{value}");
        }
    }

    #[test]
    fn the_rest_of_the_value_is_not_read() {
        // What follows the key is the full parse's to judge.
        assert_eq!(
            event_type(br#"{"eventType":"A", this is not JSON"#).as_deref(),
            Some("A")
        );
    }
}
