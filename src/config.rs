//! Configuration, read once from flags or the environment into typed structs.
//!
//! Every setting has a flag, an environment variable and a default that matches
//! `docker-compose.yml` and `.env.example`. `clap` does the parsing so that
//! `--help` documents each one and a bad value stops the process at start with
//! a message naming the variable.

use std::{io::IsTerminal, path::PathBuf, time::Duration};

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

    /// Local media directory. `STORAGE_BACKEND=local`: the volume API and workers share
    /// (`uploads/` holds originals, `videos/{id}/{attempt}/` the HLS output). `s3`: this
    /// process' own scratch space (uploads being probed, a worker's encode before upload).
    #[arg(long, env = "MEDIA_ROOT", default_value = "./media")]
    pub media_root: PathBuf,

    /// Maximum Postgres connections in this process' pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,

    #[command(flatten)]
    pub storage: StorageConfig,

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

/// Where originals and HLS output are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageBackend {
    /// On MEDIA_ROOT, a volume the API and every worker share.
    Local,
    /// In an S3-compatible bucket: API and workers share no disk.
    S3,
}

impl std::fmt::Display for StorageBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Local => "local",
            Self::S3 => "s3",
        })
    }
}

/// The storage backend and, for `s3`, the bucket. Empty values count as unset (Compose and the
/// Kubernetes ConfigMap pass every variable, empty when not used).
#[derive(Clone, Args)]
pub struct StorageConfig {
    /// `local`: originals and HLS output on MEDIA_ROOT, shared by the API and the workers. `s3`:
    /// in the S3-compatible bucket S3_BUCKET; API and workers then share no disk.
    #[arg(long, env = "STORAGE_BACKEND", value_enum, default_value = "local")]
    pub storage_backend: StorageBackend,

    /// The bucket (STORAGE_BACKEND=s3). It must exist; the processes refuse to start otherwise.
    #[arg(long, env = "S3_BUCKET", default_value = "")]
    pub s3_bucket: String,

    /// The S3 API's URL, e.g. `http://minio:9000`; empty: AWS S3 (or AWS_ENDPOINT_URL).
    #[arg(long, env = "S3_ENDPOINT", default_value = "")]
    pub s3_endpoint: String,

    /// The bucket's region; empty: AWS_REGION, else `us-east-1`.
    #[arg(long, env = "S3_REGION", default_value = "")]
    pub s3_region: String,

    /// Access key id; empty: the standard AWS credentials (AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, web identity, the instance's role).
    #[arg(
        long,
        env = "S3_ACCESS_KEY_ID",
        default_value = "",
        hide_env_values = true
    )]
    pub s3_access_key_id: String,

    /// Secret access key, with S3_ACCESS_KEY_ID.
    #[arg(
        long,
        env = "S3_SECRET_ACCESS_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub s3_secret_access_key: String,

    /// `true`: path-style URLs (`endpoint/bucket/key`: MinIO, most S3-compatible servers).
    /// `false`: virtual-hosted style (`bucket.endpoint/key`).
    #[arg(long, env = "S3_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub s3_path_style: bool,

    /// A key prefix for everything ProStream stores, so several deployments can share a bucket.
    #[arg(long, env = "S3_PREFIX", default_value = "")]
    pub s3_prefix: String,

    /// The endpoint that players reach, for presigned URLs (the API); empty: S3_ENDPOINT. Set it
    /// when the API reaches the store by an internal name (e.g. `http://minio:9000`).
    #[arg(long, env = "S3_PUBLIC_ENDPOINT", default_value = "")]
    pub s3_public_endpoint: String,

    /// Seconds a presigned segment URL stays valid (the API); a signed playback URL that
    /// expires sooner shortens it.
    #[arg(long, env = "S3_PRESIGN_TTL_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    pub s3_presign_ttl_secs: u64,
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("storage_backend", &self.storage_backend)
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field("s3_secret_access_key", &"<redacted>")
            .field("s3_path_style", &self.s3_path_style)
            .field("s3_prefix", &self.s3_prefix)
            .field("s3_public_endpoint", &self.s3_public_endpoint)
            .field("s3_presign_ttl_secs", &self.s3_presign_ttl_secs)
            .finish()
    }
}

fn non_empty(value: &str) -> Option<&str> {
    Some(value.trim()).filter(|v| !v.is_empty())
}

impl StorageConfig {
    /// The local volume, nothing else (tests, tools).
    pub fn local() -> Self {
        Self {
            storage_backend: StorageBackend::Local,
            s3_bucket: String::new(),
            s3_endpoint: String::new(),
            s3_region: String::new(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
            s3_path_style: true,
            s3_prefix: String::new(),
            s3_public_endpoint: String::new(),
            s3_presign_ttl_secs: 300,
        }
    }

    pub fn bucket(&self) -> Option<&str> {
        non_empty(&self.s3_bucket)
    }

    pub fn endpoint(&self) -> Option<&str> {
        non_empty(&self.s3_endpoint).map(|e| e.trim_end_matches('/'))
    }

    pub fn public_endpoint(&self) -> Option<&str> {
        non_empty(&self.s3_public_endpoint).map(|e| e.trim_end_matches('/'))
    }

    pub fn region(&self) -> Option<&str> {
        non_empty(&self.s3_region)
    }

    /// The static key pair, if one is configured; both halves or neither.
    pub fn credentials(&self) -> Result<Option<(&str, &str)>, String> {
        match (
            non_empty(&self.s3_access_key_id),
            non_empty(&self.s3_secret_access_key),
        ) {
            (Some(id), Some(secret)) => Ok(Some((id, secret))),
            (None, None) => Ok(None),
            _ => Err(
                "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together: set both, or neither to                  use the standard AWS credentials"
                    .into(),
            ),
        }
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

    /// Most decoding and encoding work one source may ask for, in pixels: the frames the worker
    /// processes times width × height (default: 4 hours of 4K at 60 fps, 14400 × 60 × 3840 ×
    /// 2160). Each of the other limits allows far more on its own (8K × 240 fps × 4 h is 15
    /// times this); this one refuses their combination.
    #[arg(long, env = "MAX_DECODE_PIXELS", default_value_t = DEFAULT_MAX_DECODE_PIXELS)]
    pub max_decode_pixels: u64,

    /// Seconds a resumable (tus) upload may take from its creation to its last byte; after that
    /// it is refused (410) and the worker's sweeper deletes it. A completed upload's record (which
    /// names its video) is kept as long again.
    #[arg(long, env = "UPLOAD_EXPIRY_SECS", default_value_t = 24 * 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_expiry_secs: u64,

    /// Seconds an upload body (raw, multipart or a tus chunk) may send nothing before the API
    /// gives up on it (408 `upload_timeout`): a tus PATCH keeps what arrived, other uploads
    /// keep nothing.
    #[arg(long, env = "UPLOAD_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_idle_timeout_secs: u64,
}

/// 4 hours of 3840×2160 at 60 fps.
pub const DEFAULT_MAX_DECODE_PIXELS: u64 = 4 * 3600 * 60 * 3840 * 2160;

impl MediaLimits {
    pub fn upload_expiry(&self) -> Duration {
        Duration::from_secs(self.upload_expiry_secs)
    }

    pub fn upload_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.upload_idle_timeout_secs)
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
            max_decode_pixels: DEFAULT_MAX_DECODE_PIXELS,
            upload_expiry_secs: 24 * 3600,
            upload_idle_timeout_secs: 60,
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
        let ansi = log_colours(
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi);
        if self.log_format == "json" {
            builder.json().init();
        } else {
            builder.init();
        }
    }
}

/// Whether log lines carry ANSI colour codes: only when stdout (where they go) is a terminal, so
/// logs written to a file or a pipe (`scripts/dev.sh`, a log collector) stay plain text; and never
/// with `NO_COLOR` set to anything but the empty string (<https://no-color.org>).
pub fn log_colours(stdout_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stdout_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Signed playback URLs for private videos (the API only).
#[derive(Clone, Args)]
pub struct PlaybackConfig {
    /// Keys that sign private videos' playback URLs: `kid:secret`, comma-separated. The first
    /// signs, every one verifies; rotate by putting a new key first and removing the old one after
    /// the longest URL TTL. Secrets are at least 32 bytes (`openssl rand -base64 32`). Required
    /// (here or in PLAYBACK_SIGNING_KEYS_FILE): the API refuses to start without one, and with a
    /// key published in ProStream's repository (a demo or placeholder value).
    #[arg(long, env = "PLAYBACK_SIGNING_KEYS", hide_env_values = true)]
    pub playback_signing_keys: Option<String>,

    /// A file holding the keys, in PLAYBACK_SIGNING_KEYS' syntax; read when PLAYBACK_SIGNING_KEYS
    /// is unset or empty. Compose keeps a key generated at first start there
    /// (`prostream init-signing-key`).
    #[arg(long, env = "PLAYBACK_SIGNING_KEYS_FILE", default_value = "")]
    pub playback_signing_keys_file: String,

    /// Set to `i-understand-anyone-can-watch-private-videos` to start with a signing key that is
    /// published in ProStream's repository, for a local demo: anyone can then sign playback URLs
    /// for every private video. Any other value refuses such a key.
    #[arg(long, env = "ALLOW_PUBLISHED_SIGNING_KEY", default_value = "")]
    pub allow_published_signing_key: String,

    /// Seconds a signed playback URL stays valid (at least; the expiry is rounded up by up to a
    /// tenth of this, at most 15 min, so repeated reads of a video give the same URL).
    #[arg(long, env = "PLAYBACK_URL_TTL_SECS", default_value_t = 6 * 3600,
          value_parser = clap::value_parser!(u64).range(1..=30 * 24 * 3600))]
    pub playback_url_ttl_secs: u64,
}

/// The value of ALLOW_PUBLISHED_SIGNING_KEY that lets a published key sign.
pub const PUBLISHED_KEY_OPT_IN: &str = "i-understand-anyone-can-watch-private-videos";

/// The signer, and the ids of the published keys it holds (only with the opt-in).
pub struct LoadedSigner {
    pub signer: crate::playback::Signer,
    pub published: Vec<String>,
}

impl PlaybackConfig {
    /// The keys from PLAYBACK_SIGNING_KEYS, else from PLAYBACK_SIGNING_KEYS_FILE.
    fn key_spec(&self) -> anyhow::Result<String> {
        use anyhow::Context;
        if let Some(spec) = self.playback_signing_keys.as_deref().and_then(non_empty) {
            return Ok(spec.to_owned());
        }
        let Some(file) = non_empty(&self.playback_signing_keys_file) else {
            return Ok(String::new());
        };
        std::fs::read_to_string(file).with_context(|| {
            format!(
                "cannot read the playback signing keys from {file} (PLAYBACK_SIGNING_KEYS_FILE)"
            )
        })
    }

    /// The signer, or why the configuration cannot make one: no key, a malformed one, or a
    /// published one without the opt-in.
    pub fn load(&self) -> anyhow::Result<LoadedSigner> {
        let keys = crate::playback::parse_keys(&self.key_spec()?)?;
        let published: Vec<String> = crate::playback::published_in(&keys)
            .into_iter()
            .map(str::to_owned)
            .collect();
        anyhow::ensure!(
            published.is_empty() || self.allow_published_signing_key == PUBLISHED_KEY_OPT_IN,
            "the playback signing key {published:?} is published in ProStream's repository (a demo \
             or placeholder value): anyone could sign playback URLs for your private videos. Set \
             your own: PLAYBACK_SIGNING_KEYS=main:$(openssl rand -base64 32). (For a local demo \
             only, ALLOW_PUBLISHED_SIGNING_KEY={PUBLISHED_KEY_OPT_IN} accepts it.)"
        );
        let ttl = Duration::from_secs(self.playback_url_ttl_secs);
        Ok(LoadedSigner {
            signer: crate::playback::Signer::new(keys, ttl)?,
            published,
        })
    }

    /// The signer, or why the configuration cannot make one (see [`Self::load`]).
    pub fn signer(&self) -> anyhow::Result<crate::playback::Signer> {
        Ok(self.load()?.signer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(log_colours(true, None));
        assert!(log_colours(true, Some(OsStr::new(""))));
        // Redirected to a file (scripts/dev.sh) or piped: plain text.
        assert!(!log_colours(false, None));
        assert!(!log_colours(false, Some(OsStr::new(""))));
        assert!(!log_colours(true, Some(OsStr::new("1"))));
        assert!(!log_colours(false, Some(OsStr::new("1"))));
    }

    fn config(keys: &str, opt_in: &str) -> PlaybackConfig {
        PlaybackConfig {
            playback_signing_keys: Some(keys.into()),
            playback_signing_keys_file: String::new(),
            allow_published_signing_key: opt_in.into(),
            playback_url_ttl_secs: 3600,
        }
    }

    #[test]
    fn a_published_signing_key_is_refused_unless_the_demo_opt_in_is_set() {
        let demo = format!("demo:{}", crate::playback::PUBLISHED_SECRETS[0]);
        let err = config(&demo, "").load().err().unwrap().to_string();
        assert!(err.contains("published"), "{err}");
        assert!(config(&demo, "yes").load().is_err());
        let loaded = config(&demo, PUBLISHED_KEY_OPT_IN).load().unwrap();
        assert_eq!(loaded.published, ["demo"]);
        let own = crate::playback::SigningKey::generate("own").to_spec();
        assert!(config(&own, "").load().unwrap().published.is_empty());
    }

    #[test]
    fn keys_come_from_the_file_when_the_variable_is_empty() {
        let dir = std::env::temp_dir().join(format!("prostream-keys-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        std::fs::write(
            &file,
            crate::playback::SigningKey::generate("f").to_spec() + "\n",
        )
        .unwrap();
        let mut c = config(" ", "");
        c.playback_signing_keys_file = file.display().to_string();
        assert_eq!(c.load().unwrap().signer.signing_key_id(), "f");
        c.playback_signing_keys_file = dir.join("missing").display().to_string();
        assert!(c.load().is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
