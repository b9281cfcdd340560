//! Queries on `jobs`: the state machine of docs/state-machine.md.
//!
//! Fencing by identity. Every claim of a job draws a fresh `fence` from the
//! Postgres sequence `job_fence`, and every write made on behalf of that
//! attempt (progress and lease, playable, ready, failed, requeue) is fenced by
//! `id = $job AND fence = $fence AND state = 'processing'`. A sequence never
//! repeats, so a superseded attempt (its lease expired and the job was claimed
//! again; or it was canceled, retried and claimed again) can never write over
//! the attempt that holds the job now. `attempts` is only the attempt budget:
//! a retry resets it, so it repeats and fences nothing (it did once, and after
//! cancel → retry → claim the old attempt's writes landed on the new one).
//!
//! The attempt's output directory and URL, `attempt_key`, starts with the
//! fence (`{fence}-{random}`), so two attempts never share a directory, and
//! an attempt can tell that another attempt of its video is older than itself
//! (see `MediaStore::remove_earlier_attempts`): it only ever deletes output of
//! attempts that were superseded before it was claimed.
//!
//! A claim draws its fence while it holds the job's row lock (the sequence is
//! read in a CTE over the locked row), so a job's fences grow in the order of
//! its claims: a higher fence is always a later attempt.
//!
//! Downloads (URL ingest) are fenced the same way: each `take_download` draws
//! a fresh fence, renew/finish/fail match it, and the take writes the
//! original to a path of its own (`uploads/{video_id}-{fence}`).
//!
//! The changes an owner can be told about (playable, ready, failed, canceled)
//! write their webhook event in the same transaction ([`webhooks::enqueue_event`]);
//! inside a caller's transaction that is a savepoint.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::{
    JobStage, JobState,
    webhooks::{self, EventType},
};
use crate::ids::{JobId, OwnerId, VideoId};

/// What a worker needs once it holds a job.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job_id: JobId,
    pub video_id: VideoId,
    /// The video's owner; `None` for videos without one (they share one fairness bucket).
    pub owner_id: Option<OwnerId>,
    /// 1 for the first attempt since the job was queued or retried: the attempt budget only
    /// (a retry resets it, so it repeats).
    pub attempt: i32,
    /// This claim's identity, unique forever (the `job_fence` sequence): every write the
    /// attempt makes is fenced by it.
    pub fence: i64,
    pub max_attempts: i32,
    /// Names this attempt's output directory and URL.
    pub attempt_key: String,
    pub source_path: String,
    pub duration_s: f64,
    /// Whether to make the downloads (the upload's `downloads=`).
    pub downloads: bool,
}

/// A [`ClaimedJob`] as the claim queries return it: `query_as!` turns a column into a typed id
/// only when it is not nullable, and `owner_id` is.
struct ClaimRow {
    job_id: JobId,
    video_id: VideoId,
    owner_id: Option<Uuid>,
    attempt: i32,
    fence: i64,
    max_attempts: i32,
    attempt_key: String,
    source_path: String,
    duration_s: f64,
    downloads: bool,
}

impl From<ClaimRow> for ClaimedJob {
    fn from(row: ClaimRow) -> Self {
        Self {
            job_id: row.job_id,
            video_id: row.video_id,
            owner_id: row.owner_id.map(OwnerId::from),
            attempt: row.attempt,
            fence: row.fence,
            max_attempts: row.max_attempts,
            attempt_key: row.attempt_key,
            source_path: row.source_path,
            duration_s: row.duration_s,
            downloads: row.downloads,
        }
    }
}

pub async fn insert(
    conn: &mut PgConnection,
    job_id: JobId,
    video_id: VideoId,
    max_attempts: i32,
) -> sqlx::Result<()> {
    // Counted as pushed now: the caller pushes right after commit, and if that
    // push fails the reconciler pushes again once `pushed_at` is old enough.
    sqlx::query!(
        "INSERT INTO jobs (id, video_id, max_attempts, pushed_at) VALUES ($1, $2, $3, now())",
        job_id.get(),
        video_id.get(),
        max_attempts
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A job whose source must first be downloaded (URL ingest); not pushed:
/// the API's downloader takes it from Postgres.
pub async fn insert_downloading(
    conn: &mut PgConnection,
    job_id: JobId,
    video_id: VideoId,
    max_attempts: i32,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO jobs (id, video_id, max_attempts, state) VALUES ($1, $2, $3, 'downloading')",
        job_id.get(),
        video_id.get(),
        max_attempts
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A download this API instance now holds.
#[derive(Debug, Clone)]
pub struct Download {
    pub job_id: JobId,
    pub video_id: VideoId,
    pub url: String,
    /// This take's identity, unique forever: renew/finish/fail are fenced by it, and the
    /// original it stores is named after it ([`Download::source_path`]).
    pub fence: i64,
}

impl Download {
    /// Where this take stores the original (`videos.source_path` once it is recorded): a name
    /// only this take uses, so a take that lost the download deletes only its own file.
    pub fn source_path(&self) -> String {
        format!("uploads/{}-{}", self.video_id, self.fence)
    }
}

/// Takes the oldest download nobody holds (never started, or its holder's
/// lease ran out: an API instance that died mid-download), under a fresh fence.
pub async fn take_download(
    conn: &mut PgConnection,
    holder: &str,
    lease: Duration,
) -> sqlx::Result<Option<Download>> {
    sqlx::query_as!(
        Download,
        r#"UPDATE jobs j
           SET worker_id = $1, lease_expires_at = now() + make_interval(secs => $2),
               started_at = coalesce(j.started_at, now()), fence = nextval('job_fence')
           FROM videos v
           WHERE v.id = j.video_id
             AND j.id = (SELECT id FROM jobs
                         WHERE state = 'downloading'
                           AND (lease_expires_at IS NULL OR lease_expires_at < now())
                         ORDER BY queued_at
                         LIMIT 1
                         FOR UPDATE SKIP LOCKED)
           RETURNING j.id AS job_id, j.video_id, v.source_url AS "url!", j.fence AS "fence!""#,
        holder,
        lease.as_secs_f64()
    )
    .fetch_optional(conn)
    .await
}

/// Extends the download's lease; false when it is no longer this take's (canceled, deleted,
/// taken again).
pub async fn renew_download(
    conn: &mut PgConnection,
    job_id: JobId,
    fence: i64,
    lease: Duration,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND fence = $2 AND state = 'downloading'",
        job_id.get(),
        fence,
        lease.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The source is in place and recorded: the job joins the transcode queue.
/// Fenced by the take; false when the download was canceled or taken again meanwhile.
pub async fn finish_download(
    conn: &mut PgConnection,
    job_id: JobId,
    fence: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET state = 'queued', worker_id = NULL, lease_expires_at = NULL,
                         started_at = NULL, queued_at = now(), run_after = now(), pushed_at = now()
         WHERE id = $1 AND fence = $2 AND state = 'downloading'",
        job_id.get(),
        fence
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The download failed for good (refused URL, too large, not media, …).
pub async fn fail_download(
    conn: &mut PgConnection,
    job_id: JobId,
    fence: i64,
    code: &str,
    message: &str,
) -> sqlx::Result<bool> {
    let mut tx = conn.begin().await?;
    let done = sqlx::query!(
        "UPDATE jobs SET state = 'failed', worker_id = NULL, lease_expires_at = NULL,
                         error_code = $3, error_message = $4, finished_at = now()
         WHERE id = $1 AND fence = $2 AND state = 'downloading'",
        job_id.get(),
        fence,
        code,
        message
    )
    .execute(&mut *tx)
    .await?;
    announce(tx, done.rows_affected() == 1, job_id, EventType::Failed).await
}

/// Commits `tx` after writing the event of a state change that `happened` (the outbox: the
/// event exists exactly when the change does). Returns `happened`.
async fn announce(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    happened: bool,
    job_id: JobId,
    kind: EventType,
) -> sqlx::Result<bool> {
    if happened {
        webhooks::enqueue_event_for_job(&mut tx, job_id, kind).await?;
    }
    tx.commit().await?;
    Ok(happened)
}

/// Serialises [`claim_next`] within one database (advisory locks are per database).
const FAIR_CLAIM_LOCK: i64 = 0x7072_6f73_6661_6972; // "prosfair"

/// Takes the fairest due queued job for this worker, whichever job the
/// delivery named: among the owners with a due queued job, the owner with the
/// fewest jobs `processing`, then the owner whose last claim is the least
/// recent (never claimed first), then that owner's oldest job (`queued_at`,
/// then id). Videos without an owner form one bucket of their own. The same
/// statement records the claim in `owner_claims`. `None`: no due queued job
/// that is not locked right now.
///
/// One conditional UPDATE with `FOR UPDATE SKIP LOCKED` takes the job, so a
/// job is still claimed by exactly one worker. Claims take a transaction-level
/// advisory lock first, so they run one after another, each with a snapshot
/// taken after the previous one committed: two workers freed at the same
/// moment see each other's claim (its `processing` row and `last_claimed_at`),
/// and the rule holds exactly instead of both picking from the same picture.
/// The statement reads every due queued job with its video, so its cost
/// grows with the backlog (and with the table of videos when the planner
/// prefers to scan it): measured on 2 busy cores (load 7) with 110,000
/// videos of 50 owners, 5–11 ms for 20 queued jobs, 34–57 ms for 500 and
/// 58–85 ms for 10,000. Claims come once per job, and jobs take seconds to
/// hours; a `jobs.owner_id` column with an index would make it independent
/// of the table sizes if backlogs grow far beyond that.
pub async fn claim_next(
    conn: &mut PgConnection,
    worker_id: &str,
    lease: Duration,
) -> sqlx::Result<Option<ClaimedJob>> {
    let mut tx = conn.begin().await?;
    sqlx::query_scalar!(
        r#"SELECT 1 AS "locked!" FROM pg_advisory_xact_lock($1)"#,
        FAIR_CLAIM_LOCK
    )
    .fetch_one(&mut *tx)
    .await?;
    // `clock_timestamp()`, not `now()` (the transaction's start, before the
    // lock wait): claims must be recorded in the order they happened. The
    // nil UUID (no owner has it: ids are UUIDv7) stands for the ownerless
    // bucket in join keys, because `IS NOT DISTINCT FROM` cannot be
    // hash-joined: with 10,000 queued jobs of 50 owners, the nested loops it
    // forces made the claim take about twice as long.
    let job = sqlx::query_as!(
        ClaimRow,
        r#"WITH busy AS (
               SELECT coalesce(v.owner_id, '00000000-0000-0000-0000-000000000000'::uuid) AS bucket, count(*) AS running
               FROM jobs r JOIN videos v ON v.id = r.video_id
               WHERE r.state = 'processing'
               GROUP BY 1),
           pick AS (
               SELECT j.id
               FROM jobs j
               JOIN videos v ON v.id = j.video_id
               LEFT JOIN busy b ON b.bucket = coalesce(v.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
               LEFT JOIN owner_claims c
                      ON coalesce(c.owner_id, '00000000-0000-0000-0000-000000000000'::uuid) = coalesce(v.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
               WHERE j.state = 'queued' AND j.run_after <= now()
               ORDER BY coalesce(b.running, 0), c.last_claimed_at NULLS FIRST, j.queued_at, j.id
               LIMIT 1
               FOR UPDATE OF j SKIP LOCKED),
           fenced AS (SELECT id, nextval('job_fence') AS fence FROM pick),
           claimed AS (
               UPDATE jobs j
               SET state = 'processing', stage = 'probing', progress = 0,
                   attempts = j.attempts + 1, worker_id = $1, playable_at = NULL,
                   fence = f.fence,
                   attempt_key = f.fence || '-' || substr(md5(random()::text), 1, 8),
                   lease_expires_at = now() + make_interval(secs => $2),
                   started_at = now(), finished_at = NULL,
                   error_code = NULL, error_message = NULL
               FROM fenced f, videos v
               WHERE j.id = f.id AND j.state = 'queued' AND v.id = j.video_id
               RETURNING j.id AS job_id, j.video_id, v.owner_id, j.attempts AS attempt,
                         j.fence, j.max_attempts, j.attempt_key, v.source_path, v.duration_s,
                         v.downloads),
           recorded AS (
               INSERT INTO owner_claims (owner_id, last_claimed_at)
               SELECT owner_id, clock_timestamp() FROM claimed
               ON CONFLICT (owner_id) DO UPDATE SET last_claimed_at = excluded.last_claimed_at)
           SELECT job_id AS "job_id!", video_id AS "video_id!", owner_id,
                  attempt AS "attempt!", fence AS "fence!", max_attempts AS "max_attempts!",
                  attempt_key AS "attempt_key!", source_path AS "source_path!",
                  duration_s AS "duration_s!", downloads AS "downloads!"
           FROM claimed"#,
        worker_id,
        lease.as_secs_f64()
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(job.map(ClaimedJob::from))
}

/// Takes one given queued job for this worker in one conditional UPDATE.
/// `None` means somebody else holds it, it is finished, not due, or it no
/// longer exists. [`claim_next`] is the normal path; a worker calls this
/// only when that found nothing, for the job its delivery named (see
/// `pipeline::process`).
pub async fn claim(
    conn: &mut PgConnection,
    job_id: JobId,
    worker_id: &str,
    lease: Duration,
) -> sqlx::Result<Option<ClaimedJob>> {
    sqlx::query_as!(
        ClaimRow,
        r#"WITH pick AS (
               SELECT id FROM jobs
               WHERE id = $1 AND state = 'queued' AND run_after <= now()
               FOR UPDATE),
           fenced AS (SELECT id, nextval('job_fence') AS fence FROM pick),
           claimed AS (
               UPDATE jobs j
               SET state = 'processing', stage = 'probing', progress = 0,
                   attempts = j.attempts + 1, worker_id = $2, playable_at = NULL,
                   fence = f.fence,
                   attempt_key = f.fence || '-' || substr(md5(random()::text), 1, 8),
                   lease_expires_at = now() + make_interval(secs => $3),
                   started_at = now(), finished_at = NULL,
                   error_code = NULL, error_message = NULL
               FROM fenced f, videos v
               WHERE j.id = f.id AND j.state = 'queued' AND j.run_after <= now()
                 AND v.id = j.video_id
               RETURNING j.id AS job_id, j.video_id, v.owner_id, j.attempts AS attempt,
                         j.fence, j.max_attempts, j.attempt_key, v.source_path, v.duration_s,
                         v.downloads),
           recorded AS (
               INSERT INTO owner_claims (owner_id, last_claimed_at)
               SELECT owner_id, clock_timestamp() FROM claimed
               ON CONFLICT (owner_id) DO UPDATE SET last_claimed_at = excluded.last_claimed_at)
           SELECT job_id AS "job_id!", video_id AS "video_id!", owner_id,
                  attempt AS "attempt!", fence AS "fence!", max_attempts AS "max_attempts!",
                  attempt_key AS "attempt_key!", source_path AS "source_path!",
                  duration_s AS "duration_s!", downloads AS "downloads!"
           FROM claimed"#,
        job_id.get(),
        worker_id,
        lease.as_secs_f64()
    )
    .fetch_optional(conn)
    .await
    .map(|job| job.map(ClaimedJob::from))
}

/// Records the stage and progress and extends the lease. Returns false when
/// the attempt no longer owns the job.
pub async fn report(
    conn: &mut PgConnection,
    job_id: JobId,
    fence: i64,
    stage: JobStage,
    progress: f32,
    lease: Duration,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET stage = $3, progress = $4,
                         lease_expires_at = now() + make_interval(secs => $5)
         WHERE id = $1 AND fence = $2 AND state = 'processing'",
        job_id.get(),
        fence,
        stage as JobStage,
        progress.clamp(0.0, 100.0),
        lease.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the attempt's job ready. Run in the same transaction as the rendition
/// inserts so a video is never `ready` without its renditions. A video that was
/// never announced playable (a short one can finish before its first segments
/// are noticed) is announced playable now too, so `video.playable` always comes.
pub async fn mark_ready(
    conn: &mut PgConnection,
    job_id: JobId,
    fence: i64,
    has_poster: bool,
) -> sqlx::Result<bool> {
    let mut tx = conn.begin().await?;
    let unannounced = sqlx::query_scalar!(
        r#"SELECT playable_at IS NULL AS "unannounced!" FROM jobs
           WHERE id = $1 AND fence = $2 AND state = 'processing'"#,
        job_id.get(),
        fence
    )
    .fetch_optional(&mut *tx)
    .await?
    .unwrap_or(false);
    let done = sqlx::query!(
        "UPDATE jobs SET state = 'ready', stage = NULL, progress = 100,
                         lease_expires_at = NULL, finished_at = now(), has_poster = $3
         WHERE id = $1 AND fence = $2 AND state = 'processing'",
        job_id.get(),
        fence,
        has_poster
    )
    .execute(&mut *tx)
    .await?;
    if unannounced && done.rows_affected() == 1 {
        webhooks::enqueue_event_for_job(&mut tx, job_id, EventType::Playable).await?;
    }
    announce(tx, done.rows_affected() == 1, job_id, EventType::Ready).await
}

pub async fn mark_failed(
    conn: &mut PgConnection,
    job_id: JobId,
    fence: i64,
    code: &str,
    message: &str,
) -> sqlx::Result<bool> {
    let mut tx = conn.begin().await?;
    let done = sqlx::query!(
        "UPDATE jobs SET state = 'failed', stage = NULL, lease_expires_at = NULL,
                         finished_at = now(), error_code = $3, error_message = $4,
                         playable_at = NULL
         WHERE id = $1 AND fence = $2 AND state = 'processing'",
        job_id.get(),
        fence,
        code,
        message
    )
    .execute(&mut *tx)
    .await?;
    announce(tx, done.rows_affected() == 1, job_id, EventType::Failed).await
}

/// Puts a running job back in the queue, to run no sooner than `delay` from
/// now. `charge` keeps the attempt counted (a transient failure); without it
/// the attempt is given back (the worker is shutting down, which is not the
/// job's fault). The job is left unpushed: the caller or the reconciler pushes it.
pub async fn requeue(
    conn: &mut PgConnection,
    job_id: JobId,
    fence: i64,
    charge: bool,
    delay: Duration,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET state = 'queued', stage = NULL, progress = 0, worker_id = NULL,
                         attempts = attempts - CASE WHEN $3 THEN 0 ELSE 1 END,
                         lease_expires_at = NULL, started_at = NULL, queued_at = now(),
                         run_after = now() + make_interval(secs => $4), pushed_at = NULL,
                         playable_at = NULL
         WHERE id = $1 AND fence = $2 AND state = 'processing'",
        job_id.get(),
        fence,
        charge,
        delay.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that `job_id` was just pushed, so the reconciler leaves it alone for a while.
pub async fn mark_pushed(conn: &mut PgConnection, job_id: JobId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET pushed_at = now() WHERE id = $1",
        job_id.get()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A job whose lease ran out, and where it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub job_id: JobId,
    pub state: JobState,
}

/// Returns jobs whose worker stopped renewing the lease (crashed, killed,
/// cut off) to the queue, or fails them when their attempts are used up.
/// `SKIP LOCKED` lets every replica run this at once without blocking or
/// double-handling a job.
pub async fn reap_expired(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Reaped>> {
    let mut tx = conn.begin().await?;
    let reaped = sqlx::query_as!(
        Reaped,
        r#"WITH expired AS (
               SELECT id FROM jobs
               WHERE state = 'processing' AND lease_expires_at < now()
               ORDER BY lease_expires_at
               LIMIT $1
               FOR UPDATE SKIP LOCKED)
           UPDATE jobs j
           SET state = CASE WHEN j.attempts >= j.max_attempts
                            THEN 'failed'::job_state ELSE 'queued'::job_state END,
               error_code = CASE WHEN j.attempts >= j.max_attempts
                                 THEN 'worker_lost' ELSE j.error_code END,
               error_message = CASE WHEN j.attempts >= j.max_attempts
                                    THEN 'the worker running this job stopped responding in each of its '
                                         || j.attempts || ' attempts'
                                    ELSE j.error_message END,
               finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
               stage = NULL, progress = 0, worker_id = NULL, lease_expires_at = NULL,
               started_at = NULL, queued_at = now(), run_after = now(), pushed_at = NULL,
               playable_at = NULL
           FROM expired WHERE j.id = expired.id
           RETURNING j.id AS job_id, j.state AS "state: JobState""#,
        limit
    )
    .fetch_all(&mut *tx)
    .await?;
    for failed in reaped.iter().filter(|r| r.state == JobState::Failed) {
        webhooks::enqueue_event_for_job(&mut tx, failed.job_id, EventType::Failed).await?;
    }
    tx.commit().await?;
    Ok(reaped)
}

/// Queued jobs that are due and were not pushed recently (never, or longer
/// ago than `stale`): marks them pushed and returns them for pushing.
pub async fn take_due_for_push(
    conn: &mut PgConnection,
    stale: Duration,
    limit: i64,
) -> sqlx::Result<Vec<JobId>> {
    let due = sqlx::query_scalar!(
        "WITH due AS (
             SELECT id FROM jobs
             WHERE state = 'queued' AND run_after <= now()
               AND (pushed_at IS NULL OR pushed_at < now() - make_interval(secs => $1))
             ORDER BY run_after
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
         UPDATE jobs j SET pushed_at = now() FROM due WHERE j.id = due.id
         RETURNING j.id",
        stale.as_secs_f64(),
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(due.into_iter().map(JobId::from).collect())
}

/// Cancels a queued or running job. A running attempt notices at its next
/// heartbeat (its fenced writes stop matching) and kills ffmpeg.
pub async fn cancel(conn: &mut PgConnection, video_id: VideoId) -> sqlx::Result<bool> {
    let mut tx = conn.begin().await?;
    let done = sqlx::query!(
        "UPDATE jobs SET state = 'canceled', stage = NULL, worker_id = NULL,
                         lease_expires_at = NULL, finished_at = now(), playable_at = NULL,
                         error_code = NULL, error_message = NULL
         WHERE video_id = $1 AND state IN ('downloading', 'queued', 'processing')",
        video_id.get()
    )
    .execute(&mut *tx)
    .await?;
    let canceled = done.rows_affected() == 1;
    if canceled {
        webhooks::enqueue_event(&mut tx, video_id, EventType::Canceled).await?;
    }
    tx.commit().await?;
    Ok(canceled)
}

/// Queues a failed or canceled job again with a fresh set of attempts.
/// The budget starts over (`attempts = 0`), but the fence does not: the next
/// claim draws a new one, so an attempt canceled a moment ago and still
/// running cannot write over the one that follows the retry.
/// A video from a URL whose download never finished goes back to
/// `downloading` instead. Returns the job id and its new state.
pub async fn retry(
    conn: &mut PgConnection,
    video_id: VideoId,
) -> sqlx::Result<Option<(JobId, JobState)>> {
    let row = sqlx::query!(
        r#"UPDATE jobs j
           SET state = CASE WHEN v.source_path IS NULL THEN 'downloading'::job_state
                            ELSE 'queued'::job_state END,
               attempts = 0, stage = NULL, progress = 0, worker_id = NULL,
               lease_expires_at = NULL, error_code = NULL, error_message = NULL,
               started_at = NULL, finished_at = NULL, queued_at = now(), run_after = now(),
               pushed_at = now()
           FROM videos v
           WHERE j.video_id = $1 AND v.id = j.video_id AND j.state IN ('failed', 'canceled')
           RETURNING j.id, j.state AS "state: JobState""#,
        video_id.get()
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (JobId::from(r.id), r.state)))
}

/// The job of a video, if it exists (for choosing the right refusal).
pub async fn state_of(
    conn: &mut PgConnection,
    video_id: VideoId,
) -> sqlx::Result<Option<JobState>> {
    sqlx::query_scalar!(
        r#"SELECT state AS "state: JobState" FROM jobs WHERE video_id = $1"#,
        video_id.get()
    )
    .fetch_optional(conn)
    .await
}

/// Records that the attempt's master playlist is up: the video can be
/// watched while the rest is encoded. Fenced like every attempt write.
pub async fn mark_playable(
    conn: &mut PgConnection,
    job_id: JobId,
    fence: i64,
) -> sqlx::Result<bool> {
    let mut tx = conn.begin().await?;
    let done = sqlx::query!(
        "UPDATE jobs SET playable_at = now()
         WHERE id = $1 AND fence = $2 AND state = 'processing'",
        job_id.get(),
        fence
    )
    .execute(&mut *tx)
    .await?;
    announce(tx, done.rows_affected() == 1, job_id, EventType::Playable).await
}

/// The (video, attempt key) of every output that may be served: running or
/// ready attempts. Any other attempt directory is a leftover.
pub async fn live_outputs(conn: &mut PgConnection) -> sqlx::Result<Vec<(VideoId, String)>> {
    let rows = sqlx::query!(
        r#"SELECT video_id, attempt_key AS "attempt_key!" FROM jobs
           WHERE state IN ('processing', 'ready') AND attempt_key IS NOT NULL"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (VideoId::from(r.video_id), r.attempt_key))
        .collect())
}

/// Attempts running now (`processing`): the only ones whose scratch directory may be in use.
pub async fn running_attempts(conn: &mut PgConnection) -> sqlx::Result<Vec<(VideoId, String)>> {
    let rows = sqlx::query!(
        r#"SELECT video_id, attempt_key AS "attempt_key!" FROM jobs
           WHERE state = 'processing' AND attempt_key IS NOT NULL"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (VideoId::from(r.video_id), r.attempt_key))
        .collect())
}

/// How many jobs are in each state (for the metrics endpoint).
pub async fn count_by_state(conn: &mut PgConnection) -> sqlx::Result<Vec<(JobState, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT state AS "state: JobState", count(*) AS "count!" FROM jobs GROUP BY state"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.state, r.count)).collect())
}
