//! An upload whose last byte has arrived becomes a video through the same
//! probe → record → enqueue path as `POST /v1/videos` ([`crate::ingest`]).
//!
//! Crash-safe and idempotent: the video's id is reserved on the upload's row
//! before the file moves to `uploads/{video_id}` in the store (a rename on the
//! volume; with S3 an upload, after which the file here is removed), and the
//! row is tied to the video in the transaction that inserts the video and its
//! job. A completion cut short anywhere (the API killed, Postgres away) is
//! finished by the next PATCH or HEAD, which finds the bytes here or in the
//! store; the lease keeps two requests from finishing one upload twice.

use axum::http::StatusCode;

use super::lease::Lease;
use crate::{
    db::{self, uploads::UploadRow},
    http::{
        AppState,
        error::{ApiError, ErrorCode},
    },
    ids::{UploadId, VideoId},
    ingest::{self, Accepted, Origin},
    storage::{self, MediaRoot, TempFile},
    telemetry,
};

/// Makes the complete upload `row` (offset = length, no video yet) a video; returns its id. A file
/// the probe refuses is answered with the probe's problem (415/422) and the upload is deleted.
pub async fn finish(state: &AppState, lease: Lease, row: &UploadRow) -> Result<VideoId, ApiError> {
    debug_assert!(row.is_complete() && row.video_id.is_none());
    let result = accept(state, &lease, row).await;
    let label = result.as_ref().map_or_else(ApiError::code, |_| "accepted");
    metrics::counter!(telemetry::UPLOADS, "result" => label).increment(1);
    match &result {
        Err(refused)
            if matches!(
                refused.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY
            ) =>
        {
            tracing::info!(upload_id = %row.id, code = refused.code(), "completed upload refused");
            // The reserved id may have been set by this very call: read it back from the row.
            let mut conn = state.pool.acquire().await?;
            let reserved = db::uploads::get(&mut conn, row.id)
                .await?
                .and_then(|r| r.reserved_video_id);
            drop(conn);
            discard(state, lease, reserved).await?;
        }
        // Kept as it is (file and reservation): the next PATCH or HEAD tries again.
        Err(_) => lease.release().await,
        Ok(video_id) => {
            tracing::info!(upload_id = %row.id, %video_id, "resumable upload completed");
            lease.release().await;
        }
    }
    result
}

async fn accept(state: &AppState, lease: &Lease, row: &UploadRow) -> Result<VideoId, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let video_id =
        db::uploads::reserve_video_id(&mut conn, row.id, lease.token, VideoId::generate())
            .await?
            .ok_or_else(lost)?;
    drop(conn);
    let partial = state.media.tus_path(row.id);
    let dest = MediaRoot::source_relative(video_id);
    // The bytes are here until they are stored (a rename, or an upload and then the removal of
    // the file here): a completion cut short finds them here, or in the store.
    let here = exists(&partial).await?;
    let fetched = TempFile::new(state.media.incoming_path());
    let probed = if here {
        partial.clone()
    } else if state
        .store
        .has_original(&dest)
        .await
        .map_err(ApiError::internal)?
    {
        // Where it lies on the volume; from a bucket, a copy here to probe.
        state
            .store
            .fetch_original(&dest, fetched.path())
            .await
            .map_err(ApiError::internal)?
    } else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "upload {} is complete but its bytes are neither at {} nor in the store at {dest}",
            row.id,
            partial.display(),
        )));
    };
    let info = state.ingest.probe(&probed).await?;
    drop(fetched);
    let title = ingest::choose_title(row.title.clone(), row.filename.as_deref())?;
    if here {
        // Again after an interruption: the same bytes overwrite an identical copy.
        state
            .store
            .put_original(&partial, &dest)
            .await
            .map_err(ApiError::internal)?;
    }
    let accepted = Accepted {
        video_id,
        title,
        owner_id: row.owner_id,
        visibility: row.visibility.unwrap_or(state.policy.default_visibility),
        // Checked when the upload was created.
        downloads: row
            .metadata
            .as_deref()
            .map(super::headers::parse_metadata)
            .transpose()?
            .and_then(|m| m.downloads)
            .unwrap_or(true),
        size: row.upload_length as u64,
        info,
    };
    let origin = Origin::Tus {
        upload_id: row.id,
        lock_token: lease.token,
        keep: state.limits.upload_expiry(),
    };
    state.ingest.record_and_enqueue(accepted, origin).await?;
    Ok(video_id)
}

/// Deletes an upload that has no video (refused, terminated, or a creation that failed): its row,
/// then its bytes, wherever they are.
pub async fn discard(
    state: &AppState,
    lease: Lease,
    reserved_video_id: Option<VideoId>,
) -> Result<(), ApiError> {
    let mut conn = state.pool.acquire().await?;
    if !db::uploads::delete(&mut conn, lease.upload_id, lease.token).await? {
        return Err(lost());
    }
    drop(conn);
    let upload_id = lease.upload_id;
    lease.forget();
    remove_files(state, upload_id, reserved_video_id).await
}

/// The bytes of an upload that never became a video.
pub async fn remove_files(
    state: &AppState,
    upload_id: UploadId,
    reserved_video_id: Option<VideoId>,
) -> Result<(), ApiError> {
    storage::remove_file_if_exists(&state.media.tus_path(upload_id))
        .await
        .map_err(ApiError::internal)?;
    if let Some(reserved) = reserved_video_id {
        state
            .store
            .remove_original(&MediaRoot::source_relative(reserved))
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(())
}

async fn exists(path: &std::path::Path) -> Result<bool, ApiError> {
    tokio::fs::try_exists(path)
        .await
        .map_err(ApiError::internal)
}

fn lost() -> ApiError {
    ApiError::new(
        StatusCode::LOCKED,
        ErrorCode::UploadLocked,
        "another request took this upload over; ask for its state with HEAD",
    )
}
