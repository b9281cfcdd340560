//! Postgres access: the pool, migrations, and one small function per query.
//!
//! Postgres is the source of truth. Every query is checked at compile time by
//! `sqlx::query!` against the schema (offline data in `.sqlx/`).

pub mod captions;
pub mod jobs;
pub mod keys;
pub mod owners;
pub mod uploads;
pub mod videos;
pub mod webhooks;

use std::time::Duration;

use sqlx::{PgPool, postgres::PgPoolOptions};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A job's lifecycle state; the video's `status` in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[sqlx(type_name = "job_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// A URL ingest whose source is still being fetched.
    Downloading,
    Queued,
    Processing,
    Ready,
    Failed,
    Canceled,
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Downloading => "downloading",
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        })
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "downloading" => Ok(Self::Downloading),
            "queued" => Ok(Self::Queued),
            "processing" => Ok(Self::Processing),
            "ready" => Ok(Self::Ready),
            "failed" => Ok(Self::Failed),
            "canceled" => Ok(Self::Canceled),
            other => Err(format!(
                "unknown status {other:?}; expected downloading, queued, processing, ready, failed or canceled"
            )),
        }
    }
}

/// Who may play a video's HLS output: anyone (`public`), or whoever holds a signed playback URL
/// the API issued (`private`). Stored as text (a CHECK keeps it to these two).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    sqlx::Type,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

impl std::str::FromStr for Visibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "public" => Ok(Self::Public),
            "private" => Ok(Self::Private),
            other => Err(format!(
                "unknown visibility {other:?}; expected public or private"
            )),
        }
    }
}

/// What a row of `renditions` is: a rung of the video ladder, or an audio or subtitle track of
/// the groups every rung plays with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[sqlx(type_name = "rendition_kind", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum RenditionKind {
    Video,
    Audio,
    Subtitles,
}

/// What a caption track is for: a translation (`subtitles`), or a transcription with the sounds
/// described, for viewers who cannot hear (`captions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[sqlx(type_name = "caption_kind", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum CaptionKind {
    Subtitles,
    Captions,
}

/// What a running job is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[sqlx(type_name = "job_stage", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobStage {
    Probing,
    Transcoding,
    Publishing,
}

/// Opens the pool; fails fast with the URL's host in the message when Postgres is unreachable.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    use anyhow::Context;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .with_context(|| {
            format!(
                "cannot connect to Postgres at {}; is it running and is DATABASE_URL right?",
                redact(url)
            )
        })
}

/// Strips the password from a connection URL so it can be logged.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_the_password_but_keeps_user_and_host() {
        assert_eq!(
            redact("postgres://user:secret@db:5432/x"),
            "postgres://user@db:5432/x"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }

    #[test]
    fn states_parse_from_their_api_names() {
        assert_eq!("ready".parse::<JobState>(), Ok(JobState::Ready));
        assert!("done".parse::<JobState>().is_err());
    }
}
