//! Configuration, read once from flags or the environment into typed structs.
//!
//! Every setting has a flag, an environment variable and a default that matches
//! `docker-compose.yml` and `.env.example`. `clap` does the parsing so that
//! `--help` documents each one and a bad value stops the process at start with
//! a message naming the variable.

use std::{path::PathBuf, time::Duration};

use clap::Args;

use crate::db::Visibility;

/// Settings both binaries need: where the truth lives and where media goes.
#[derive(Debug, Clone, Args)]
pub struct CommonConfig {
    /// Postgres connection string (the source of truth for videos and jobs).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/prostream"
    )]
    pub database_url: String,

    /// Redis connection string (only the delivery channel for job ids).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Redis queue name; every key apalis writes starts with it, so two
    /// deployments (or two tests) sharing one Redis stay apart.
    #[arg(long, env = "QUEUE_NAME", default_value = "prostream:transcode")]
    pub queue_name: String,

    /// Shared media volume: `uploads/` holds originals, `videos/{id}/{attempt}/` the HLS output.
    #[arg(long, env = "MEDIA_ROOT", default_value = "./media")]
    pub media_root: PathBuf,

    /// Maximum Postgres connections in this process' pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,

    /// Path of the ffprobe binary.
    #[arg(long, env = "FFPROBE_PATH", default_value = "ffprobe")]
    pub ffprobe_path: PathBuf,

    /// Seconds ffprobe may take on one file before it is killed.
    #[arg(long, env = "PROBE_TIMEOUT_SECS", default_value_t = 30)]
    pub probe_timeout_secs: u64,
}

impl CommonConfig {
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_secs(self.probe_timeout_secs)
    }
}

/// Limits an upload must respect before it is accepted.
#[derive(Debug, Clone, Args)]
pub struct MediaLimits {
    /// Largest accepted upload in bytes (default 4 GiB).
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = 4 * 1024 * 1024 * 1024)]
    pub max_upload_bytes: u64,

    /// Largest accepted source width in pixels (after rotation).
    #[arg(long, env = "MAX_WIDTH", default_value_t = 7680)]
    pub max_width: u32,

    /// Largest accepted source height in pixels (after rotation).
    #[arg(long, env = "MAX_HEIGHT", default_value_t = 7680)]
    pub max_height: u32,

    /// Largest accepted pixel area, width × height (default: 8K UHD, 7680×4320).
    #[arg(long, env = "MAX_PIXELS", default_value_t = 7680 * 4320)]
    pub max_pixels: u64,

    /// Longest accepted source, in seconds (default 4 hours).
    #[arg(long, env = "MAX_DURATION_SECS", default_value_t = 4.0 * 3600.0)]
    pub max_duration_secs: f64,

    /// Highest accepted source frame rate.
    #[arg(long, env = "MAX_FRAME_RATE", default_value_t = 240.0)]
    pub max_frame_rate: f64,

    /// Seconds a resumable (tus) upload may take from its creation to its last byte; after that
    /// it is refused (410) and the worker's sweeper deletes it. A completed upload's record (which
    /// names its video) is kept as long again.
    #[arg(long, env = "UPLOAD_EXPIRY_SECS", default_value_t = 24 * 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_expiry_secs: u64,
}

impl MediaLimits {
    pub fn upload_expiry(&self) -> Duration {
        Duration::from_secs(self.upload_expiry_secs)
    }
}

impl Default for MediaLimits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 4 * 1024 * 1024 * 1024,
            max_width: 7680,
            max_height: 7680,
            max_pixels: 7680 * 4320,
            max_duration_secs: 4.0 * 3600.0,
            max_frame_rate: 240.0,
            upload_expiry_secs: 24 * 3600,
        }
    }
}

/// What owners may do by default: the visibility of new videos and the quotas. An owner's own
/// quotas (`prostream keys quota`) override these.
#[derive(Debug, Clone, Args)]
pub struct OwnerPolicy {
    /// Visibility of a new video whose upload does not say: `private` (played through signed
    /// URLs only) or `public` (its HLS URLs work for anyone).
    #[arg(
        long,
        env = "DEFAULT_VISIBILITY",
        value_enum,
        default_value = "private"
    )]
    pub default_visibility: Visibility,

    /// Bytes of originals (and unfinished resumable uploads) one owner may hold; 0 = no limit.
    #[arg(long, env = "QUOTA_MAX_BYTES", default_value_t = 0)]
    pub quota_max_bytes: u64,

    /// Uploads (of any kind, refused ones included) one owner may start per UTC day; 0 = no limit.
    #[arg(long, env = "QUOTA_UPLOADS_PER_DAY", default_value_t = 0)]
    pub quota_uploads_per_day: u32,
}

impl Default for OwnerPolicy {
    fn default() -> Self {
        Self {
            default_visibility: Visibility::Private,
            quota_max_bytes: 0,
            quota_uploads_per_day: 0,
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Args)]
pub struct LogConfig {
    /// `text` for people, `json` for log collectors. Filter with `RUST_LOG`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl LogConfig {
    /// Installs the global tracing subscriber.
    pub fn init(&self) {
        use tracing_subscriber::EnvFilter;
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,apalis=warn"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter);
        if self.log_format == "json" {
            builder.json().init();
        } else {
            builder.init();
        }
    }
}

/// Signed playback URLs for private videos (the API only).
#[derive(Clone, Args)]
pub struct PlaybackConfig {
    /// Keys that sign private videos' playback URLs: `kid:secret`, comma-separated. The first
    /// signs, every one verifies; rotate by putting a new key first and removing the old one after
    /// the longest URL TTL. Secrets are at least 32 bytes (`openssl rand -base64 32`). Required:
    /// the API refuses to start without one.
    #[arg(long, env = "PLAYBACK_SIGNING_KEYS", hide_env_values = true)]
    pub playback_signing_keys: Option<String>,

    /// Seconds a signed playback URL stays valid (at least; the expiry is rounded up by up to a
    /// tenth of this, at most 15 min, so repeated reads of a video give the same URL).
    #[arg(long, env = "PLAYBACK_URL_TTL_SECS", default_value_t = 6 * 3600,
          value_parser = clap::value_parser!(u64).range(1..=30 * 24 * 3600))]
    pub playback_url_ttl_secs: u64,
}

impl PlaybackConfig {
    /// The signer, or why the configuration cannot make one.
    pub fn signer(&self) -> Result<crate::playback::Signer, crate::playback::KeyError> {
        crate::playback::Signer::from_spec(
            self.playback_signing_keys.as_deref().unwrap_or_default(),
            Duration::from_secs(self.playback_url_ttl_secs),
        )
    }
}
