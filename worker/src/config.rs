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

    /// ffmpeg is killed after the source duration times this factor…
    #[arg(long, env = "ENCODE_TIMEOUT_FACTOR", default_value_t = 10.0)]
    pub encode_timeout_factor: f64,

    /// …but never sooner than this many seconds.
    #[arg(long, env = "ENCODE_TIMEOUT_MIN_SECS", default_value_t = 300)]
    pub encode_timeout_min_secs: u64,

    /// Seconds a claimed job stays ours without a heartbeat.
    #[arg(long, env = "JOB_LEASE_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(5..))]
    pub job_lease_secs: u64,

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
}
