//! Ingest: how a file becomes a queued video, whichever door it came in by.
//!
//! A raw or multipart upload, the last byte of a resumable (tus) upload and a URL download all
//! end the same way ([`Ingest::record_and_enqueue`]): probe the file where it lies, move it to the
//! video's source path in the store, record the video and its job in one transaction (with the
//! owner's storage quota checked under its row lock), then push the job to Redis. The HTTP layer
//! only parses requests and calls in here; the rules (titles, visibility, quotas, the URL
//! downloader) live here, and their refusals are [`IngestError`]s that `http::error` turns into
//! problem documents.

mod download;
mod error;
mod metadata;
pub mod quotas;
mod record;

use std::{path::PathBuf, sync::Arc, time::Duration};

use sqlx::PgPool;

pub use download::{Downloads, IngestConfig, NewDownload, run_downloader};
pub use error::IngestError;
pub use metadata::{
    MAX_TITLE_CHARS, TITLE_PATTERN, choose_title, is_forbidden_in_title, parse_visibility,
};
pub use record::{Accepted, Origin};

use crate::{
    config::{MediaLimits, OwnerPolicy},
    queue::TranscodeQueue,
    storage::{MediaRoot, Storage},
};

/// What ingest needs: the database, the queue, the disk uploads arrive on and the store
/// originals go to, the probe's limits and the owners' quotas. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    pub pool: PgPool,
    pub queue: TranscodeQueue,
    /// This process' disk: uploads arrive and are probed here.
    pub media: MediaRoot,
    /// Where accepted originals go (the same volume, or S3).
    pub store: Storage,
    pub limits: Arc<MediaLimits>,
    pub ffprobe: Arc<PathBuf>,
    pub probe_timeout: Duration,
    /// Attempts a new job gets before it is `failed` for good.
    pub max_attempts: i32,
    /// Default visibility of new videos and the owners' default quotas.
    pub policy: Arc<OwnerPolicy>,
    /// URL ingest: the download policy, its HTTP client and the downloader's wake-up.
    pub downloads: Arc<Downloads>,
}
