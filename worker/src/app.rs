//! The worker's composition root: `prostream-worker` and the integration tests build and run a
//! worker through exactly these functions.
//!
//! [`Worker::build`] connects to Redis and opens the store; [`Worker::run_until`] starts the
//! background loops (health file, housekeeping) in one place, consumes the queue until the
//! shutdown future resolves (running jobs are handed back), then stops the loops.

use std::{future::Future, time::Duration};

use prostream::{background::Background, db, queue, storage};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{config::WorkerConfig, maintenance, pipeline::JobContext, runner};

/// The loops get this long to stop once the queue consumer has.
const BACKGROUND_STOP_GRACE: Duration = Duration::from_secs(10);

/// A worker, built and not yet consuming.
pub struct Worker {
    ctx: JobContext,
    config: WorkerConfig,
}

impl Worker {
    /// Connects to Postgres with the configured pool, then [`Worker::build`].
    pub async fn connect(config: WorkerConfig) -> anyhow::Result<Self> {
        let common = &config.common;
        let pool = db::connect(&common.database_url, common.database_max_connections).await?;
        Self::build(config, pool).await
    }

    /// The job context from the settings and `pool` (a test passes its own database's).
    pub async fn build(config: WorkerConfig, pool: PgPool) -> anyhow::Result<Self> {
        let common = &config.common;
        let redis = queue::connect(&common.redis_url).await?;
        let (media, store) = storage::open(&common.storage, &common.media_root).await?;
        let ctx = JobContext {
            pool,
            queue: queue::storage(redis, &common.queue_name),
            media,
            store,
            worker_id: runner::unique_name(),
            ffmpeg: config.ffmpeg_path.clone(),
            ffprobe: common.ffprobe_path.clone(),
            preset: config.x264_preset.clone(),
            crf: config.x264_crf,
            probe_timeout: common.probe_timeout(),
            encode_timeout_factor: config.encode_timeout_factor,
            encode_timeout_min: Duration::from_secs(config.encode_timeout_min_secs),
            lease: config.lease(),
            retry_backoff: Duration::from_secs(config.retry_backoff_secs),
            min_free_disk: config.min_free_disk_bytes,
            keep_originals: config.keep_originals,
            shutdown: CancellationToken::new(),
        };
        Ok(Self { ctx, config })
    }

    /// What a job runs with (a test runs one job through [`crate::pipeline::process`]).
    pub fn context(&self) -> &JobContext {
        &self.ctx
    }

    /// Consumes the queue until `shutdown` resolves, with the health file and housekeeping
    /// running beside it; then hands running jobs back and stops the loops. An error means the
    /// queue consumer ended on its own: the process should exit non-zero and be restarted.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Worker { ctx, config } = self;
        let stop = ctx.shutdown.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutdown requested: handing running jobs back");
            stop.cancel();
        });
        let background = start_background(&ctx, &config);
        let result = runner::run(
            ctx,
            usize::from(config.concurrency),
            &config.common.queue_name,
        )
        .await;
        background.stop(BACKGROUND_STOP_GRACE).await;
        result
    }
}

/// Every loop the worker runs beside its queue consumer; the only place they start. Each gets
/// the job context with the loop's own stop token in place of the worker's shutdown.
fn start_background(ctx: &JobContext, config: &WorkerConfig) -> Background {
    let mut background = Background::new();
    let for_loop = |stop| JobContext {
        shutdown: stop,
        ..ctx.clone()
    };
    background.spawn("health-file", |stop| {
        runner::keep_health_file(for_loop(stop), config.health_file.clone())
    });
    background.spawn("housekeeping", |stop| {
        maintenance::run(for_loop(stop), config.maintenance())
    });
    background
}
