//! Sweeping a host's upload area: uploads that stopped arriving (`uploads/.incoming-*`) and
//! resumable-upload files no upload row refers to (`uploads/.tus/`).
//!
//! Workers run it as part of their maintenance. With `STORAGE_BACKEND=s3` an API's MEDIA_ROOT is
//! its own disk, which no worker sees, so the API runs it too ([`spawn`]).

use std::{
    io,
    time::{Duration, SystemTime},
};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{MediaRoot, local::older_than, remove_file_if_exists};
use crate::{db, ids::UploadId};

/// An upload that received no bytes for this long was abandoned by the API that took it.
pub const INCOMING_MAX_IDLE: Duration = Duration::from_secs(3600);
/// A `.tus/` file without a row this long after its last write is an orphan (its row was deleted
/// between the two steps of a deletion, or expired, or its creation never committed).
pub const TUS_ORPHAN_AGE: Duration = Duration::from_secs(3600);
/// How often an API sweeps its own upload area.
const API_SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// The time a sweep judges ages by: the system clock, or (in tests) the system clock set ahead,
/// so that what was written a moment ago is old without waiting for it to age.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    ahead: Duration,
}

impl Clock {
    /// The system clock: what every process runs with.
    pub const SYSTEM: Self = Self {
        ahead: Duration::ZERO,
    };

    /// The system clock, `by` ahead.
    pub const fn ahead(by: Duration) -> Self {
        Self { ahead: by }
    }

    pub fn now(self) -> SystemTime {
        SystemTime::now() + self.ahead
    }
}

/// Removes uploads that stopped arriving long ago (the API that took them died).
pub async fn incoming(media: &MediaRoot) -> io::Result<usize> {
    let mut swept = 0;
    let mut entries = tokio::fs::read_dir(media.uploads_dir()).await?;
    while let Some(entry) = entries.next_entry().await? {
        let incoming = entry
            .file_name()
            .to_string_lossy()
            .starts_with(".incoming-");
        if incoming && older_than(&entry.path(), INCOMING_MAX_IDLE).await {
            remove_file_if_exists(&entry.path()).await?;
            swept += 1;
        }
    }
    Ok(swept)
}

/// Removes `.tus/` files that no upload row refers to, [`TUS_ORPHAN_AGE`] after their last write.
pub async fn tus_orphans(
    media: &MediaRoot,
    conn: &mut sqlx::PgConnection,
) -> anyhow::Result<usize> {
    let mut swept = 0;
    let mut entries = match tokio::fs::read_dir(media.tus_dir()).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    while let Some(entry) = entries.next_entry().await? {
        if !older_than(&entry.path(), TUS_ORPHAN_AGE).await {
            continue;
        }
        let name = entry.file_name();
        let owned = match name.to_string_lossy().parse::<UploadId>() {
            // A completed upload's row (a receipt) names its video: the bytes are in the
            // store, a copy left here by a completion cut short is not needed.
            Ok(id) => db::uploads::get(conn, id)
                .await?
                .is_some_and(|row| row.video_id.is_none()),
            Err(_) => false,
        };
        if !owned {
            remove_file_if_exists(&entry.path()).await?;
            tracing::info!(file = %entry.path().display(), "removed a resumable upload without a record");
            swept += 1;
        }
    }
    Ok(swept)
}

/// Sweeps this API's upload area every few minutes until `stop` fires (S3 backend: no worker
/// sees this disk).
pub async fn run(media: MediaRoot, pool: PgPool, stop: CancellationToken) {
    let mut timer = tokio::time::interval(API_SWEEP_INTERVAL);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = timer.tick() => {}
        }
        let swept = async {
            let mut conn = pool.acquire().await?;
            Ok::<_, anyhow::Error>(incoming(&media).await? + tus_orphans(&media, &mut conn).await?)
        };
        match swept.await {
            Ok(0) => {}
            Ok(n) => tracing::info!(swept = n, "removed abandoned uploads from the local disk"),
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                "sweeping the local upload area failed"
            ),
        }
    }
}
