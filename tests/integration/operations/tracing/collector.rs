//! A minimal OTLP/HTTP collector for the export test: every span the binary POSTs to
//! `/v1/traces` (protobuf), kept in order for the test to read.

use std::sync::{Arc, Mutex};

/// A minimal OTLP/HTTP collector: every span POSTed to `/v1/traces` (protobuf), kept in order.
pub struct Collector {
    pub endpoint: String,
    pub spans: Arc<Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>,
}

#[poem::handler]
async fn receive_traces(
    spans: poem::web::Data<&Arc<Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>>,
    body: Vec<u8>,
) -> poem::Response {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message;
    let Ok(request) = ExportTraceServiceRequest::decode(body.as_slice()) else {
        return poem::Response::builder()
            .status(poem::http::StatusCode::BAD_REQUEST)
            .finish();
    };
    let mut kept = spans.lock().expect("spans");
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            kept.extend(scope.spans);
        }
    }
    poem::Response::builder()
        .content_type("application/x-protobuf")
        .body(ExportTraceServiceResponse::default().encode_to_vec())
}

pub async fn start_collector() -> Collector {
    use poem::{
        listener::{Acceptor, Listener},
        EndpointExt,
    };
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind the collector");
    let port = acceptor.local_addr()[0]
        .as_socket_addr()
        .expect("a TCP address")
        .port();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let app = poem::Route::new()
        .at("/v1/traces", poem::post(receive_traces))
        .data(spans.clone());
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    Collector {
        endpoint: format!("http://127.0.0.1:{port}"),
        spans,
    }
}

/// Lower-case hex of an OTLP id.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
