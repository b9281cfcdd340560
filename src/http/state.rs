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

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
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
