//! Publishing an attempt's output while ffmpeg writes it, in an order that never shows a player
//! a playlist line whose file is missing: a rendition's new segments (and its init segment)
//! first, then the playlist that lists them; the master once every rendition has a segment
//! (pipeline.rs); at the end the final playlists, the poster and the measured master.
//!
//! On the local volume the output directory is the published one (ffmpeg renames each file
//! into place), so nothing is copied and this only tracks which renditions are playable. With
//! S3 each file is uploaded once; a playlist is uploaded with exactly the bytes that were
//! checked, since ffmpeg may rewrite it meanwhile to list segments not uploaded yet.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use bytes::Bytes;
use prostream::{
    ids::VideoId,
    storage::{Storage, StorageError, is_plain_file_name},
};

use crate::{ffmpeg, playlist::PlaylistError};

/// Publishes one attempt's files.
#[derive(Debug)]
pub struct Publisher {
    store: Storage,
    video_id: VideoId,
    key: String,
    dir: PathBuf,
    /// Segments and init segments published: written once, never changed.
    published: HashSet<String>,
    /// The playlists as last published, to skip unchanged ones.
    playlists: HashMap<String, Vec<u8>>,
    /// Renditions whose published playlist lists a segment.
    playable: HashSet<String>,
}

impl Publisher {
    pub fn new(store: Storage, video_id: VideoId, key: &str, dir: &Path) -> Self {
        Self {
            store,
            video_id,
            key: key.to_owned(),
            dir: dir.to_owned(),
            published: HashSet::new(),
            playlists: HashMap::new(),
            playable: HashSet::new(),
        }
    }

    /// Publishes what ffmpeg has finished of each rendition (`{name}.m3u8` in the output
    /// directory): files first, then the playlist. Returns whether every rendition is playable
    /// now (its published playlist lists a segment, and its init segment is there).
    pub async fn sync(&mut self, renditions: &[String]) -> Result<bool, StorageError> {
        for name in renditions {
            self.sync_rendition(name).await?;
        }
        Ok(renditions.iter().all(|r| self.playable.contains(r)))
    }

    /// At the end of the encode, after a last [`Publisher::sync`]: whether every rendition's
    /// published playlist is its final one. Not so if a playlist is empty or names a file that
    /// ffmpeg did not write ([`Publisher::sync`] waits for such a file; now it will not come).
    pub async fn check_final(&self, renditions: &[String]) -> Result<(), PlaylistError> {
        for name in renditions {
            let (path, _) = ffmpeg::rendition_files(&self.dir, name);
            let last = tokio::fs::read(&path)
                .await
                .map_err(|source| PlaylistError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
            if self.playlists.get(name) != Some(&last) {
                return Err(PlaylistError::Invalid {
                    path: path.display().to_string(),
                    reason: "it is empty or lists a file that ffmpeg did not write".into(),
                });
            }
        }
        Ok(())
    }

    async fn sync_rendition(&mut self, name: &str) -> Result<(), StorageError> {
        let (playlist_path, init_path) = ffmpeg::rendition_files(&self.dir, name);
        let Ok(bytes) = tokio::fs::read(&playlist_path).await else {
            return Ok(()); // not written yet
        };
        if self.playlists.get(name) == Some(&bytes) {
            return Ok(());
        }
        // ffmpeg renames each playlist into place: one that does not parse is not ours to fix.
        let Ok(playlist) = m3u8_rs::parse_media_playlist_res(&bytes) else {
            return Ok(());
        };
        let init = playlist
            .segments
            .iter()
            .find_map(|s| s.map.as_ref().map(|m| m.uri.clone()))
            .or_else(|| {
                init_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            });
        if playlist.segments.is_empty() {
            return Ok(());
        }
        let mut files: Vec<String> = init.into_iter().collect();
        files.extend(playlist.segments.iter().map(|s| s.uri.clone()));
        for file in files {
            if !self.published.contains(&file) && !self.publish_file(&file).await? {
                // Listed but absent (the init segment of an older ffmpeg comes later): wait.
                return Ok(());
            }
        }
        let playlist_name = format!("{name}.m3u8");
        self.store
            .publish(
                self.video_id,
                &self.key,
                &playlist_name,
                Bytes::from(bytes.clone()),
            )
            .await?;
        self.playlists.insert(name.to_owned(), bytes);
        self.playable.insert(name.to_owned());
        Ok(())
    }

    /// Whether `name` was published by [`Publisher::publish_file`].
    pub fn has_published(&self, name: &str) -> bool {
        self.published.contains(name)
    }

    /// Publishes `name` from the output directory as it is now; false if it does not exist.
    pub async fn publish_file(&mut self, name: &str) -> Result<bool, StorageError> {
        if !is_plain_file_name(name) {
            return Err(StorageError::io(
                format!("publishing {name:?}"),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a playlist names a file outside the attempt's directory",
                ),
            ));
        }
        let path = self.dir.join(name);
        let contents = if self.store.copies_output() {
            match tokio::fs::read(&path).await {
                Ok(bytes) => Bytes::from(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => {
                    return Err(StorageError::io(format!("reading {}", path.display()), e));
                }
            }
        } else {
            // In place already; only whether it is there matters.
            match tokio::fs::try_exists(&path).await {
                Ok(true) => Bytes::new(),
                Ok(false) => return Ok(false),
                Err(e) => {
                    return Err(StorageError::io(format!("reading {}", path.display()), e));
                }
            }
        };
        self.store
            .publish(self.video_id, &self.key, name, contents)
            .await?;
        self.published.insert(name.to_owned());
        Ok(true)
    }
}
