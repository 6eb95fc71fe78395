//! The catcher that gives errors raised by the framework, not by handlers (bad JSON, wrong types,
//! unknown routes, a missing token, a body too slow or too large), the API's one error shape
//! ([`super::error`]).

use poem::{http::StatusCode, Body, IntoResponse, PathPattern, Response};

use super::error::{body, ApiError, ErrorBody, ErrorCode};

/// Turns errors raised by the framework (not by handlers) into the same JSON shape. Errors a
/// handler returned already are responses and pass through unchanged. The route template the
/// router attached stays on the response (the HTTP metrics label requests with it).
pub fn catch_all(err: poem::Error) -> Response {
    let route = err.data::<PathPattern>().cloned();
    let mut res = answer(err);
    if let Some(route) = route {
        res.set_data(route);
    }
    res
}

fn answer(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let message = err.to_string();
    let api = match status {
        StatusCode::UNAUTHORIZED => ApiError::unauthorized(),
        StatusCode::NOT_FOUND => ApiError::NotFound(body(ErrorCode::NotFound, "no such route")),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(body(ErrorCode::PayloadTooLarge, message))
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            return json_response(
                status,
                &body(ErrorCode::MethodNotAllowed, "method not allowed").0,
            )
        }
        s if s.is_client_error() => ApiError::validation(message),
        _ => ApiError::internal(&err),
    };
    api.into_response()
}

/// 408 REQUEST_TIMEOUT: the request's body did not arrive within the request deadline (a slow or
/// stalled client, not a dependency). The connection is closed after it: the rest of the body
/// may still be on its way.
pub fn request_timeout(deadline: std::time::Duration) -> Response {
    let mut res = json_response(
        StatusCode::REQUEST_TIMEOUT,
        &body(
            ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} ms",
                deadline.as_millis()
            ),
        )
        .0,
    );
    res.headers_mut().insert(
        poem::http::header::CONNECTION,
        poem::http::HeaderValue::from_static("close"),
    );
    res
}

fn json_response(status: StatusCode, body: &ErrorBody) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(Body::from_json(body).unwrap_or_else(|_| Body::empty()))
}
