//! The unsigned admin API under `/_fake/`: what tests use to look inside the fake and to change the world behind
//! the operator's back. No EIAM action can reach it, because every real action is sent to `/`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::config::AccessKeyConfig;
use super::directory::RuleViolation;
use super::faults::FaultPlan;
use super::server::{InjectedSecret, Shared};
use crate::eiam::types::SecretStatus;

/// The admin routes, to be nested under `/_fake`.
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/calls", get(calls))
        .route("/state", get(state))
        .route("/faults", get(get_faults).post(set_faults))
        .route("/reset", post(reset))
        .route("/clock", post(clock))
        .route("/secrets", post(insert_secret))
        .route("/secrets/delete", post(delete_secret))
        .route("/secrets/disable", post(disable_secret))
        .route("/secrets/enable", post(enable_secret))
        .route("/secrets/use", post(use_secret))
        .route("/applications", post(add_application))
        .route("/applications/delete", post(delete_application))
        .route("/access-keys", post(add_access_key))
        .route("/access-keys/delete", post(delete_access_key))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn violation(v: &RuleViolation) -> Response {
    let status = match v {
        RuleViolation::InstanceNotFound(_)
        | RuleViolation::ApplicationNotFound(_)
        | RuleViolation::SecretNotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::CONFLICT,
    };
    error(status, v.to_string())
}

#[derive(Debug, Deserialize)]
struct CallsQuery {
    action: Option<String>,
}

async fn calls(State(shared): State<Arc<Shared>>, Query(q): Query<CallsQuery>) -> Response {
    Json(shared.calls(q.action.as_deref())).into_response()
}

async fn state(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.state()).into_response()
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({ "rules": shared.state().faults })).into_response()
}

async fn set_faults(State(shared): State<Arc<Shared>>, Json(plan): Json<FaultPlan>) -> Response {
    match shared.set_faults(plan) {
        Ok(report) => Json(json!({ "rules": report })).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockRequest {
    skew_ms: i64,
}

async fn clock(State(shared): State<Arc<Shared>>, Json(req): Json<ClockRequest>) -> Response {
    shared.set_clock_skew_ms(req.skew_ms);
    Json(json!({ "clockSkewMs": req.skew_ms, "serverTimeMs": shared.state().server_time_ms }))
        .into_response()
}

async fn insert_secret(
    State(shared): State<Arc<Shared>>,
    Json(req): Json<InjectedSecret>,
) -> Response {
    match shared.insert_secret(req) {
        Ok(secret) => (StatusCode::CREATED, Json(secret)).into_response(),
        Err(v) => violation(&v),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecretRef {
    instance_id: String,
    application_id: String,
    secret_id: String,
}

async fn delete_secret(State(shared): State<Arc<Shared>>, Json(r): Json<SecretRef>) -> Response {
    let result = shared.lock().directory.delete_secret_unchecked(
        &r.instance_id,
        &r.application_id,
        &r.secret_id,
    );
    match result {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(v) => violation(&v),
    }
}

fn set_status(shared: &Shared, r: &SecretRef, status: SecretStatus) -> Response {
    let result =
        shared
            .lock()
            .directory
            .set_status(&r.instance_id, &r.application_id, &r.secret_id, status);
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(v) => violation(&v),
    }
}

async fn disable_secret(State(shared): State<Arc<Shared>>, Json(r): Json<SecretRef>) -> Response {
    set_status(&shared, &r, SecretStatus::Disabled)
}

async fn enable_secret(State(shared): State<Arc<Shared>>, Json(r): Json<SecretRef>) -> Response {
    set_status(&shared, &r, SecretStatus::Enabled)
}

async fn use_secret(State(shared): State<Arc<Shared>>, Json(r): Json<SecretRef>) -> Response {
    let mut core = shared.lock();
    let now_ms = core.now_ms();
    match core
        .directory
        .mark_used(&r.instance_id, &r.application_id, &r.secret_id, now_ms)
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(v) => violation(&v),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApplicationRef {
    instance_id: String,
    application_id: String,
    #[serde(default)]
    client_id: Option<String>,
}

async fn add_application(
    State(shared): State<Arc<Shared>>,
    Json(r): Json<ApplicationRef>,
) -> Response {
    let client_id = r.client_id.as_deref().unwrap_or(&r.application_id);
    shared
        .lock()
        .directory
        .ensure_application(&r.instance_id, &r.application_id, client_id);
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_application(
    State(shared): State<Arc<Shared>>,
    Json(r): Json<ApplicationRef>,
) -> Response {
    if shared
        .lock()
        .directory
        .remove_application(&r.instance_id, &r.application_id)
    {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("no application {}/{}", r.instance_id, r.application_id),
        )
    }
}

async fn add_access_key(
    State(shared): State<Arc<Shared>>,
    Json(key): Json<AccessKeyConfig>,
) -> Response {
    shared.add_access_key(key);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRef {
    id: String,
}

async fn delete_access_key(State(shared): State<Arc<Shared>>, Json(r): Json<KeyRef>) -> Response {
    if shared.lock().keyring.remove(&r.id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("no access key {}", r.id))
    }
}
