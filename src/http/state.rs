//! [`AppState`]: what every handler can reach.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::{
    config::{MediaLimits, OwnerPolicy},
    ingest::Ingest,
    queue::TranscodeQueue,
    storage::{MediaRoot, Storage},
};

/// Everything a handler needs, behind one `Arc`: axum clones the state for every request, and
/// cloning a dozen handles (a queue with its settings, paths, caches) showed up as about 5% of
/// the CPU of serving a small segment.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// The parts, to swap one before the API serves (tests run it against a store that is
    /// down or other signing keys). Copies them first if a clone of this state is alive.
    pub fn make_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    pub pool: PgPool,
    pub queue: TranscodeQueue,
    pub redis: ConnectionManager,
    /// This process' disk: uploads arrive and are probed here, resumable uploads wait here.
    pub media: MediaRoot,
    /// Where accepted originals and the published HLS output live (the same volume, or S3).
    pub store: Storage,
    pub limits: Arc<MediaLimits>,
    /// Uploads, URL downloads and quotas: what turns a file into a queued video.
    pub ingest: Ingest,
    /// Whether `/v1` requests need an API key.
    pub auth: super::auth::AuthMode,
    /// Default visibility of new videos and the owners' default quotas.
    pub policy: Arc<OwnerPolicy>,
    /// Signs and checks private videos' playback URLs.
    pub playback: crate::playback::Signer,
    /// Webhooks: the URL checks at registration, and the deliverer's client and settings.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Which videos the public HLS route may serve, remembered for a moment.
    pub public_videos: super::public_videos::PublicVideos,
    /// Small segments, init segments and posters, served from memory.
    pub segment_cache: super::segment_cache::SegmentCache,
}
