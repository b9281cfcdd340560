//! The client half of tus 1.0 (core, creation, termination): just what
//! `prostream upload` needs to send a file in pieces and pick up where an
//! interrupted run stopped.

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::{Body, Method, StatusCode, header};

use super::{CliError, Client, check, is_missing_route};
use prostream::ids::VideoId;

const TUS_RESUMABLE: &str = "Tus-Resumable";
const TUS_VERSION: &str = "1.0.0";
const UPLOAD_OFFSET: &str = "Upload-Offset";
const UPLOAD_LENGTH: &str = "Upload-Length";
const UPLOAD_METADATA: &str = "Upload-Metadata";
/// Set by ProStream once the upload is a video.
const VIDEO_ID: &str = "Prostream-Video-Id";

const UPLOADS: &str = "/v1/uploads";

/// Where an upload stands on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub offset: u64,
    /// Set once the last byte arrived and the video was recorded.
    pub video_id: Option<VideoId>,
}

/// Whether the server speaks tus at all (older servers only take `POST /v1/videos`).
pub async fn supported(client: &Client) -> Result<bool, CliError> {
    let response = client.request(Method::OPTIONS, UPLOADS).send().await?;
    if is_missing_route(response.status()) {
        return Ok(false);
    }
    Ok(response
        .headers()
        .get("Tus-Version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|versions| versions.split(',').any(|v| v.trim() == TUS_VERSION)))
}

/// Creates an upload of `length` bytes; returns its URL.
pub async fn create(
    client: &Client,
    length: u64,
    metadata: &[(&str, &str)],
) -> Result<String, CliError> {
    let metadata = metadata
        .iter()
        .map(|(key, value)| format!("{key} {}", STANDARD.encode(value)))
        .collect::<Vec<_>>()
        .join(",");
    let response = client
        .request(Method::POST, UPLOADS)
        .header(TUS_RESUMABLE, TUS_VERSION)
        .header(UPLOAD_LENGTH, length)
        .header(UPLOAD_METADATA, metadata)
        .send()
        .await?;
    let response = check(response).await?;
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| CliError::new("protocol_error", "the server created no upload URL"))?;
    Ok(client.url(location))
}

/// The upload's offset, or `None` when the server no longer has it (expired, deleted).
pub async fn status(client: &Client, url: &str) -> Result<Option<Status>, CliError> {
    let response = client
        .request(Method::HEAD, url)
        .header(TUS_RESUMABLE, TUS_VERSION)
        .send()
        .await?;
    if matches!(response.status(), StatusCode::NOT_FOUND | StatusCode::GONE) {
        return Ok(None);
    }
    let response = check(response).await?;
    Ok(Some(status_of(&response)?))
}

/// Sends `body` (the bytes from `offset` on); returns where the upload stands after it.
pub async fn patch(
    client: &Client,
    url: &str,
    offset: u64,
    length: u64,
    body: Body,
) -> Result<Status, CliError> {
    let response = client
        .request(Method::PATCH, url)
        .header(TUS_RESUMABLE, TUS_VERSION)
        .header(UPLOAD_OFFSET, offset)
        .header(header::CONTENT_TYPE, "application/offset+octet-stream")
        .header(header::CONTENT_LENGTH, length)
        .body(body)
        .send()
        .await?;
    let response = check(response).await?;
    status_of(&response)
}

fn status_of(response: &reqwest::Response) -> Result<Status, CliError> {
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
    let offset = header(UPLOAD_OFFSET)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CliError::new("protocol_error", "the server sent no Upload-Offset"))?;
    let video_id = header(VIDEO_ID).and_then(|v| v.parse().ok());
    Ok(Status { offset, video_id })
}
