//! The problem responses that several operations document alike, written once.
//!
//! Each is a utoipa [`IntoResponses`](utoipa::IntoResponses) type: an operation names it in the
//! `responses(…)` of its `#[utoipa::path]`, next to the statuses whose meaning is its own (a 400
//! with the codes of that operation, a 409, …), which stay written out there.

use super::error::Problem;

/// Declares each shared response: its status and description, and its headers if any, with a
/// [`Problem`] body sent as `application/problem+json`.
macro_rules! problem_responses {
    ($(
        $(#[$doc:meta])*
        $name:ident = $status:tt, $description:tt $(, headers $headers:tt)?;
    )*) => {$(
        $(#[$doc])*
        #[derive(utoipa::IntoResponses)]
        #[response(
            status = $status,
            description = $description,
            content_type = "application/problem+json"
            $(, headers $headers)?
        )]
        pub struct $name(#[allow(dead_code)] Problem);
    )*};
}

problem_responses! {
    /// No key, or one that is malformed, unknown or revoked: every `/v1` operation but playback.
    Unauthorized = 401, "`api_key_required`, `api_key_invalid`";
    /// Any operation can fail on our side.
    InternalError = 500, "`internal_error`";
    /// `/v1/videos/{id}` and what acts on it: another owner's video answers the same.
    VideoNotFound = 404, "`not_found` (also another owner's video)";
    /// `/v1/uploads/{id}` (with a body; `HEAD` documents its own, without).
    UploadNotFound = 404, "`not_found`, also another owner's upload";
    /// `/v1/webhooks/{id}` and its deliveries.
    WebhookNotFound = 404, "`not_found` (also another owner's webhook)";
    /// An HLS file that does not exist.
    FileNotFound = 404, "`not_found`";
    /// An HLS path that is not `{attempt}/{file}` with plain names.
    InvalidFileName = 400, "`invalid_file_name`";
    /// A tus request without `Tus-Resumable: 1.0.0` (with a body; `HEAD` documents its own).
    TusVersionUnsupported = 412, "`tus_version_unsupported`",
        headers(("Tus-Version" = String, description = "`1.0.0`"));
    /// The routes that read a JSON body of their own (not `POST /v1/videos`, whose 413 says more).
    JsonBodyTooLarge = 413, "`body_too_large`: a JSON body over 64 KiB";
    /// Every route: the bound is checked before routing (added to each operation in docs.rs).
    UriTooLong = 414, "`uri_too_long`: path and query over 8 KiB";
    /// Every route with a path parameter (added in docs.rs where the operation has no 400).
    InvalidPath = 400, "`invalid_path`: a path segment that is not UTF-8 once percent-decoded";
    /// Both ways of starting an upload count against the owner's uploads per day.
    UploadQuotaExceeded = 429, "`upload_quota_exceeded`",
        headers(("Retry-After" = String, description = "Seconds until the next UTC day"));
}
