//! The tus 1.0 headers: names, what we accept in them, and how we answer.

use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use base64::{Engine, engine::general_purpose};
use sha1::{Digest, Sha1};

use crate::{
    http::error::{ApiError, ErrorCode},
    ids::VideoId,
};

pub const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
pub const TUS_VERSION: HeaderName = HeaderName::from_static("tus-version");
pub const TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
pub const TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
pub const TUS_CHECKSUM_ALGORITHM: HeaderName = HeaderName::from_static("tus-checksum-algorithm");
pub const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
pub const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
pub const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
pub const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
pub const UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");
pub const UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");
/// Names the video a completed upload became (ours, not tus').
pub const VIDEO_ID: HeaderName = HeaderName::from_static("prostream-video-id");

pub const VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
pub const CHECKSUM_ALGORITHMS: &str = "sha1";
/// The body type of PATCH, and of a POST that carries the first chunk.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// The longest `Upload-Metadata` we store.
pub const MAX_METADATA_BYTES: usize = 4096;

/// Metadata values are base64 (RFC 4648 with padding); clients differ on the padding.
const BASE64: general_purpose::GeneralPurpose = general_purpose::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    general_purpose::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Whether the request speaks tus 1.0.0.
pub fn speaks_tus(headers: &HeaderMap) -> bool {
    headers.get(TUS_RESUMABLE).is_some_and(|v| v == VERSION)
}

/// The 412 for a request without `Tus-Resumable: 1.0.0`.
pub fn version_unsupported() -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        ErrorCode::TusVersionUnsupported,
        format!("send `Tus-Resumable: {VERSION}`: this server speaks tus {VERSION} only"),
    )
}

/// A header holding a non-negative integer; `None` when absent.
fn number(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, ()> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ())?.trim();
    // `+1` and `01` parse as u64, but the tus grammar is plain digits.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    text.parse().map(Some).map_err(|_| ())
}

/// `Upload-Length` of a creation request (deferring the length is not supported).
pub fn upload_length(headers: &HeaderMap) -> Result<u64, ApiError> {
    let missing = || {
        ApiError::bad_request(
            ErrorCode::UploadLengthRequired,
            "send the size of the whole file as `Upload-Length` (a non-negative integer); \
             `Upload-Defer-Length` is not supported",
        )
    };
    if headers.contains_key(UPLOAD_DEFER_LENGTH) {
        return Err(missing());
    }
    number(headers, &UPLOAD_LENGTH)
        .map_err(|()| missing())?
        .ok_or_else(missing)
}

/// `Upload-Offset` of a PATCH.
pub fn upload_offset(headers: &HeaderMap) -> Result<u64, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            ErrorCode::InvalidUploadOffset,
            "send `Upload-Offset`: the upload's current offset (ask with HEAD), a non-negative integer",
        )
    };
    number(headers, &UPLOAD_OFFSET)
        .map_err(|()| invalid())?
        .ok_or_else(invalid)
}

/// `Content-Length`, when the client announced it.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    number(headers, &header::CONTENT_LENGTH).ok().flatten()
}

/// Whether the body is `application/offset+octet-stream`.
pub fn is_offset_octet_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

pub fn not_offset_octet_stream() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedContentType,
        format!("send the chunk as `Content-Type: {OFFSET_OCTET_STREAM}`"),
    )
}

/// `filename`, `title`, `visibility` and `downloads` of `Upload-Metadata`; the raw header is kept to answer HEAD with.
#[derive(Debug, Default, PartialEq)]
pub struct Metadata {
    pub raw: Option<String>,
    pub filename: Option<String>,
    pub title: Option<String>,
    /// `public` or `private` (checked by the caller).
    pub visibility: Option<String>,
    /// `true` or `false`: whether the worker makes the downloads (default `true`).
    pub downloads: Option<bool>,
}

/// Parses `Upload-Metadata`: comma-separated `key base64value` pairs (the value may be left out),
/// keys unique, without spaces or commas. Other keys are kept but not used.
pub fn metadata(headers: &HeaderMap) -> Result<Metadata, ApiError> {
    let invalid = |why: &str| {
        ApiError::bad_request(
            ErrorCode::InvalidUploadMetadata,
            format!("`Upload-Metadata` cannot be used: {why}"),
        )
    };
    let Some(value) = headers.get(UPLOAD_METADATA) else {
        return Ok(Metadata::default());
    };
    let raw = value.to_str().map_err(|_| invalid("it is not ASCII"))?;
    parse_metadata(raw)
}

/// Parses the text of an `Upload-Metadata` header: at creation, and again from the stored header
/// when the upload completes.
pub fn parse_metadata(raw: &str) -> Result<Metadata, ApiError> {
    let invalid = |why: &str| {
        ApiError::bad_request(
            ErrorCode::InvalidUploadMetadata,
            format!("`Upload-Metadata` cannot be used: {why}"),
        )
    };
    let raw = raw.trim();
    if raw.len() > MAX_METADATA_BYTES {
        return Err(invalid(&format!(
            "it is longer than {MAX_METADATA_BYTES} bytes"
        )));
    }
    let mut parsed = Metadata {
        raw: (!raw.is_empty()).then(|| raw.to_owned()),
        ..Metadata::default()
    };
    let mut seen = std::collections::HashSet::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, encoded) = pair.split_once(' ').unwrap_or((pair, ""));
        if !seen.insert(key) {
            return Err(invalid(&format!("the key {key:?} appears twice")));
        }
        let encoded = encoded.trim();
        if encoded.contains(' ') {
            return Err(invalid(&format!("the value of {key:?} has a space")));
        }
        let text = || -> Result<String, ApiError> {
            let bytes = BASE64
                .decode(encoded)
                .map_err(|_| invalid(&format!("the value of {key:?} is not base64")))?;
            String::from_utf8(bytes)
                .map_err(|_| invalid(&format!("the value of {key:?} is not UTF-8 text")))
        };
        match key {
            "filename" => parsed.filename = Some(text()?),
            "title" => parsed.title = Some(text()?),
            "visibility" => parsed.visibility = Some(text()?),
            "downloads" => {
                parsed.downloads = Some(match text()?.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid("the value of \"downloads\" is not true or false")),
                })
            }
            _ => {}
        }
    }
    Ok(parsed)
}

/// The SHA-1 digest a PATCH announces in `Upload-Checksum: sha1 <base64>`.
pub fn checksum(headers: &HeaderMap) -> Result<Option<[u8; 20]>, ApiError> {
    let Some(value) = headers.get(UPLOAD_CHECKSUM) else {
        return Ok(None);
    };
    let malformed = || {
        ApiError::bad_request(
            ErrorCode::InvalidUploadChecksum,
            "`Upload-Checksum` must be `sha1 <base64 of the 20-byte digest>`",
        )
    };
    let text = value.to_str().map_err(|_| malformed())?.trim();
    let (algorithm, encoded) = text.split_once(' ').ok_or_else(malformed)?;
    if algorithm != "sha1" {
        return Err(ApiError::bad_request(
            ErrorCode::UnsupportedChecksumAlgorithm,
            format!("checksum algorithm {algorithm:?} is not supported; use sha1"),
        ));
    }
    let digest = BASE64.decode(encoded.trim()).map_err(|_| malformed())?;
    digest.try_into().map(Some).map_err(|_| malformed())
}

/// A running SHA-1 over a chunk, when the client sent a checksum.
pub struct ChunkDigest {
    want: [u8; 20],
    hasher: Sha1,
}

impl ChunkDigest {
    pub fn new(want: [u8; 20]) -> Self {
        Self {
            want,
            hasher: Sha1::new(),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    pub fn matches(self) -> bool {
        self.hasher.finalize().as_slice() == self.want
    }
}

/// An RFC 9110 date (`Upload-Expires`).
pub fn http_date(at: time::OffsetDateTime) -> HeaderValue {
    let at = SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(at.unix_timestamp().max(0).unsigned_abs());
    HeaderValue::from_str(&httpdate::fmt_http_date(at)).expect("an HTTP date is a valid header")
}

/// `Prostream-Video-Id` and `Content-Location` of a completed upload.
pub fn insert_video(headers: &mut HeaderMap, video_id: VideoId) {
    headers.insert(
        VIDEO_ID,
        HeaderValue::from_str(&video_id.to_string()).expect("a UUID is a valid header"),
    );
    headers.insert(
        header::CONTENT_LOCATION,
        crate::http::wire::video_location(video_id),
    );
}

pub fn number_value(n: impl Into<u64>) -> HeaderValue {
    HeaderValue::from(n.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn metadata_values_are_base64_with_or_without_padding() {
        // "clip.mp4" and "Ünïcode title"
        let parsed = metadata(&with(
            "upload-metadata",
            "filename Y2xpcC5tcDQ=,title w5xuw69jb2RlIHRpdGxl,is_confidential",
        ))
        .unwrap();
        assert_eq!(parsed.filename.as_deref(), Some("clip.mp4"));
        assert_eq!(parsed.title.as_deref(), Some("Ünïcode title"));
        let unpadded = metadata(&with("upload-metadata", "filename Y2xpcC5tcDQ")).unwrap();
        assert_eq!(unpadded.filename.as_deref(), Some("clip.mp4"));
        assert_eq!(metadata(&HeaderMap::new()).unwrap(), Metadata::default());
    }

    #[test]
    fn bad_metadata_is_refused() {
        for bad in [
            "filename !!!",
            "filename Y2xpcC5tcDQ=,filename Y2xpcC5tcDQ=",
            "title /w==",
            "title a b",
        ] {
            let err = metadata(&with("upload-metadata", bad)).unwrap_err();
            assert_eq!(err.code(), "invalid_upload_metadata", "{bad}");
        }
    }

    #[test]
    fn checksums_name_sha1_and_carry_a_20_byte_digest() {
        // sha1("hello world"), the tus specification's example
        let digest = checksum(&with(
            "upload-checksum",
            "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=",
        ))
        .unwrap()
        .unwrap();
        let mut running = ChunkDigest::new(digest);
        running.update(b"hello ");
        running.update(b"world");
        assert!(running.matches());
        assert_eq!(
            checksum(&with("upload-checksum", "md5 XrY7u+Ae7tCTyyK7j1rNww=="))
                .unwrap_err()
                .code(),
            "unsupported_checksum_algorithm"
        );
        for bad in ["sha1", "sha1 !!", "sha1 aGVsbG8="] {
            assert_eq!(
                checksum(&with("upload-checksum", bad)).unwrap_err().code(),
                "invalid_upload_checksum",
                "{bad}"
            );
        }
    }

    #[test]
    fn lengths_and_offsets_are_plain_digits() {
        assert_eq!(upload_length(&with("upload-length", "100")).unwrap(), 100);
        for bad in ["-1", "+1", "1e3", "", "0x10", "99999999999999999999"] {
            assert!(upload_length(&with("upload-length", bad)).is_err(), "{bad}");
        }
        assert!(upload_length(&HeaderMap::new()).is_err());
        assert!(upload_length(&with("upload-defer-length", "1")).is_err());
        assert_eq!(upload_offset(&with("upload-offset", "0")).unwrap(), 0);
        assert!(upload_offset(&HeaderMap::new()).is_err());
    }

    #[test]
    fn expiry_dates_are_imf_fixdate() {
        let at = time::OffsetDateTime::from_unix_timestamp(1_403_712_000).unwrap();
        assert_eq!(http_date(at), "Wed, 25 Jun 2014 16:00:00 GMT");
    }
}
