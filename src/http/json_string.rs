//! A request field that must be a JSON string. poem-openapi's `String` also takes a number or a
//! boolean and turns it into text (`"name": 1` became a campaign named "1"); a client that sends
//! the wrong type gets a 400 instead. In the spec it is a plain `string`, and the `min_length` /
//! `max_length` validators apply to the text as for `String`.

use std::borrow::Cow;

use poem_openapi::{
    registry::MetaSchemaRef,
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonString(pub String);

impl Type for JsonString {
    const IS_REQUIRED: bool = true;

    /// Validators see the text itself.
    type RawValueType = String;

    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        String::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        String::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromJSON for JsonString {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(s) => Ok(Self(s)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for JsonString {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_a_json_string_parses() {
        let parse = |v: Value| JsonString::parse_from_json(Some(v)).map(|s| s.0);
        assert_eq!(parse(json!("1")).ok().as_deref(), Some("1"));
        assert_eq!(parse(json!("")).ok().as_deref(), Some(""));
        for wrong in [
            json!(1),
            json!(1.5),
            json!(true),
            json!(null),
            json!([]),
            json!({}),
        ] {
            assert!(parse(wrong.clone()).is_err(), "{wrong} is not a string");
        }
        assert!(JsonString::parse_from_json(None).is_err());
    }
}
