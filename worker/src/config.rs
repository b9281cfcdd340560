//! The worker's settings (flags or environment; see `.env.example`).

use std::{path::PathBuf, time::Duration};

use clap::Args;
use prostream::config::{CommonConfig, LogConfig};

#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    #[command(flatten)]
    pub log: LogConfig,

    /// Jobs this process runs at once. One x264 ladder already keeps about two cores busy.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Path of the ffmpeg binary.
    #[arg(long, env = "FFMPEG_PATH", default_value = "ffmpeg")]
    pub ffmpeg_path: PathBuf,

    /// x264 preset for every rung (speed against size).
    #[arg(long, env = "X264_PRESET", default_value = "veryfast",
          value_parser = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"])]
    pub x264_preset: String,

    /// x264 constant rate factor (lower: better and bigger), capped per rung by its bitrate.
    #[arg(long, env = "X264_CRF", default_value_t = 23,
          value_parser = clap::value_parser!(u8).range(0..=51))]
    pub x264_crf: u8,

    /// ffmpeg is killed after this factor times the seconds of 1080p30 video the source's real
    /// work amounts to (frames × pixels; for a 1080p30 source, its duration)…
    #[arg(long, env = "ENCODE_TIMEOUT_FACTOR", default_value_t = 10.0)]
    pub encode_timeout_factor: f64,

    /// …but never sooner than this many seconds.
    #[arg(long, env = "ENCODE_TIMEOUT_MIN_SECS", default_value_t = 300)]
    pub encode_timeout_min_secs: u64,

    /// Seconds a claimed job stays ours without a heartbeat.
    #[arg(long, env = "JOB_LEASE_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(5..))]
    pub job_lease_secs: u64,

    /// First retry delay after a transient failure; it doubles with every attempt (up to 10 min).
    #[arg(long, env = "RETRY_BACKOFF_SECS", default_value_t = 10)]
    pub retry_backoff_secs: u64,

    /// How often this worker runs the reaper, the reconciler and the sweeper.
    #[arg(long, env = "MAINTENANCE_INTERVAL_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub maintenance_interval_secs: u64,

    /// A queued job nobody claimed this many seconds after its last push is pushed again
    /// (a flushed or restarted Redis, a failed push).
    #[arg(long, env = "RECONCILE_AFTER_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub reconcile_after_secs: u64,

    /// With STORAGE_BACKEND=s3: how often the bucket is listed for the output of dead attempts
    /// (a killed worker's). The local volume is swept every maintenance tick.
    #[arg(long, env = "OBJECT_SWEEP_INTERVAL_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub object_sweep_interval_secs: u64,

    /// Below this much free space on MEDIA_ROOT the worker takes no new job (default 1 GiB).
    #[arg(long, env = "MIN_FREE_DISK_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub min_free_disk_bytes: u64,

    /// Keep the uploaded original after a successful transcode (`false` deletes it).
    #[arg(long, env = "KEEP_ORIGINALS", default_value_t = true, action = clap::ArgAction::Set)]
    pub keep_originals: bool,

    /// Serve Prometheus metrics on this address (e.g. `0.0.0.0:9100`); unset: no metrics endpoint.
    #[arg(long, env = "WORKER_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// File touched every few seconds while the worker can reach Postgres and
    /// Redis; `prostream-worker healthcheck` reads its age.
    #[arg(
        long,
        env = "WORKER_HEALTH_FILE",
        default_value = "/tmp/prostream-worker.health"
    )]
    pub health_file: PathBuf,
}

impl WorkerConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.job_lease_secs)
    }

    pub fn maintenance(&self) -> crate::maintenance::Settings {
        crate::maintenance::Settings {
            interval: Duration::from_secs(self.maintenance_interval_secs),
            reconcile_after: Duration::from_secs(self.reconcile_after_secs),
            sweep_min_age: crate::maintenance::SWEEP_MIN_AGE,
            object_sweep_interval: Duration::from_secs(self.object_sweep_interval_secs),
        }
    }
}
