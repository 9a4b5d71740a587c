use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The process can serve: the database answers, and Redis when one is configured.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.db.ping().await?;
    let redis = match &state.redis {
        Some(r) => {
            r.ping().await?;
            "ok"
        }
        None => "not_configured",
    };
    Ok(HttpResponse::Ok().json(json!({
        "status": "ready",
        "database": state.db.engine(),
        "redis": redis,
    })))
}
