//! Why ingest refused a file or a request: each variant has its stable `code`, and
//! `http::error` maps each to its status.

use crate::{ids::UploadId, media::ProbeError};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The probe refused the file (or could not run).
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("{0}")]
    InvalidTitle(String),
    #[error("{0}")]
    InvalidVisibility(String),
    /// Not a URL URL ingest can fetch (malformed, a scheme other than http, credentials…).
    #[error("{0}")]
    InvalidUrl(String),
    /// A URL naming an internal address that URL_INGEST_ALLOW_HOSTS does not allow.
    #[error("{0}")]
    UrlForbidden(String),
    #[error(
        "this owner stores {stored} of its {max} bytes; {bytes} more do not fit. Delete \
         videos, or ask an operator to raise the quota (`prostream keys quota`)"
    )]
    StorageQuotaExceeded { stored: u64, max: u64, bytes: u64 },
    /// A body of unknown length outgrew the room its owner's quota had left.
    #[error(
        "the upload is larger than the {room} bytes this owner's storage quota has left; \
         nothing was kept. Delete videos, or ask an operator to raise the quota \
         (`prostream keys quota`)"
    )]
    CutOffAtQuota { room: u64 },
    #[error(
        "this owner has started its {per_day} uploads for today (UTC); the count starts \
         again in {retry_after_secs} s, or an operator can raise it with `prostream keys quota`"
    )]
    UploadQuotaExceeded { per_day: u32, retry_after_secs: u64 },
    /// Another request took over the resumable upload while its video was being recorded.
    #[error("lost the lease on upload {0} while recording its video")]
    LostUpload(UploadId),
    #[error("the database failed")]
    Database(#[from] sqlx::Error),
    /// The store (volume or S3) failed.
    #[error("the store failed")]
    Storage(#[source] anyhow::Error),
}

impl IngestError {
    /// The stable code, as problem documents and `videos.error_code` carry it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Probe(err) => err.code(),
            Self::InvalidTitle(_) => "invalid_title",
            Self::InvalidVisibility(_) => "invalid_visibility",
            Self::InvalidUrl(_) => "invalid_url",
            Self::UrlForbidden(_) => "url_forbidden",
            Self::StorageQuotaExceeded { .. } | Self::CutOffAtQuota { .. } => {
                "storage_quota_exceeded"
            }
            Self::UploadQuotaExceeded { .. } => "upload_quota_exceeded",
            Self::LostUpload(_) | Self::Database(_) | Self::Storage(_) => "internal_error",
        }
    }

    /// Whether the refusal is the input's fault (never retried) rather than ours.
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Probe(err) => !matches!(err, ProbeError::Unavailable(_)),
            Self::LostUpload(_) | Self::Database(_) | Self::Storage(_) => false,
            _ => true,
        }
    }
}
