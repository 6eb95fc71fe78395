//! The HTTP middleware behind `firstcome_http_requests_total{method,route,status}` and
//! `firstcome_http_request_duration_seconds{method,route}`.
//!
//! `route` is the template the router matched, never the raw path, so the label's values are as
//! few as the routes and carry no path parameter's value (a waiting-room ticket is its holder's
//! secret): poem's router attaches it to the response as [`PathPattern`]. poem-openapi
//! registers its operations under renamed parameters (`/api/v1/campaigns/:param0/participations`);
//! [`HttpMetrics::with_openapi`] labels them with the spec's path instead
//! (`/api/v1/campaigns/{id}/participations`). A response without one (no route matched, or answered before
//! routing: a body over the limit, a request timeout) is `route="unmatched"`. `method` is one of
//! the standard methods or `OTHER`, for the same reason. Wrap the application *outside* its error
//! catcher, so `status` is the status the client got.
//!
//! A request whose client hung up is not counted: its future is dropped before it has a status.

use std::{collections::HashMap, sync::Arc, time::Instant};

use poem::{
    http::{Method, StatusCode},
    Endpoint, IntoResponse, Middleware, PathPattern, Request, Response,
};
use prometheus_client::metrics::{counter::Counter, family::Family, histogram::Histogram};

use crate::telemetry::metrics::{
    registry::{HttpLabels, RouteLabels},
    Metrics,
};

/// The label of responses no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Counts and times every request (`.with(HttpMetrics::new(&metrics))`).
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// poem's pattern of an OpenAPI operation → the spec's path.
    templates: Arc<HashMap<String, String>>,
}

impl HttpMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            requests: metrics.http_requests.clone(),
            duration: metrics.http_duration.clone(),
            templates: Arc::default(),
        }
    }

    /// Labels the operations of `T` with their paths as the spec writes them.
    pub fn with_openapi<T: poem_openapi::OpenApi>(mut self) -> Self {
        let mut templates = HashMap::new();
        for path in T::meta().into_iter().flat_map(|api| api.paths) {
            templates.insert(poem_pattern(&path.path), path.path);
        }
        self.templates = Arc::new(templates);
        self
    }
}

/// The pattern poem-openapi registers a spec path under: its `n`-th `{name}` becomes `:param<n>`.
fn poem_pattern(spec_path: &str) -> String {
    let mut n = 0;
    spec_path
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                n += 1;
                format!(":param{}", n - 1)
            } else {
                segment.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

impl<E: Endpoint> Middleware<E> for HttpMetrics {
    type Output = HttpMetricsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        HttpMetricsEndpoint {
            inner,
            metrics: self.clone(),
        }
    }
}

pub struct HttpMetricsEndpoint<E> {
    inner: E,
    metrics: HttpMetrics,
}

/// The method as a label: one of a fixed few, so a client cannot grow the label set.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

impl HttpMetrics {
    /// Counts and times one request that began at `started`: its method's label
    /// ([`method_label`]), its answer's status and route.
    pub fn record(&self, method: &'static str, started: Instant, resp: &Response) {
        self.observe(method, started, resp.status(), resp.data::<PathPattern>());
    }

    fn observe(
        &self,
        method: &'static str,
        started: Instant,
        status: StatusCode,
        pattern: Option<&PathPattern>,
    ) {
        let elapsed = started.elapsed().as_secs_f64();
        let route = self.route_label(pattern);
        self.duration
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(elapsed);
        self.requests
            .get_or_create(&HttpLabels {
                method,
                route,
                status: status.as_u16(),
            })
            .inc();
    }

    /// The route label: the spec's template when the route is an API operation, the matched
    /// pattern otherwise, or `unmatched`.
    fn route_label(&self, pattern: Option<&PathPattern>) -> String {
        match pattern {
            Some(PathPattern(p)) if !p.is_empty() && &**p != "/" => self
                .templates
                .get(&**p)
                .cloned()
                .unwrap_or_else(|| p.to_string()),
            _ => UNMATCHED.to_string(),
        }
    }
}

impl<E: Endpoint> Endpoint for HttpMetricsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let method = method_label(req.method());
        let started = Instant::now();
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        match &result {
            Ok(res) => self.metrics.record(method, started, res),
            Err(err) => {
                self.metrics
                    .observe(method, started, err.status(), err.data::<PathPattern>())
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::poem_pattern;

    #[test]
    fn spec_paths_map_to_poem_openapi_patterns() {
        assert_eq!(
            poem_pattern("/api/v1/campaigns/{id}/participations/{userId}"),
            "/api/v1/campaigns/:param0/participations/:param1"
        );
        assert_eq!(poem_pattern("/health/live"), "/health/live");
    }
}
