//! The media volume (`STORAGE_BACKEND=local`, and every process' scratch space with S3).
//!
//! ```text
//! MEDIA_ROOT/uploads/{video_id}                  accepted originals
//! MEDIA_ROOT/uploads/{video_id}-{fence}          an original downloaded from a URL (per take)
//! MEDIA_ROOT/uploads/.incoming-{uuid}            an upload still arriving or being probed
//! MEDIA_ROOT/uploads/.tus/{upload_id}            a resumable (tus) upload's bytes so far
//! MEDIA_ROOT/videos/{video_id}/{attempt_key}/    one encode attempt's HLS output
//! MEDIA_ROOT/work/{video_id}/{attempt_key}/      a worker's scratch for one attempt (S3: the
//!                                                original fetched, the encode before upload)
//! ```
//! An attempt's directory is served from the moment its master playlist is up (progressive
//! playback) and stays when the attempt succeeds. ffmpeg writes every segment and playlist to a
//! temporary name and renames it, so nothing half-written is ever served; the key is unique per
//! attempt, so two attempts never share a URL.

use std::{
    collections::HashSet,
    io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use uuid::Uuid;

use super::{
    MediaStore, Served, StorageError, Want, is_plain_file_name, remove_dir_if_exists,
    remove_file_if_exists,
};
use crate::{
    config::StorageBackend,
    ids::{UploadId, VideoId},
};

#[derive(Debug, Clone)]
pub struct MediaRoot {
    root: PathBuf,
}

impl MediaRoot {
    /// Creates the directory layout if needed.
    pub async fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let media = Self { root: root.into() };
        for dir in [
            media.uploads_dir(),
            media.root.join("work"),
            media.root.join("videos"),
        ] {
            tokio::fs::create_dir_all(&dir).await.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot create {}: {e}; check MEDIA_ROOT and its permissions",
                        dir.display()
                    ),
                )
            })?;
        }
        Ok(media)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// Where an upload lands while it streams in and is probed.
    pub fn incoming_path(&self) -> PathBuf {
        self.uploads_dir()
            .join(format!(".incoming-{}", Uuid::now_v7()))
    }

    /// Where resumable (tus) uploads keep their bytes until the last one arrives.
    pub fn tus_dir(&self) -> PathBuf {
        self.uploads_dir().join(".tus")
    }

    /// The bytes of one resumable upload.
    pub fn tus_path(&self, upload_id: UploadId) -> PathBuf {
        self.tus_dir().join(upload_id.to_string())
    }

    /// The original's path relative to the root, as stored in `videos.source_path`.
    pub fn source_relative(video_id: VideoId) -> String {
        format!("uploads/{video_id}")
    }

    /// Resolves a path stored in the database; refuses anything that could leave the root.
    pub fn resolve(&self, relative: &str) -> io::Result<PathBuf> {
        let rel = Path::new(relative);
        let plain = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("stored media path {relative:?} is not relative to MEDIA_ROOT"),
            ));
        }
        Ok(self.root.join(rel))
    }

    pub fn videos_dir(&self) -> PathBuf {
        self.root.join("videos")
    }

    pub fn video_dir(&self, video_id: VideoId) -> PathBuf {
        self.videos_dir().join(video_id.to_string())
    }

    /// Where attempt `key` of a video publishes its HLS output on the volume.
    pub fn attempt_dir(&self, video_id: VideoId, key: &str) -> PathBuf {
        self.video_dir(video_id).join(key)
    }

    /// A file of an attempt's output, if both `key` and `name` are plain file
    /// names (letters, digits, `_`, `-`, `.`; not starting with a dot).
    pub fn hls_file(&self, video_id: VideoId, key: &str, name: &str) -> Option<PathBuf> {
        (is_plain_file_name(key) && is_plain_file_name(name))
            .then(|| self.attempt_dir(video_id, key).join(name))
    }

    /// The worker's directories of unfinished work: `work/{video_id}/{key}/` per attempt.
    pub fn work_dir(&self) -> PathBuf {
        self.root.join("work")
    }

    /// One attempt's scratch directory (never served; removed when the attempt ends).
    pub fn scratch_dir(&self, video_id: VideoId, key: &str) -> PathBuf {
        self.work_dir().join(video_id.to_string()).join(key)
    }

    /// Removes one attempt's scratch directory, and the video's if that leaves it empty.
    pub async fn remove_scratch(&self, video_id: VideoId, key: &str) -> io::Result<()> {
        remove_dir_if_exists(&self.scratch_dir(video_id, key)).await?;
        let _ = tokio::fs::remove_dir(self.work_dir().join(video_id.to_string())).await;
        Ok(())
    }

    /// Removes scratch directories of attempts that are not running (`running`) and have not
    /// been written for `min_age`: what a killed worker left on this disk.
    pub async fn sweep_scratch(
        &self,
        running: &HashSet<(VideoId, String)>,
        min_age: Duration,
    ) -> io::Result<usize> {
        sweep_attempt_dirs(&self.work_dir(), running, min_age).await
    }
}

#[async_trait::async_trait]
impl MediaStore for MediaRoot {
    fn backend(&self) -> StorageBackend {
        StorageBackend::Local
    }

    async fn put_original(&self, file: &Path, relative: &str) -> Result<(), StorageError> {
        let dest = self
            .resolve(relative)
            .map_err(|e| StorageError::io("placing the original", e))?;
        tokio::fs::rename(file, &dest).await.map_err(|e| {
            StorageError::io(
                format!("moving {} to {}", file.display(), dest.display()),
                e,
            )
        })
    }

    async fn has_original(&self, relative: &str) -> Result<bool, StorageError> {
        let path = self
            .resolve(relative)
            .map_err(|e| StorageError::io("locating the original", e))?;
        tokio::fs::try_exists(&path)
            .await
            .map_err(|e| StorageError::io(format!("looking for {}", path.display()), e))
    }

    async fn fetch_original(&self, relative: &str, _into: &Path) -> Result<PathBuf, StorageError> {
        // Read where it lies: no copy.
        self.resolve(relative)
            .map_err(|e| StorageError::io("locating the original", e))
    }

    async fn remove_original(&self, relative: &str) -> Result<(), StorageError> {
        let path = self
            .resolve(relative)
            .map_err(|e| StorageError::io("locating the original", e))?;
        remove_file_if_exists(&path)
            .await
            .map_err(|e| StorageError::io(format!("removing the original {}", path.display()), e))
    }

    fn output_dir(&self, video_id: VideoId, key: &str) -> PathBuf {
        self.attempt_dir(video_id, key)
    }

    fn copies_output(&self) -> bool {
        false
    }

    async fn publish(
        &self,
        _video_id: VideoId,
        _key: &str,
        _name: &str,
        _contents: Bytes,
    ) -> Result<(), StorageError> {
        // The output directory is the published one: ffmpeg (and the playlist writer) rename
        // every file into place, so it is visible already.
        Ok(())
    }

    async fn replace_output(
        &self,
        video_id: VideoId,
        key: &str,
        name: &str,
        contents: Bytes,
    ) -> Result<(), StorageError> {
        let Some(path) = self.hls_file(video_id, key, name) else {
            return Err(StorageError::io(
                format!("writing {name:?}"),
                io::Error::new(io::ErrorKind::InvalidInput, "not a plain file name"),
            ));
        };
        // A temporary name of its own (hidden: never served), then a rename over the old file.
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", Uuid::now_v7().simple()));
        let written = async {
            tokio::fs::write(&tmp, &contents).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = written.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(StorageError::io(format!("writing {}", path.display()), e));
        }
        Ok(())
    }

    async fn remove_outputs(
        &self,
        video_id: VideoId,
        key: &str,
        names: &[String],
    ) -> Result<(), StorageError> {
        for name in names {
            if let Some(path) = self.hls_file(video_id, key, name) {
                remove_file_if_exists(&path)
                    .await
                    .map_err(|e| StorageError::io(format!("removing {}", path.display()), e))?;
            }
        }
        Ok(())
    }

    async fn remove_attempt(&self, video_id: VideoId, key: &str) -> Result<(), StorageError> {
        let dir = self.attempt_dir(video_id, key);
        remove_dir_if_exists(&dir)
            .await
            .map_err(|e| StorageError::io(format!("removing {}", dir.display()), e))?;
        // Only if empty: another attempt may own a sibling directory.
        let _ = tokio::fs::remove_dir(self.video_dir(video_id)).await;
        Ok(())
    }

    async fn remove_earlier_attempts(
        &self,
        video_id: VideoId,
        key: &str,
    ) -> Result<(), StorageError> {
        let dir = self.video_dir(video_id);
        let what = || format!("removing earlier attempts under {}", dir.display());
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StorageError::io(what(), e)),
        };
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| StorageError::io(what(), e))?
        {
            if super::is_earlier_attempt(&entry.file_name().to_string_lossy(), key) {
                remove_dir_if_exists(&entry.path())
                    .await
                    .map_err(|e| StorageError::io(what(), e))?;
            }
        }
        Ok(())
    }

    async fn remove_video(&self, video_id: VideoId) -> Result<(), StorageError> {
        let dir = self.video_dir(video_id);
        remove_dir_if_exists(&dir)
            .await
            .map_err(|e| StorageError::io(format!("removing {}", dir.display()), e))
    }

    async fn sweep_outputs(
        &self,
        live: &HashSet<(VideoId, String)>,
        min_age: Duration,
    ) -> Result<usize, StorageError> {
        sweep_attempt_dirs(&self.videos_dir(), live, min_age)
            .await
            .map_err(|e| StorageError::io("sweeping the output of dead attempts", e))
    }

    async fn serve(
        &self,
        video_id: VideoId,
        key: &str,
        name: &str,
        _want: Want,
    ) -> Result<Served, StorageError> {
        // Byte ranges, HEAD and conditional requests come with serving the file itself.
        Ok(self
            .hls_file(video_id, key, name)
            .map_or(Served::Missing, Served::File))
    }

    async fn check(&self) -> Result<(), StorageError> {
        let dir = self.uploads_dir();
        tokio::fs::metadata(&dir)
            .await
            .map(drop)
            .map_err(|e| StorageError::io(format!("MEDIA_ROOT: {}", dir.display()), e))
    }
}

/// Removes `base/{video_id}/{key}/` directories that are not in `keep` and older than
/// `min_age`, and video directories left empty.
async fn sweep_attempt_dirs(
    base: &Path,
    keep: &HashSet<(VideoId, String)>,
    min_age: Duration,
) -> io::Result<usize> {
    let mut swept = 0;
    let mut videos = match tokio::fs::read_dir(base).await {
        Ok(videos) => videos,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    while let Some(video) = videos.next_entry().await? {
        let Ok(video_id) = video.file_name().to_string_lossy().parse::<VideoId>() else {
            continue;
        };
        // Judged before its children go: removing one refreshes the directory's time.
        let old_video_dir = older_than(&video.path(), min_age).await;
        let mut attempts = tokio::fs::read_dir(video.path()).await?;
        while let Some(attempt) = attempts.next_entry().await? {
            let key = attempt.file_name().to_string_lossy().into_owned();
            if !keep.contains(&(video_id, key)) && older_than(&attempt.path(), min_age).await {
                remove_dir_if_exists(&attempt.path()).await?;
                tracing::info!(dir = %attempt.path().display(), "removed the files of a dead attempt");
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

/// Whether `path` was last modified more than `age` ago.
pub(crate) async fn older_than(path: &Path, age: Duration) -> bool {
    tokio::fs::metadata(path)
        .await
        .and_then(|m| m.modified())
        .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_paths_cannot_escape_the_root() {
        let media = MediaRoot { root: "/m".into() };
        assert_eq!(
            media.resolve("uploads/x").unwrap(),
            Path::new("/m/uploads/x")
        );
        assert!(media.resolve("../etc/passwd").is_err());
        assert!(media.resolve("/etc/passwd").is_err());
    }

    #[tokio::test]
    async fn only_attempts_claimed_earlier_are_removed() {
        let tmp = std::env::temp_dir().join(format!("prostream-storage-{}", Uuid::now_v7()));
        let media = MediaRoot::open(&tmp).await.unwrap();
        let video = VideoId::generate();
        for key in ["1-aaaa", "2-bbbb", "3-cccc"] {
            let dir = media.attempt_dir(video, key);
            tokio::fs::create_dir_all(&dir).await.unwrap();
            tokio::fs::write(dir.join("master.m3u8"), key)
                .await
                .unwrap();
        }
        media
            .remove_earlier_attempts(video, "2-bbbb")
            .await
            .unwrap();
        let mut left: Vec<_> = std::fs::read_dir(media.video_dir(video))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        // The newer attempt (a superseded attempt starting late must not hurt it) stays.
        assert_eq!(left, ["2-bbbb", "3-cccc"]);
        assert!(media.hls_file(video, "../x", "master.m3u8").is_none());
        assert!(media.hls_file(video, "2-bbbb", "..").is_none());
        std::fs::remove_dir_all(tmp).unwrap();
    }
}
