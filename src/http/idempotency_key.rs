//! The `Idempotency-Key` header, declared once for every call that takes it (the joins, the
//! purchase, the campaign controls): what it may hold (1-128 visible ASCII characters), how the
//! spec shows it, and the 400 for a header the declaration could not read at all.
//!
//! poem-openapi takes the name a parameter has in the spec only as a literal in its
//! `#[oai(name = ...)]`, so each call still writes `#[oai(name = "Idempotency-Key")]`; the
//! header is read here, by [`IDEMPOTENCY_KEY`]. A key outside the rules is refused as
//! poem-openapi's own validators refused it when each call declared them (the same message, the
//! same 400 VALIDATION_FAILED, at the same point of the call), and the spec shows the same
//! `string` schema with `maxLength`, `minLength` and `pattern`.

use poem::{http::HeaderMap, Request, RequestBody};
use poem_openapi::{
    error::ParseParamError,
    registry::{MetaParamIn, MetaSchema, MetaSchemaRef},
    types::Type,
    validation::{MaxLength, MinLength, Pattern, Validator, ValidatorMeta},
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
};

use crate::http::error::ApiError;

/// The header's name, as clients send it.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The longest key, in characters.
const MAX_LENGTH: usize = 128;
/// Visible ASCII only: no spaces, no controls, nothing a proxy might rewrite.
const VISIBLE_ASCII: &str = "^[!-~]+$";

/// The header as a call declares it (`#[oai(name = "Idempotency-Key")] key: IdempotencyKey`):
/// the key, `None` when the request has none it could read. Pass it to [`checked_key`].
pub struct IdempotencyKey(Option<String>);

/// The rules, in the order poem-openapi's validators check them (the first that fails is the
/// answer).
fn rules() -> (MaxLength, MinLength, Pattern) {
    (
        MaxLength::new(MAX_LENGTH),
        MinLength::new(1),
        Pattern::new(VISIBLE_ASCII),
    )
}

/// The first value of the header that is readable text (as poem-openapi's `Header` reads it),
/// checked against the rules.
fn read(headers: &HeaderMap) -> Result<Option<String>, ParseParamError> {
    let Some(value) = headers
        .get_all(IDEMPOTENCY_KEY)
        .iter()
        .find_map(|value| value.to_str().ok())
    else {
        return Ok(None);
    };
    let value = value.to_string();
    let (max, min, pattern) = rules();
    let refused = |rule: &dyn std::fmt::Display| ParseParamError {
        name: IDEMPOTENCY_KEY,
        reason: format!("verification failed. {rule}"),
    };
    if !max.check(&value) {
        return Err(refused(&max));
    }
    if !min.check(&value) {
        return Err(refused(&min));
    }
    if !pattern.check(&value) {
        return Err(refused(&pattern));
    }
    Ok(Some(value))
}

impl<'a> ApiExtractor<'a> for IdempotencyKey {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
    const PARAM_IS_REQUIRED: bool = false;

    type ParamType = Option<String>;
    type ParamRawType = String;

    fn register(registry: &mut poem_openapi::registry::Registry) {
        <Option<String> as Type>::register(registry);
    }

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Header)
    }

    /// A `string` with the rules as `maxLength`, `minLength` and `pattern`.
    fn param_schema_ref() -> Option<MetaSchemaRef> {
        let (max, min, pattern) = rules();
        let mut rules = MetaSchema::ANY;
        max.update_meta(&mut rules);
        min.update_meta(&mut rules);
        pattern.update_meta(&mut rules);
        Some(<Option<String> as Type>::schema_ref().merge(rules))
    }

    fn param_raw_type(&self) -> Option<&Self::ParamRawType> {
        self.0.as_ref()
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(Self(read(request.headers())?))
    }
}

/// The key as declared, or 400 for a header the declaration could not read at all: bytes that
/// are not visible ASCII (poem-openapi reads such a header as absent, which would silently run
/// the call without its key).
pub fn checked_key(declared: IdempotencyKey, http: &Request) -> Result<Option<String>, ApiError> {
    let IdempotencyKey(declared) = declared;
    if declared.is_none() && http.headers().contains_key(IDEMPOTENCY_KEY) {
        return Err(ApiError::validation(format!(
            "{IDEMPOTENCY_KEY} must be 1 to {MAX_LENGTH} visible ASCII characters"
        )));
    }
    Ok(declared)
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    fn reason(value: &[u8]) -> Option<String> {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_bytes(value).expect("a header value");
        headers.insert(IDEMPOTENCY_KEY, value);
        read(&headers).err().map(|e| e.to_string())
    }

    #[test]
    fn keys_are_refused_with_the_message_of_poem_openapis_validators() {
        assert_eq!(read(&HeaderMap::new()).ok(), Some(None));
        assert_eq!(reason(b"retry-me"), None);
        assert_eq!(reason("~".repeat(128).as_bytes()), None);
        let refused = |rule: &str| {
            Some(format!(
                "failed to parse parameter `Idempotency-Key`: verification failed. {rule}"
            ))
        };
        assert_eq!(
            reason("k".repeat(129).as_bytes()),
            refused("maxLength(128)")
        );
        assert_eq!(reason(b""), refused("minLength(1)"));
        for bad in ["has space", "tab\there"] {
            assert_eq!(
                reason(bad.as_bytes()),
                refused("pattern(\"^[!-~]+$\")"),
                "{bad:?}"
            );
        }
        // Not text at all: read as absent, which `checked_key` answers with 400.
        assert_eq!(
            read(&{
                let mut headers = HeaderMap::new();
                headers.insert(
                    IDEMPOTENCY_KEY,
                    HeaderValue::from_bytes(b"\xff").expect("bytes"),
                );
                headers
            })
            .ok(),
            Some(None)
        );
    }
}
