//! The `/metrics` endpoint: OpenMetrics for scrapers that ask for it, the Prometheus text format otherwise.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Format, Metrics};

/// A router serving `GET /metrics` to anyone (a loopback address, or `--metrics-secure=false`).
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics)
}

/// A router serving `GET /metrics` to scrapers whose token may `get` it (see [`super::secure`]).
pub fn secure_router(metrics: Arc<Metrics>, authorizer: Arc<super::secure::Authorizer>) -> Router {
    router(metrics).layer(axum::middleware::from_fn_with_state(
        authorizer,
        super::secure::authorize,
    ))
}

async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(
        headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok()),
    );
    match metrics.encode(format) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}
