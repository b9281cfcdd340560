//! `GET /healthz` (the process answers) and `GET /readyz` (its dependencies answer).

use std::time::Duration;

use axum::{Json, Router, extract::State, http::header, response::IntoResponse, routing::get};
use serde_json::{Value, json};

use super::{AppState, error::ApiError};
use crate::{db, queue, telemetry};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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
    for job_state in ["queued", "processing", "ready", "failed", "canceled"] {
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

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
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
    let (pg, rd) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, postgres),
        tokio::time::timeout(CHECK_TIMEOUT, redis)
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
    if down.is_empty() {
        Ok(Json(json!({ "status": "ready" })))
    } else {
        Err(ApiError::unavailable("not_ready", down.join("; ")))
    }
}
