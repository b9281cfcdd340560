//! ProStream: upload a video over HTTP, get adaptive HLS back.
//!
//! The library holds what the API (`prostream`) and the worker
//! (`prostream-worker`) share. Only [`http`] depends on axum; the worker builds
//! this crate without the `http` feature.

pub mod auth;
pub mod background;
pub mod captions;
pub mod config;
pub mod db;
pub mod ids;
pub mod media;
pub mod playback;
pub mod process;
pub mod queue;
pub mod storage;
pub mod telemetry;

#[cfg(feature = "http")]
pub mod app;
#[cfg(feature = "http")]
pub mod fetch;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "http")]
pub mod ingest;
#[cfg(feature = "http")]
pub mod webhooks;
