//! Bounds on what a request may make the API hold before a handler decides
//! anything: JSON bodies, the URI, the parts of a multipart body other than
//! the file, and how long an upload body may stall.
//!
//! hyper itself bounds the request head (line and headers) to its read
//! buffer (about 400 KiB) and answers 431 past it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::rejection::JsonRejection,
    http::{StatusCode, Uri},
};
use futures_util::{Stream, StreamExt};

use super::error::{ApiError, ErrorCode};

/// The largest JSON body any route reads (URL ingest, PATCH, webhooks): they are a few hundred bytes.
pub const MAX_JSON_BYTES: usize = 64 << 10;
/// The longest path and query we route.
pub const MAX_URI_BYTES: usize = 8 << 10;
/// What a multipart upload may carry besides the `file` part's bytes: boundaries, part headers,
/// the `title` field and any extra fields a browser adds.
pub const MAX_MULTIPART_OVERHEAD: u64 = 64 << 10;

pub fn json_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BodyTooLarge,
        format!(
            "the JSON body is larger than {MAX_JSON_BYTES} bytes; send only the documented fields"
        ),
    )
}

/// A `Json` extractor's rejection as a problem: 413 past [`MAX_JSON_BYTES`], else 400 `invalid_json`.
pub fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return json_too_large();
    }
    ApiError::bad_request(ErrorCode::InvalidJson, rejection.body_text())
}

/// Whether `axum::body::to_bytes` failed because the body is longer than its limit (it reports
/// that as a boxed `LengthLimitError` somewhere in the error's chain), not because it broke off.
pub fn is_over_limit(err: &axum::Error) -> bool {
    std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .any(|e| e.is::<http_body_util::LengthLimitError>())
}

/// Reads a JSON body of at most [`MAX_JSON_BYTES`] (for routes where axum's
/// `DefaultBodyLimit` is lifted for uploads): stops at the limit, never buffers more.
pub async fn json_bytes(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_JSON_BYTES)
        .await
        .map_err(|err| {
            if is_over_limit(&err) {
                json_too_large()
            } else {
                ApiError::bad_request(
                    ErrorCode::UploadIncomplete,
                    format!("the body broke off before its end: {err}"),
                )
            }
        })
}

/// The 414 for a URI whose path and query are past [`MAX_URI_BYTES`]; `None` if it is within.
pub fn uri_too_long(uri: &Uri) -> Option<ApiError> {
    let len = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    (len > MAX_URI_BYTES).then(|| {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::UriTooLong,
            format!("the path and query are {len} bytes, over the limit of {MAX_URI_BYTES}"),
        )
    })
}

/// Why a guarded upload body stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tripped {
    Idle,
    Overhead,
}

/// Watches an upload body as it streams: no chunk for `idle` ends it, and (for multipart)
/// more than [`MAX_MULTIPART_OVERHEAD`] bytes read beyond the file's ends it. The reader
/// sees an error; [`BodyGuard::explain`] turns it into the right problem.
#[derive(Clone)]
pub struct BodyGuard {
    shared: Arc<Shared>,
}

struct Shared {
    idle: Duration,
    /// `None`: every byte is payload (a raw upload).
    overhead_cap: Option<u64>,
    read: AtomicU64,
    payload: AtomicU64,
    tripped: Mutex<Option<Tripped>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the upload body was stopped")]
struct Stopped;

impl BodyGuard {
    /// For a raw body: only the idle timeout applies.
    pub fn raw(idle: Duration) -> Self {
        Self::new(idle, None)
    }

    /// For a multipart body: the idle timeout and the bound on everything but the file.
    pub fn multipart(idle: Duration) -> Self {
        Self::new(idle, Some(MAX_MULTIPART_OVERHEAD))
    }

    fn new(idle: Duration, overhead_cap: Option<u64>) -> Self {
        Self {
            shared: Arc::new(Shared {
                idle,
                overhead_cap,
                read: AtomicU64::new(0),
                payload: AtomicU64::new(0),
                tripped: Mutex::new(None),
            }),
        }
    }

    /// The body's chunks, each awaited at most `idle`, counted against the overhead bound.
    pub fn wrap(
        &self,
        body: Body,
    ) -> impl Stream<Item = Result<Bytes, axum::Error>> + Send + 'static {
        let guard = self.clone();
        futures_util::stream::unfold(
            (body.into_data_stream(), guard, false),
            |(mut stream, guard, done)| async move {
                if done {
                    return None;
                }
                let next = tokio::time::timeout(guard.shared.idle, stream.next()).await;
                let item = match next {
                    Err(_) => Err(guard.trip(Tripped::Idle)),
                    Ok(None) => return None,
                    Ok(Some(Ok(bytes))) => guard.count(bytes),
                    Ok(Some(Err(err))) => Err(err),
                };
                let done = item.is_err();
                Some((item, (stream, guard, done)))
            },
        )
    }

    /// The same as a [`Body`] (for axum's `Multipart`).
    pub fn wrap_body(&self, body: Body) -> Body {
        Body::from_stream(self.wrap(body))
    }

    /// Records `n` bytes handed on as the file's: they do not count as overhead.
    pub fn add_payload(&self, n: usize) {
        self.shared.payload.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn count(&self, bytes: Bytes) -> Result<Bytes, axum::Error> {
        let shared = &self.shared;
        let read =
            shared.read.fetch_add(bytes.len() as u64, Ordering::Relaxed) + bytes.len() as u64;
        if let Some(cap) = shared.overhead_cap {
            // Bytes read ahead of the file's delivery count as overhead for a moment: a chunk
            // (hyper hands over at most its read buffer, ~400 KiB) of slack is allowed for it.
            let slack = 1 << 20;
            if read.saturating_sub(shared.payload.load(Ordering::Relaxed)) > cap + slack {
                return Err(self.trip(Tripped::Overhead));
            }
        }
        Ok(bytes)
    }

    fn trip(&self, why: Tripped) -> axum::Error {
        *self.shared.tripped.lock().expect("never poisoned") = Some(why);
        axum::Error::new(Stopped)
    }

    /// The problem for a failed read: the guard's own reason if it stopped the body, else `other`.
    pub fn explain(&self, other: ApiError) -> ApiError {
        match *self.shared.tripped.lock().expect("never poisoned") {
            Some(Tripped::Idle) => idle_timeout(self.shared.idle),
            Some(Tripped::Overhead) => overhead_too_large(),
            None => other,
        }
    }
}

pub fn idle_timeout(idle: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        ErrorCode::UploadTimeout,
        format!(
            "the upload body sent nothing for {} s (UPLOAD_IDLE_TIMEOUT_SECS); nothing was kept: \
             send it again, or use resumable uploads (/v1/uploads) on a flaky connection",
            idle.as_secs()
        ),
    )
}

pub fn overhead_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BodyTooLarge,
        format!(
            "the multipart body carries more than {MAX_MULTIPART_OVERHEAD} bytes besides the `file` \
             part (part headers, `title`, other fields); send the file and a short title only"
        ),
    )
}
