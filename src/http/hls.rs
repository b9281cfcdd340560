//! `GET /v1/videos/{id}/hls/{attempt}/{file}`: an attempt's HLS output.
//!
//! Only plain file names with a known extension are served, from the
//! attempt's directory; ffmpeg renames every file into place, so what exists
//! is complete. The attempt key in the URL keeps one attempt's segments from
//! ever standing in for another's. tower-http's `ServeFile` brings byte
//! ranges, `HEAD` and conditional requests.
//!
//! One shortcut: a plain `GET` of an immutable file (segment, init segment,
//! poster) up to [`WHOLE_READ_MAX`] is read in one blocking call. `ServeFile`
//! opens, stats and reads in separate trips to the blocking pool, which made
//! small segments 0.26× nginx's rate (benchmark 5b); what players send for
//! segments is exactly this plain `GET`, and an immutable file needs no
//! validators.

use std::{io::Read, path::PathBuf};

use axum::{
    body::Bytes,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, header},
    response::{IntoResponse, Response},
};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    error::{ApiError, ErrorCode, Problem},
    extract::Path,
    videos::{BinaryFile, parse_id},
};

/// Playlists grow while the video encodes; segments never change.
const PLAYLIST_CACHE: &str = "public, max-age=1";
const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";

/// Largest file read whole into memory: segments of the low rungs (240p and
/// 360p, the most requested on small screens), where the per-request cost
/// dominates. 64 concurrent requests hold at most 32 MiB; bigger files stream
/// through `ServeFile`, where bandwidth dominates anyway.
const WHOLE_READ_MAX: u64 = 512 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_hls_file))
}

/// Content type and cache policy by extension; anything else is not ours to serve.
fn kind_of(name: &str) -> Option<(&'static str, &'static str)> {
    let ext = name.rsplit_once('.')?.1;
    Some(match ext {
        "m3u8" => ("application/vnd.apple.mpegurl", PLAYLIST_CACHE),
        "m4s" => ("video/iso.segment", SEGMENT_CACHE),
        "mp4" => ("video/mp4", SEGMENT_CACHE),
        "jpg" => ("image/jpeg", SEGMENT_CACHE),
        _ => return None,
    })
}

/// An HLS file of the video: `master.m3u8` (the URL in `playback.hls`), the
/// rendition playlists, init and media segments, and `poster.jpg`. Supports
/// `Range`, `HEAD` and conditional requests.
#[utoipa::path(get, path = "/v1/videos/{id}/hls/{attempt}/{file}", tag = "playback",
    params(
        ("id" = String, Path, description = "The video's id"),
        ("attempt" = String, Path, description = "The attempt key from `playback.hls`, e.g. `1-ab12cd34`"),
        ("file" = String, Path, description = "A plain file name, e.g. `master.m3u8`, `720p_00001.m4s`"),
    ),
    responses(
        (status = 200, description = "The file", content(
            (String = "application/vnd.apple.mpegurl"),
            (BinaryFile = "video/iso.segment"),
            (BinaryFile = "video/mp4"),
            (BinaryFile = "image/jpeg"),
        )),
        (status = 206, description = "The requested byte range"),
        (status = 304, description = "Not modified since the validator sent"),
        (status = 400, description = "`invalid_file_name`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range is outside the file"),
        (status = 500, description = "`internal_error`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_hls_file(
    State(state): State<AppState>,
    Path((id, attempt, file)): Path<(String, String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let path = state.media.hls_file(id, &attempt, &file).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidFileName,
            "HLS files are addressed as {attempt}/{file} with plain names, e.g. 1-ab12cd34/master.m3u8",
        )
    })?;
    let (content_type, cache) = kind_of(&file).ok_or_else(|| ApiError::not_found("this file"))?;
    if cache == SEGMENT_CACHE && is_plain_get(&request) {
        match read_whole(path.clone()).await {
            Ok(Some(body)) => {
                return Ok((
                    [
                        (header::CONTENT_TYPE, content_type),
                        (header::CACHE_CONTROL, cache),
                    ],
                    body,
                )
                    .into_response());
            }
            Ok(None) => {} // too big: stream it below
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ApiError::not_found("this file"));
            }
            Err(e) => return Err(ApiError::internal(e)),
        }
    }
    let mime = content_type.parse().expect("static mime types parse");
    let response = ServeFile::new_with_mime(&path, &mime)
        .oneshot(request)
        .await
        .map_err(ApiError::internal)?;
    if response.status() == axum::http::StatusCode::NOT_FOUND {
        return Err(ApiError::not_found("this file"));
    }
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
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

/// The file's bytes in one trip to the blocking pool; `None` if it is bigger than [`WHOLE_READ_MAX`].
async fn read_whole(path: PathBuf) -> std::io::Result<Option<Bytes>> {
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        let len = meta.len();
        if len > WHOLE_READ_MAX {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes)?;
        Ok(Some(Bytes::from(bytes)))
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::kind_of;

    #[test]
    fn each_hls_file_kind_has_its_content_type_and_cache_policy() {
        assert_eq!(
            kind_of("master.m3u8").unwrap().0,
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(kind_of("720p_00001.m4s").unwrap().0, "video/iso.segment");
        assert_eq!(kind_of("720p_init.mp4").unwrap().0, "video/mp4");
        assert_eq!(kind_of("poster.jpg").unwrap().0, "image/jpeg");
        assert!(kind_of("master.m3u8").unwrap().1.contains("max-age=1"));
        assert!(kind_of("a.m4s").unwrap().1.contains("immutable"));
        assert!(kind_of("secrets.env").is_none());
        assert!(kind_of("noext").is_none());
    }
}
