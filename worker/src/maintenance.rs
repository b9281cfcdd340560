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
//! - **sweeper**: the published output of dead attempts (a killed worker's; with S3, objects
//!   under `videos/{id}/{attempt}/`), scratch directories no running attempt owns, and
//!   half-received uploads are deleted; so are resumable (tus) uploads past their expiry
//!   (unfinished: row and bytes; completed: only the row, the file is the video's) and `.tus/`
//!   files whose row is gone; finished tasks are dropped from Redis. Listing a bucket costs
//!   requests, so with S3 the output sweep runs every `OBJECT_SWEEP_INTERVAL_SECS`, not every tick.
//!
//! Every replica runs it; `FOR UPDATE SKIP LOCKED` keeps them from handling
//! the same job twice, and a double push is harmless (the claim decides).

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use prostream::{
    config::StorageBackend,
    db::{self, JobState},
    ids::VideoId,
    queue,
    storage::{self, MediaRoot},
    telemetry,
};

use crate::pipeline::JobContext;

/// Jobs handled per query, so one tick stays short under a large backlog.
const BATCH: i64 = 100;
/// Leftovers younger than this may belong to work that is just starting.
pub const SWEEP_MIN_AGE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub interval: Duration,
    /// A queued job not claimed within this long after its last push is pushed again.
    pub reconcile_after: Duration,
    /// Output and scratch of dead attempts are removed once untouched this long.
    pub sweep_min_age: Duration,
    /// How often the output of dead attempts is looked for in a bucket (S3 only; the local
    /// volume is swept every tick).
    pub object_sweep_interval: Duration,
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
    let mut last_object_sweep: Option<Instant> = None;
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            _ = timer.tick() => {}
        }
        let sweep_outputs = ctx.store.backend() == StorageBackend::Local
            || last_object_sweep.is_none_or(|t| t.elapsed() >= settings.object_sweep_interval);
        match tick_with(&ctx, settings, sweep_outputs).await {
            Ok(t) => {
                if sweep_outputs {
                    last_object_sweep = Some(Instant::now());
                }
                if t != Tick::default() {
                    tracing::info!(?t, "maintenance");
                }
            }
            // Postgres, Redis or the store away: try again next tick.
            Err(err) => tracing::warn!(error = format!("{err:#}"), "maintenance failed"),
        }
    }
}

/// One round of everything, the output sweep included.
pub async fn tick(ctx: &JobContext, settings: Settings) -> anyhow::Result<Tick> {
    tick_with(ctx, settings, true).await
}

async fn tick_with(
    ctx: &JobContext,
    settings: Settings,
    sweep_outputs: bool,
) -> anyhow::Result<Tick> {
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
    let live: HashSet<(VideoId, String)> = db::jobs::live_outputs(&mut conn)
        .await?
        .into_iter()
        .collect();
    let running: HashSet<(VideoId, String)> = db::jobs::running_attempts(&mut conn)
        .await?
        .into_iter()
        .collect();
    let expired = db::uploads::delete_expired(&mut conn, BATCH).await?;
    report.swept += sweep_expired_uploads(ctx, &expired).await?;
    report.swept += storage::sweep::tus_orphans(&ctx.media, &mut conn).await?;
    drop(conn);
    if sweep_outputs {
        report.swept += ctx
            .store
            .sweep_outputs(&live, settings.sweep_min_age)
            .await?;
    }
    report.swept += ctx
        .media
        .sweep_scratch(&running, settings.sweep_min_age)
        .await?;
    report.swept += storage::sweep::incoming(&ctx.media).await?;
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

/// Removes the bytes of the expired uploads that never became videos (their rows are deleted
/// already); `.tus/` files without a row go by [`storage::sweep::tus_orphans`].
async fn sweep_expired_uploads(
    ctx: &JobContext,
    expired: &[db::uploads::Expired],
) -> anyhow::Result<usize> {
    let mut swept = 0;
    for upload in expired {
        if upload.video_id.is_some() {
            continue; // a receipt: the file is the video's original now
        }
        // On this host's disk only if this host took the upload (always, with one volume).
        storage::remove_file_if_exists(&ctx.media.tus_path(upload.id)).await?;
        if let Some(reserved) = upload.reserved_video_id {
            // Stored before a completion that never got recorded.
            ctx.store
                .remove_original(&MediaRoot::source_relative(reserved))
                .await?;
        }
        tracing::info!(upload_id = %upload.id, "removed an expired resumable upload");
        swept += 1;
    }
    Ok(swept)
}
