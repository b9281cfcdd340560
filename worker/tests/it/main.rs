//! The integration tests, one binary: the real API, workers and client commands against real
//! Postgres, Redis, ffmpeg and S3. Each module is one subject; the harness is `common`.
//!
//! Run them with `bash scripts/test.sh -p prostream-worker --test it`, or a subject with
//! `-E 'test(/^tus::/)'`.

mod common;

mod access;
mod api;
mod api_shutdown;
mod api_start;
mod budget;
mod captions;
mod cli;
mod downloads;
mod fairness;
mod faults;
mod hostile;
mod hostile_input;
mod lifecycle;
mod maintenance;
mod media_matrix;
mod pipeline;
mod playback;
mod quotas;
mod s3;
mod state_machine;
mod storyboard;
mod tls;
mod tus;
mod uploads;
mod url_ingest;
mod webhooks;
