use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use yunlian_infra::db::{self, ScopedFutureExt};

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The data directory's free space, and whether it is below the configured threshold.
fn disk(state: &AppState) -> Option<(u64, bool)> {
    let free = yunlian_infra::disk::free_bytes(&state.config.data_dir).ok()?;
    Some((free, free < state.config.disk_low_bytes))
}

/// The process can serve: the database answers. Redis is never the source of truth (logins
/// fall back to per-instance limits, events wait in the outbox), so an unreachable Redis is
/// reported as `degraded` in the body and does not take the replica out of rotation. A data
/// directory short of space is reported (`disk: low`) before writes start failing; under a
/// mebibyte left the replica is not ready (`storage_full`).
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
    let (free, status) = match disk(&state) {
        Some((free, low)) => (Some(free), if low { "low" } else { "ok" }),
        None => (None, "unknown"),
    };
    // Under a mebibyte no write can be trusted to land: not ready (reads still answer).
    if free.is_some_and(|f| f < 1 << 20) {
        return Err(ApiError {
            retry_after: Some(60),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_full")
        });
    }
    Ok(HttpResponse::Ok().json(json!({
        "status": "ready",
        "database": state.db.engine(),
        "redis": redis,
        "disk": status,
        "disk_free_bytes": free,
    })))
}

/// Prometheus metrics, for a scraper presenting `YUNLIAN_METRICS_TOKEN` as a bearer token.
/// Without a configured token there are no metrics (404): never open by default.
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(token) = &state.config.metrics_token else {
        return Err(ApiError::not_found());
    };
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated"));
    }
    let Some(handle) = crate::telemetry::metrics() else {
        return Err(ApiError::not_found());
    };
    // Gauges read at scrape time.
    let (in_use, idle, max, waiting) = state.db.pool_status();
    metrics::gauge!("yunlian_db_pool_connections", "state" => "in_use").set(in_use as f64);
    metrics::gauge!("yunlian_db_pool_connections", "state" => "idle").set(idle as f64);
    metrics::gauge!("yunlian_db_pool_connections", "state" => "max").set(max as f64);
    metrics::gauge!("yunlian_db_pool_waiting").set(waiting as f64);
    let now = state.clock.now();
    let (backlog, oldest) = state
        .db
        .read(|mut c| {
            async move {
                Ok((
                    db::outbox::waiting(&mut c).await?,
                    db::outbox::oldest_waiting(&mut c).await?,
                ))
            }
            .scope_boxed()
        })
        .await?;
    metrics::gauge!("yunlian_outbox_backlog").set(backlog as f64);
    let lag = oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1e3);
    metrics::gauge!("yunlian_outbox_lag_seconds").set(lag);
    metrics::gauge!("yunlian_sse_connections").set(state.hub.connections() as f64);
    if let Some((free, _)) = disk(&state) {
        metrics::gauge!("yunlian_disk_free_bytes").set(free as f64);
    }
    handle.run_upkeep();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
