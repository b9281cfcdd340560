//! Which videos are public, remembered for a moment.
//!
//! Every request on the public HLS route needs the video's visibility. Asking Postgres each
//! time made segment serving 0.15× nginx's rate for small segments (benchmark 5b): the
//! database trip cost more than reading the segment. The answer is kept for [`TTL`].
//!
//! A change made through this API process (PATCH, delete) forgets the video, so the next
//! request asks again. Another API replica (or a request of this one that read the old answer
//! while the change committed) keeps its answer until it is [`TTL`] old: closing a video
//! reaches every replica within that time. Signed URLs never look here.

use std::time::Duration;

use crate::{
    db::{self, Visibility},
    ids::VideoId,
};
use moka::sync::Cache;
use sqlx::PgPool;

/// How long another replica may keep serving a video that has just been made private.
pub const TTL: Duration = Duration::from_secs(2);

/// Enough for every video being watched at once on a busy site; each entry is ~40 bytes.
const CAPACITY: u64 = 100_000;

#[derive(Clone)]
pub struct PublicVideos {
    /// `true` for public videos; `false` for private and unknown ones, which are asked about
    /// as rarely, so a flood of requests for a private id costs no more than one for a public one.
    known: Cache<VideoId, bool>,
}

impl Default for PublicVideos {
    fn default() -> Self {
        Self {
            known: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
        }
    }
}

impl PublicVideos {
    /// Whether video `id` exists and is public.
    pub async fn is_public(&self, pool: &PgPool, id: VideoId) -> Result<bool, sqlx::Error> {
        if let Some(public) = self.known.get(&id) {
            return Ok(public);
        }
        let mut conn = pool.acquire().await?;
        let public = db::videos::visibility(&mut conn, id).await? == Some(Visibility::Public);
        self.known.insert(id, public);
        Ok(public)
    }

    /// Drops what is known about `id`, after this process changed or deleted it.
    pub fn forget(&self, id: VideoId) {
        self.known.invalidate(&id);
    }
}
