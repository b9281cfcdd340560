//! The ProStream worker: takes deliveries from Redis as wake-ups, claims the
//! fairest due job in Postgres, runs one ffmpeg per job and publishes the HLS ladder.

pub mod app;
pub mod captions;
pub mod config;
pub mod downloads;
pub mod ffmpeg;
pub mod fmp4;
pub mod ladder;
pub mod maintenance;
pub mod normalize;
pub mod output;
pub mod pipeline;
pub mod playlist;
pub mod publish;
pub mod runner;
pub mod storyboard;
pub mod subtitles;
pub mod tracks;
