//! The media volume's layout and the file operations that keep it clean.
//!
//! ```text
//! MEDIA_ROOT/uploads/{video_id}                  accepted originals
//! MEDIA_ROOT/uploads/.incoming-{uuid}            an upload still arriving or being probed
//! MEDIA_ROOT/uploads/.tus/{upload_id}            a resumable (tus) upload's bytes so far
//! MEDIA_ROOT/videos/{video_id}/{attempt_key}/    one encode attempt's HLS output
//! ```
//! An attempt's directory is served from the moment its master playlist is
//! up (progressive playback) and stays when the attempt succeeds. ffmpeg
//! writes every segment and playlist to a temporary name and renames it, so
//! nothing half-written is ever served; the key is unique per attempt, so two
//! attempts never share a URL.

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

    /// Where resumable (tus) uploads keep their bytes until the last one arrives.
    pub fn tus_dir(&self) -> PathBuf {
        self.uploads_dir().join(".tus")
    }

    /// The bytes of one resumable upload.
    pub fn tus_path(&self, upload_id: Uuid) -> PathBuf {
        self.tus_dir().join(upload_id.to_string())
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

    pub fn video_dir(&self, video_id: Uuid) -> PathBuf {
        self.root.join("videos").join(video_id.to_string())
    }

    /// Where attempt `key` of a video writes its HLS output.
    pub fn attempt_dir(&self, video_id: Uuid, key: &str) -> PathBuf {
        self.video_dir(video_id).join(key)
    }

    /// A file of an attempt's output, if both `key` and `name` are plain file
    /// names (letters, digits, `_`, `-`, `.`; not starting with a dot).
    pub fn hls_file(&self, video_id: Uuid, key: &str, name: &str) -> Option<PathBuf> {
        (is_plain_file_name(key) && is_plain_file_name(name))
            .then(|| self.attempt_dir(video_id, key).join(name))
    }

    /// Removes one attempt's output, and the video's directory if that leaves it empty.
    pub async fn remove_attempt(&self, video_id: Uuid, key: &str) -> io::Result<()> {
        remove_dir_if_exists(&self.attempt_dir(video_id, key)).await?;
        // Only if empty: another attempt may own a sibling directory.
        let _ = tokio::fs::remove_dir(self.video_dir(video_id)).await;
        Ok(())
    }

    /// Removes every attempt directory of the video except `keep`, and the
    /// video's directory itself when nothing is left in it. Safe for the
    /// holder of the job's claim: no other attempt of it can be running.
    pub async fn remove_other_attempts(
        &self,
        video_id: Uuid,
        keep: Option<&str>,
    ) -> io::Result<()> {
        let dir = self.video_dir(video_id);
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut kept = false;
        while let Some(entry) = entries.next_entry().await? {
            if Some(entry.file_name().to_string_lossy().as_ref()) == keep {
                kept = true;
            } else {
                remove_dir_if_exists(&entry.path()).await?;
            }
        }
        if !kept {
            // Not remove_dir_all: an attempt that starts now may be creating its directory.
            match tokio::fs::remove_dir(&dir).await {
                Err(e)
                    if e.kind() != io::ErrorKind::NotFound
                        && e.kind() != io::ErrorKind::DirectoryNotEmpty =>
                {
                    return Err(e);
                }
                _ => {}
            }
        }
        Ok(())
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
    async fn only_the_kept_attempt_survives_and_an_empty_video_dir_goes() {
        let tmp = std::env::temp_dir().join(format!("prostream-storage-{}", Uuid::now_v7()));
        let media = MediaRoot::open(&tmp).await.unwrap();
        let video = Uuid::now_v7();
        for key in ["1-aaaa", "2-bbbb"] {
            let dir = media.attempt_dir(video, key);
            tokio::fs::create_dir_all(&dir).await.unwrap();
            tokio::fs::write(dir.join("master.m3u8"), key)
                .await
                .unwrap();
        }
        media
            .remove_other_attempts(video, Some("2-bbbb"))
            .await
            .unwrap();
        let left: Vec<_> = std::fs::read_dir(media.video_dir(video)).unwrap().collect();
        assert_eq!(left.len(), 1);
        assert!(
            media
                .attempt_dir(video, "2-bbbb")
                .join("master.m3u8")
                .exists()
        );
        media.remove_other_attempts(video, None).await.unwrap();
        assert!(!media.video_dir(video).exists());
        assert!(media.hls_file(video, "../x", "master.m3u8").is_none());
        assert!(media.hls_file(video, "2-bbbb", "..").is_none());
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
