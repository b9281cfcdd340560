//! The housekeeping every worker runs on a timer, so that no job is lost or
//! stuck and nothing is left on disk or in Redis:
//!
//! - **reaper**: jobs whose lease ran out (their worker was killed or cut
//!   off) go back to the queue, or fail once their attempts are used up;
//! - **reconciler**: queued jobs that are due and were not pushed recently
//!   are pushed to Redis again (a flushed or restarted Redis, a failed push,
//!   a retry whose backoff has passed). A delivery only wakes a worker, which
//!   claims the fairest due job (`pipeline::process`), so a job's own push
//!   may be spent on another job; that other job's push stays in Redis, so
//!   pushes and queued jobs still balance. Whatever was lost, every due job
//!   still queued `RECONCILE_AFTER_SECS` after its last push is pushed again,
//!   round after round, and each delivery claims some due job: the backlog
//!   drains, and the fairness order (an owner's oldest job first, owners in
//!   turn) reaches every job, so none waits forever. A job that waits its
//!   turn in a long backlog is re-pushed too; the surplus delivery is
//!   harmless (it claims the next fair job, or finds none and is dropped);
//! - **sweeper**: output directories of dead attempts (a killed worker's) and
//!   half-received uploads are deleted; so are resumable (tus) uploads past
//!   their expiry (unfinished: row and bytes; completed: only the row, the file
//!   is the video's) and `.tus/` files whose row is gone; finished tasks are
//!   dropped from Redis.
//!
//! Every replica runs it; `FOR UPDATE SKIP LOCKED` keeps them from handling
//! the same job twice, and a double push is harmless (the claim decides).

use std::{
    collections::HashSet,
    path::Path,
    time::{Duration, SystemTime},
};

use prostream::{
    db::{self, JobState},
    queue,
    storage::{self, MediaRoot},
    telemetry,
};
use uuid::Uuid;

use crate::pipeline::JobContext;

/// Jobs handled per query, so one tick stays short under a large backlog.
const BATCH: i64 = 100;
/// Leftovers younger than this may belong to work that is just starting.
const SWEEP_MIN_AGE: Duration = Duration::from_secs(60);
/// An upload that received no bytes for this long was abandoned by the API that took it.
const INCOMING_MAX_IDLE: Duration = Duration::from_secs(3600);
/// A `.tus/` file without a row this long after its last write is an orphan (its row was deleted
/// between the two steps of a deletion, or its creation never committed).
const TUS_ORPHAN_AGE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub interval: Duration,
    /// A queued job not claimed within this long after its last push is pushed again.
    pub reconcile_after: Duration,
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    pub requeued: usize,
    pub failed: usize,
    pub pushed: usize,
    pub swept: usize,
}

/// Runs [`tick`] every `settings.interval` until the worker shuts down.
pub async fn run(ctx: JobContext, settings: Settings) {
    let mut timer = tokio::time::interval(settings.interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            _ = timer.tick() => {}
        }
        match tick(&ctx, settings).await {
            Ok(t) if t != Tick::default() => tracing::info!(?t, "maintenance"),
            Ok(_) => {}
            // Postgres or Redis away: try again next tick.
            Err(err) => tracing::warn!(error = format!("{err:#}"), "maintenance failed"),
        }
    }
}

pub async fn tick(ctx: &JobContext, settings: Settings) -> anyhow::Result<Tick> {
    let mut report = Tick::default();
    let mut conn = ctx.pool.acquire().await?;
    for reaped in db::jobs::reap_expired(&mut conn, BATCH).await? {
        if reaped.state == JobState::Failed {
            report.failed += 1;
            tracing::warn!(job_id = %reaped.job_id, "lease expired on the last attempt; job failed");
        } else {
            report.requeued += 1;
            tracing::warn!(job_id = %reaped.job_id, "lease expired; job queued again");
        }
    }
    for job_id in db::jobs::take_due_for_push(&mut conn, settings.reconcile_after, BATCH).await? {
        // Marked pushed already: if this push fails, the next round after
        // `reconcile_after` tries again.
        queue::push(&ctx.queue, job_id).await?;
        report.pushed += 1;
    }
    let live: HashSet<(Uuid, String)> = db::jobs::live_outputs(&mut conn)
        .await?
        .into_iter()
        .collect();
    let expired = db::uploads::delete_expired(&mut conn, BATCH).await?;
    report.swept += sweep_tus(&ctx.media, &mut conn, &expired).await?;
    drop(conn);
    report.swept += sweep_outputs(&ctx.media, &live).await?;
    report.swept += sweep_incoming(&ctx.media).await?;
    metrics::counter!(telemetry::REAPED, "result" => "requeued").increment(report.requeued as u64);
    metrics::counter!(telemetry::REAPED, "result" => "failed").increment(report.failed as u64);
    metrics::counter!(telemetry::RECONCILED).increment(report.pushed as u64);
    metrics::counter!(telemetry::SWEPT).increment(report.swept as u64);
    let mut redis = ctx.queue.clone();
    queue::prune_finished(
        redis.get_connection(),
        ctx.queue.get_config().queue.as_ref(),
        500,
    )
    .await?;
    Ok(report)
}

/// Removes attempt directories under `videos/` that belong to no running or
/// ready attempt, and video directories left empty.
async fn sweep_outputs(media: &MediaRoot, live: &HashSet<(Uuid, String)>) -> anyhow::Result<usize> {
    let mut swept = 0;
    let mut videos = tokio::fs::read_dir(media.root().join("videos")).await?;
    while let Some(video) = videos.next_entry().await? {
        let Ok(video_id) = video.file_name().to_string_lossy().parse::<Uuid>() else {
            continue;
        };
        // Judged before its children go: removing one refreshes the directory's time.
        let old_video_dir = older_than(&video.path(), SWEEP_MIN_AGE).await;
        let mut attempts = tokio::fs::read_dir(video.path()).await?;
        while let Some(attempt) = attempts.next_entry().await? {
            let key = attempt.file_name().to_string_lossy().into_owned();
            if !live.contains(&(video_id, key)) && older_than(&attempt.path(), SWEEP_MIN_AGE).await
            {
                storage::remove_dir_if_exists(&attempt.path()).await?;
                tracing::info!(dir = %attempt.path().display(), "removed the output of a dead attempt");
                swept += 1;
            }
        }
        if old_video_dir {
            // Succeeds only when empty.
            let _ = tokio::fs::remove_dir(video.path()).await;
        }
    }
    Ok(swept)
}

/// Removes uploads that stopped arriving long ago (the API that took them died).
async fn sweep_incoming(media: &MediaRoot) -> anyhow::Result<usize> {
    let mut swept = 0;
    let mut entries = tokio::fs::read_dir(media.uploads_dir()).await?;
    while let Some(entry) = entries.next_entry().await? {
        let incoming = entry
            .file_name()
            .to_string_lossy()
            .starts_with(".incoming-");
        if incoming && older_than(&entry.path(), INCOMING_MAX_IDLE).await {
            storage::remove_file_if_exists(&entry.path()).await?;
            swept += 1;
        }
    }
    Ok(swept)
}

/// Removes the bytes of the expired uploads that never became videos (their rows are deleted
/// already), then `.tus/` files that no row refers to.
async fn sweep_tus(
    media: &MediaRoot,
    conn: &mut sqlx::PgConnection,
    expired: &[db::uploads::Expired],
) -> anyhow::Result<usize> {
    let mut swept = 0;
    for upload in expired {
        if upload.video_id.is_some() {
            continue; // a receipt: the file is the video's original now
        }
        storage::remove_file_if_exists(&media.tus_path(upload.id)).await?;
        if let Some(reserved) = upload.reserved_video_id {
            // Moved into place before a completion that never got recorded.
            let moved = media.resolve(&MediaRoot::source_relative(reserved))?;
            storage::remove_file_if_exists(&moved).await?;
        }
        tracing::info!(upload_id = %upload.id, "removed an expired resumable upload");
        swept += 1;
    }
    let mut entries = match tokio::fs::read_dir(media.tus_dir()).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(swept),
        Err(e) => return Err(e.into()),
    };
    while let Some(entry) = entries.next_entry().await? {
        if !older_than(&entry.path(), TUS_ORPHAN_AGE).await {
            continue;
        }
        let name = entry.file_name();
        let owned = match name.to_string_lossy().parse::<Uuid>() {
            Ok(id) => db::uploads::exists(conn, id).await?,
            Err(_) => false,
        };
        if !owned {
            storage::remove_file_if_exists(&entry.path()).await?;
            tracing::info!(file = %entry.path().display(), "removed a resumable upload without a record");
            swept += 1;
        }
    }
    Ok(swept)
}

async fn older_than(path: &Path, age: Duration) -> bool {
    tokio::fs::metadata(path)
        .await
        .and_then(|m| m.modified())
        .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > age)
}
