//! `GET /healthz` (the process answers) and `GET /readyz` (its dependencies answer).

use std::time::Duration;

use axum::{Json, Router, extract::State, routing::get};
use serde_json::{Value, json};

use super::{AppState, error::ApiError};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
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
