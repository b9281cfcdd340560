//! Queries on `jobs`: the state machine of DESIGN.md.
//!
//! Every write made on behalf of a running attempt is fenced by
//! `attempts = $attempt AND state = 'processing'`, so a worker that lost its
//! job (lease expired, job re-queued and claimed again) cannot overwrite the
//! newer attempt's state.

use std::time::Duration;

use sqlx::PgConnection;
use uuid::Uuid;

use super::JobStage;

/// What a worker needs once it holds a job.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job_id: Uuid,
    pub video_id: Uuid,
    /// 1 for the first attempt; the fencing token for every later write.
    pub attempt: i32,
    pub max_attempts: i32,
    pub source_path: String,
    pub duration_s: f64,
}

pub async fn insert(
    conn: &mut PgConnection,
    job_id: Uuid,
    video_id: Uuid,
    max_attempts: i32,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO jobs (id, video_id, max_attempts) VALUES ($1, $2, $3)",
        job_id,
        video_id,
        max_attempts
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes a queued job for this worker in one conditional UPDATE. `None` means
/// somebody else holds it, it is finished, or it no longer exists: the
/// delivery is a duplicate and is dropped.
pub async fn claim(
    conn: &mut PgConnection,
    job_id: Uuid,
    worker_id: &str,
    lease: Duration,
) -> sqlx::Result<Option<ClaimedJob>> {
    sqlx::query_as!(
        ClaimedJob,
        r#"UPDATE jobs j
           SET state = 'processing', stage = 'probing', progress = 0,
               attempts = j.attempts + 1, worker_id = $2,
               lease_expires_at = now() + make_interval(secs => $3),
               started_at = now(), finished_at = NULL,
               error_code = NULL, error_message = NULL
           FROM videos v
           WHERE j.id = $1 AND j.state = 'queued' AND v.id = j.video_id
           RETURNING j.id AS job_id, j.video_id, j.attempts AS attempt, j.max_attempts,
                     v.source_path, v.duration_s"#,
        job_id,
        worker_id,
        lease.as_secs_f64()
    )
    .fetch_optional(conn)
    .await
}

/// Records the stage and progress and extends the lease. Returns false when
/// the attempt no longer owns the job.
pub async fn report(
    conn: &mut PgConnection,
    job_id: Uuid,
    attempt: i32,
    stage: JobStage,
    progress: f32,
    lease: Duration,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET stage = $3, progress = $4,
                         lease_expires_at = now() + make_interval(secs => $5)
         WHERE id = $1 AND attempts = $2 AND state = 'processing'",
        job_id,
        attempt,
        stage as JobStage,
        progress.clamp(0.0, 100.0),
        lease.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the attempt's job ready. Run in the same transaction as the rendition
/// inserts so a video is never `ready` without its renditions.
pub async fn mark_ready(conn: &mut PgConnection, job_id: Uuid, attempt: i32) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET state = 'ready', stage = NULL, progress = 100,
                         lease_expires_at = NULL, finished_at = now()
         WHERE id = $1 AND attempts = $2 AND state = 'processing'",
        job_id,
        attempt
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn mark_failed(
    conn: &mut PgConnection,
    job_id: Uuid,
    attempt: i32,
    code: &str,
    message: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET state = 'failed', stage = NULL, lease_expires_at = NULL,
                         finished_at = now(), error_code = $3, error_message = $4
         WHERE id = $1 AND attempts = $2 AND state = 'processing'",
        job_id,
        attempt,
        code,
        message
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Puts a running job back in the queue. `charge` keeps the attempt counted
/// (a transient failure); without it the attempt is given back (the worker is
/// shutting down, which is not the job's fault).
pub async fn requeue(
    conn: &mut PgConnection,
    job_id: Uuid,
    attempt: i32,
    charge: bool,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET state = 'queued', stage = NULL, progress = 0, worker_id = NULL,
                         attempts = attempts - CASE WHEN $3 THEN 0 ELSE 1 END,
                         lease_expires_at = NULL, started_at = NULL, queued_at = now()
         WHERE id = $1 AND attempts = $2 AND state = 'processing'",
        job_id,
        attempt,
        charge
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
