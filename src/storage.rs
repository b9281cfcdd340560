//! The media volume's layout and the file operations that keep it clean.
//!
//! ```text
//! MEDIA_ROOT/uploads/{video_id}          accepted originals
//! MEDIA_ROOT/uploads/.incoming-{uuid}    an upload still arriving or being probed
//! MEDIA_ROOT/work/{job_id}-{attempt}/    one encode attempt, never served
//! MEDIA_ROOT/videos/{video_id}/          published HLS output, appears by rename
//! ```
//! `work/` and `videos/` share a file system, so publishing is one atomic rename.

use std::{
    io,
    path::{Path, PathBuf},
};

use uuid::Uuid;

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

    /// The original's path relative to the root, as stored in `videos.source_path`.
    pub fn source_relative(video_id: Uuid) -> String {
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

    pub fn work_dir(&self, job_id: Uuid, attempt: i32) -> PathBuf {
        self.root.join("work").join(format!("{job_id}-{attempt}"))
    }

    pub fn video_dir(&self, video_id: Uuid) -> PathBuf {
        self.root.join("videos").join(video_id.to_string())
    }

    /// A published file of a video, if `name` is a plain file name
    /// (letters, digits, `_`, `-`, `.`; not starting with a dot).
    pub fn video_file(&self, video_id: Uuid, name: &str) -> Option<PathBuf> {
        is_plain_file_name(name).then(|| self.video_dir(video_id).join(name))
    }

    /// Removes work directories left by earlier attempts of `job_id` (a
    /// crashed or killed worker). Safe because the caller holds the job's claim.
    pub async fn remove_stale_work(&self, job_id: Uuid, current_attempt: i32) -> io::Result<()> {
        let prefix = format!("{job_id}-");
        let mut entries = tokio::fs::read_dir(self.root.join("work")).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let is_older = name
                .strip_prefix(&prefix)
                .and_then(|a| a.parse::<i32>().ok())
                .is_some_and(|a| a != current_attempt);
            if is_older {
                remove_dir_if_exists(&entry.path()).await?;
            }
        }
        Ok(())
    }

    /// Moves a finished work directory to `videos/{video_id}` in one rename.
    /// Output of an earlier attempt is swapped out first and then deleted, so
    /// readers see either the old or the new directory, never a mix.
    pub async fn publish(&self, work_dir: &Path, video_id: Uuid) -> io::Result<()> {
        let target = self.video_dir(video_id);
        if tokio::fs::try_exists(&target).await? {
            let old = self
                .root
                .join("work")
                .join(format!("replaced-{video_id}-{}", Uuid::now_v7()));
            tokio::fs::rename(&target, &old).await?;
            tokio::fs::rename(work_dir, &target).await?;
            remove_dir_if_exists(&old).await
        } else {
            tokio::fs::rename(work_dir, &target).await
        }
    }
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

/// A file that is deleted when dropped unless [`TempFile::keep`] is called:
/// whatever path a failed upload takes out of its handler, nothing stays on disk.
#[derive(Debug)]
pub struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    pub fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("path is present until kept")
    }

    /// Moves the file to `dest` and stops guarding it.
    pub async fn persist(mut self, dest: &Path) -> io::Result<()> {
        tokio::fs::rename(self.path(), dest).await?;
        self.path = None;
        Ok(())
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
    async fn publishing_replaces_an_earlier_output_whole() {
        let tmp = std::env::temp_dir().join(format!("prostream-storage-{}", Uuid::now_v7()));
        let media = MediaRoot::open(&tmp).await.unwrap();
        let video = Uuid::now_v7();
        for (attempt, body) in [(1, "first"), (2, "second")] {
            let work = media.work_dir(video, attempt);
            tokio::fs::create_dir_all(&work).await.unwrap();
            tokio::fs::write(work.join("master.m3u8"), body)
                .await
                .unwrap();
            media.publish(&work, video).await.unwrap();
            assert!(!work.exists());
        }
        let published = std::fs::read_to_string(media.video_dir(video).join("master.m3u8"));
        assert_eq!(published.unwrap(), "second");
        assert_eq!(std::fs::read_dir(tmp.join("work")).unwrap().count(), 0);
        std::fs::remove_dir_all(tmp).unwrap();
    }

    #[tokio::test]
    async fn a_dropped_temp_file_is_removed() {
        let path = std::env::temp_dir().join(format!("prostream-tmp-{}", Uuid::now_v7()));
        std::fs::write(&path, b"x").unwrap();
        drop(TempFile::new(path.clone()));
        assert!(!path.exists());
    }
}
