//! The path every upload takes once its bytes are on disk: probe, then move
//! the file to `uploads/{video_id}`, record the video and its job in one
//! transaction, and push the job. `POST /v1/videos` and the last byte of a
//! resumable (tus) upload both go through here; only where the file comes
//! from and what else the transaction records differ.

use std::{path::Path, time::Duration};

use uuid::Uuid;

use super::{
    AppState,
    error::{ApiError, ErrorCode},
};
use crate::{
    db::{self, Visibility, videos::NewVideo},
    media::{self, ProbeInfo},
    queue,
};

pub const MAX_TITLE_CHARS: usize = 200;

/// Probes the file where it lies. A refusal is a 415/422 problem with the probe's code.
pub async fn probe(state: &AppState, file: &Path) -> Result<ProbeInfo, ApiError> {
    Ok(media::probe(&state.ffprobe, file, &state.limits, state.probe_timeout).await?)
}

/// Where the accepted file came from, and what the recording transaction must also do.
pub enum Origin {
    /// `POST /v1/videos`.
    Direct,
    /// A tus upload: tie its row to the video, fenced by the request's lease.
    Tus {
        upload_id: Uuid,
        lock_token: Uuid,
        /// How long the upload's row stays as a receipt.
        keep: Duration,
    },
}

/// The probed file, already moved to `uploads/{video_id}`.
pub struct Accepted {
    pub video_id: Uuid,
    pub title: String,
    pub owner_id: Option<Uuid>,
    pub visibility: Visibility,
    pub size: u64,
    pub info: ProbeInfo,
}

/// Records the video and its job (invariant 1: committed before the push), then pushes the job.
pub async fn record_and_enqueue(
    state: &AppState,
    accepted: Accepted,
    origin: Origin,
) -> Result<(), ApiError> {
    let video_id = accepted.video_id;
    let job_id = Uuid::now_v7();
    let video = new_video(accepted);
    let mut tx = state.pool.begin().await?;
    // A resumable upload's bytes were reserved when it was created and count as stored until
    // now: it adds nothing, but is checked again with the owner's row locked (the quota may have
    // been lowered since; a refusal keeps the upload, to be finished once there is room).
    if let Some(owner_id) = video.owner_id {
        let bytes = match origin {
            Origin::Direct => video.source.size_bytes.max(0) as u64,
            Origin::Tus { .. } => 0,
        };
        super::quotas::reserve_storage(&mut tx, &state.policy, owner_id, bytes).await?;
    }
    db::videos::insert(&mut tx, &video).await?;
    db::jobs::insert(&mut tx, job_id, video_id, state.max_attempts).await?;
    if let Origin::Tus {
        upload_id,
        lock_token,
        keep,
    } = origin
        && !db::uploads::mark_recorded(&mut tx, upload_id, lock_token, video_id, keep).await?
    {
        // Dropping the transaction rolls the video back: whoever holds the upload now finishes it.
        return Err(ApiError::internal(anyhow::anyhow!(
            "lost the lease on upload {upload_id} while recording its video"
        )));
    }
    tx.commit().await?;
    // If Redis is down now, the job stays `queued` in Postgres and the reconciler pushes it.
    if let Err(err) = queue::push(&state.queue, job_id).await {
        tracing::warn!(%job_id, error = %err, "job recorded but not pushed to Redis");
    }
    tracing::info!(%video_id, %job_id, size = video.source.size_bytes, "upload accepted");
    Ok(())
}

/// The title: the one given (1-200 characters once trimmed), else the file name, else `Untitled`.
pub fn choose_title(given: Option<String>, filename: Option<&str>) -> Result<String, ApiError> {
    if let Some(title) = given {
        let title = title.trim().to_owned();
        if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidTitle,
                format!("a title must have 1 to {MAX_TITLE_CHARS} characters"),
            ));
        }
        return Ok(title);
    }
    let from_name: String = filename
        .map(|n| n.trim().chars().take(MAX_TITLE_CHARS).collect())
        .unwrap_or_default();
    Ok(if from_name.is_empty() {
        "Untitled".to_owned()
    } else {
        from_name
    })
}

fn new_video(accepted: Accepted) -> NewVideo {
    let Accepted {
        video_id,
        title,
        owner_id,
        visibility,
        size,
        info,
    } = accepted;
    NewVideo {
        id: video_id,
        title,
        owner_id,
        visibility,
        source: source_of(video_id, size, info),
    }
}

/// What a probed original at the video's usual source path records.
pub(super) fn source_of(video_id: Uuid, size: u64, info: ProbeInfo) -> db::videos::Source {
    db::videos::Source {
        source_path: crate::storage::MediaRoot::source_relative(video_id),
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        format_name: info.format_name,
        duration_s: info.duration_s,
        width: info.video.as_ref().map(|v| v.width as i32),
        height: info.video.as_ref().map(|v| v.height as i32),
        frame_rate: info.video.as_ref().map(|v| v.frame_rate),
        video_codec: info.video.map(|v| v.codec),
        audio_codec: info.audio.map(|a| a.codec),
    }
}

/// The visibility asked for (`public` or `private`), else the API's default.
pub fn choose_visibility(given: Option<&str>, state: &AppState) -> Result<Visibility, ApiError> {
    match given.map(str::trim) {
        None => Ok(state.policy.default_visibility),
        Some(text) => text
            .parse()
            .map_err(|e: String| ApiError::bad_request(ErrorCode::InvalidVisibility, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_comes_from_the_request_then_the_file_name() {
        assert_eq!(
            choose_title(Some("  Mine ".into()), Some("a.mp4")).unwrap(),
            "Mine"
        );
        assert_eq!(choose_title(None, Some("a.mp4")).unwrap(), "a.mp4");
        assert_eq!(choose_title(None, Some("  ")).unwrap(), "Untitled");
        assert_eq!(choose_title(None, None).unwrap(), "Untitled");
        assert!(choose_title(Some(" ".into()), None).is_err());
        assert!(choose_title(Some("x".repeat(201)), None).is_err());
    }
}
