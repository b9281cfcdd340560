//! The path every upload takes once its bytes are on disk: probe, then move
//! the file to `uploads/{video_id}`, record the video and its job in one
//! transaction, and push the job. `POST /v1/videos` and the last byte of a
//! resumable (tus) upload both go through here; only where the file comes
//! from and what else the transaction records differ.

use std::{path::Path, time::Duration};

use super::{Ingest, IngestError, quotas};
use crate::{
    db::{self, Visibility, videos::NewVideo},
    ids::{JobId, OwnerId, UploadId, VideoId},
    media::{self, ProbeInfo},
    queue,
};

/// Where the accepted file came from, and what the recording transaction must also do.
pub enum Origin {
    /// `POST /v1/videos`.
    Direct,
    /// A tus upload: tie its row to the video, fenced by the request's lease.
    Tus {
        upload_id: UploadId,
        lock_token: uuid::Uuid,
        /// How long the upload's row stays as a receipt.
        keep: Duration,
    },
}

/// The probed file, already moved to `uploads/{video_id}`.
pub struct Accepted {
    pub video_id: VideoId,
    pub title: String,
    pub owner_id: Option<OwnerId>,
    pub visibility: Visibility,
    /// Whether the worker makes the downloads.
    pub downloads: bool,
    pub size: u64,
    pub info: ProbeInfo,
}

impl Ingest {
    /// Probes the file where it lies. A refusal carries the probe's code.
    pub async fn probe(&self, file: &Path) -> Result<ProbeInfo, IngestError> {
        Ok(media::probe(&self.ffprobe, file, &self.limits, self.probe_timeout).await?)
    }

    /// Records the video and its job (docs/design.md invariant 1: committed before the push, so
    /// a lost push loses nothing: the reconciler pushes `queued` jobs), then pushes the job.
    pub async fn record_and_enqueue(
        &self,
        accepted: Accepted,
        origin: Origin,
    ) -> Result<(), IngestError> {
        let video_id = accepted.video_id;
        let job_id = JobId::generate();
        let video = new_video(accepted);
        let mut tx = self.pool.begin().await?;
        // A resumable upload's bytes were reserved when it was created and count as stored
        // until now: it adds nothing, but is checked again with the owner's row locked (the
        // quota may have been lowered since; a refusal keeps the upload, to be finished once
        // there is room).
        if let Some(owner_id) = video.owner_id {
            let bytes = match origin {
                Origin::Direct => video.source.size_bytes.max(0) as u64,
                Origin::Tus { .. } => 0,
            };
            quotas::reserve_storage(&mut tx, &self.policy, owner_id, bytes).await?;
        }
        db::videos::insert(&mut tx, &video).await?;
        db::jobs::insert(&mut tx, job_id, video_id, self.max_attempts).await?;
        if let Origin::Tus {
            upload_id,
            lock_token,
            keep,
        } = origin
            && !db::uploads::mark_recorded(&mut tx, upload_id, lock_token, video_id, keep).await?
        {
            // Dropping the transaction rolls the video back: whoever holds the upload now
            // finishes it.
            return Err(IngestError::LostUpload(upload_id));
        }
        tx.commit().await?;
        // If Redis is down now, the job stays `queued` in Postgres and the reconciler pushes it.
        if let Err(err) = queue::push(&self.queue, job_id).await {
            tracing::warn!(%job_id, error = %err, "job recorded but not pushed to Redis");
        }
        tracing::info!(%video_id, %job_id, size = video.source.size_bytes, "upload accepted");
        Ok(())
    }
}

fn new_video(accepted: Accepted) -> NewVideo {
    let Accepted {
        video_id,
        title,
        owner_id,
        visibility,
        downloads,
        size,
        info,
    } = accepted;
    NewVideo {
        id: video_id,
        title,
        owner_id,
        visibility,
        downloads,
        source: source_of(video_id, size, info),
    }
}

/// What a probed original at the video's usual source path records.
pub(super) fn source_of(video_id: VideoId, size: u64, info: ProbeInfo) -> db::videos::Source {
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
