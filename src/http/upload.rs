//! Receiving an upload body onto disk: streamed in chunks, counted against the
//! cap, and fsynced before anything refers to it. Memory stays flat whatever
//! the size; a body that breaks off is an error, never a short file.

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, Multipart, Request, multipart::Field},
    http::{StatusCode, header},
};

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::{
    error::{ApiError, ErrorCode},
    limits::BodyGuard,
};
use crate::storage::TempFile;

/// The longest `title` or `visibility` form field we read.
const MAX_FIELD_BYTES: usize = 1024;

/// Bytes gathered before each write to disk. Every upload in flight holds this twice (here and
/// in tokio's `File`, which copies what it writes): with 1 MiB, sixteen concurrent uploads took
/// the API from 56 to 100 MB (benchmark 6b), while writes this size already keep up with the disk.
pub const WRITE_BUFFER_BYTES: usize = 256 << 10;

/// An upload safely on disk, not yet probed.
#[derive(Debug)]
pub struct Received {
    pub file: TempFile,
    pub size: u64,
    /// The client's file name (multipart only), a fallback title.
    pub filename: Option<String>,
    /// The `title` form field (multipart only).
    pub title: Option<String>,
    /// The `visibility` form field (multipart only), not yet checked.
    pub visibility: Option<String>,
}

/// How the client sent the file.
pub enum BodyKind {
    Multipart,
    Raw,
}

/// Accepts `multipart/form-data`, `video/*`, `audio/*` and `application/octet-stream`.
pub fn body_kind(request: &Request) -> Result<BodyKind, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match essence {
        "multipart/form-data" => Ok(BodyKind::Multipart),
        "application/octet-stream" => Ok(BodyKind::Raw),
        t if t.starts_with("video/") || t.starts_with("audio/") => Ok(BodyKind::Raw),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedContentType,
            format!(
                "Content-Type {essence:?} is not accepted; send the file as multipart/form-data \
                 (part `file`), video/*, audio/* or application/octet-stream"
            ),
        )),
    }
}

/// Refuses early when the client announces more than the cap, before reading a byte.
pub fn check_announced_length(request: &Request, cap: u64) -> Result<(), ApiError> {
    match announced_length(request) {
        Some(len) if len > cap => Err(too_large(cap)),
        _ => Ok(()),
    }
}

/// The body's `Content-Length`, when the client announced one.
pub fn announced_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

pub fn too_large(cap: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UploadTooLarge,
        format!("the upload is larger than the limit of {cap} bytes (MAX_UPLOAD_BYTES)"),
    )
}

pub async fn receive_raw(
    body: Body,
    file: TempFile,
    cap: u64,
    idle: Duration,
) -> Result<Received, ApiError> {
    let guard = BodyGuard::raw(idle);
    let size = write_stream(Box::pin(guard.wrap(body)), &file, cap)
        .await
        .map_err(|err| guard.explain(err))?;
    Ok(Received {
        file,
        size,
        filename: None,
        title: None,
        visibility: None,
    })
}

pub async fn receive_multipart(
    request: Request,
    file: TempFile,
    cap: u64,
    idle: Duration,
) -> Result<Received, ApiError> {
    // multer buffers a part's headers until they end and a field until it is read: the guard
    // bounds all bytes but the file's, so neither can grow with the body.
    let guard = BodyGuard::multipart(idle);
    let request = request.map(|body| guard.wrap_body(body));
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidMultipart, e.body_text()))?;
    read_parts(&mut multipart, &file, cap, &guard)
        .await
        .map_err(|err| guard.explain(err))
        .map(|parts| Received {
            file,
            size: parts.size,
            filename: parts.filename,
            title: parts.title,
            visibility: parts.visibility,
        })
}

/// What [`read_parts`] found besides the file's bytes.
struct Parts {
    size: u64,
    filename: Option<String>,
    title: Option<String>,
    visibility: Option<String>,
}

/// The `file` part's size and name, and the `title` and `visibility` fields.
async fn read_parts(
    multipart: &mut Multipart,
    file: &TempFile,
    cap: u64,
    guard: &BodyGuard,
) -> Result<Parts, ApiError> {
    let mut size = None;
    let mut filename = None;
    let mut title = None;
    let mut visibility = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("file") if size.is_none() => {
                filename = field.file_name().map(str::to_owned);
                let chunks = field.map(|chunk| {
                    let chunk = chunk.map_err(multipart_error)?;
                    guard.add_payload(chunk.len());
                    Ok(chunk)
                });
                size = Some(write_chunks(chunks, file, cap).await?);
            }
            Some("title") => title = Some(read_field(field, ErrorCode::InvalidTitle).await?),
            Some("visibility") => {
                visibility = Some(read_field(field, ErrorCode::InvalidVisibility).await?);
            }
            // Unknown parts are drained and ignored, as browsers send extras.
            _ => {}
        }
    }
    let size = size.ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::MissingFile,
            "the multipart body has no part named `file`",
        )
    })?;
    Ok(Parts {
        size,
        filename,
        title,
        visibility,
    })
}

/// A text field, read chunk by chunk: refused with `code` as soon as it passes
/// [`MAX_FIELD_BYTES`], or when it is not UTF-8.
async fn read_field(mut field: Field<'_>, code: ErrorCode) -> Result<String, ApiError> {
    let name = field.name().unwrap_or_default().to_owned();
    let mut text = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if text.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(ApiError::bad_request(
                code,
                format!("the {name} field is longer than {MAX_FIELD_BYTES} bytes"),
            ));
        }
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text)
        .map_err(|_| ApiError::bad_request(code, format!("the {name} field is not UTF-8 text")))
}

fn multipart_error(err: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::bad_request(
        ErrorCode::UploadIncomplete,
        format!(
            "the multipart body could not be read to its end: {}",
            err.body_text()
        ),
    )
}

async fn write_stream<E: std::fmt::Display>(
    stream: impl Stream<Item = Result<Bytes, E>> + Unpin,
    file: &TempFile,
    cap: u64,
) -> Result<u64, ApiError> {
    let chunks = stream.map(|chunk| {
        chunk.map_err(|e| {
            ApiError::bad_request(
                ErrorCode::UploadIncomplete,
                format!("the upload broke off before its end: {e}"),
            )
        })
    });
    write_chunks(chunks, file, cap).await
}

async fn write_chunks(
    mut chunks: impl Stream<Item = Result<Bytes, ApiError>> + Unpin,
    file: &TempFile,
    cap: u64,
) -> Result<u64, ApiError> {
    let out = tokio::fs::File::create(file.path())
        .await
        .map_err(ApiError::internal)?;
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, out);
    let mut written: u64 = 0;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        if written > cap {
            return Err(too_large(cap));
        }
        out.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    out.flush().await.map_err(ApiError::internal)?;
    out.into_inner()
        .sync_data()
        .await
        .map_err(ApiError::internal)?;
    Ok(written)
}
