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

/// An upload as the handlers see it.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: Uuid,
    pub upload_length: i64,
    pub upload_offset: i64,
    pub metadata: Option<String>,
    pub filename: Option<String>,
    pub title: Option<String>,
    pub expires_at: OffsetDateTime,
    pub reserved_video_id: Option<Uuid>,
    pub video_id: Option<Uuid>,
    /// Whose it is (`None`: made without a key in `AUTH_MODE=open`).
    pub owner_id: Option<Uuid>,
    /// What its video will be (`None`: the API's default).
    pub visibility: Option<Visibility>,
    /// Whether some request holds a lease on it right now.
    pub locked: bool,
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
    pub id: Uuid,
    pub length: i64,
    pub metadata: Option<String>,
    pub filename: Option<String>,
    pub title: Option<String>,
    pub owner_id: Option<Uuid>,
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
        upload.id,
        upload.length,
        upload.metadata,
        upload.filename,
        upload.title,
        upload.expiry.as_secs_f64(),
        token,
        lease.as_secs_f64(),
        upload.owner_id,
        upload.visibility.as_str(),
    )
    .fetch_one(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<UploadRow>> {
    sqlx::query_as!(
        UploadRow,
        r#"SELECT id, upload_length, upload_offset, metadata, filename, title, expires_at,
                  reserved_video_id, video_id, owner_id,
                  visibility AS "visibility: Visibility",
                  coalesce(locked_until > now(), false) AS "locked!"
           FROM uploads WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Takes the upload's lease unless a live one is held. `None`: no such upload, or it is locked.
pub async fn acquire(
    conn: &mut PgConnection,
    id: Uuid,
    token: Uuid,
    lease: Duration,
) -> sqlx::Result<Option<UploadRow>> {
    sqlx::query_as!(
        UploadRow,
        r#"UPDATE uploads SET lock_token = $2, locked_until = now() + make_interval(secs => $3)
           WHERE id = $1 AND (locked_until IS NULL OR locked_until <= now())
           RETURNING id, upload_length, upload_offset, metadata, filename, title, expires_at,
                     reserved_video_id, video_id, owner_id,
                     visibility AS "visibility: Visibility", true AS "locked!""#,
        id,
        token,
        lease.as_secs_f64()
    )
    .fetch_optional(conn)
    .await
}

/// Extends the lease. False: it is no longer ours.
pub async fn renew(
    conn: &mut PgConnection,
    id: Uuid,
    token: Uuid,
    lease: Duration,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE uploads SET locked_until = now() + make_interval(secs => $3)
         WHERE id = $1 AND lock_token = $2 AND locked_until > now()",
        id,
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
    id: Uuid,
    token: Uuid,
    offset: i64,
    lease: Duration,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE uploads SET upload_offset = $3, locked_until = now() + make_interval(secs => $4)
         WHERE id = $1 AND lock_token = $2 AND locked_until > now() AND video_id IS NULL",
        id,
        token,
        offset,
        lease.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn release(conn: &mut PgConnection, id: Uuid, token: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE uploads SET lock_token = NULL, locked_until = NULL
         WHERE id = $1 AND lock_token = $2",
        id,
        token
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Picks the id the upload's video will get (once, so a resumed completion reuses it).
pub async fn reserve_video_id(
    conn: &mut PgConnection,
    id: Uuid,
    token: Uuid,
    video_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r#"UPDATE uploads SET reserved_video_id = coalesce(reserved_video_id, $3)
           WHERE id = $1 AND lock_token = $2 AND locked_until > now()
           RETURNING reserved_video_id AS "reserved!""#,
        id,
        token,
        video_id
    )
    .fetch_optional(conn)
    .await
}

/// Ties the upload to its video; run in the transaction that inserts the video and its job. The
/// row stays for `keep` as a receipt. False: the lease was lost (roll back).
pub async fn mark_recorded(
    conn: &mut PgConnection,
    id: Uuid,
    token: Uuid,
    video_id: Uuid,
    keep: Duration,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE uploads SET video_id = $3, expires_at = now() + make_interval(secs => $4)
         WHERE id = $1 AND lock_token = $2 AND locked_until > now() AND video_id IS NULL
           AND upload_offset = upload_length",
        id,
        token,
        video_id,
        keep.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the upload under our lease. False: not ours any more.
pub async fn delete(conn: &mut PgConnection, id: Uuid, token: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM uploads WHERE id = $1 AND lock_token = $2",
        id,
        token
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An upload the sweeper removed.
#[derive(Debug, Clone)]
pub struct Expired {
    pub id: Uuid,
    pub reserved_video_id: Option<Uuid>,
    /// Set when the upload had become a video: then its file belongs to the video.
    pub video_id: Option<Uuid>,
}

/// Deletes up to `limit` uploads past `expires_at` that nobody holds; the caller removes the files
/// of those without a video.
pub async fn delete_expired(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Expired>> {
    sqlx::query_as!(
        Expired,
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
    .await
}
