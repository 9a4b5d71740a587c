use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The process can serve: the database answers. Redis is never the source of truth (logins
/// fall back to per-instance limits, events wait in the outbox), so an unreachable Redis is
/// reported as `degraded` in the body and does not take the replica out of rotation.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.db.ping().await?;
    let redis = match &state.redis {
        Some(r) => match r.ping().await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, "readiness: Redis unreachable");
                "degraded"
            }
        },
        None => "not_configured",
    };
    Ok(HttpResponse::Ok().json(json!({
        "status": "ready",
        "database": state.db.engine(),
        "redis": redis,
    })))
}
