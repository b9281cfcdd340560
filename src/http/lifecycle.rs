//! Controlling a video's job: cancel, retry, delete.
//!
//! Each is one conditional statement in Postgres, so concurrent calls
//! serialise on the job row and always leave a state the machine allows.
//! A running worker learns of a cancel or delete at its next heartbeat (its
//! fenced writes stop matching), kills ffmpeg and removes its partial output.

use axum::{Json, extract::State, http::StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    auth::Caller,
    error::{ApiError, ErrorCode, Problem},
    extract::Id,
    responses::{InternalError, Unauthorized, VideoNotFound},
    wire::{VideoOut, load_video},
};
use crate::{
    db::{self, JobState},
    ids::VideoId,
    queue, storage,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cancel_video))
        .routes(routes!(retry_video))
        .routes(routes!(delete_video))
}

/// Cancel: a queued job never runs; a running one is stopped. Canceling a
/// canceled video answers the same again.
#[utoipa::path(post, path = "/v1/videos/{id}/cancel", tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    responses(
        (status = 200, description = "Canceled", body = VideoOut),
        Unauthorized,
        VideoNotFound,
        (status = 409, description = "`not_cancelable`: ready or failed already", body = Problem, content_type = "application/problem+json"),
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn cancel_video(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<VideoId>,
) -> Result<Json<VideoOut>, ApiError> {
    let mut conn = visible(&state, &caller, id).await?;
    if !db::jobs::cancel(&mut conn, id).await? {
        match db::jobs::state_of(&mut conn, id).await? {
            None => return Err(ApiError::not_found("this video")),
            Some(JobState::Canceled) => {} // already canceled: the same answer again
            Some(other) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::NotCancelable,
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
    Ok(Json(load_video(&state, id, caller.scope()).await?))
}

/// Retry: a failed or canceled video goes back to the queue with a fresh
/// set of attempts.
#[utoipa::path(post, path = "/v1/videos/{id}/retry", tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    responses(
        (status = 202, description = "Queued again", body = VideoOut),
        Unauthorized,
        VideoNotFound,
        (status = 409, description = "`not_retryable`: queued, processing or ready", body = Problem, content_type = "application/problem+json"),
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn retry_video(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<VideoId>,
) -> Result<(StatusCode, Json<VideoOut>), ApiError> {
    let mut conn = visible(&state, &caller, id).await?;
    let Some((job_id, new_state)) = db::jobs::retry(&mut conn, id).await? else {
        return Err(match db::jobs::state_of(&mut conn, id).await? {
            None => ApiError::not_found("this video"),
            Some(other) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::NotRetryable,
                format!(
                    "the video is {}; only failed or canceled videos can be retried",
                    other
                ),
            ),
        });
    };
    drop(conn);
    // Read the answer before anyone can take the job: a download that fails in a few
    // milliseconds must not make the 202 report `failed` for the retry it accepted.
    let video = load_video(&state, id, caller.scope()).await?;
    if new_state == JobState::Downloading {
        // Its download never finished: the downloader takes it again.
        state.ingest.wake_downloader();
    } else if let Err(err) = queue::push(&state.queue, job_id).await {
        // Queued in Postgres already; the reconciler pushes it.
        tracing::warn!(%job_id, error = %err, "retry recorded but not pushed to Redis");
    }
    tracing::info!(video_id = %id, %job_id, "queued again by request");
    Ok((StatusCode::ACCEPTED, Json(video)))
}

/// A connection, once `caller` is known to see video `id` (404 otherwise, exactly as for a
/// video that does not exist). Ownership never changes, so the check holds for the request.
pub(super) async fn visible(
    state: &AppState,
    caller: &Caller,
    id: VideoId,
) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    if !db::videos::visible_to(&mut conn, id, caller.scope()).await? {
        return Err(ApiError::not_found("this video"));
    }
    Ok(conn)
}

/// Delete the video: its rows, its original and its published output.
#[utoipa::path(delete, path = "/v1/videos/{id}", tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        Unauthorized,
        VideoNotFound,
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn delete_video(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<VideoId>,
) -> Result<StatusCode, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let source = db::videos::delete(&mut conn, id, caller.scope())
        .await?
        .ok_or_else(|| ApiError::not_found("this video"))?;
    drop(conn);
    state.public_videos.forget(id);
    // The rows are gone, so no worker can publish this video any more; the
    // files go now. A running attempt's work directory is removed by its
    // worker (or the sweeper if that worker died).
    // A download still running writes to a path of its own take
    // (`uploads/{id}-{fence}`) and removes it when it finds the row gone; the
    // usual source path is removed in case an older version left one there.
    let source = source.unwrap_or_else(|| storage::MediaRoot::source_relative(id));
    state
        .store
        .remove_original(&source)
        .await
        .map_err(ApiError::internal)?;
    // Every attempt's output: the whole `videos/{id}/` directory or prefix.
    state
        .store
        .remove_video(id)
        .await
        .map_err(ApiError::internal)?;
    state.segment_cache.forget_dir(&state.media.video_dir(id));
    tracing::info!(video_id = %id, "deleted");
    Ok(StatusCode::NO_CONTENT)
}
