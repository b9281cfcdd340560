//! Controlling a video's job: cancel, retry, delete.
//!
//! Each is one conditional statement in Postgres, so concurrent calls
//! serialise on the job row and always leave a state the machine allows.
//! A running worker learns of a cancel or delete at its next heartbeat (its
//! fenced writes stop matching), kills ffmpeg and removes its partial output.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, post},
};

use super::{
    AppState,
    error::ApiError,
    videos::{VideoOut, load_video, parse_id},
};
use crate::{
    db::{self, JobState},
    queue, storage,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/videos/{id}/cancel", post(cancel_video))
        .route("/v1/videos/{id}/retry", post(retry_video))
        .route("/v1/videos/{id}", delete(delete_video))
}

/// `POST /v1/videos/{id}/cancel`: a queued job never runs; a running one is stopped.
pub async fn cancel_video(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<VideoOut>, ApiError> {
    let id = parse_id(&id)?;
    let mut conn = state.pool.acquire().await?;
    if !db::jobs::cancel(&mut conn, id).await? {
        match db::jobs::state_of(&mut conn, id).await? {
            None => return Err(ApiError::not_found("this video")),
            Some(JobState::Canceled) => {} // already canceled: the same answer again
            Some(other) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "not_cancelable",
                    format!(
                        "the video is {}; only queued or processing videos can be canceled",
                        other
                    ),
                ));
            }
        }
    } else {
        tracing::info!(video_id = %id, "canceled");
    }
    drop(conn);
    Ok(Json(load_video(&state, id).await?))
}

/// `POST /v1/videos/{id}/retry`: a failed or canceled video goes back to the
/// queue with a fresh set of attempts.
pub async fn retry_video(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<VideoOut>), ApiError> {
    let id = parse_id(&id)?;
    let mut conn = state.pool.acquire().await?;
    let Some(job_id) = db::jobs::retry(&mut conn, id).await? else {
        return Err(match db::jobs::state_of(&mut conn, id).await? {
            None => ApiError::not_found("this video"),
            Some(other) => ApiError::new(
                StatusCode::CONFLICT,
                "not_retryable",
                format!(
                    "the video is {}; only failed or canceled videos can be retried",
                    other
                ),
            ),
        });
    };
    drop(conn);
    if let Err(err) = queue::push(&state.queue, job_id).await {
        // Queued in Postgres already; the reconciler pushes it.
        tracing::warn!(%job_id, error = %err, "retry recorded but not pushed to Redis");
    }
    tracing::info!(video_id = %id, %job_id, "queued again by request");
    Ok((StatusCode::ACCEPTED, Json(load_video(&state, id).await?)))
}

/// `DELETE /v1/videos/{id}`: the rows, the original and the published output.
pub async fn delete_video(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let mut conn = state.pool.acquire().await?;
    let source = db::videos::delete(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("this video"))?;
    drop(conn);
    // The rows are gone, so no worker can publish this video any more; the
    // files go now. A running attempt's work directory is removed by its
    // worker (or the sweeper if that worker died).
    let original = state.media.resolve(&source).map_err(ApiError::internal)?;
    storage::remove_file_if_exists(&original)
        .await
        .map_err(ApiError::internal)?;
    storage::remove_dir_if_exists(&state.media.video_dir(id))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(video_id = %id, "deleted");
    Ok(StatusCode::NO_CONTENT)
}
