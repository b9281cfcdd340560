//! `/v1/uploads`: resumable uploads, tus 1.0.0 (core, creation,
//! creation-with-upload, termination, expiration, checksum with sha1).
//!
//! State lives in Postgres (`uploads`), bytes in `MEDIA_ROOT/uploads/.tus/{id}`:
//! the offset survives a restart of the API. A request that writes, completes
//! or deletes an upload holds a lease on its row ([`lease`]), so concurrent
//! PATCHes are refused with 423, across replicas. When the last byte arrives the
//! upload becomes a video through the same path as `POST /v1/videos`
//! ([`complete`]); the final response, and any HEAD after it, names the video.
//!
//! Work that changes an upload runs in a task of its own: a client that
//! disconnects drops the handler, not the bookkeeping of what it sent.

mod complete;
pub mod headers;
mod lease;
mod receive;

use std::future::Future;

use axum::{
    body::Body,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use self::{
    headers::{
        ChunkDigest, TUS_CHECKSUM_ALGORITHM, TUS_EXTENSION, TUS_MAX_SIZE, TUS_RESUMABLE,
        TUS_VERSION, UPLOAD_EXPIRES, UPLOAD_LENGTH, UPLOAD_METADATA, UPLOAD_OFFSET,
    },
    lease::Lease,
    receive::{Chunk, Ending, Received},
};
use super::{
    AppState,
    auth::Caller,
    error::{ApiError, ErrorCode, Problem},
    extract::Id,
    responses::{
        InternalError, TusVersionUnsupported, Unauthorized, UploadNotFound, UploadQuotaExceeded,
    },
    upload,
    wire::BinaryFile,
};
use crate::{
    db::{
        self,
        uploads::{NewUpload, UploadRow},
    },
    ids::UploadId,
    ingest::{self, quotas},
};

pub fn router() -> OpenApiRouter<AppState> {
    // Chunks are streamed to disk; the upload's length bounds them, not axum's 2 MB default.
    let (schemas, paths, creation) = routes!(tus_options, create_upload);
    let (schemas2, paths2, resource) = routes!(head_upload, patch_upload, delete_upload);
    // The protocol check wraps each method's handler, not the path: a method the path does not
    // have gets axum's 405 with `Allow` whatever its headers (not a 412 for lacking tus').
    let speak_tus = |methods: axum::routing::MethodRouter<AppState>| {
        methods
            .route_layer(middleware::from_fn(protocol))
            .layer(DefaultBodyLimit::disable())
    };
    let mut router = OpenApiRouter::new()
        .routes((schemas, paths, speak_tus(creation)))
        .routes((schemas2, paths2, speak_tus(resource)));
    optional_parts(&mut router.get_openapi_mut().paths);
    router
}

/// Marks what the annotations cannot as optional (as a type, `Option<String>` would make a header
/// nullable): the bodies (a creation without bytes and an empty PATCH to finish are valid) and the
/// `Upload-Metadata` and `Upload-Checksum` headers.
fn optional_parts(paths: &mut utoipa::openapi::Paths) {
    use utoipa::openapi::Required;
    for (path, item) in paths.paths.iter_mut() {
        if !path.starts_with("/v1/uploads") {
            continue;
        }
        for operation in [item.post.as_mut(), item.patch.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(body) = operation.request_body.as_mut() {
                body.required = Some(Required::False);
            }
            for parameter in operation.parameters.iter_mut().flatten() {
                if matches!(
                    parameter.name.as_str(),
                    "Upload-Metadata" | "Upload-Checksum"
                ) {
                    parameter.required = Required::False;
                }
            }
        }
    }
}

/// Every tus response says `Tus-Resumable: 1.0.0`; every request but OPTIONS must say it too.
async fn protocol(request: Request, next: Next) -> Response {
    let mut response =
        if request.method() == Method::OPTIONS || headers::speaks_tus(request.headers()) {
            next.run(request).await
        } else {
            let mut refusal = headers::version_unsupported().into_response();
            refusal
                .headers_mut()
                .insert(TUS_VERSION, HeaderValue::from_static(headers::VERSION));
            refusal
        };
    response
        .headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(headers::VERSION));
    response
}

/// The tus protocol version of the request: always `1.0.0`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // described, never built: the middleware checks the header
pub enum TusResumable {
    #[serde(rename = "1.0.0")]
    V1_0_0,
}

/// What the server supports: versions, extensions, checksum algorithms and the largest upload.
#[utoipa::path(options, path = "/v1/uploads", tag = "uploads",
    responses(
        (status = 204, description = "The server's tus configuration", headers(
            ("Tus-Resumable" = String, description = "`1.0.0`"),
            ("Tus-Version" = String, description = "`1.0.0`"),
            ("Tus-Extension" = String, description = "`creation,creation-with-upload,termination,expiration,checksum`"),
            ("Tus-Checksum-Algorithm" = String, description = "`sha1`"),
            ("Tus-Max-Size" = String, description = "MAX_UPLOAD_BYTES"),
        )),
        Unauthorized,
    ),
    security(("api_key" = [])))]
pub async fn tus_options(State(state): State<AppState>, _caller: Caller) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    out.insert(TUS_VERSION, HeaderValue::from_static(headers::VERSION));
    out.insert(TUS_EXTENSION, HeaderValue::from_static(headers::EXTENSIONS));
    out.insert(
        TUS_CHECKSUM_ALGORITHM,
        HeaderValue::from_static(headers::CHECKSUM_ALGORITHMS),
    );
    out.insert(
        TUS_MAX_SIZE,
        headers::number_value(state.limits.max_upload_bytes),
    );
    response
}

/// Create an upload (tus creation). With `Content-Type: application/offset+octet-stream` the body
/// is its first chunk (creation-with-upload) or the whole file, which then becomes a video at once.
#[utoipa::path(post, path = "/v1/uploads", tag = "uploads",
    params(
        ("Tus-Resumable" = TusResumable, Header, description = "`1.0.0`; anything else gets 412"),
        ("Upload-Length" = String, Header, pattern = "^[0-9]+$",
         description = "Size of the whole file in bytes (digits), at most MAX_UPLOAD_BYTES"),
        ("Upload-Metadata" = String, Header, description = "Comma-separated `key base64(value)` pairs; \
          `filename` and `title` (1-200 characters, no control or bidi-override characters) are used, other keys are kept"),
        ("Upload-Checksum" = String, Header, description = "`sha1 <base64 digest>` of the body, when it carries a chunk"),
    ),
    request_body(description = "Optionally, the first bytes of the file (creation-with-upload)",
        content((BinaryFile = "application/offset+octet-stream"))),
    responses(
        (status = 201, description = "Created; upload the rest with PATCH", headers(
            ("Location" = String, description = "The upload's URL, `/v1/uploads/{id}`"),
            ("Upload-Offset" = String, description = "Bytes stored so far, when the request carried some"),
            ("Upload-Expires" = String, description = "When the unfinished upload is deleted (RFC 9110 date)"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
            ("Prostream-Video-Id" = String, description = "When the body completed the upload: the new video's id"),
            ("Content-Location" = String, description = "When the body completed the upload: `/v1/videos/{id}`"),
        )),
        (status = 400, description = "`upload_length_required`, `invalid_upload_metadata`, `invalid_title`, \
          `invalid_upload_checksum`, `unsupported_checksum_algorithm`, `upload_incomplete`",
         body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        TusVersionUnsupported,
        (status = 413, description = "`upload_too_large` (Upload-Length over MAX_UPLOAD_BYTES), \
          `upload_length_exceeded` (a body longer than Upload-Length), `storage_quota_exceeded`", body = Problem,
          content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media` (the whole file came and is not media)",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`empty_upload` (Upload-Length 0) and the other refusals of POST /v1/videos",
         body = Problem, content_type = "application/problem+json"),
        UploadQuotaExceeded,
        (status = 460, description = "`checksum_mismatch`: nothing was created", body = Problem,
         content_type = "application/problem+json"),
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn create_upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let length = headers::upload_length(&headers)?;
    let cap = state.limits.max_upload_bytes;
    if length > cap {
        return Err(upload::too_large(cap));
    }
    if length == 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::EmptyUpload,
            "Upload-Length is 0: an empty file is not a video",
        ));
    }
    let meta = headers::metadata(&headers)?;
    if let Some(title) = &meta.title {
        ingest::choose_title(Some(title.clone()), None)?;
    }
    let visibility =
        ingest::parse_visibility(meta.visibility.as_deref(), state.policy.default_visibility)?;
    let with_upload = headers::is_offset_octet_stream(&headers);
    let digest = if with_upload {
        headers::checksum(&headers)?.map(ChunkDigest::new)
    } else {
        None
    };
    if with_upload && headers::content_length(&headers).is_some_and(|n| n > length) {
        return Err(length_exceeded(length));
    }
    // The whole length counts against the storage quota from now on.
    state
        .ingest
        .admit_upload(caller.owner_id, Some(length))
        .await?;
    let new = NewUpload {
        id: UploadId::generate(),
        length: length as i64,
        metadata: meta.raw,
        filename: meta.filename,
        title: meta.title,
        owner_id: caller.owner_id,
        visibility,
        expiry: state.limits.upload_expiry(),
    };
    detached(create(state, new, with_upload.then_some((digest, body)))).await
}

async fn create(
    state: AppState,
    new: NewUpload,
    first_chunk: Option<(Option<ChunkDigest>, Body)>,
) -> Result<Response, ApiError> {
    let id = new.id;
    let path = state.media.tus_path(id);
    tokio::fs::create_dir_all(state.media.tus_dir())
        .await
        .map_err(ApiError::internal)?;
    let token = Uuid::now_v7();
    // The quota check and the reservation (the upload's row, whose length counts as stored) are
    // one step under the owner's row lock: parallel creations cannot all take the last bytes.
    let mut tx = state.pool.begin().await?;
    if let Some(owner_id) = new.owner_id {
        let length = new.length.max(0) as u64;
        quotas::reserve_storage(&mut tx, &state.policy, owner_id, length).await?;
    }
    let expires_at = db::uploads::insert(&mut tx, &new, token, lease::LEASE).await?;
    tx.commit().await?;
    let lease = Lease::held(state.pool.clone(), id, token);
    let mut response = StatusCode::CREATED.into_response();
    let out = response.headers_mut();
    out.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/uploads/{id}")).expect("a UUID path is a valid header"),
    );
    out.insert(UPLOAD_EXPIRES, headers::http_date(expires_at));
    let Some((digest, body)) = first_chunk else {
        tokio::fs::File::create(&path)
            .await
            .map_err(ApiError::internal)?;
        lease.release().await;
        tracing::info!(upload_id = %id, length = new.length, "resumable upload created");
        return Ok(response);
    };
    let chunk = Chunk {
        idle: state.limits.upload_idle_timeout(),
        start: 0,
        length: new.length as u64,
        digest,
    };
    let received = receive::receive(&state.pool, &lease, &path, chunk, body).await;
    let offset = match received {
        Ok(Received {
            offset,
            ending: Ending::Whole,
        }) => offset,
        // The client never learns the URL of an upload whose creation failed: create nothing.
        failed => {
            complete::discard(&state, lease, None).await?;
            if let Ok(Received {
                ending: Ending::Idle,
                ..
            }) = failed
            {
                return Err(crate::http::limits::idle_timeout(
                    state.limits.upload_idle_timeout(),
                ));
            }
            return Err(failed.err().unwrap_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::UploadIncomplete,
                    "the body broke off before its end; nothing was created",
                )
            }));
        }
    };
    out.insert(UPLOAD_OFFSET, headers::number_value(offset));
    tracing::info!(upload_id = %id, length = new.length, offset, "resumable upload created");
    if offset < new.length as u64 {
        lease.release().await;
        return Ok(response);
    }
    let row = UploadRow {
        id,
        upload_length: new.length,
        upload_offset: new.length,
        metadata: new.metadata,
        filename: new.filename,
        title: new.title,
        expires_at,
        reserved_video_id: None,
        video_id: None,
        owner_id: new.owner_id,
        visibility: Some(new.visibility),
        locked: true,
    };
    let video_id = complete::finish(&state, lease, &row).await?;
    out.remove(UPLOAD_EXPIRES);
    headers::insert_video(out, video_id);
    Ok(response)
}

/// The upload's offset (where to resume), length and metadata; once complete, the video it became.
/// An upload whose last byte arrived but whose video was not recorded (the API stopped in between)
/// is finished now.
#[utoipa::path(head, path = "/v1/uploads/{id}", tag = "uploads",
    params(
        ("id" = String, Path, description = "The upload's id, from `Location`"),
        ("Tus-Resumable" = TusResumable, Header, description = "`1.0.0`; anything else gets 412"),
    ),
    responses(
        (status = 200, description = "The upload's state (no body)", headers(
            ("Upload-Offset" = String, description = "Bytes stored: resume here"),
            ("Upload-Length" = String, description = "Size of the whole file"),
            ("Upload-Metadata" = String, description = "As sent at creation, if any"),
            ("Upload-Expires" = String, description = "While unfinished: when it is deleted"),
            ("Cache-Control" = String, description = "`no-store`"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
            ("Prostream-Video-Id" = String, description = "Once complete: the video's id"),
            ("Content-Location" = String, description = "Once complete: `/v1/videos/{id}`"),
        )),
        (status = 401, description = "`api_key_required`, `api_key_invalid` (no body)"),
        (status = 404, description = "`not_found`, also another owner's upload (no body)"),
        (status = 410, description = "`upload_expired`: unfinished past `Upload-Expires` (no body)"),
        (status = 412, description = "`tus_version_unsupported` (no body)",
         headers(("Tus-Version" = String, description = "`1.0.0`"))),
        (status = 415, description = "`unsupported_media`: the completed file was refused and deleted (no body)"),
        (status = 422, description = "The completed file was refused and deleted, as by POST /v1/videos (no body)"),
        (status = 500, description = "`internal_error` (no body)"),
    ),
    security(("api_key" = [])))]
pub async fn head_upload(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<UploadId>,
) -> Result<Response, ApiError> {
    detached(head(state, caller, id)).await
}

async fn head(state: AppState, caller: Caller, id: UploadId) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let mut row = db::uploads::get(&mut conn, id)
        .await?
        .filter(|row| caller.may_see(row.owner_id))
        .ok_or_else(not_found)?;
    drop(conn);
    if row.is_expired() {
        return Err(expired());
    }
    if row.is_complete() && row.video_id.is_none() && !row.locked {
        // Unless somebody else is finishing it right now.
        if let Some((lease, fresh)) = Lease::acquire(&state.pool, id).await? {
            row = fresh;
            match row.video_id {
                None => row.video_id = Some(complete::finish(&state, lease, &row).await?),
                Some(_) => lease.release().await,
            }
        }
    }
    let mut response = StatusCode::OK.into_response();
    let out = response.headers_mut();
    out.insert(
        UPLOAD_OFFSET,
        headers::number_value(row.upload_offset as u64),
    );
    out.insert(
        UPLOAD_LENGTH,
        headers::number_value(row.upload_length as u64),
    );
    if let Some(raw) = row
        .metadata
        .as_deref()
        .and_then(|m| HeaderValue::from_str(m).ok())
    {
        out.insert(UPLOAD_METADATA, raw);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match row.video_id {
        Some(video_id) => headers::insert_video(out, video_id),
        None => {
            out.insert(UPLOAD_EXPIRES, headers::http_date(row.expires_at));
        }
    }
    Ok(response)
}

/// Append a chunk at `Upload-Offset`. Bytes that arrive are kept even when the body breaks off
/// (HEAD tells where to resume). The response to the last chunk names the video.
#[utoipa::path(patch, path = "/v1/uploads/{id}", tag = "uploads",
    params(
        ("id" = String, Path, description = "The upload's id, from `Location`"),
        ("Tus-Resumable" = TusResumable, Header, description = "`1.0.0`; anything else gets 412"),
        ("Upload-Offset" = String, Header, pattern = "^[0-9]+$",
         description = "The upload's current offset (digits; from HEAD or the last PATCH)"),
        ("Upload-Checksum" = String, Header, description = "`sha1 <base64 digest>` of this chunk; \
          a mismatch discards it (460)"),
    ),
    request_body(description = "The next bytes of the file",
        content((BinaryFile = "application/offset+octet-stream"))),
    responses(
        (status = 204, description = "Stored", headers(
            ("Upload-Offset" = String, description = "The new offset"),
            ("Upload-Expires" = String, description = "While unfinished: when it is deleted"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
            ("Prostream-Video-Id" = String, description = "When this completed the upload: the video's id"),
            ("Content-Location" = String, description = "When this completed the upload: `/v1/videos/{id}`"),
        )),
        (status = 400, description = "`invalid_upload_offset`, `invalid_upload_checksum`, \
          `unsupported_checksum_algorithm`, `upload_incomplete`", body = Problem,
         content_type = "application/problem+json"),
        Unauthorized,
        UploadNotFound,
        (status = 408, description = "`upload_timeout`: the body stalled; what arrived is kept", body = Problem,
         content_type = "application/problem+json"),
        (status = 409, description = "`upload_offset_mismatch`: Upload-Offset is not the upload's offset",
         body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`upload_expired`", body = Problem, content_type = "application/problem+json"),
        TusVersionUnsupported,
        (status = 413, description = "`upload_length_exceeded`: the chunk goes past Upload-Length", body = Problem,
         content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_content_type` (send application/offset+octet-stream); \
          `unsupported_media`: the completed file was refused and deleted", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "The completed file was refused and deleted, as by POST /v1/videos",
         body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "`upload_locked`: another request is writing to this upload", body = Problem,
         content_type = "application/problem+json"),
        (status = 460, description = "`checksum_mismatch`: the chunk was discarded", body = Problem,
         content_type = "application/problem+json"),
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn patch_upload(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<UploadId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !headers::is_offset_octet_stream(&headers) {
        return Err(headers::not_offset_octet_stream());
    }
    let offset = headers::upload_offset(&headers)?;
    let digest = headers::checksum(&headers)?.map(ChunkDigest::new);
    let announced = headers::content_length(&headers);
    detached(patch(state, caller, id, offset, announced, digest, body)).await
}

async fn patch(
    state: AppState,
    caller: Caller,
    id: UploadId,
    offset: u64,
    announced: Option<u64>,
    digest: Option<ChunkDigest>,
    body: Body,
) -> Result<Response, ApiError> {
    let (lease, mut row) = lease_or_refusal(&state, &caller, id).await?;
    let length = row.upload_length as u64;
    let refusal = if row.is_expired() {
        Some(expired())
    } else if offset != row.upload_offset as u64 {
        Some(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::UploadOffsetMismatch,
            format!(
                "Upload-Offset is {offset} but the upload is at {}; resume from there",
                row.upload_offset
            ),
        ))
    } else if announced.is_some_and(|n| offset.saturating_add(n) > length) {
        Some(length_exceeded(length))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        lease.release().await;
        return Err(refusal);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(video_id) = row.video_id {
        // Complete and recorded already: an empty PATCH at the end gets the same answer again.
        lease.release().await;
        let out = response.headers_mut();
        out.insert(UPLOAD_OFFSET, headers::number_value(length));
        headers::insert_video(out, video_id);
        return Ok(response);
    }
    if !row.is_complete() {
        let chunk = Chunk {
            idle: state.limits.upload_idle_timeout(),
            start: offset,
            length,
            digest,
        };
        let path = state.media.tus_path(id);
        let received = receive::receive(&state.pool, &lease, &path, chunk, body).await?;
        row.upload_offset = received.offset as i64;
        if !row.is_complete() {
            lease.release().await;
            return match received.ending {
                Ending::Whole => {
                    let out = response.headers_mut();
                    out.insert(UPLOAD_OFFSET, headers::number_value(received.offset));
                    out.insert(UPLOAD_EXPIRES, headers::http_date(row.expires_at));
                    Ok(response)
                }
                Ending::BrokeOff => Err(ApiError::bad_request(
                    ErrorCode::UploadIncomplete,
                    format!(
                        "the body broke off; the upload is at offset {}: resume from there",
                        received.offset
                    ),
                )),
                Ending::Idle => Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    ErrorCode::UploadTimeout,
                    format!(
                        "no bytes arrived for {} s; the upload is at offset {}: resume from there",
                        state.limits.upload_idle_timeout().as_secs(),
                        received.offset
                    ),
                )),
            };
        }
    }
    // Every byte is on disk (now, or before an interruption): make it a video.
    let video_id = complete::finish(&state, lease, &row).await?;
    let out = response.headers_mut();
    out.insert(UPLOAD_OFFSET, headers::number_value(length));
    headers::insert_video(out, video_id);
    Ok(response)
}

/// Terminate the upload: its record and bytes are deleted. A completed upload's video stays
/// (`DELETE /v1/videos/{id}` removes that).
#[utoipa::path(delete, path = "/v1/uploads/{id}", tag = "uploads",
    params(
        ("id" = String, Path, description = "The upload's id, from `Location`"),
        ("Tus-Resumable" = TusResumable, Header, description = "`1.0.0`; anything else gets 412"),
    ),
    responses(
        (status = 204, description = "Deleted", headers(("Tus-Resumable" = String, description = "`1.0.0`"))),
        Unauthorized,
        UploadNotFound,
        TusVersionUnsupported,
        (status = 423, description = "`upload_locked`: a PATCH is writing to it", body = Problem,
         content_type = "application/problem+json"),
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn delete_upload(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<UploadId>,
) -> Result<StatusCode, ApiError> {
    detached(async move {
        let (lease, row) = lease_or_refusal(&state, &caller, id).await?;
        if row.video_id.is_some() {
            // The file belongs to the video now: only the receipt goes.
            let mut conn = state.pool.acquire().await?;
            db::uploads::delete(&mut conn, id, lease.token).await?;
            lease.forget();
        } else {
            complete::discard(&state, lease, row.reserved_video_id).await?;
        }
        tracing::info!(upload_id = %id, "resumable upload terminated");
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Runs `work` in a task of its own, so that it ends even if the client goes away.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work).await.map_err(ApiError::internal)?
}

/// The upload's lease, or why not: 404 (no such upload, or another owner's), 410 (expired), 423
/// (another request has it). Ownership is checked first, so nobody can hold a lease on another
/// owner's upload even for a moment.
async fn lease_or_refusal(
    state: &AppState,
    caller: &Caller,
    id: UploadId,
) -> Result<(Lease, UploadRow), ApiError> {
    let mut conn = state.pool.acquire().await?;
    let owner = db::uploads::get(&mut conn, id)
        .await?
        .map(|row| row.owner_id);
    if !owner.is_some_and(|owner| caller.may_see(owner)) {
        return Err(not_found());
    }
    drop(conn);
    if let Some(held) = Lease::acquire(&state.pool, id).await? {
        return Ok(held);
    }
    let mut conn = state.pool.acquire().await?;
    Err(match db::uploads::get(&mut conn, id).await? {
        None => not_found(),
        Some(row) if row.is_expired() => expired(),
        Some(_) => ApiError::new(
            StatusCode::LOCKED,
            ErrorCode::UploadLocked,
            "another request is writing to this upload; try again when it has ended",
        ),
    })
}

fn not_found() -> ApiError {
    ApiError::not_found("this upload")
}

fn expired() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        ErrorCode::UploadExpired,
        "this upload was not finished in time and is deleted; start a new one",
    )
}

fn length_exceeded(length: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UploadLengthExceeded,
        format!("the chunk goes past the upload's length of {length} bytes"),
    )
}
