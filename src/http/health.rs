//! `GET /healthz` (the process answers) and `GET /readyz` (its dependencies answer) on the API's
//! port; `GET /metrics` on a listener of its own (METRICS_ADDR), since job counts and queue depth
//! are nobody else's business.

use std::time::Duration;

use axum::{Json, extract::State, http::header, response::IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    error::{ApiError, ErrorCode, Problem},
};
use crate::{db, queue, telemetry};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The metrics listener's routes: `GET /metrics`, nothing else.
pub fn metrics_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(state)
}

/// `/metrics` on the API's port: a 404 that says where the metrics are.
pub async fn metrics_elsewhere() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "metrics are not served on the API's port: scrape METRICS_ADDR (default 127.0.0.1:9090)",
    )
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    #[schema(example = "ok")]
    status: &'static str,
}

/// Prometheus text format: this process' counters, plus gauges read fresh
/// from Postgres (jobs by state) and Redis (queue depth) at each scrape, so
/// every API replica reports the same truth.
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    use std::fmt::Write;
    let mut text = telemetry::handle().render();
    let mut conn = state.pool.acquire().await?;
    let counts = db::jobs::count_by_state(&mut conn).await?;
    drop(conn);
    let _ = writeln!(
        text,
        "# HELP {} Jobs by state.\n# TYPE {} gauge",
        telemetry::JOBS,
        telemetry::JOBS
    );
    for job_state in [
        "downloading",
        "queued",
        "processing",
        "ready",
        "failed",
        "canceled",
    ] {
        let n = counts
            .iter()
            .find(|(s, _)| s.to_string() == job_state)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(text, "{}{{state=\"{job_state}\"}} {n}", telemetry::JOBS);
    }
    let mut redis = state.redis.clone();
    let queue_name = state.queue.get_config().queue.to_string();
    match queue::depth(&mut redis, &queue_name).await {
        Ok(depth) => {
            let name = telemetry::QUEUE_DEPTH;
            let _ = writeln!(
                text,
                "# HELP {name} Deliveries waiting in Redis.\n# TYPE {name} gauge\n{name} {depth}"
            );
        }
        Err(err) => tracing::warn!(error = %err, "queue depth unavailable"),
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

/// Liveness: the process answers (it checks nothing else).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: Postgres, Redis and the media store (the volume, or the S3 bucket) answer within 2 s.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to take requests", body = Status),
        (status = 503, description = "Postgres, Redis or the media store does not answer (`not_ready`)", body = Problem,
         content_type = "application/problem+json"),
    ))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let postgres = async {
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&state.pool)
            .await
            .map_err(|e| e.to_string())
    };
    let redis = async {
        let mut conn = state.redis.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    };
    let store = async { state.store.check().await.map_err(|e| e.to_string()) };
    let (pg, rd, st) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, postgres),
        tokio::time::timeout(CHECK_TIMEOUT, redis),
        tokio::time::timeout(CHECK_TIMEOUT, store)
    );
    let mut down = Vec::new();
    match pg {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => down.push(format!("Postgres: {e}")),
        Err(_) => down.push("Postgres: no answer within 2 s".to_owned()),
    }
    match rd {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => down.push(format!("Redis: {e}")),
        Err(_) => down.push("Redis: no answer within 2 s".to_owned()),
    }
    match st {
        Ok(Ok(())) => {}
        // The message names the store and what to check; it holds no secret.
        Ok(Err(e)) => down.push(format!("media store: {e}")),
        Err(_) => down.push("media store: no answer within 2 s".to_owned()),
    }
    if down.is_empty() {
        Ok(Json(Status { status: "ready" }))
    } else {
        Err(ApiError::unavailable(ErrorCode::NotReady, down.join("; ")))
    }
}
