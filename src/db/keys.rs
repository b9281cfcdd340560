//! Queries on `owners` and `api_keys`.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::OwnerId;

/// Who a presented key speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyOwner {
    pub key_id: Uuid,
    pub owner_id: OwnerId,
    pub admin: bool,
}

/// The owner called `name`, created on first use.
pub async fn ensure_owner(conn: &mut PgConnection, name: &str) -> sqlx::Result<OwnerId> {
    // DO UPDATE (a no-op) rather than DO NOTHING, so RETURNING also yields an existing row.
    let id = sqlx::query_scalar!(
        "INSERT INTO owners (id, name) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
         RETURNING id",
        OwnerId::generate().get(),
        name
    )
    .fetch_one(conn)
    .await?;
    Ok(OwnerId::from(id))
}

pub async fn insert_key(
    conn: &mut PgConnection,
    owner_id: OwnerId,
    name: &str,
    prefix: &str,
    sha256: &[u8; 32],
    admin: bool,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO api_keys (id, owner_id, name, prefix, secret_sha256, admin)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        Uuid::now_v7(),
        owner_id.get(),
        name,
        prefix,
        sha256.as_slice(),
        admin
    )
    .fetch_one(conn)
    .await
}

/// The live (not revoked) key with this digest. Notes the use at most once a minute, so a busy
/// key does not turn every request into a write.
pub async fn find_live(
    conn: &mut PgConnection,
    sha256: &[u8; 32],
) -> sqlx::Result<Option<KeyOwner>> {
    sqlx::query_as!(
        KeyOwner,
        "WITH found AS (
             SELECT id, owner_id, admin, last_used_at FROM api_keys
             WHERE secret_sha256 = $1 AND revoked_at IS NULL),
         touched AS (
             UPDATE api_keys k SET last_used_at = now() FROM found
             WHERE k.id = found.id
               AND (found.last_used_at IS NULL OR found.last_used_at < now() - interval '1 minute'))
         SELECT id AS key_id, owner_id, admin FROM found",
        sha256.as_slice()
    )
    .fetch_optional(conn)
    .await
}

/// A key as `prostream keys list` shows it.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub prefix: String,
    pub name: String,
    pub owner: String,
    pub admin: bool,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<KeyRow>> {
    sqlx::query_as!(
        KeyRow,
        "SELECT k.prefix, k.name, o.name AS owner, k.admin, k.created_at, k.last_used_at, k.revoked_at
         FROM api_keys k JOIN owners o ON o.id = k.owner_id
         ORDER BY k.created_at"
    )
    .fetch_all(conn)
    .await
}

/// Revokes the live key with this prefix; false when there is none.
pub async fn revoke(conn: &mut PgConnection, prefix: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL",
        prefix
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
