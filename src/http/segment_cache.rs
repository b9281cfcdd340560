//! Small immutable HLS files kept in memory: segments of the low rungs, init segments, posters.
//!
//! Many viewers of one video ask for the same few segments. Reading a 76 kB 240p segment from
//! disk for each of them (a trip to the blocking pool, open, stat, read, close) held segment
//! serving to about half of nginx's rate (benchmark 5b); from memory it is one copy-free clone.
//!
//! These files never change: the attempt key in their path is unique per encode. They do go
//! away when a video is deleted or another attempt replaces its output, so an entry lives at
//! most [`TTL`], and a delete through this API process forgets the video's files at once.

use std::{
    io::{self, Read},
    path::{Path, PathBuf},
    time::Duration,
};

use axum::body::Bytes;
use moka::sync::Cache;

/// Largest file kept (and read whole); bigger ones stream from disk, where bandwidth, not the
/// per-request cost, dominates. Holds 240p to 480p segments, init segments and posters.
pub const MAX_FILE_BYTES: u64 = 512 * 1024;

/// Memory for all entries together.
const CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

/// How long a deleted video's files may still be served by another API replica.
pub const TTL: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct SegmentCache {
    files: Cache<PathBuf, Bytes>,
}

impl Default for SegmentCache {
    fn default() -> Self {
        Self {
            files: Cache::builder()
                .max_capacity(CAPACITY_BYTES)
                .weigher(|path: &PathBuf, bytes: &Bytes| {
                    (path.as_os_str().len() + bytes.len())
                        .try_into()
                        .unwrap_or(u32::MAX)
                })
                .time_to_live(TTL)
                .support_invalidation_closures()
                .build(),
        }
    }
}

impl SegmentCache {
    /// The file's bytes, from memory or read whole; `None` if it is bigger than
    /// [`MAX_FILE_BYTES`] (stream it instead).
    pub async fn get(&self, path: &Path) -> io::Result<Option<Bytes>> {
        if let Some(bytes) = self.files.get(path) {
            return Ok(Some(bytes));
        }
        let read = read_small(path.to_owned()).await?;
        if let Some(bytes) = &read {
            self.files.insert(path.to_owned(), bytes.clone());
        }
        Ok(read)
    }

    /// Forgets every file under `dir`, after this process deleted it.
    pub fn forget_dir(&self, dir: &Path) {
        let dir = dir.to_owned();
        // Only fails if invalidation closures were not enabled, which the builder does.
        let _ = self
            .files
            .invalidate_entries_if(move |path, _| path.starts_with(&dir));
    }
}

/// The file's bytes in one trip to the blocking pool; `None` if it is bigger than
/// [`MAX_FILE_BYTES`].
async fn read_small(path: PathBuf) -> io::Result<Option<Bytes>> {
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::ErrorKind::NotFound.into());
        }
        let len = meta.len();
        if len > MAX_FILE_BYTES {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes)?;
        Ok(Some(Bytes::from(bytes)))
    })
    .await
    .map_err(io::Error::other)?
}
