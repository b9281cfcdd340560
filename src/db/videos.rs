//! Queries on `videos` (joined with their job) and `renditions`.

use sqlx::{PgConnection, types::Json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{JobStage, JobState, RenditionKind, Visibility};
use crate::ids::{OwnerId, VideoId};

/// A probed, accepted upload about to be recorded.
#[derive(Debug, Clone)]
pub struct NewVideo {
    pub id: VideoId,
    pub title: String,
    /// Whose it is: the uploading key's owner (`None` in `AUTH_MODE=open` without a key).
    pub owner_id: Option<OwnerId>,
    pub visibility: Visibility,
    /// Whether the worker makes the downloads (the upload's `downloads=`).
    pub downloads: bool,
    pub source: Source,
}

/// A probed source: recorded with a new upload, or on a video created from a
/// URL once it is downloaded.
#[derive(Debug, Clone)]
pub struct Source {
    pub source_path: String,
    pub size_bytes: i64,
    pub format_name: String,
    pub duration_s: f64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub frame_rate: Option<f64>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
}

/// A video with its job, as the API reports it. The source fields are empty
/// while a URL ingest is still downloading.
#[derive(Debug, Clone)]
pub struct VideoRow {
    pub id: VideoId,
    pub title: String,
    pub visibility: Visibility,
    pub source_url: Option<String>,
    pub size_bytes: Option<i64>,
    pub duration_s: Option<f64>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub frame_rate: Option<f64>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub created_at: OffsetDateTime,
    pub state: JobState,
    pub stage: Option<JobStage>,
    pub progress: f32,
    pub attempts: i32,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    pub attempt_key: Option<String>,
    pub playable_at: Option<OffsetDateTime>,
    /// The ready attempt wrote `poster.jpg`.
    pub has_poster: bool,
    /// Streams of the source the output does not carry, and why.
    pub dropped_streams: Json<Vec<DroppedStream>>,
    /// The ready attempt wrote `download.mp4` / `download.m4a`.
    pub download_video: bool,
    pub download_audio: bool,
    /// The ready attempt wrote `storyboard.vtt` and its sheets.
    pub has_storyboard: bool,
}

/// A stream of the source the output does not carry (`videos.dropped_streams`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct DroppedStream {
    /// Index of the stream in the source file.
    pub index: i32,
    /// `audio` or `subtitle`.
    pub kind: String,
    /// ffmpeg's codec name, e.g. `ac3`, `hdmv_pgs_subtitle`.
    pub codec: String,
    /// BCP 47; `und` when the source does not say.
    pub language: String,
    /// `too_many_audio_tracks`, `too_many_subtitle_tracks`, `bitmap_subtitles`,
    /// `unreadable_subtitles`.
    pub reason: String,
}

/// One published rendition: a rung of the video ladder, an audio track or a subtitle track.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionRow {
    pub video_id: VideoId,
    pub name: String,
    pub playlist: String,
    pub kind: RenditionKind,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub bandwidth: i64,
    pub average_bandwidth: i64,
    pub codecs: String,
    pub frame_rate: Option<f64>,
    /// Audio and subtitle tracks: BCP 47 language, the player menu's label, whether players
    /// start with it; audio: channels, whether it is an audio description; subtitles: whether
    /// it is forced, whether it is captions for the deaf and hard of hearing.
    pub language: Option<String>,
    pub label: Option<String>,
    pub is_default: bool,
    pub channels: Option<i32>,
    pub describes_video: bool,
    pub forced: bool,
    pub captions: bool,
}

pub async fn insert(conn: &mut PgConnection, v: &NewVideo) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO videos (id, title, source_path, size_bytes, format_name, duration_s,
                             width, height, frame_rate, video_codec, audio_codec, owner_id, visibility,
                             downloads)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        v.id.get(),
        v.title,
        v.source.source_path,
        v.source.size_bytes,
        v.source.format_name,
        v.source.duration_s,
        v.source.width,
        v.source.height,
        v.source.frame_rate,
        v.source.video_codec,
        v.source.audio_codec,
        v.owner_id.map(OwnerId::get),
        v.visibility.as_str(),
        v.downloads,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A video whose source is still at `url`.
pub async fn insert_from_url(
    conn: &mut PgConnection,
    id: VideoId,
    title: &str,
    url: &str,
    owner_id: Option<OwnerId>,
    visibility: Visibility,
    downloads: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO videos (id, title, source_url, owner_id, visibility, downloads)
         VALUES ($1, $2, $3, $4, $5, $6)",
        id.get(),
        title,
        url,
        owner_id.map(OwnerId::get),
        visibility.as_str(),
        downloads
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the downloaded, probed source of a video created from a URL.
pub async fn set_source(conn: &mut PgConnection, id: VideoId, s: &Source) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE videos SET source_path = $2, size_bytes = $3, format_name = $4, duration_s = $5,
                           width = $6, height = $7, frame_rate = $8, video_codec = $9,
                           audio_codec = $10
         WHERE id = $1",
        id.get(),
        s.source_path,
        s.size_bytes,
        s.format_name,
        s.duration_s,
        s.width,
        s.height,
        s.frame_rate,
        s.video_codec,
        s.audio_codec,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The video `id`, if `scope` may see it: `scope` is the caller's owner, or `None` for an admin
/// (see `Caller::scope`). Another owner's video is `None`, exactly like a missing one.
pub async fn get(
    conn: &mut PgConnection,
    id: VideoId,
    scope: Option<OwnerId>,
) -> sqlx::Result<Option<VideoRow>> {
    sqlx::query_as!(
        VideoRow,
        r#"SELECT v.id, v.title, v.visibility AS "visibility: Visibility", v.source_url, v.size_bytes, v.duration_s, v.width, v.height, v.frame_rate,
                  v.video_codec, v.audio_codec, v.created_at,
                  j.state AS "state: JobState", j.stage AS "stage: JobStage", j.progress,
                  j.attempts, j.error_code, j.error_message, j.started_at, j.finished_at,
                  j.attempt_key, j.playable_at, j.has_poster,
                  v.dropped_streams AS "dropped_streams: Json<Vec<DroppedStream>>",
                  v.download_video, v.download_audio, v.has_storyboard
           FROM videos v JOIN jobs j ON j.video_id = v.id
           WHERE v.id = $1 AND ($2::uuid IS NULL OR v.owner_id = $2)"#,
        id.get(),
        scope.map(OwnerId::get)
    )
    .fetch_optional(conn)
    .await
}

/// The video's visibility; `None` if there is no such video.
pub async fn visibility(conn: &mut PgConnection, id: VideoId) -> sqlx::Result<Option<Visibility>> {
    sqlx::query_scalar!(
        r#"SELECT visibility AS "visibility: Visibility" FROM videos WHERE id = $1"#,
        id.get()
    )
    .fetch_optional(conn)
    .await
}

/// Newest first. `before` is the id of the last video of the previous page:
/// ids are UUIDv7, so id order is creation order and the cursor is stable
/// while new videos arrive.
pub async fn list(
    conn: &mut PgConnection,
    scope: Option<OwnerId>,
    status: Option<JobState>,
    before: Option<VideoId>,
    limit: i64,
) -> sqlx::Result<Vec<VideoRow>> {
    sqlx::query_as!(
        VideoRow,
        r#"SELECT v.id, v.title, v.visibility AS "visibility: Visibility", v.source_url, v.size_bytes, v.duration_s, v.width, v.height, v.frame_rate,
                  v.video_codec, v.audio_codec, v.created_at,
                  j.state AS "state: JobState", j.stage AS "stage: JobStage", j.progress,
                  j.attempts, j.error_code, j.error_message, j.started_at, j.finished_at,
                  j.attempt_key, j.playable_at, j.has_poster,
                  v.dropped_streams AS "dropped_streams: Json<Vec<DroppedStream>>",
                  v.download_video, v.download_audio, v.has_storyboard
           FROM videos v JOIN jobs j ON j.video_id = v.id
           WHERE ($1::job_state IS NULL OR j.state = $1)
             AND ($2::uuid IS NULL OR v.id < $2)
             AND ($4::uuid IS NULL OR v.owner_id = $4)
           ORDER BY v.id DESC
           LIMIT $3"#,
        status as Option<JobState>,
        before.map(VideoId::get),
        limit,
        scope.map(OwnerId::get)
    )
    .fetch_all(conn)
    .await
}

/// Renditions of the given videos: the rungs highest first, by picture size, then bandwidth (a
/// still picture can cost a small rung more bits than a big one, so bandwidth alone does not
/// order rungs); then the audio tracks in source order (`audio_0`, `audio_1`…), then the
/// subtitle tracks (`subs_0`, …).
pub async fn renditions(
    conn: &mut PgConnection,
    video_ids: &[VideoId],
) -> sqlx::Result<Vec<RenditionRow>> {
    let video_ids: Vec<Uuid> = video_ids.iter().map(|id| id.get()).collect();
    sqlx::query_as!(
        RenditionRow,
        r#"SELECT video_id, name, playlist, kind AS "kind: RenditionKind", width, height,
                  bandwidth, average_bandwidth, codecs, frame_rate, language, label, is_default,
                  channels, describes_video, forced, captions
           FROM renditions WHERE video_id = ANY($1)
           ORDER BY video_id, kind, coalesce(width::bigint * height, 0) DESC,
                    CASE WHEN kind = 'video' THEN bandwidth END DESC, length(name), name"#,
        &video_ids
    )
    .fetch_all(conn)
    .await
}

pub async fn insert_rendition(conn: &mut PgConnection, r: &RenditionRow) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO renditions (video_id, name, playlist, kind, width, height, bandwidth,
                                 average_bandwidth, codecs, frame_rate, language, label,
                                 is_default, channels, describes_video, forced, captions)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        r.video_id.get(),
        r.name,
        r.playlist,
        r.kind as RenditionKind,
        r.width,
        r.height,
        r.bandwidth,
        r.average_bandwidth,
        r.codecs,
        r.frame_rate,
        r.language,
        r.label,
        r.is_default,
        r.channels,
        r.describes_video,
        r.forced,
        r.captions,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records what of the source the ready attempt left out.
pub async fn set_dropped_streams(
    conn: &mut PgConnection,
    video_id: VideoId,
    dropped: &[DroppedStream],
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE videos SET dropped_streams = $2 WHERE id = $1",
        video_id.get(),
        Json(dropped) as _
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What the ready attempt wrote beside its playlists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadyExtras {
    pub download_video: bool,
    pub download_audio: bool,
    pub storyboard: bool,
}

/// Records which downloads and whether a storyboard the ready attempt wrote.
pub async fn set_ready_extras(
    conn: &mut PgConnection,
    video_id: VideoId,
    extras: ReadyExtras,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE videos SET download_video = $2, download_audio = $3, has_storyboard = $4
         WHERE id = $1",
        video_id.get(),
        extras.download_video,
        extras.download_audio,
        extras.storyboard
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_renditions(conn: &mut PgConnection, video_id: VideoId) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM renditions WHERE video_id = $1", video_id.get())
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes a video with its job and renditions; returns its source path
/// (`Some(None)` for a URL ingest that has none yet) so the caller can remove
/// the files. Waits for a worker that is publishing it (the worker holds the
/// job row), so files are removed after, not during.
pub async fn delete(
    conn: &mut PgConnection,
    id: VideoId,
    scope: Option<OwnerId>,
) -> sqlx::Result<Option<Option<String>>> {
    sqlx::query_scalar!(
        "DELETE FROM videos WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)
         RETURNING source_path",
        id.get(),
        scope.map(OwnerId::get)
    )
    .fetch_optional(conn)
    .await
}

/// The owner of video `id` (`None`: no such video, or it has no owner).
pub async fn owner_of(conn: &mut PgConnection, id: VideoId) -> sqlx::Result<Option<OwnerId>> {
    let owner = sqlx::query_scalar!("SELECT owner_id FROM videos WHERE id = $1", id.get())
        .fetch_optional(conn)
        .await?;
    Ok(owner.flatten().map(OwnerId::from))
}

/// Whether `scope` (an owner, or `None` for an admin) may see video `id`.
pub async fn visible_to(
    conn: &mut PgConnection,
    id: VideoId,
    scope: Option<OwnerId>,
) -> sqlx::Result<bool> {
    let found = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM videos
                          WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)) AS "found!""#,
        id.get(),
        scope.map(OwnerId::get)
    )
    .fetch_one(conn)
    .await?;
    Ok(found)
}

/// Changes the title and/or visibility of a video `scope` may see; false if it may not.
pub async fn update(
    conn: &mut PgConnection,
    id: VideoId,
    scope: Option<OwnerId>,
    title: Option<&str>,
    visibility: Option<Visibility>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE videos SET title = coalesce($3, title), visibility = coalesce($4, visibility)
         WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)",
        id.get(),
        scope.map(OwnerId::get),
        title,
        visibility.map(Visibility::as_str)
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
