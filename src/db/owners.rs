//! Queries on what an owner may still do: stored bytes and uploads per day.

use crate::ids::OwnerId;
use sqlx::PgConnection;

/// An owner's quota overrides (`None`: the API's default applies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    pub max_bytes: Option<i64>,
    pub max_uploads_per_day: Option<i32>,
}

/// The owner's row, locked until the transaction ends so that two uploads of one owner check
/// and record their bytes one after the other (nobody slips past the quota together).
pub async fn lock(conn: &mut PgConnection, owner_id: OwnerId) -> sqlx::Result<Overrides> {
    sqlx::query_as!(
        Overrides,
        "SELECT max_bytes, max_uploads_per_day FROM owners WHERE id = $1 FOR UPDATE",
        owner_id.get()
    )
    .fetch_one(conn)
    .await
}

pub async fn overrides(conn: &mut PgConnection, owner_id: OwnerId) -> sqlx::Result<Overrides> {
    sqlx::query_as!(
        Overrides,
        "SELECT max_bytes, max_uploads_per_day FROM owners WHERE id = $1",
        owner_id.get()
    )
    .fetch_one(conn)
    .await
}

/// Bytes the owner holds: the originals of its videos plus the announced lengths of its
/// resumable uploads still in progress (their bytes are promised, and a client could otherwise
/// open many uploads at once and overshoot).
pub async fn stored_bytes(conn: &mut PgConnection, owner_id: OwnerId) -> sqlx::Result<i64> {
    let total = sqlx::query_scalar!(
        r#"SELECT (coalesce((SELECT sum(size_bytes) FROM videos WHERE owner_id = $1), 0)
                 + coalesce((SELECT sum(upload_length) FROM uploads
                             WHERE owner_id = $1 AND video_id IS NULL), 0)
                 + coalesce((SELECT sum(c.size_bytes) FROM captions c
                             JOIN videos v ON v.id = c.video_id WHERE v.owner_id = $1), 0)
                )::bigint AS "total!""#,
        owner_id.get()
    )
    .fetch_one(conn)
    .await?;
    Ok(total)
}

/// Counts one more upload today (UTC) unless `limit` are counted already; returns whether it
/// was counted. One statement, so concurrent uploads cannot both take the last place.
pub async fn count_upload(
    conn: &mut PgConnection,
    owner_id: OwnerId,
    limit: i32,
) -> sqlx::Result<bool> {
    let counted = sqlx::query_scalar!(
        "INSERT INTO upload_counts (owner_id, day, count)
         SELECT $1, (now() AT TIME ZONE 'UTC')::date, 1 WHERE $2 > 0
         ON CONFLICT (owner_id, day) DO UPDATE SET count = upload_counts.count + 1
         WHERE upload_counts.count < $2
         RETURNING count",
        owner_id.get(),
        limit
    )
    .fetch_optional(conn)
    .await?;
    Ok(counted.is_some())
}

/// Uploads counted today (UTC).
pub async fn uploads_today(conn: &mut PgConnection, owner_id: OwnerId) -> sqlx::Result<i32> {
    let count = sqlx::query_scalar!(
        "SELECT count FROM upload_counts
         WHERE owner_id = $1 AND day = (now() AT TIME ZONE 'UTC')::date",
        owner_id.get()
    )
    .fetch_optional(conn)
    .await?;
    Ok(count.unwrap_or(0))
}

/// Sets (or, with `None`, clears back to the default) an owner's overrides; false if there is
/// no owner of that name.
pub async fn set_overrides(
    conn: &mut PgConnection,
    name: &str,
    overrides: Overrides,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE owners SET max_bytes = $2, max_uploads_per_day = $3 WHERE name = $1",
        name,
        overrides.max_bytes,
        overrides.max_uploads_per_day
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An owner with what it holds and may hold, for `GET /v1/owners` and `GET /v1/usage`.
#[derive(Debug, Clone)]
pub struct UsageRow {
    pub id: OwnerId,
    pub name: String,
    pub stored_bytes: i64,
    pub uploads_today: i32,
    pub max_bytes: Option<i64>,
    pub max_uploads_per_day: Option<i32>,
}

/// Every owner's usage (`only`: just that owner's), by name.
pub async fn usage(conn: &mut PgConnection, only: Option<OwnerId>) -> sqlx::Result<Vec<UsageRow>> {
    sqlx::query_as!(
        UsageRow,
        r#"SELECT o.id, o.name, o.max_bytes, o.max_uploads_per_day,
                  (coalesce((SELECT sum(v.size_bytes) FROM videos v WHERE v.owner_id = o.id), 0)
                   + coalesce((SELECT sum(u.upload_length) FROM uploads u
                               WHERE u.owner_id = o.id AND u.video_id IS NULL), 0)
                   + coalesce((SELECT sum(c.size_bytes) FROM captions c
                               JOIN videos v ON v.id = c.video_id WHERE v.owner_id = o.id), 0)
                  )::bigint
                      AS "stored_bytes!",
                  coalesce((SELECT c.count FROM upload_counts c
                            WHERE c.owner_id = o.id
                              AND c.day = (now() AT TIME ZONE 'UTC')::date), 0) AS "uploads_today!"
           FROM owners o
           WHERE $1::uuid IS NULL OR o.id = $1
           ORDER BY o.name"#,
        only.map(OwnerId::get)
    )
    .fetch_all(conn)
    .await
}
