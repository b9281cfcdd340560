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

/// Records the video and its job (docs/design.md invariant 1: committed before the push), then
/// pushes the job.
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

/// The title: the one given (1-200 characters once trimmed, no control or bidi-override
/// characters), else the file name with those characters removed, else `Untitled`. Every way a
/// title enters (raw and multipart uploads, URL ingest, tus metadata, PATCH) goes through here.
pub fn choose_title(given: Option<String>, filename: Option<&str>) -> Result<String, ApiError> {
    if let Some(title) = given {
        return check_title(&title);
    }
    let from_name: String = filename
        .map(|n| {
            let kept: String = n.chars().filter(|&c| !is_forbidden_in_title(c)).collect();
            kept.trim().chars().take(MAX_TITLE_CHARS).collect()
        })
        .unwrap_or_default();
    Ok(if from_name.is_empty() {
        "Untitled".to_owned()
    } else {
        from_name
    })
}

/// A title someone chose: trimmed, 1-200 characters, none of [`is_forbidden_in_title`].
fn check_title(title: &str) -> Result<String, ApiError> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidTitle,
            format!("a title must have 1 to {MAX_TITLE_CHARS} characters"),
        ));
    }
    if let Some(bad) = title.chars().find(|&c| is_forbidden_in_title(c)) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidTitle,
            format!(
                "a title may not contain control characters, line or paragraph separators, or \
                 bidirectional embeddings, overrides and isolates (found U+{:04X}); remove it",
                u32::from(bad)
            ),
        ));
    }
    Ok(title.to_owned())
}

/// Characters a title may not carry: C0 and C1 controls and DEL (newlines, escapes: they forge
/// log lines and terminal output), U+2028/U+2029 (line breaks to JavaScript), and the bidi
/// embeddings, overrides and isolates U+202A-U+202E, U+2066-U+2069 (they make a title read
/// differently from what it is, e.g. a file name whose extension appears reversed). The
/// direction marks U+200E/U+200F stay allowed: they change the order of nothing but neutral
/// characters, and right-to-left titles need them.
pub fn is_forbidden_in_title(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
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

    #[test]
    fn a_given_title_with_a_control_or_bidi_override_character_is_refused() {
        for bad in [
            "line\nbreak",
            "tab\there",
            "esc\u{1b}[31m",
            "nul\0",
            "del\u{7f}",
            "c1\u{85}x",
            "c1\u{9b}",
            "sep\u{2028}x",
            "para\u{2029}x",
            "evil\u{202E}4pm.exe",
            "embed\u{202A}x",
            "isolate\u{2066}x\u{2069}",
            "first strong\u{2068}",
        ] {
            let err = choose_title(Some(bad.into()), None).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidTitle.as_str(), "{bad:?}");
        }
        for good in [
            "Ünïcode title",
            "שלום\u{200F} world",
            "left\u{200E}mark",
            "emoji 🎬",
        ] {
            assert_eq!(choose_title(Some(good.into()), None).unwrap(), good);
        }
    }

    #[test]
    fn a_file_name_as_title_loses_its_control_and_bidi_characters() {
        assert_eq!(
            choose_title(None, Some("\u{202E}4pm.exe\nclip\u{1b}.mp4")).unwrap(),
            "4pm.execlip.mp4"
        );
        assert_eq!(
            choose_title(None, Some("\n\u{202E}\t")).unwrap(),
            "Untitled"
        );
    }
}
