//! Queries on captions an owner added to a video, and on where its master playlist stands.
//!
//! The API (a caption added or deleted) and the worker (a master published) both rewrite a
//! video's master playlist. Each does it in a transaction holding [`lock_video`], reading the
//! captions inside it, so the last master written always names the captions as committed.

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::CaptionKind;
use crate::ids::{CaptionId, JobId, OwnerId, VideoId};

/// One caption track, without its WebVTT (up to 1 MiB each: read only to cut segments,
/// [`webvtt`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionRow {
    pub id: CaptionId,
    pub video_id: VideoId,
    /// BCP 47.
    pub language: String,
    pub label: String,
    pub kind: CaptionKind,
    pub cue_count: i32,
    pub size_bytes: i64,
    pub created_at: OffsetDateTime,
}

/// Serialises every rewrite of `video_id`'s master playlist until the transaction ends.
pub async fn lock_video(tx: &mut PgConnection, video_id: VideoId) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('captions:' || $1::uuid::text, 0))",
        video_id.get()
    )
    .fetch_one(tx)
    .await
    .map(drop)
}

/// Records `row` with its whole file, normalised (`media::captions::render`).
pub async fn insert(conn: &mut PgConnection, row: &CaptionRow, webvtt: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO captions (id, video_id, language, label, kind, webvtt, cue_count, size_bytes,
                               created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        row.id.get(),
        row.video_id.get(),
        row.language,
        row.label,
        row.kind as CaptionKind,
        webvtt,
        row.cue_count,
        row.size_bytes,
        row.created_at,
    )
    .execute(conn)
    .await
    .map(drop)
}

/// Whose the video is (`Some(None)`: nobody's), locking its row against deletion until the
/// transaction ends; `None` if it does not exist.
pub async fn video_owner_for_share(
    tx: &mut PgConnection,
    video_id: VideoId,
) -> sqlx::Result<Option<Option<OwnerId>>> {
    let owner = sqlx::query_scalar!(
        "SELECT owner_id FROM videos WHERE id = $1 FOR SHARE",
        video_id.get()
    )
    .fetch_optional(tx)
    .await?;
    Ok(owner.map(|o| o.map(OwnerId::from)))
}

/// The video's captions, oldest first.
pub async fn list(conn: &mut PgConnection, video_id: VideoId) -> sqlx::Result<Vec<CaptionRow>> {
    sqlx::query_as!(
        CaptionRow,
        r#"SELECT id, video_id, language, label, kind AS "kind: CaptionKind", cue_count,
                  size_bytes, created_at
           FROM captions WHERE video_id = $1 ORDER BY created_at, id"#,
        video_id.get()
    )
    .fetch_all(conn)
    .await
}

/// The WebVTT file of one caption.
pub async fn webvtt(conn: &mut PgConnection, caption_id: CaptionId) -> sqlx::Result<String> {
    sqlx::query_scalar!(
        "SELECT webvtt FROM captions WHERE id = $1",
        caption_id.get()
    )
    .fetch_one(conn)
    .await
}

/// Deletes one caption of the video; false if it has no such caption.
pub async fn delete(
    conn: &mut PgConnection,
    video_id: VideoId,
    caption_id: CaptionId,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM captions WHERE id = $1 AND video_id = $2",
        caption_id.get(),
        video_id.get()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Where the video's published master playlist is, for the API to rewrite it.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedMaster {
    /// The attempt whose directory holds it.
    pub attempt_key: String,
    /// Media time (90 kHz) of cue time 0: the `X-TIMESTAMP-MAP` of its WebVTT segments.
    pub mpegts: i64,
    /// The source's length: how far the caption segments reach.
    pub duration_s: f64,
}

/// The video's published master, if its current attempt has published one (a queued video, or
/// one whose new attempt has not published yet, has none: its worker names the captions).
pub async fn published_master(
    conn: &mut PgConnection,
    video_id: VideoId,
) -> sqlx::Result<Option<PublishedMaster>> {
    sqlx::query_as!(
        PublishedMaster,
        r#"SELECT j.attempt_key AS "attempt_key!", j.master_mpegts AS "mpegts!",
                  v.duration_s AS "duration_s!"
           FROM jobs j JOIN videos v ON v.id = j.video_id
           WHERE j.video_id = $1 AND j.state IN ('processing', 'ready')
             AND j.attempt_key = j.master_attempt_key AND j.master_mpegts IS NOT NULL
             AND v.duration_s IS NOT NULL"#,
        video_id.get()
    )
    .fetch_optional(conn)
    .await
}

/// Records, fenced, that attempt `key` of the job published its master with cue time 0 at
/// `mpegts`. False if the attempt is no longer the job's.
pub async fn set_published_master(
    conn: &mut PgConnection,
    job_id: JobId,
    fence: i64,
    key: &str,
    mpegts: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET master_attempt_key = $3, master_mpegts = $4
         WHERE id = $1 AND fence = $2 AND attempt_key = $3 AND state = 'processing'",
        job_id.get(),
        fence,
        key,
        mpegts
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
