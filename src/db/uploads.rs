//! Queries on `uploads`: resumable (tus) uploads and their leases.
//!
//! Every write on behalf of a request is fenced by the request's `lock_token`:
//! a request whose lease ran out (its API replica stalled or died) cannot move
//! the offset or record a video once another request holds the upload.

use std::time::Duration;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Visibility;
use crate::ids::{OwnerId, UploadId, VideoId};

/// An upload as the handlers see it.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: UploadId,
    pub upload_length: i64,
    pub upload_offset: i64,
    pub metadata: Option<String>,
    pub filename: Option<String>,
    pub title: Option<String>,
    pub expires_at: OffsetDateTime,
    pub reserved_video_id: Option<VideoId>,
    pub video_id: Option<VideoId>,
    /// Whose it is (`None`: made without a key in `AUTH_MODE=open`).
    pub owner_id: Option<OwnerId>,
    /// What its video will be (`None`: the API's default).
    pub visibility: Option<Visibility>,
    /// Whether some request holds a lease on it right now.
    pub locked: bool,
}

/// An [`UploadRow`] as the queries return it: `query_as!` turns a column into a typed id only
/// when it is not nullable.
struct Record {
    id: UploadId,
    upload_length: i64,
    upload_offset: i64,
    metadata: Option<String>,
    filename: Option<String>,
    title: Option<String>,
    expires_at: OffsetDateTime,
    reserved_video_id: Option<Uuid>,
    video_id: Option<Uuid>,
    owner_id: Option<Uuid>,
    visibility: Option<Visibility>,
    locked: bool,
}

impl From<Record> for UploadRow {
    fn from(r: Record) -> Self {
        Self {
            id: r.id,
            upload_length: r.upload_length,
            upload_offset: r.upload_offset,
            metadata: r.metadata,
            filename: r.filename,
            title: r.title,
            expires_at: r.expires_at,
            reserved_video_id: r.reserved_video_id.map(VideoId::from),
            video_id: r.video_id.map(VideoId::from),
            owner_id: r.owner_id.map(OwnerId::from),
            visibility: r.visibility,
            locked: r.locked,
        }
    }
}

impl UploadRow {
    pub fn is_complete(&self) -> bool {
        self.upload_offset == self.upload_length
    }

    /// Past its expiry without a recorded video: it can no longer be resumed.
    pub fn is_expired(&self) -> bool {
        self.video_id.is_none() && self.expires_at <= OffsetDateTime::now_utc()
    }
}

#[derive(Debug, Clone)]
pub struct NewUpload {
    pub id: UploadId,
    pub length: i64,
    pub metadata: Option<String>,
    pub filename: Option<String>,
    pub title: Option<String>,
    pub owner_id: Option<OwnerId>,
    pub visibility: Visibility,
    pub expiry: Duration,
}

/// Inserts the upload already leased to `token` (the creating request may write a first chunk).
pub async fn insert(
    conn: &mut PgConnection,
    upload: &NewUpload,
    token: Uuid,
    lease: Duration,
) -> sqlx::Result<OffsetDateTime> {
    sqlx::query_scalar!(
        "INSERT INTO uploads (id, upload_length, metadata, filename, title, expires_at,
                              lock_token, locked_until, owner_id, visibility)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6),
                 $7, now() + make_interval(secs => $8), $9, $10)
         RETURNING expires_at",
        upload.id.get(),
        upload.length,
        upload.metadata,
        upload.filename,
        upload.title,
        upload.expiry.as_secs_f64(),
        token,
        lease.as_secs_f64(),
        upload.owner_id.map(OwnerId::get),
        upload.visibility.as_str(),
    )
    .fetch_one(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: UploadId) -> sqlx::Result<Option<UploadRow>> {
    sqlx::query_as!(
        Record,
        r#"SELECT id, upload_length, upload_offset, metadata, filename, title, expires_at,
                  reserved_video_id, video_id, owner_id,
                  visibility AS "visibility: Visibility",
                  coalesce(locked_until > now(), false) AS "locked!"
           FROM uploads WHERE id = $1"#,
        id.get()
    )
    .fetch_optional(conn)
    .await
    .map(|row| row.map(UploadRow::from))
}

/// Takes the upload's lease unless a live one is held. `None`: no such upload, or it is locked.
pub async fn acquire(
    conn: &mut PgConnection,
    id: UploadId,
    token: Uuid,
    lease: Duration,
) -> sqlx::Result<Option<UploadRow>> {
    sqlx::query_as!(
        Record,
        r#"UPDATE uploads SET lock_token = $2, locked_until = now() + make_interval(secs => $3)
           WHERE id = $1 AND (locked_until IS NULL OR locked_until <= now())
           RETURNING id, upload_length, upload_offset, metadata, filename, title, expires_at,
                     reserved_video_id, video_id, owner_id,
                     visibility AS "visibility: Visibility", true AS "locked!""#,
        id.get(),
        token,
        lease.as_secs_f64()
    )
    .fetch_optional(conn)
    .await
    .map(|row| row.map(UploadRow::from))
}

/// Extends the lease. False: it is no longer ours.
pub async fn renew(
    conn: &mut PgConnection,
    id: UploadId,
    token: Uuid,
    lease: Duration,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE uploads SET locked_until = now() + make_interval(secs => $3)
         WHERE id = $1 AND lock_token = $2 AND locked_until > now()",
        id.get(),
        token,
        lease.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that the bytes up to `offset` are on disk, and extends the lease. False: not ours any more.
pub async fn advance(
    conn: &mut PgConnection,
    id: UploadId,
    token: Uuid,
    offset: i64,
    lease: Duration,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE uploads SET upload_offset = $3, locked_until = now() + make_interval(secs => $4)
         WHERE id = $1 AND lock_token = $2 AND locked_until > now() AND video_id IS NULL",
        id.get(),
        token,
        offset,
        lease.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn release(conn: &mut PgConnection, id: UploadId, token: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE uploads SET lock_token = NULL, locked_until = NULL
         WHERE id = $1 AND lock_token = $2",
        id.get(),
        token
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Picks the id the upload's video will get (once, so a resumed completion reuses it).
pub async fn reserve_video_id(
    conn: &mut PgConnection,
    id: UploadId,
    token: Uuid,
    video_id: VideoId,
) -> sqlx::Result<Option<VideoId>> {
    let reserved = sqlx::query_scalar!(
        r#"UPDATE uploads SET reserved_video_id = coalesce(reserved_video_id, $3)
           WHERE id = $1 AND lock_token = $2 AND locked_until > now()
           RETURNING reserved_video_id AS "reserved!""#,
        id.get(),
        token,
        video_id.get()
    )
    .fetch_optional(conn)
    .await?;
    Ok(reserved.map(VideoId::from))
}

/// Ties the upload to its video; run in the transaction that inserts the video and its job. The
/// row stays for `keep` as a receipt. False: the lease was lost (roll back).
pub async fn mark_recorded(
    conn: &mut PgConnection,
    id: UploadId,
    token: Uuid,
    video_id: VideoId,
    keep: Duration,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE uploads SET video_id = $3, expires_at = now() + make_interval(secs => $4)
         WHERE id = $1 AND lock_token = $2 AND locked_until > now() AND video_id IS NULL
           AND upload_offset = upload_length",
        id.get(),
        token,
        video_id.get(),
        keep.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the upload under our lease. False: not ours any more.
pub async fn delete(conn: &mut PgConnection, id: UploadId, token: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM uploads WHERE id = $1 AND lock_token = $2",
        id.get(),
        token
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An upload the sweeper removed.
#[derive(Debug, Clone)]
pub struct Expired {
    pub id: UploadId,
    pub reserved_video_id: Option<VideoId>,
    /// Set when the upload had become a video: then its file belongs to the video.
    pub video_id: Option<VideoId>,
}

/// An [`Expired`] as the query returns it (nullable ids stay UUIDs, as for [`Record`]).
struct ExpiredRecord {
    id: UploadId,
    reserved_video_id: Option<Uuid>,
    video_id: Option<Uuid>,
}

impl From<ExpiredRecord> for Expired {
    fn from(r: ExpiredRecord) -> Self {
        Self {
            id: r.id,
            reserved_video_id: r.reserved_video_id.map(VideoId::from),
            video_id: r.video_id.map(VideoId::from),
        }
    }
}

/// Deletes up to `limit` uploads past `expires_at` that nobody holds; the caller removes the files
/// of those without a video.
pub async fn delete_expired(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Expired>> {
    let expired = sqlx::query_as!(
        ExpiredRecord,
        "DELETE FROM uploads WHERE id IN (
             SELECT id FROM uploads
             WHERE expires_at <= now() AND (locked_until IS NULL OR locked_until <= now())
             ORDER BY expires_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
         RETURNING id, reserved_video_id, video_id",
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(expired.into_iter().map(Expired::from).collect())
}
