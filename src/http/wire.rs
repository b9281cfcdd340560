//! What the API answers about a video, shared by every route that answers with one (upload, URL
//! ingest, get, list, PATCH, cancel, retry) and by the HLS routes' playback URLs.

use axum::http::HeaderValue;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{AppState, error::ApiError};
use crate::{
    db::{self, JobStage, JobState, Visibility},
    ids::{OwnerId, VideoId},
    playback::Signer,
    storage,
};

/// A file's bytes as the request or response body.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct BinaryFile(#[allow(dead_code)] Vec<u8>);

#[derive(Debug, Serialize, ToSchema)]
pub struct VideoOut {
    #[schema(value_type = Uuid)]
    pub id: VideoId,
    pub title: String,
    /// `public`: the HLS URLs work for anyone; `private`: `playback` holds signed, expiring URLs.
    pub visibility: Visibility,
    pub status: JobState,
    /// True once the video can be watched: ready, or still processing with
    /// every rendition's first segments published.
    pub playable: bool,
    /// Percent done, 0-100, to one decimal.
    pub progress: f32,
    pub stage: Option<JobStage>,
    pub error: Option<ErrorOut>,
    pub source: SourceOut,
    /// The variants a player chooses between by bandwidth: the video rungs, highest first, each
    /// playing with the audio tracks; for an audio-only source its default audio track.
    pub renditions: Vec<RenditionOut>,
    /// Every audio track of the output (an HLS alternate audio rendition each), in source order.
    pub audio_tracks: Vec<AudioTrackOut>,
    /// Every subtitle track of the output (an HLS subtitle rendition of segmented WebVTT each):
    /// the source's text subtitles, in source order. Known once the video is ready.
    pub subtitle_tracks: Vec<SubtitleTrackOut>,
    pub playback: Option<PlaybackOut>,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorOut {
    /// Why the job failed or was refused, e.g. `transcode_failed`, `retries_exhausted`, `canceled`;
    /// for a URL ingest also `download_failed`, `tls_untrusted_certificate`, `tls_wrong_host`,
    /// `tls_certificate_expired`, `tls_failed`…
    pub code: String,
    pub message: String,
}

/// What was uploaded; empty (`null`s) while a URL ingest is still downloading.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceOut {
    /// The URL of a URL ingest.
    pub url: Option<String>,
    pub duration_s: Option<f64>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub frame_rate: Option<f64>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub size_bytes: Option<i64>,
    /// Streams of the source the output does not carry, and why: audio tracks past the eighth
    /// (`too_many_audio_tracks`), text subtitles past the 32nd (`too_many_subtitle_tracks`),
    /// bitmap subtitles that would need OCR (`bitmap_subtitles`), text subtitles ffmpeg cannot
    /// convert (`unreadable_subtitles`).
    /// Known once the video is ready.
    pub dropped_streams: Vec<db::videos::DroppedStream>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AudioTrackOut {
    /// The rendition's name, also the stem of its playlist (`audio_0.m3u8`).
    pub name: String,
    /// BCP 47, from the source's tag (`eng` → `en`); `und` when the source does not say.
    pub language: String,
    /// What players list: the track's title, else its language's name.
    pub label: String,
    /// The track players start with: the source's default track, else its first.
    pub default: bool,
    /// Output channels (every track is encoded to AAC stereo at 48 kHz).
    pub channels: i32,
    /// An audio description for the visually impaired
    /// (`CHARACTERISTICS="public.accessibility.describes-video"`).
    pub describes_video: bool,
    pub bandwidth: i64,
    pub codecs: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubtitleTrackOut {
    /// The rendition's name, also the stem of its playlist (`subs_0.m3u8`) and WebVTT segments.
    pub name: String,
    /// BCP 47, from the source's tag (`eng` → `en`); `und` when the source does not say.
    pub language: String,
    /// What players list: the track's title, else its language's name, marked `(forced)` or
    /// `(CC)`; unique among the video's subtitle tracks.
    pub label: String,
    /// The source marks it default: players show it without being asked (`DEFAULT=YES`).
    pub default: bool,
    /// Forced subtitles: only what a viewer needs whatever the language, such as signs and
    /// foreign dialogue (`FORCED=YES`).
    pub forced: bool,
    /// Captions for the deaf and hard of hearing (the source marks the track `hearing_impaired`
    /// or `captions`; `CHARACTERISTICS="public.accessibility.transcribes-spoken-dialog,
    /// public.accessibility.describes-music-and-sound"`).
    pub captions: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RenditionOut {
    pub name: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub bandwidth: i64,
    pub average_bandwidth: i64,
    pub codecs: String,
    pub frame_rate: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlaybackOut {
    /// The master playlist. For a private video a signed URL (`/v1/videos/{id}/signed/{token}/…`)
    /// that covers every file of the attempt; for a public one a plain URL.
    pub hls: String,
    /// The poster (JPEG), once the video is ready; signed like `hls`.
    pub poster: Option<String>,
    /// Seek thumbnails once the video is ready: a WebVTT track whose cues name a tile of a JPEG
    /// sprite sheet (`storyboard_1.jpg#xywh=x,y,w,h`, relative to the track); signed like
    /// `hls`. Null for an audio-only source.
    pub storyboard: Option<String>,
    /// Files to download, once the video is ready; signed like `hls`, served as attachments with
    /// ranges.
    pub downloads: Option<DownloadsOut>,
    /// When the signed URLs stop working (read the video again for fresh ones); null for a
    /// public video, whose URLs do not expire.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadsOut {
    /// A progressive MP4 (H.264 + the default audio track, `faststart`) of the highest rung,
    /// remuxed from the HLS segments; null for an audio-only source.
    pub video: Option<String>,
    /// An M4A (AAC) of the default audio track; null for a silent video.
    pub audio: Option<String>,
}

impl VideoOut {
    pub fn new(
        row: db::videos::VideoRow,
        renditions: Vec<db::videos::RenditionRow>,
        signer: &crate::playback::Signer,
    ) -> Self {
        let ready = row.state == JobState::Ready;
        let playable = ready || (row.state == JobState::Processing && row.playable_at.is_some());
        let playback = row.attempt_key.as_ref().filter(|_| playable).map(|key| {
            let files = ReadyFiles {
                poster: ready && row.has_poster,
                video_download: ready && row.download_video,
                audio_download: ready && row.download_audio,
                storyboard: ready && row.has_storyboard,
            };
            playback_out(signer, row.id, row.visibility, key, files)
        });
        let (video, tracks): (Vec<_>, Vec<_>) = renditions
            .into_iter()
            .partition(|r| r.kind == db::RenditionKind::Video);
        let (audio, subtitles): (Vec<_>, Vec<_>) = tracks
            .into_iter()
            .partition(|r| r.kind == db::RenditionKind::Audio);
        // An audio-only source plays its default audio track as its one variant.
        let variants: Vec<&db::videos::RenditionRow> = if video.is_empty() {
            audio.iter().filter(|a| a.is_default).take(1).collect()
        } else {
            video.iter().collect()
        };
        let error = row.error_code.map(|code| ErrorOut {
            code,
            message: row.error_message.unwrap_or_default(),
        });
        Self {
            id: row.id,
            title: row.title,
            visibility: row.visibility,
            status: row.state,
            playable,
            progress: one_decimal(row.progress),
            stage: row.stage,
            error,
            source: SourceOut {
                url: row.source_url,
                duration_s: row.duration_s,
                width: row.width,
                height: row.height,
                frame_rate: row.frame_rate,
                video_codec: row.video_codec,
                audio_codec: row.audio_codec,
                size_bytes: row.size_bytes,
                dropped_streams: row.dropped_streams.0,
            },
            renditions: variants
                .into_iter()
                .map(|r| RenditionOut {
                    name: r.name.clone(),
                    width: r.width,
                    height: r.height,
                    bandwidth: r.bandwidth,
                    average_bandwidth: r.average_bandwidth,
                    codecs: r.codecs.clone(),
                    frame_rate: r.frame_rate,
                })
                .collect(),
            audio_tracks: audio
                .into_iter()
                .map(|a| AudioTrackOut {
                    name: a.name,
                    language: a.language.unwrap_or_else(|| "und".into()),
                    label: a.label.unwrap_or_default(),
                    default: a.is_default,
                    channels: a.channels.unwrap_or(2),
                    describes_video: a.describes_video,
                    bandwidth: a.bandwidth,
                    codecs: a.codecs,
                })
                .collect(),
            subtitle_tracks: subtitles
                .into_iter()
                .map(|s| SubtitleTrackOut {
                    name: s.name,
                    language: s.language.unwrap_or_else(|| "und".into()),
                    label: s.label.unwrap_or_default(),
                    default: s.is_default,
                    forced: s.forced,
                    captions: s.captions,
                })
                .collect(),
            playback,
            attempts: row.attempts,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        }
    }
}

/// `6.506665` → `6.5`: the workers write progress at full precision, clients show a tenth at most.
fn one_decimal(percent: f32) -> f32 {
    (percent * 10.0).round() / 10.0
}

/// Which of the files a ready attempt may write it wrote.
struct ReadyFiles {
    poster: bool,
    video_download: bool,
    audio_download: bool,
    storyboard: bool,
}

/// The `playback` of a playable video: plain URLs for a public video; for a private one, URLs
/// signed for [`Signer::ttl`] and their expiry.
fn playback_out(
    signer: &Signer,
    video_id: VideoId,
    visibility: Visibility,
    attempt_key: &str,
    files: ReadyFiles,
) -> PlaybackOut {
    let (base, expires_at) = match visibility {
        Visibility::Public => (format!("/v1/videos/{video_id}/hls/{attempt_key}"), None),
        Visibility::Private => {
            let signed = signer.sign(video_id, OffsetDateTime::now_utc());
            (
                format!(
                    "/v1/videos/{video_id}/signed/{}/{attempt_key}",
                    signed.token
                ),
                Some(signed.expires_at),
            )
        }
    };
    PlaybackOut {
        hls: format!("{base}/master.m3u8"),
        poster: files.poster.then(|| format!("{base}/poster.jpg")),
        storyboard: files
            .storyboard
            .then(|| format!("{base}/{}", storage::STORYBOARD)),
        downloads: (files.video_download || files.audio_download).then(|| DownloadsOut {
            video: files
                .video_download
                .then(|| format!("{base}/{}", storage::VIDEO_DOWNLOAD)),
            audio: files
                .audio_download
                .then(|| format!("{base}/{}", storage::AUDIO_DOWNLOAD)),
        }),
        expires_at,
    }
}

/// The video as `scope` (an owner, or `None` for an admin) may see it; 404 otherwise.
pub async fn load_video(
    state: &AppState,
    id: VideoId,
    scope: Option<OwnerId>,
) -> Result<VideoOut, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let row = db::videos::get(&mut conn, id, scope)
        .await?
        .ok_or_else(|| ApiError::not_found("this video"))?;
    let renditions = db::videos::renditions(&mut conn, &[id]).await?;
    Ok(VideoOut::new(row, renditions, &state.playback))
}

/// `/v1/videos/{id}` as a header value.
pub fn video_location(video_id: VideoId) -> HeaderValue {
    HeaderValue::from_str(&format!("/v1/videos/{video_id}")).expect("a UUID path is a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_rounded_to_one_decimal() {
        for (raw, shown) in [
            (6.506665, "6.5"),
            (0.0, "0.0"),
            (33.349, "33.3"),
            (33.35, "33.4"),
            (99.96, "100.0"),
            (100.0, "100.0"),
        ] {
            assert_eq!(
                serde_json::to_string(&one_decimal(raw)).unwrap(),
                shown,
                "{raw}"
            );
        }
    }
}
