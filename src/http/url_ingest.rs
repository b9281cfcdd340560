//! `POST /v1/videos` with a JSON body `{"url": …}`: the request half of URL ingest. The video is
//! recorded at once in state `downloading` and answered with 202; [`crate::ingest`]'s downloader
//! does the rest.

use axum::{
    Json,
    extract::Request,
    http::{HeaderMap, StatusCode, header},
};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    AppState,
    auth::Caller,
    error::{ApiError, ErrorCode},
    formats::{HttpUrl, Title},
    wire::{VideoOut, load_video, video_location},
};
use crate::{db::Visibility, ingest::NewDownload};

/// `{"url": "https://…", "title": "…"}`
#[derive(Debug, Deserialize, ToSchema)]
pub struct UrlIngest {
    /// An http or https URL of a video or audio file (https certificates are verified against
    /// the system's CAs and OUTBOUND_CA_BUNDLE's).
    #[schema(value_type = HttpUrl, example = "https://example.com/clip.mp4")]
    pub url: String,
    /// Default: `?title=`, else the URL's file name. Both are checked when both are given.
    #[schema(value_type = Option<Title>)]
    pub title: Option<String>,
    /// `public` or `private`; default: `?visibility=`, else the server's `DEFAULT_VISIBILITY`.
    pub visibility: Option<Visibility>,
    /// `false`: make no downloads; default: `?downloads=`, else `true`.
    pub downloads: Option<bool>,
}

/// What the upload request asked for besides the URL.
pub struct Asked {
    /// The `?title=` parameter, checked (the JSON's `title` wins).
    pub title: Option<String>,
    /// The `?visibility=` parameter, checked (the JSON's `visibility` wins; then the default).
    pub visibility: Option<Visibility>,
    /// The `?downloads=` parameter (the JSON's `downloads` wins; then `true`).
    pub downloads: Option<bool>,
    pub caller: Caller,
}

/// Records the video and its download; the downloader does the rest.
pub async fn create_from_url(
    state: AppState,
    asked: Asked,
    request: Request,
) -> Result<(StatusCode, HeaderMap, Json<VideoOut>), ApiError> {
    // POST /v1/videos lifts axum's body limit for uploads: bound the JSON here, before reading it.
    let bytes = super::limits::json_bytes(request.into_body()).await?;
    let Json(body) = Json::<UrlIngest>::from_bytes(&bytes)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidJson, e.body_text()))?;
    let caller = asked.caller;
    let video_id = state
        .ingest
        .accept_url(NewDownload {
            url: body.url,
            title: body.title.or(asked.title),
            visibility: body
                .visibility
                .or(asked.visibility)
                .unwrap_or(state.policy.default_visibility),
            owner: caller.owner_id,
            downloads: body.downloads.or(asked.downloads).unwrap_or(true),
        })
        .await?;
    // Read the answer before waking the downloader, so a download that fails at once cannot
    // turn this 202 into a report of `failed`.
    let video = load_video(&state, video_id, caller.scope()).await?;
    state.ingest.wake_downloader();
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, video_location(video_id));
    Ok((StatusCode::ACCEPTED, headers, Json(video)))
}
