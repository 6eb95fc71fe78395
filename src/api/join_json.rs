//! The join's JSON, read and written without a `serde_json::Value` in between.
//!
//! poem-openapi's `Json` parses a body into a `Value` and then into the type, and writes an
//! answer by building a `Value` and serializing that: a map of owned keys and strings, for a body
//! of one or two fields. The join is the sale's hot request, so:
//!
//! - [`JoinJson`] reads the common body (`userId`, maybe `quantity`, nothing else, with the
//!   content type `application/json`) straight into [`JoinBody`] and checks it against the same
//!   validators. Anything else, valid or not, goes to poem-openapi's own `Json<JoinBody>`, which
//!   decides and words the error exactly as before. The fast path only ever accepts a body the
//!   slow one accepts, with the same values.
//! - [`ParticipationJson`] writes a [`ParticipationDto`] byte for byte as `Json` writes it: keys
//!   in `serde_json`'s map order (sorted), absent options left out, times as `to_rfc3339`.
//!
//! In the OpenAPI document both are what `Json` is: the same schema, content type and `required`.

use poem::{Body, IntoResponse, Request, RequestBody, Response};
use poem_openapi::{
    payload::{Json, Payload},
    registry::{MetaRequest, MetaSchemaRef, Registry},
    types::Type,
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
};
use serde::Deserialize;

use crate::api::{
    gate_update::GateUpdate,
    participations::{JoinBody, ParticipationDto, StatusDto},
};

/// The largest `quantity` `JoinBody` accepts (its `maximum` validator).
const MAX_QUANTITY: i32 = 10_000_000;

/// A join's body: [`JoinBody`], read without a detour through `serde_json::Value` when it is the
/// plain kind.
#[derive(Debug)]
pub struct JoinJson(pub JoinBody);

/// The body the fast path takes: anything more (an admission token, an unknown key, a repeated
/// key) fails here and is left to poem-openapi.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain {
    #[serde(rename = "userId")]
    user_id: i64,
    quantity: Option<i32>,
}

impl Plain {
    /// `JoinBody`'s validators: `userId ≥ 1`, `1 ≤ quantity ≤ 10,000,000`.
    fn valid(self) -> Option<JoinBody> {
        let quantity_ok = self
            .quantity
            .is_none_or(|q| (1..=MAX_QUANTITY).contains(&q));
        (self.user_id >= 1 && quantity_ok).then_some(JoinBody {
            user_id: self.user_id,
            quantity: self.quantity,
            admission_token: None,
            bot_check: None,
        })
    }
}

/// The body as the fast path reads it, or `None` for poem-openapi to decide.
fn plain(bytes: &[u8]) -> Option<JoinBody> {
    serde_json::from_slice::<Plain>(bytes).ok()?.valid()
}

impl<'a> ApiExtractor<'a> for JoinJson {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Json<JoinBody> as ApiExtractor>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        <Json<JoinBody> as ApiExtractor>::request_meta()
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        if request.content_type() == Some("application/json") {
            let bytes = body.take()?.into_bytes().await?;
            if let Some(join) = plain(&bytes) {
                return Ok(Self(join));
            }
            *body = RequestBody::new(Body::from(bytes));
        }
        let Json(join) =
            <Json<JoinBody> as ApiExtractor>::from_request(request, body, param_opts).await?;
        Ok(Self(join))
    }
}

/// A participation as the answer's body: what `Json<ParticipationDto>` writes, written directly.
#[derive(Debug)]
pub struct ParticipationJson(pub ParticipationDto);

impl Payload for ParticipationJson {
    const CONTENT_TYPE: &'static str = <Json<ParticipationDto> as Payload>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        <Json<ParticipationDto> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        ParticipationDto::schema_ref()
    }

    fn register(registry: &mut Registry) {
        ParticipationDto::register(registry);
    }
}

impl IntoResponse for ParticipationJson {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(write(&self.0))
    }
}

/// The DTO's JSON, keys sorted as `serde_json::Map` sorts them.
fn write(p: &ParticipationDto) -> Vec<u8> {
    let mut out = String::with_capacity(320);
    out.push_str("{\"acceptedAt\":\"");
    out.push_str(&p.accepted_at.to_rfc3339());
    out.push_str("\",\"campaignId\":");
    push_int(&mut out, p.campaign_id);
    if let Some(event_id) = p.event_id {
        out.push_str(",\"eventId\":\"");
        out.push_str(
            event_id
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        );
        out.push('"');
    }
    if let Some(gate) = p.gate {
        out.push_str(",\"gate\":\"");
        out.push_str(match gate {
            GateUpdate::Updated => "UPDATED",
            GateUpdate::Pending => "PENDING",
        });
        out.push('"');
    }
    if let Some(at) = p.hold_expires_at {
        out.push_str(",\"holdExpiresAt\":\"");
        out.push_str(&at.to_rfc3339());
        out.push('"');
    }
    out.push_str(",\"participationId\":");
    push_int(&mut out, p.participation_id);
    out.push_str(",\"quantity\":");
    push_int(&mut out, i64::from(p.quantity));
    out.push_str(",\"sequence\":");
    push_int(&mut out, p.sequence);
    out.push_str(",\"status\":\"");
    out.push_str(status_name(p.status));
    out.push_str("\",\"userId\":");
    push_int(&mut out, p.user_id);
    out.push('}');
    out.into_bytes()
}

fn push_int(out: &mut String, n: i64) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(out, "{n}");
}

/// The status as the enum's `to_json` names it.
fn status_name(status: StatusDto) -> &'static str {
    match status {
        StatusDto::Held => "HELD",
        StatusDto::Confirmed => "CONFIRMED",
        StatusDto::Cancelled => "CANCELLED",
        StatusDto::Expired => "EXPIRED",
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use poem_openapi::types::{ParseFromJSON, ToJSON};
    use uuid::Uuid;

    use super::*;

    /// poem-openapi's reading of a body: the reference the fast path must agree with.
    fn slow(bytes: &[u8]) -> Result<(i64, Option<i32>, bool), String> {
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(bytes).map_err(|e| e.to_string())?
        };
        let body = JoinBody::parse_from_json(Some(value)).map_err(|e| e.into_message())?;
        Ok((body.user_id, body.quantity, body.admission_token.is_some()))
    }

    #[test]
    fn the_fast_path_takes_only_bodies_poem_openapi_takes_with_the_same_values() {
        let taken = [
            r#"{"userId":1}"#,
            r#"{"userId":42,"quantity":3}"#,
            r#" { "quantity" : null , "userId" : 9223372036854775807 } "#,
            r#"{"user\u0049d":7}"#,
            r#"{"userId":1,"quantity":10000000}"#,
        ];
        for body in taken {
            let fast = plain(body.as_bytes()).unwrap_or_else(|| panic!("{body}: not taken"));
            assert_eq!(
                slow(body.as_bytes()),
                Ok((fast.user_id, fast.quantity, false)),
                "{body}: the fast path read it otherwise"
            );
        }
        // Left to poem-openapi, each for its own reason (most are refused there).
        let left = [
            r#"{"userId":0}"#,
            r#"{"userId":-1}"#,
            r#"{"userId":-0}"#,
            r#"{"userId":1.0}"#,
            r#"{"userId":1e0}"#,
            r#"{"userId":"1"}"#,
            r#"{"userId":9223372036854775808}"#,
            r#"{"userId":1,"quantity":0}"#,
            r#"{"userId":1,"quantity":10000001}"#,
            r#"{"userId":1,"quantity":2147483648}"#,
            r#"{"userId":1,"quantity":"2"}"#,
            r#"{"userId":1,"userId":2}"#,
            r#"{"userId":1,"other":2}"#,
            r#"{"userId":1,"admissionToken":"t"}"#,
            r#"{"quantity":1}"#,
            r#"{"userId":1} x"#,
            r#"[1]"#,
            r#"null"#,
            "",
            "{\"userId\":1",
        ];
        for body in left {
            assert!(plain(body.as_bytes()).is_none(), "{body}: taken");
        }
        assert_eq!(
            slow(br#"{"userId":1,"admissionToken":"t"}"#),
            Ok((1, None, true))
        );
    }

    fn dto(seed: u64) -> ParticipationDto {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let time = |n: u64| -> DateTime<Utc> {
            // Whole seconds, milliseconds, microseconds and nanoseconds all occur.
            let nanos = match n % 4 {
                0 => 0,
                1 => (n % 1000) as u32 * 1_000_000,
                2 => (n % 1_000_000) as u32 * 1000,
                _ => (n % 1_000_000_000) as u32,
            };
            Utc.timestamp_opt((n % 4_000_000_000) as i64, nanos)
                .unwrap()
        };
        let status = [
            StatusDto::Held,
            StatusDto::Confirmed,
            StatusDto::Cancelled,
            StatusDto::Expired,
        ][(next() % 4) as usize];
        ParticipationDto {
            participation_id: (next() >> 1) as i64,
            campaign_id: (next() % 1_000_000) as i64 + 1,
            user_id: (next() >> 1) as i64,
            quantity: (next() % 10_000_000) as i32 + 1,
            sequence: (next() % 1_000_000_000) as i64,
            event_id: (next() % 3 != 0).then(|| Uuid::from_u128(u128::from(next()) << 64 | 7)),
            accepted_at: time(next()),
            status,
            hold_expires_at: (next() % 2 == 0).then(|| time(next())),
            gate: [None, Some(GateUpdate::Updated), Some(GateUpdate::Pending)]
                [(next() % 3) as usize],
        }
    }

    #[test]
    fn a_participation_is_written_byte_for_byte_as_json_writes_it() {
        for seed in 0..2_000 {
            let p = dto(seed);
            let reference = serde_json::to_vec(&p.to_json()).unwrap();
            assert_eq!(
                String::from_utf8(write(&p)).unwrap(),
                String::from_utf8(reference).unwrap(),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn the_documents_see_what_json_declares() {
        assert_eq!(
            <JoinJson as ApiExtractor>::request_meta(),
            <Json<JoinBody> as ApiExtractor>::request_meta()
        );
        assert_eq!(
            ParticipationJson::CONTENT_TYPE,
            "application/json; charset=utf-8"
        );
    }
}
