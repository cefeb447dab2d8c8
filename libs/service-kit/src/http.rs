//! Every service's HTTP surface: request ids, traces, RED metrics, `/healthz`, `/readyz`, `/metrics`, auth, serving.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::auth::{Authenticator, authenticate};
use crate::health::Readiness;
use crate::metrics::{HttpLabels, Metrics, RouteLabels};
use crate::shutdown::Shutdown;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub use crate::error::current_request_id;

/// What the kit needs from a service to wrap its routes.
#[derive(Clone)]
pub struct Kit {
    pub auth: Authenticator,
    pub readiness: Readiness,
    pub metrics: Metrics,
}

impl Kit {
    /// The usual kit of a service with a database and the bus: ready when both answer.
    pub fn new(
        auth: Authenticator,
        metrics: Metrics,
        pool: sqlx::PgPool,
        nats: async_nats::Client,
    ) -> Self {
        Self {
            auth,
            readiness: Readiness::new().with_postgres(pool).with_nats(nats),
            metrics,
        }
    }
}

/// Wraps a service's routes: `api` needs an identity, `public` does not; health and metrics are added.
pub fn service_router(api: Router, public: Router, kit: Kit) -> Router {
    // axum refuses a route layer on a router without routes; a service may serve no API of its own.
    let api = if api.has_routes() {
        api.route_layer(from_fn_with_state(kit.auth.clone(), authenticate))
    } else {
        api
    };
    let routes = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).with_state(kit.readiness.clone()))
        .route("/metrics", get(metrics).with_state(kit.metrics.clone()))
        .merge(public)
        .merge(api);
    traced(routes, kit.metrics)
}

/// A listener of its own for callers who prove themselves in the request (an edge node's join token):
/// exactly `routes`, nothing that takes a human's identity, no health or metrics; traced and counted as
/// the service's main listener is.
pub fn machine_router(routes: Router, kit: &Kit) -> Router {
    traced(routes, kit.metrics.clone())
}

fn traced(routes: Router, metrics: Metrics) -> Router {
    routes
        .fallback(|uri: axum::http::Uri| async move {
            crate::ApiError::NotFound(format!("no route {}", uri.path()))
        })
        .layer(from_fn_with_state(metrics, record_metrics))
        .layer(from_fn(request_id_scope))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let report = readiness.report().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

async fn metrics(State(metrics): State<Metrics>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response()
}

fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(request.uri().path(), MatchedPath::as_str);
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "http.request",
        otel.name = format!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = route,
        request_id,
    );
    // Continue the caller's trace when it sent a W3C `traceparent`.
    let parent = opentelemetry::propagation::TextMapPropagator::extract(
        &opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        &HeaderExtractor(request.headers()),
    );
    let _ = span.set_parent(parent);
    span
}

async fn request_id_scope(request: Request, next: Next) -> Response {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    crate::error::with_request_id(id, next.run(request)).await
}

async fn record_metrics(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        // Unmatched paths would give every scanner its own time series.
        return next.run(request).await;
    };
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .http_duration
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// Reads W3C trace context out of HTTP headers.
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Serves `router` until shutdown; in-flight requests finish (bounded by the service's grace period).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.wait())
        .await
}

/// Serves gRPC routes (with their own auth interceptors) until shutdown.
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    routes: tonic::service::Routes,
    shutdown: Shutdown,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown.wait(),
        )
        .await
}
