//! The request middleware: a request id on every response and log line, the access log, and
//! problem bodies rendered in the caller's language.

use crate::errors::{ApiError, Lang};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, ACCEPT_LANGUAGE};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse};
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id, readable by handlers through the request extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn incoming_id(req: &ServiceRequest) -> Option<String> {
    let v = req.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| v.to_string())
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = incoming_id(&req).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let lang = Lang::from_header(
        req.headers()
            .get(ACCEPT_LANGUAGE)
            .and_then(|h| h.to_str().ok()),
    );
    req.extensions_mut().insert(RequestId(id.clone()));
    req.extensions_mut().insert(lang);
    let method = req.method().to_string();
    let operation = req
        .match_pattern()
        .and_then(|p| crate::routes::operation_id(&method, &p))
        .unwrap_or("unmatched");
    let now = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .map(|s| s.clock.now())
        .unwrap_or_else(chrono::Utc::now);
    let audit = yunlian_infra::db::audit::Context::request(id.clone(), operation, now);
    // The path only: query strings may carry a phone number.
    let span = tracing::info_span!("request", request_id = %id, operation, method = %method, path = %req.path());
    let started = std::time::Instant::now();
    async move {
        let res = yunlian_infra::db::audit::within(audit, next.call(req)).await?;
        // Errors raised by actix itself (a body over the size limit, a content type it will not
        // read) become problems with codes like every other refusal.
        let framework = match res.response().error() {
            Some(e) if e.as_error::<ApiError>().is_none() => match res.status().as_u16() {
                413 => Some(ApiError::new(res.status(), "payload_too_large")),
                415 => Some(ApiError::new(res.status(), "unsupported_media_type")),
                _ => None,
            },
            _ => None,
        };
        let res = match framework.as_ref().or_else(|| {
            res.response()
                .error()
                .and_then(|e| e.as_error::<ApiError>())
        }) {
            Some(err) => {
                if err.code == "storage_full" {
                    metrics::counter!("yunlian_storage_full_total").increment(1);
                    tracing::error!(code = err.code, error = %err, "write refused: the disk is full");
                } else if err.status.is_server_error() {
                    tracing::error!(code = err.code, error = %err, "request failed");
                } else {
                    tracing::info!(code = err.code, "request refused");
                }
                let mut fresh = HttpResponse::build(err.status);
                fresh.content_type("application/problem+json");
                if let Some(s) = err.retry_after {
                    fresh.insert_header(("Retry-After", s.to_string()));
                }
                let body = err.body(lang, &id).to_string();
                let (req, _) = res.into_parts();
                ServiceResponse::new(req, fresh.body(body))
            }
            None => res.map_into_boxed_body(),
        };
        let mut res = res;
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(REQUEST_ID, v);
        }
        let elapsed = started.elapsed();
        let status = res.status().as_u16();
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        metrics::counter!("yunlian_http_requests_total", "operation" => operation, "status" => class)
            .increment(1);
        metrics::histogram!("yunlian_http_request_duration_seconds", "operation" => operation)
            .record(elapsed.as_secs_f64());
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1e3,
            "request done"
        );
        Ok(res)
    }
    .instrument(span)
    .await
}
