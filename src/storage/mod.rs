//! Where originals and published HLS output live, behind one trait with two implementations:
//!
//! - [`MediaRoot`] (`STORAGE_BACKEND=local`): the media volume, shared by the API and every worker.
//! - [`S3Store`] (`STORAGE_BACKEND=s3`): an S3-compatible bucket, so API and workers on different
//!   hosts share no disk. MEDIA_ROOT is then each process' own scratch space: uploads arriving
//!   and being probed, unfinished resumable (tus) uploads on the API; a job's original and its
//!   encode on a worker.
//!
//! The same keys in both (relative to MEDIA_ROOT, or to the bucket and `S3_PREFIX`):
//!
//! ```text
//! uploads/{video_id}                  accepted originals (videos.source_path)
//! uploads/{video_id}-{fence}          an original downloaded from a URL, named after the
//!                                     download's take (videos.source_path)
//! videos/{video_id}/{attempt_key}/    one encode attempt's HLS output; the key is
//!                                     `{fence}-{random}`, the claim's fence first
//! ```
//!
//! Fencing (src/db/jobs.rs): every claim of a job and every take of a download draws a fresh,
//! never repeated `fence`. A downloaded original is stored under its take's fence, so two takes
//! of one download (cancel → retry while the first still runs) never write or delete each
//! other's file. An attempt writes and deletes only under its own key, and at its start removes
//! only the output of attempts with a lower fence ([`MediaStore::remove_earlier_attempts`]): a
//! superseded attempt still running can never hurt the newer one. What a superseded attempt
//! leaves it removes itself when it ends, or the sweep does.
//!
//! An attempt's output is served from the moment its master playlist is up (progressive
//! playback). Nothing half-written is ever served: locally ffmpeg writes every file to a temporary
//! name and renames it; in a bucket every PUT is atomic, and a worker publishes segments before
//! the playlists that list them (worker/src/publish.rs).

mod local;
mod s3;
pub mod sweep;

use std::{
    collections::HashSet,
    fmt, io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;

pub use local::MediaRoot;

/// The progressive MP4 of a ready video (its highest rung with the default audio), remuxed from
/// the HLS segments, and the M4A of its default audio: files of the attempt like the playlists,
/// served as attachments.
pub const VIDEO_DOWNLOAD: &str = "download.mp4";
pub const AUDIO_DOWNLOAD: &str = "download.m4a";
/// The seek thumbnails' WebVTT track (its cues name tiles of `storyboard_{n}.jpg`).
pub const STORYBOARD: &str = "storyboard.vtt";

/// The `Content-Disposition` a file of an attempt is served with: downloads are attachments
/// (a browser saves them instead of playing them in the tab), named after what they are.
pub fn content_disposition(name: &str) -> Option<&'static str> {
    match name {
        VIDEO_DOWNLOAD => Some("attachment; filename=\"video.mp4\""),
        AUDIO_DOWNLOAD => Some("attachment; filename=\"audio.m4a\""),
        _ => None,
    }
}
pub use s3::S3Store;

use crate::{
    config::{StorageBackend, StorageConfig},
    ids::VideoId,
};

/// The store a process uses; cheap to clone.
pub type Storage = Arc<dyn MediaStore>;

/// The operations the API and the workers need from the place media lives.
#[async_trait::async_trait]
pub trait MediaStore: Send + Sync + fmt::Debug {
    fn backend(&self) -> StorageBackend;

    // --- originals, at `uploads/{video_id}` (the path recorded in `videos.source_path`)

    /// Makes the probed local `file` the original at `relative`. Afterwards `file` is gone:
    /// renamed into place, or uploaded and then removed.
    async fn put_original(&self, file: &Path, relative: &str) -> Result<(), StorageError>;

    /// Whether an original is at `relative`.
    async fn has_original(&self, relative: &str) -> Result<bool, StorageError>;

    /// A local path to read the original at `relative` from: where it lies on the volume, or
    /// `into` after downloading it there. The caller removes `into`.
    async fn fetch_original(&self, relative: &str, into: &Path) -> Result<PathBuf, StorageError>;

    /// Removes the original at `relative`, if any.
    async fn remove_original(&self, relative: &str) -> Result<(), StorageError>;

    // --- the output of attempt `key` of a video, at `videos/{video_id}/{key}/`

    /// Where ffmpeg writes the attempt's files. Locally the published directory itself (players
    /// read it as it grows); with S3 a scratch directory whose files [`MediaStore::publish`] copies.
    fn output_dir(&self, video_id: VideoId, key: &str) -> PathBuf;

    /// Whether [`MediaStore::publish`] copies anything (false: the output directory is where
    /// players read, so callers need not even read the files).
    fn copies_output(&self) -> bool;

    /// Makes `contents` (what `output_dir/name` held when read) visible to players as `name`.
    async fn publish(
        &self,
        video_id: VideoId,
        key: &str,
        name: &str,
        contents: Bytes,
    ) -> Result<(), StorageError>;

    /// Writes `contents` as `name` of attempt `key`'s published output, replacing the file whole:
    /// a player reads the old or the new one, never part of either. For files the API itself
    /// rewrites (a master playlist naming captions); the worker's go through
    /// [`MediaStore::publish`]. A not-found error if the attempt's output is gone.
    async fn replace_output(
        &self,
        video_id: VideoId,
        key: &str,
        name: &str,
        contents: Bytes,
    ) -> Result<(), StorageError>;

    /// Removes the files `names` of attempt `key`'s published output; those not there are fine.
    async fn remove_outputs(
        &self,
        video_id: VideoId,
        key: &str,
        names: &[String],
    ) -> Result<(), StorageError>;

    /// Removes one attempt's published output.
    async fn remove_attempt(&self, video_id: VideoId, key: &str) -> Result<(), StorageError>;

    /// Removes the published output of the video's attempts claimed before attempt `key`
    /// (a lower fence, see [`is_earlier_attempt`]): they are superseded, none of them can record
    /// anything any more. Later attempts, and keys of another form, are left alone (a later one
    /// may be running and served; the sweep removes dead ones).
    async fn remove_earlier_attempts(
        &self,
        video_id: VideoId,
        key: &str,
    ) -> Result<(), StorageError>;

    /// Removes everything published under the video: every attempt's output.
    async fn remove_video(&self, video_id: VideoId) -> Result<(), StorageError>;

    /// Removes the output of attempts that are not in `live` and were last written more than
    /// `min_age` ago (a killed worker's, a deletion cut short); returns how many it removed.
    async fn sweep_outputs(
        &self,
        live: &HashSet<(VideoId, String)>,
        min_age: Duration,
    ) -> Result<usize, StorageError>;

    // --- playback

    /// How a player gets `name` of an attempt's output (`key` and `name` are plain file names,
    /// checked by the caller).
    async fn serve(
        &self,
        video_id: VideoId,
        key: &str,
        name: &str,
        want: Want,
    ) -> Result<Served, StorageError>;

    /// Whether the store answers (readiness).
    async fn check(&self) -> Result<(), StorageError>;
}

/// The bytes of `name` of attempt `key`'s published output; `None` if it is not there.
pub async fn read_output(
    store: &dyn MediaStore,
    video_id: VideoId,
    key: &str,
    name: &str,
) -> Result<Option<Bytes>, StorageError> {
    match store.serve(video_id, key, name, Want::Contents).await? {
        Served::Contents(bytes) => Ok(Some(bytes)),
        Served::File(path) => match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(format!("reading {}", path.display()), e)),
        },
        Served::Missing | Served::Redirect(_) => Ok(None),
    }
}

/// What the HTTP layer would like for a file it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The bytes (playlists: small, and they change while the video encodes).
    Contents,
    /// A URL the client may fetch for `ttl` at most (immutable segments), for this method.
    Redirect { head: bool, ttl: Duration },
}

/// How a file is served.
#[derive(Debug)]
pub enum Served {
    /// A file on the local volume (byte ranges, conditional requests).
    File(PathBuf),
    /// The whole object, read from the store.
    Contents(Bytes),
    /// A presigned URL to send the client to.
    Redirect(String),
    /// No such file (yet).
    Missing,
}

/// Why a storage operation failed. Every variant but a missing object is infrastructure
/// trouble: retried by the worker, a 500/503 in the API.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}")]
    Object {
        what: String,
        #[source]
        source: object_store::Error,
    },
    /// The settings cannot work (found at start).
    #[error("{0}")]
    Config(String),
}

impl StorageError {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    pub fn object(what: impl Into<String>, source: object_store::Error) -> Self {
        Self::Object {
            what: what.into(),
            source,
        }
    }

    /// The stable code: `not_found`, `storage_misconfigured` or `storage_unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            _ if self.is_not_found() => "not_found",
            Self::Config(_) => "storage_misconfigured",
            _ => "storage_unavailable",
        }
    }

    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            Self::Object { source, .. } => matches!(source, object_store::Error::NotFound { .. }),
            Self::Config(_) => false,
        }
    }
}

/// Opens the store the configuration names: the volume at `media_root` (created if needed),
/// and with `STORAGE_BACKEND=s3` the bucket, checked at once so that a wrong setting stops the
/// process with a message saying what to fix. Returns the local volume (uploads arriving,
/// scratch) and the store.
pub async fn open(
    config: &StorageConfig,
    media_root: &Path,
) -> Result<(MediaRoot, Storage), StorageError> {
    let media = MediaRoot::open(media_root)
        .await
        .map_err(|e| StorageError::io("opening MEDIA_ROOT", e))?;
    let store: Storage = match config.storage_backend {
        StorageBackend::Local => Arc::new(media.clone()),
        StorageBackend::S3 => {
            let store = S3Store::new(config, media.clone())?;
            store.check_at_start().await?;
            Arc::new(store)
        }
    };
    Ok((media, store))
}

/// The fence an attempt key starts with (`{fence}-{random}`), if it has that form.
pub fn attempt_fence(key: &str) -> Option<i64> {
    key.split_once('-')?.0.parse().ok()
}

/// Whether attempt `other` was claimed before attempt `key` (both keys of the usual form).
pub fn is_earlier_attempt(other: &str, key: &str) -> bool {
    matches!((attempt_fence(other), attempt_fence(key)), (Some(a), Some(b)) if a < b)
}

pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

pub async fn remove_dir_if_exists(dir: &Path) -> io::Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

pub async fn remove_file_if_exists(path: &Path) -> io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A file that is deleted when dropped: whatever path a failed upload takes out of its handler,
/// nothing stays on disk. [`TempFile::persist`] hands it to the store.
#[derive(Debug)]
pub struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    pub fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    pub fn path(&self) -> &Path {
        self.path
            .as_deref()
            .expect("the path is there until the drop")
    }

    /// Makes the file the original at `relative` in `store` (it is gone from here afterwards).
    pub async fn persist(self, store: &dyn MediaStore, relative: &str) -> Result<(), StorageError> {
        // On failure the drop removes what is left of the file.
        store.put_original(self.path(), relative).await
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take()
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove temporary upload");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_names_are_served() {
        for ok in [
            "master.m3u8",
            "720p_00001.m4s",
            "720p_init.mp4",
            "poster.jpg",
        ] {
            assert!(is_plain_file_name(ok), "{ok}");
        }
        for bad in [
            "", ".", "..", "../x", "a/b", ".hidden", "a\\b", "x%2F", "a b", "ü.m3u8",
        ] {
            assert!(!is_plain_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn only_attempts_with_a_lower_fence_are_earlier() {
        assert!(is_earlier_attempt("9-aaaa", "10-bbbb"));
        assert!(!is_earlier_attempt("10-bbbb", "9-aaaa"));
        assert!(!is_earlier_attempt("10-bbbb", "10-bbbb"));
        assert!(!is_earlier_attempt("live", "10-bbbb"));
        assert_eq!(attempt_fence("42-0a1b2c3d"), Some(42));
    }

    #[tokio::test]
    async fn a_dropped_temp_file_is_removed() {
        let path = std::env::temp_dir().join(format!("prostream-tmp-{}", uuid::Uuid::now_v7()));
        std::fs::write(&path, b"x").unwrap();
        drop(TempFile::new(path.clone()));
        assert!(!path.exists());
    }
}
