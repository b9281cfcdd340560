//! HLS output of one encode attempt, two ways in:
//!
//! - `GET /v1/videos/{id}/hls/{attempt}/{file}`: public videos, for anyone. A video that is not
//!   public (private, or unknown: the answer does not tell them apart) gets 403
//!   `playback_token_required`. Visibility is remembered for a moment
//!   ([`super::public_videos`]), so a segment costs no database trip.
//! - `GET /v1/videos/{id}/signed/{token}/{attempt}/{file}`: any video, with a playback token for
//!   that video id (see [`crate::playback`]), as `playback.hls` gives it for private videos. The
//!   token sits in the path, so the relative URIs in the playlists (`720p.m3u8`,
//!   `720p_00001.m4s`) resolve under it: a player needs only the master URL, and the playlists
//!   are served from disk as ffmpeg wrote them. No database trip: the token is the proof.
//!
//! Only plain file names with a known extension are served, from the
//! attempt's directory; ffmpeg renames every file into place, so what exists
//! is complete. The attempt key in the URL keeps one attempt's segments from
//! ever standing in for another's. tower-http's `ServeFile` brings byte
//! ranges, `HEAD` and conditional requests.
//!
//! With `STORAGE_BACKEND=s3` the same two routes authorise exactly as above, and only then:
//! playlists are read from the bucket and served from here (small, and they change while the
//! video encodes); segments, init segments and the poster are answered with a `307` to a
//! presigned URL of the bucket, valid `S3_PRESIGN_TTL_SECS` at most (and never past the
//! playback token's expiry), so their bytes never pass through the API.
//!
//! One shortcut: a plain `GET` of a small immutable file (segment, init segment, poster) is
//! answered from [`super::segment_cache`], read whole in one blocking call on a miss.
//! `ServeFile` opens, stats and reads in separate trips to the blocking pool, which made small
//! segments 0.26× nginx's rate (benchmark 5b); what players send for segments is exactly this
//! plain `GET`, and an immutable file needs no validators.

use std::{path::PathBuf, time::Duration};

use axum::{
    body::Bytes,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use time::OffsetDateTime;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    error::{ApiError, ErrorCode, Problem},
    extract::{Id, Path},
    formats::PlainName,
    responses::{FileNotFound, InternalError, InvalidFileName},
    wire::BinaryFile,
};
use crate::{
    ids::VideoId,
    media::HLS_TARGET_DURATION_SECS,
    playback::TokenError,
    storage::{Served, Want, is_plain_file_name},
};

/// Playlists grow while the video encodes; segments never change.
const PLAYLIST_CACHE: &str = "public, max-age=1";
const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";
/// Signed files are for the holder of the URL only: no shared cache keeps them, and a browser
/// keeps a segment no longer than the token lives.
const PRIVATE_PLAYLIST_CACHE: &str = "private, max-age=1";
const YEAR_SECS: i64 = 31_536_000;
/// A redirect to a presigned URL must not outlive the URL: no cache keeps it.
const REDIRECT_CACHE: &str = "no-store";

/// Bigger files stream in chunks of this size, each one trip to the blocking pool: tower-http's
/// 64 KiB made a 1.3 MB 1080p segment twenty trips.
const STREAM_CHUNK: usize = 256 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_hls_file))
        .routes(routes!(get_signed_hls_file))
}

/// Whether `route` (a matched route, as the OpenAPI document writes it) serves a video's files:
/// segments, playlists, captions, posters, downloads; most of the API's requests.
pub(super) fn is_media_route(route: &str) -> bool {
    route.starts_with("/v1/videos/{id}/hls/") || route.starts_with("/v1/videos/{id}/signed/")
}

/// `{attempt}/{file}` of a public HLS URL (the `{id}` is read as [`Id`]).
#[derive(Deserialize)]
pub struct HlsFile {
    attempt: String,
    file: String,
}

/// `{token}/{attempt}/{file}` of a signed HLS URL.
#[derive(Deserialize)]
pub struct SignedHlsFile {
    token: String,
    attempt: String,
    file: String,
}

/// Playlists change while the video encodes; everything else is written once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Grows,
    Immutable,
}

/// Content type and whether the file changes, by extension; anything else is not ours to serve.
fn kind_of(name: &str) -> Option<(&'static str, Change)> {
    let ext = name.rsplit_once('.')?.1;
    Some(match ext {
        "m3u8" => ("application/vnd.apple.mpegurl", Change::Grows),
        "m4s" => ("video/iso.segment", Change::Immutable),
        // Subtitle segments, written once like the media segments.
        "vtt" => ("text/vtt", Change::Immutable),
        "mp4" => ("video/mp4", Change::Immutable),
        "m4a" => ("audio/mp4", Change::Immutable),
        "jpg" => ("image/jpeg", Change::Immutable),
        _ => return None,
    })
}

/// Who the response may be cached for.
#[derive(Debug, Clone, Copy)]
enum Access {
    Public,
    /// A signed URL, valid until then.
    Signed(OffsetDateTime),
}

fn cache_control(change: Change, access: Access, now: OffsetDateTime) -> HeaderValue {
    match (access, change) {
        (Access::Public, Change::Grows) => HeaderValue::from_static(PLAYLIST_CACHE),
        (Access::Public, Change::Immutable) => HeaderValue::from_static(SEGMENT_CACHE),
        (Access::Signed(_), Change::Grows) => HeaderValue::from_static(PRIVATE_PLAYLIST_CACHE),
        (Access::Signed(until), Change::Immutable) => {
            let left = (until - now).whole_seconds().clamp(1, YEAR_SECS);
            HeaderValue::from_str(&format!("private, max-age={left}, immutable"))
                .expect("a number is a valid header value")
        }
    }
}

/// An HLS file of a **public** video: `master.m3u8` (the URL in `playback.hls`), the rendition
/// playlists, init and media segments, and `poster.jpg`. Supports `Range`, `HEAD` and conditional
/// requests. A private (or unknown) video answers 403 `playback_token_required`: its files are
/// under the signed URL in `playback.hls`.
#[utoipa::path(get, path = "/v1/videos/{id}/hls/{attempt}/{file}", tag = "playback",
    params(
        ("id" = String, Path, description = "The video's id"),
        ("attempt" = PlainName, Path, description = "The attempt key from `playback.hls`, e.g. `1-ab12cd34`"),
        ("file" = PlainName, Path, description = "A plain file name, e.g. `master.m3u8`, `720p_00001.m4s`"),
    ),
    responses(
        (status = 200, description = "The file", content(
            (String = "application/vnd.apple.mpegurl"),
            (BinaryFile = "video/iso.segment"),
            (String = "text/vtt"),
            (BinaryFile = "video/mp4"),
            (BinaryFile = "image/jpeg"),
        )),
        (status = 206, description = "The requested byte range"),
        (status = 307, description = "With S3 storage, for segments, init segments and the poster: the file's presigned URL \
         in `Location` (valid `S3_PRESIGN_TTL_SECS` at most)"),
        (status = 304, description = "Not modified since the validator sent"),
        InvalidFileName,
        (status = 403, description = "`playback_token_required`: the video is not public (or does not exist)",
         body = Problem, content_type = "application/problem+json"),
        FileNotFound,
        (status = 416, description = "The range is outside the file"),
        InternalError,
    ))]
pub async fn get_hls_file(
    State(state): State<AppState>,
    Id(id): Id<VideoId>,
    Path(HlsFile { attempt, file }): Path<HlsFile>,
    request: Request,
) -> Result<Response, ApiError> {
    check_names(&attempt, &file)?;
    if !state.public_videos.is_public(&state.pool, id).await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::PlaybackTokenRequired,
            "this video is not public: play it from the signed URL in its `playback.hls`",
        ));
    }
    serve(&state, id, &attempt, &file, Access::Public, request).await
}

/// An HLS file of a video through a signed URL, as `playback.hls` gives it for a private video
/// (valid until `playback.expires_at`). The playlists' relative URIs resolve under the same
/// token, so a player needs only the master URL. Supports `Range`, `HEAD` and conditional
/// requests.
#[utoipa::path(get, path = "/v1/videos/{id}/signed/{token}/{attempt}/{file}", tag = "playback",
    params(
        ("id" = String, Path, description = "The video's id"),
        ("token" = String, Path, description = "The playback token from `playback.hls`: `{expiry}.{key id}.{signature}`"),
        ("attempt" = PlainName, Path, description = "The attempt key from `playback.hls`, e.g. `1-ab12cd34`"),
        ("file" = PlainName, Path, description = "A plain file name, e.g. `master.m3u8`, `720p_00001.m4s`"),
    ),
    responses(
        (status = 200, description = "The file", content(
            (String = "application/vnd.apple.mpegurl"),
            (BinaryFile = "video/iso.segment"),
            (String = "text/vtt"),
            (BinaryFile = "video/mp4"),
            (BinaryFile = "image/jpeg"),
        )),
        (status = 206, description = "The requested byte range"),
        (status = 307, description = "With S3 storage, for segments, init segments and the poster: the file's presigned URL \
         in `Location` (valid `S3_PRESIGN_TTL_SECS` at most)"),
        (status = 304, description = "Not modified since the validator sent"),
        InvalidFileName,
        (status = 403, description = "`playback_token_invalid` (malformed, tampered, unknown key, another video's), \
         `playback_token_expired`", body = Problem, content_type = "application/problem+json"),
        FileNotFound,
        (status = 416, description = "The range is outside the file"),
        InternalError,
    ))]
pub async fn get_signed_hls_file(
    State(state): State<AppState>,
    Id(id): Id<VideoId>,
    Path(SignedHlsFile {
        token,
        attempt,
        file,
    }): Path<SignedHlsFile>,
    request: Request,
) -> Result<Response, ApiError> {
    let expires_at = state
        .playback
        .verify(id, &token, OffsetDateTime::now_utc())
        .map_err(token_error)?;
    check_names(&attempt, &file)?;
    serve(
        &state,
        id,
        &attempt,
        &file,
        Access::Signed(expires_at),
        request,
    )
    .await
}

fn token_error(err: TokenError) -> ApiError {
    let (code, detail) = match err {
        TokenError::Invalid => (
            ErrorCode::PlaybackTokenInvalid,
            "this playback URL is not valid for this video; read the video for a fresh one",
        ),
        TokenError::Expired => (
            ErrorCode::PlaybackTokenExpired,
            "this playback URL has expired; read the video for a fresh one",
        ),
    };
    ApiError::new(StatusCode::FORBIDDEN, code, detail)
}

/// Only plain names, never joined blindly.
fn check_names(attempt: &str, file: &str) -> Result<(), ApiError> {
    if is_plain_file_name(attempt) && is_plain_file_name(file) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            ErrorCode::InvalidFileName,
            "HLS files are addressed as {attempt}/{file} with plain names, e.g. 1-ab12cd34/master.m3u8",
        ))
    }
}

/// Serves an authorised request: from the volume, with the bytes read from the store, or with
/// a redirect to a presigned URL. Downloads are attachments.
async fn serve(
    state: &AppState,
    id: VideoId,
    attempt: &str,
    file: &str,
    access: Access,
    request: Request,
) -> Result<Response, ApiError> {
    let mut response = serve_any(state, id, attempt, file, access, request).await?;
    if let Some(disposition) = crate::storage::content_disposition(file) {
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static(disposition),
        );
    }
    Ok(response)
}

async fn serve_any(
    state: &AppState,
    id: VideoId,
    attempt: &str,
    file: &str,
    access: Access,
    request: Request,
) -> Result<Response, ApiError> {
    let (content_type, change) = kind_of(file).ok_or_else(|| ApiError::not_found("this file"))?;
    let now = OffsetDateTime::now_utc();
    let cache = cache_control(change, access, now);
    let want = match change {
        Change::Grows => Want::Contents,
        Change::Immutable => Want::Redirect {
            head: request.method() == Method::HEAD,
            // A presigned URL works for anyone who holds it: never longer than the token.
            ttl: match access {
                Access::Public => Duration::MAX,
                Access::Signed(until) => {
                    Duration::from_secs((until - now).whole_seconds().max(1) as u64)
                }
            },
        },
    };
    let path = match state
        .store
        .serve(id, attempt, file, want)
        .await
        .map_err(ApiError::internal)?
    {
        Served::File(path) => path,
        Served::Missing => return Err(ApiError::not_found("this file")),
        Served::Contents(body) => {
            let body = match change {
                Change::Grows => playlist_body(body),
                Change::Immutable => body,
            };
            return Ok((
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                    (header::CACHE_CONTROL, cache),
                ],
                body,
            )
                .into_response());
        }
        Served::Redirect(url) => {
            let location = HeaderValue::from_str(&url).map_err(ApiError::internal)?;
            return Ok((
                StatusCode::TEMPORARY_REDIRECT,
                [
                    (header::LOCATION, location),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static(REDIRECT_CACHE),
                    ),
                ],
            )
                .into_response());
        }
    };
    serve_file(state, path, content_type, change, cache, request).await
}

/// A file on the volume.
async fn serve_file(
    state: &AppState,
    path: PathBuf,
    content_type: &'static str,
    change: Change,
    cache: HeaderValue,
    request: Request,
) -> Result<Response, ApiError> {
    if change == Change::Grows
        && let Some(body) = playlist_to_rewrite(&path, request.method()).await?
    {
        return Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, cache),
            ],
            body,
        )
            .into_response());
    }
    if change == Change::Immutable && is_plain_get(&request) {
        match state.segment_cache.get(&path).await {
            Ok(Some(body)) => {
                return Ok((
                    [
                        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                        (header::CACHE_CONTROL, cache),
                    ],
                    body,
                )
                    .into_response());
            }
            Ok(None) => {} // too big to keep: stream it below
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ApiError::not_found("this file"));
            }
            Err(e) => return Err(ApiError::internal(e)),
        }
    }
    if request.headers().contains_key(header::RANGE) && is_empty_file(&path).await? {
        // An empty file (a segment ffmpeg has only just created) has no satisfiable range
        // (RFC 9110, 14.1.2). ServeFile's parser, http-range-header 0.4, validates `bytes=0-N`
        // against it as the range 0-0, and ServeFile would promise a byte it cannot send (found
        // by the range_header fuzz target).
        return Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, HeaderValue::from_static("bytes */0"))],
        )
            .into_response());
    }
    let mime = content_type.parse().expect("static mime types parse");
    let response = ServeFile::new_with_mime(&path, &mime)
        .with_buf_chunk_size(STREAM_CHUNK)
        .oneshot(request)
        .await
        .map_err(ApiError::internal)?;
    if response.status() == StatusCode::NOT_FOUND {
        return Err(ApiError::not_found("this file"));
    }
    let mut response = response.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, cache);
    Ok(response)
}

/// Whether the file at `path` has no bytes; a missing file is the 404 it would be anyway.
async fn is_empty_file(path: &std::path::Path) -> Result<bool, ApiError> {
    match tokio::fs::metadata(path).await {
        Ok(meta) => Ok(meta.len() == 0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::not_found("this file")),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// A playlist whose `EXT-X-TARGETDURATION` is below [`HLS_TARGET_DURATION_SECS`], rewritten to
/// it. ffmpeg writes the first segment's shorter length as the target while that segment is
/// the only one, then raises it; an `EVENT` playlist may only grow (RFC 8216, 6.2.1), so players
/// get the final target from the first request. Other playlists are served as they are.
async fn playlist_to_rewrite(
    path: &std::path::Path,
    method: &Method,
) -> Result<Option<String>, ApiError> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Ok(None);
    }
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(raise_target_duration(&text, HLS_TARGET_DURATION_SECS)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::not_found("this file")),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// A playlist read from the store, with its target duration raised as [`playlist_to_rewrite`]
/// does for one on the volume.
fn playlist_body(body: Bytes) -> Bytes {
    std::str::from_utf8(&body)
        .ok()
        .and_then(|text| raise_target_duration(text, HLS_TARGET_DURATION_SECS))
        .map_or(body, Bytes::from)
}

/// `text` with its target duration raised to `min`; `None` if it has none or one as high.
fn raise_target_duration(text: &str, min: u32) -> Option<String> {
    const TAG: &str = "#EXT-X-TARGETDURATION:";
    let line = text.lines().find(|l| l.starts_with(TAG))?;
    let value: u32 = line[TAG.len()..].trim().parse().ok()?;
    (value < min).then(|| text.replacen(line, &format!("{TAG}{min}"), 1))
}

/// A `GET` that asks for the whole file, unconditionally.
fn is_plain_get(request: &Request) -> bool {
    const PARTIAL_OR_CONDITIONAL: [header::HeaderName; 5] = [
        header::RANGE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ];
    let headers: &HeaderMap = request.headers();
    request.method() == Method::GET
        && !PARTIAL_OR_CONDITIONAL
            .iter()
            .any(|h| headers.contains_key(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_media_routes_are_the_two_file_routes_and_nothing_else() {
        let doc = crate::http::openapi();
        let media: Vec<&str> = doc
            .paths
            .paths
            .keys()
            .map(String::as_str)
            .filter(|route| is_media_route(route))
            .collect();
        assert_eq!(
            media,
            [
                "/v1/videos/{id}/hls/{attempt}/{file}",
                "/v1/videos/{id}/signed/{token}/{attempt}/{file}",
            ]
        );
    }

    #[test]
    fn a_playlist_gets_the_final_target_duration_from_its_first_segment_on() {
        let first = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n\
                     #EXTINF:1.000000,\n720p_00000.m4s\n";
        let raised = raise_target_duration(first, 2).unwrap();
        assert_eq!(
            raised,
            first.replace("TARGETDURATION:1\n", "TARGETDURATION:2\n")
        );
        // Already there, higher (an older attempt's 4 s segments), or no tag (a master): as is.
        assert_eq!(raise_target_duration(&raised, 2), None);
        assert_eq!(
            raise_target_duration(&first.replace(":1\n", ":4\n"), 2),
            None
        );
        assert_eq!(
            raise_target_duration("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n", 2),
            None
        );
    }

    #[test]
    fn each_hls_file_kind_has_its_content_type_and_change() {
        assert_eq!(
            kind_of("master.m3u8").unwrap(),
            ("application/vnd.apple.mpegurl", Change::Grows)
        );
        assert_eq!(
            kind_of("720p_00001.m4s").unwrap(),
            ("video/iso.segment", Change::Immutable)
        );
        assert_eq!(kind_of("720p_init.mp4").unwrap().0, "video/mp4");
        assert_eq!(
            kind_of("subs_0_00001.vtt").unwrap(),
            ("text/vtt", Change::Immutable)
        );
        assert_eq!(kind_of("poster.jpg").unwrap().0, "image/jpeg");
        assert_eq!(kind_of("download.m4a").unwrap().0, "audio/mp4");
        assert!(kind_of("secrets.env").is_none());
        assert!(kind_of("noext").is_none());
    }

    #[test]
    fn signed_files_are_never_publicly_cached_and_segments_not_past_the_expiry() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let until = now + time::Duration::seconds(90);
        let public = |c| cache_control(c, Access::Public, now);
        let signed = |c| cache_control(c, Access::Signed(until), now);
        assert_eq!(public(Change::Grows), "public, max-age=1");
        assert_eq!(
            public(Change::Immutable),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(signed(Change::Grows), "private, max-age=1");
        assert_eq!(signed(Change::Immutable), "private, max-age=90, immutable");
        let far = Access::Signed(now + time::Duration::days(800));
        assert_eq!(
            cache_control(Change::Immutable, far, now),
            "private, max-age=31536000, immutable"
        );
    }
}
