//! The one HTTP error type: RFC 9457 problem+json with a stable `code`.
//!
//! Every code is a variant of [`ErrorCode`], so the OpenAPI document lists
//! exactly the codes the handlers can send.

use axum::{
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{ingest::IngestError, media::ProbeError};

/// Declares [`ErrorCode`] with each variant's wire name and meaning, once.
macro_rules! error_codes {
    ($($variant:ident = $code:literal: $doc:literal,)*) => {
        /// Every `code` a problem response carries.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $(#[doc = $doc] $variant,)*
        }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    NotFound = "not_found": "No such video or file (also for malformed ids), or no such `/v1` route.",
    InvalidCursor = "invalid_cursor": "The `cursor` is not a video id from an earlier page.",
    InvalidLimit = "invalid_limit": "`limit` is not a number from 1 to 100.",
    InvalidStatus = "invalid_status": "`status` is not one of the job states.",
    InvalidTitle = "invalid_title": "The title is empty, longer than 200 characters, or holds a control character (newline, escape…), U+2028/U+2029 or a bidi embedding, override or isolate (U+202A-U+202E, U+2066-U+2069).",
    InvalidQuery = "invalid_query": "The query string cannot be read (e.g. a parameter given twice).",
    InvalidPath = "invalid_path": "The path is not valid UTF-8 once percent-decoded.",
    InvalidJson = "invalid_json": "The JSON body cannot be read (URL ingest, webhooks).",
    InvalidUrl = "invalid_url": "Not an http or https URL without credentials (URL ingest, webhooks).",
    UrlForbidden = "url_forbidden": "The URL names an internal address (loopback, private, link-local…) not in URL_INGEST_ALLOW_HOSTS (WEBHOOK_ALLOW_HOSTS for webhooks).",
    InvalidEvents = "invalid_events": "A webhook's `events` is empty or names an unknown event (video.playable, video.ready, video.failed, video.canceled, video.captions_changed).",
    InvalidFileName = "invalid_file_name": "An HLS path that is not a plain file name.",
    InvalidMultipart = "invalid_multipart": "The multipart body cannot be parsed.",
    MissingFile = "missing_file": "The multipart body has no `file` part.",
    UploadIncomplete = "upload_incomplete": "The body broke off before its end.",
    UploadTooLarge = "upload_too_large": "The body is larger than MAX_UPLOAD_BYTES.",
    UnsupportedContentType = "unsupported_content_type": "The body's Content-Type is not one the route reads: multipart/form-data, video/*, audio/* or application/octet-stream for uploads; text/vtt, application/x-subrip or text/plain for captions.",
    EmptyUpload = "empty_upload": "The body is empty.",
    UnsupportedMedia = "unsupported_media": "Not a video or audio file ffprobe accepts.",
    StillImage = "still_image": "A picture (PNG, JPEG, …), not a video or audio file.",
    TruncatedMedia = "truncated_media": "The file ends before its media does (a cut-off upload, a missing MP4 index, an index pointing past the end).",
    CorruptMedia = "corrupt_media": "The file is damaged (e.g. its MP4 sample table or stream list).",
    NoMediaStreams = "no_media_streams": "The file has no audio or video stream.",
    DimensionsTooSmall = "dimensions_too_small": "A side of the picture is below 16 pixels.",
    DimensionsExceeded = "dimensions_exceeded": "Wider or taller than MAX_WIDTH/MAX_HEIGHT.",
    DurationExceeded = "duration_exceeded": "Longer than MAX_DURATION_SECS.",
    FrameRateExceeded = "frame_rate_exceeded": "Faster than MAX_FRAME_RATE.",
    ImplausibleTiming = "implausible_timing": "The file's declared duration and its frames disagree (timestamps jumping far ahead of a video-only stream's frames, or more frames than the duration holds).",
    WorkBudgetExceeded = "work_budget_exceeded": "Decoding and encoding the source (frames × width × height) is more than MAX_DECODE_PIXELS.",
    ProbeTimeout = "probe_timeout": "ffprobe took longer than PROBE_TIMEOUT_SECS.",
    TusVersionUnsupported = "tus_version_unsupported": "A tus request without `Tus-Resumable: 1.0.0` (412).",
    UploadLengthRequired = "upload_length_required": "A tus creation without a valid `Upload-Length` (deferred lengths are not supported).",
    InvalidUploadMetadata = "invalid_upload_metadata": "`Upload-Metadata` is not `key base64`, comma-separated, with unique keys and UTF-8 values.",
    InvalidUploadOffset = "invalid_upload_offset": "A PATCH without a valid `Upload-Offset`.",
    UploadOffsetMismatch = "upload_offset_mismatch": "`Upload-Offset` is not the upload's current offset (ask with HEAD) (409).",
    UploadLengthExceeded = "upload_length_exceeded": "The chunk goes past the upload's `Upload-Length` (413).",
    UploadLocked = "upload_locked": "Another request is writing to this upload (423).",
    UploadExpired = "upload_expired": "The upload was not finished before `Upload-Expires` (410).",
    UploadTimeout = "upload_timeout": "The upload body (raw, multipart or tus) sent nothing for UPLOAD_IDLE_TIMEOUT_SECS (408); a tus PATCH keeps what arrived, other uploads keep nothing.",
    InvalidUploadChecksum = "invalid_upload_checksum": "`Upload-Checksum` is not `sha1 <base64 of 20 bytes>`.",
    UnsupportedChecksumAlgorithm = "unsupported_checksum_algorithm": "An `Upload-Checksum` algorithm other than sha1.",
    ChecksumMismatch = "checksum_mismatch": "The chunk does not match its `Upload-Checksum`; it was discarded (460).",
    NotCancelable = "not_cancelable": "Only queued or processing videos can be canceled.",
    NotRetryable = "not_retryable": "Only failed or canceled videos can be retried.",
    NotReady = "not_ready": "Postgres or Redis does not answer (`/readyz`).",
    ApiKeyRequired = "api_key_required": "No `Authorization: Bearer KEY` header (401). Create a key with `prostream keys create`.",
    ApiKeyInvalid = "api_key_invalid": "The key is malformed, unknown or revoked (401).",
    Forbidden = "forbidden": "The key is valid but may not do this (403), e.g. an admin-only action.",
    InvalidVisibility = "invalid_visibility": "`visibility` is not `public` or `private`.",
    StorageQuotaExceeded = "storage_quota_exceeded": "The upload would take the owner past its stored-bytes quota (413); delete videos or ask an operator to raise it.",
    UploadQuotaExceeded = "upload_quota_exceeded": "The owner has used its uploads for today (UTC) (429); `Retry-After` says when the next day starts.",
    PlaybackTokenRequired = "playback_token_required": "An HLS file of a video that is not public, without a token (403): use the signed URL in `playback.hls`. Unknown videos answer the same.",
    PlaybackTokenInvalid = "playback_token_invalid": "The playback token is malformed, tampered with, signed by a key no longer configured, or for another video (403).",
    PlaybackTokenExpired = "playback_token_expired": "The playback token is authentic but past its expiry (403): read the video again for a fresh URL.",
    BodyTooLarge = "body_too_large": "A JSON body over 64 KiB, or a multipart body whose parts other than `file` (headers, fields) exceed 64 KiB (413).",
    UriTooLong = "uri_too_long": "The path and query are longer than 8 KiB (414).",
    InvalidLanguage = "invalid_language": "A caption's `language` is not a language tag (`LanguageTag`: `en`, `eng`, `pt-BR`).",
    InvalidLabel = "invalid_label": "A caption's `label` breaks the rules of a `Title` (empty, over 200 characters, a control or bidi-override character).",
    InvalidKind = "invalid_kind": "A caption's `kind` is neither `subtitles` nor `captions`.",
    InvalidCaptions = "invalid_captions": "The caption file is not UTF-8 WebVTT or SubRip, or holds a mistake; the detail names its line (422).",
    CaptionsTooLarge = "captions_too_large": "The caption file is larger than 1 MiB (413).",
    CaptionLabelTaken = "caption_label_taken": "The video has a caption with this label already (409).",
    TooManyCaptions = "too_many_captions": "The video has 16 captions, the most it may have (409).",
    InternalError = "internal_error": "A failure on our side; the log has the cause.",
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    detail: String,
    /// Sent with the problem: `WWW-Authenticate` on a 401, `Retry-After` on a 429, …
    /// (A list rather than a `HeaderMap`: it keeps `ApiError`, which every handler returns, small.)
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Logged, never sent: the cause of a 5xx.
    source: Option<anyhow::Error>,
}

/// An RFC 9457 problem document.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: `code` says what went wrong.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status' reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong and what to do about it, for people.
    pub detail: String,
    /// What went wrong, for programs; stable.
    pub code: ErrorCode,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            headers: Vec::new(),
            source: None,
        }
    }

    /// Adds a header to the response.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} does not exist"),
        )
    }

    pub fn bad_request(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// An unexpected failure: the client gets a generic 500, the log gets the cause chain.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self {
            source: Some(err.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::InternalError,
                "something went wrong on our side; try again later",
            )
        }
    }

    pub fn unavailable(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, detail)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code.as_str()
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(err)
    }
}

impl From<ProbeError> for ApiError {
    fn from(err: ProbeError) -> Self {
        let (status, code) = match &err {
            ProbeError::Unavailable(_) => return Self::internal(err),
            ProbeError::Unsupported(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMedia,
            ),
            ProbeError::StillImage(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::StillImage)
            }
            ProbeError::DimensionsTooSmall(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::DimensionsTooSmall,
            ),
            ProbeError::Empty => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::EmptyUpload),
            ProbeError::Truncated(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::TruncatedMedia)
            }
            ProbeError::Corrupt(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::CorruptMedia),
            ProbeError::NoStreams => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::NoMediaStreams),
            ProbeError::DimensionsExceeded(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::DimensionsExceeded,
            ),
            ProbeError::DurationExceeded(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::DurationExceeded,
            ),
            ProbeError::FrameRateExceeded(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::FrameRateExceeded,
            ),
            ProbeError::ImplausibleTiming(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ImplausibleTiming,
            ),
            ProbeError::WorkBudgetExceeded(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::WorkBudgetExceeded,
            ),
            ProbeError::TimedOut(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::ProbeTimeout),
        };
        debug_assert_eq!(code.as_str(), err.code());
        Self::new(status, code, err.to_string())
    }
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        let detail = err.to_string();
        let (status, code) = match err {
            IngestError::Probe(probe) => return probe.into(),
            IngestError::InvalidTitle(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidTitle),
            IngestError::InvalidVisibility(_) => {
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidVisibility)
            }
            IngestError::InvalidUrl(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidUrl),
            IngestError::UrlForbidden(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::UrlForbidden)
            }
            IngestError::StorageQuotaExceeded { .. } | IngestError::CutOffAtQuota { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::StorageQuotaExceeded,
            ),
            IngestError::UploadQuotaExceeded {
                retry_after_secs, ..
            } => {
                return Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::UploadQuotaExceeded,
                    detail,
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            other @ (IngestError::LostUpload(_)
            | IngestError::Database(_)
            | IngestError::Storage(_)) => return Self::internal(other),
        };
        Self::new(status, code, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            match &self.source {
                Some(source) => {
                    tracing::error!(code = self.code.as_str(), error = ?source, "request failed")
                }
                None => {
                    tracing::warn!(code = self.code.as_str(), detail = %self.detail, "request failed")
                }
            }
        }
        let body = Problem {
            kind: "about:blank".to_owned(),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_serialises_as_its_wire_name() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                code.as_str(),
                "{code:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_500_hides_its_cause() {
        let response = ApiError::internal(anyhow::anyhow!("password=hunter2")).into_response();
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("hunter2"));
        assert!(text.contains(r#""code":"internal_error""#));
    }
}
