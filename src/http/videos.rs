//! `/v1/videos`: upload, read and list videos.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{DefaultBodyLimit, Request, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    auth::Caller,
    error::{ApiError, ErrorCode, Problem},
    extract::{Id, Query},
    formats::Title,
    responses::{
        InternalError, JsonBodyTooLarge, Unauthorized, UploadQuotaExceeded, UriTooLong,
        VideoNotFound,
    },
    upload::{self, BodyKind},
    url_ingest,
    wire::{BinaryFile, VideoOut, load_video, video_location},
};
use crate::{
    db::{self, JobState, Visibility},
    ids::VideoId,
    ingest::{self, Accepted, IngestError, Origin},
    storage::{MediaRoot, TempFile},
    telemetry,
};

const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

pub fn router() -> OpenApiRouter<AppState> {
    // The cap is enforced while streaming; axum's 2 MB default would refuse real videos.
    let (schemas, paths, upload) = routes!(create_video);
    OpenApiRouter::new()
        .routes((schemas, paths, upload.layer(DefaultBodyLimit::disable())))
        .routes(routes!(list_videos))
        .routes(routes!(get_video, update_video))
}

/// `multipart/form-data` upload, as an HTML form sends it: `file`, and optionally `title` and
/// `visibility`. Other parts are read and ignored (browsers add some); their names, like every
/// part header, cannot hold control characters (the body is refused as unreadable, 400
/// `upload_incomplete`).
pub struct UploadForm;

impl utoipa::PartialSchema for UploadForm {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::{
            Type,
            schema::{KnownFormat, ObjectBuilder, RefBuilder, SchemaFormat},
        };
        // Not nullable: a form field has no null (a client would send the text `null`).
        let field = |name: &str, description: &str| {
            RefBuilder::new()
                .ref_location_from_schema_name(name)
                .description(Some(description))
        };
        ObjectBuilder::new()
            .description(Some(
                "`multipart/form-data` upload, as an HTML form sends it. Other parts are read and \
                 ignored; no part name may hold a control character.",
            ))
            .property(
                "file",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                    .description(Some("The video or audio file.")),
            )
            .required("file")
            .property(
                "title",
                field(
                    "Title",
                    "Default: `?title=`, else the file name. Both are checked when both are given.",
                ),
            )
            .property(
                "visibility",
                field(
                    "Visibility",
                    "`public` or `private`; default: `?visibility=`, else the server's \
                     `DEFAULT_VISIBILITY`. Both are checked when both are given.",
                ),
            )
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[^\\x00-\\x1F\\x7F]*$")),
            ))
            .into()
    }
}

impl ToSchema for UploadForm {}

#[derive(Debug, Serialize, ToSchema)]
pub struct VideoPage {
    pub items: Vec<VideoOut>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[schema(value_type = Option<Uuid>)]
    pub next_cursor: Option<VideoId>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// Default: the JSON or multipart `title` field, else the file name, else `Untitled`.
    #[param(value_type = Option<Title>)]
    title: Option<String>,
    /// `public` or `private`; default: the server's `DEFAULT_VISIBILITY`.
    #[param(value_type = Option<Visibility>)]
    visibility: Option<String>,
    /// `false`: make no downloads (`playback.downloads` stays null); default `true`.
    downloads: Option<bool>,
}

/// Upload a video (or audio) file. It is streamed to disk, probed, recorded
/// and queued; refused files get a problem `code` saying why. With a JSON body
/// `{"url": …}` the API downloads the file itself: the video starts in status
/// `downloading`.
#[utoipa::path(post, path = "/v1/videos", tag = "videos", params(UploadParams),
    request_body(description = "The file, as the raw body or as a multipart form", content(
        (BinaryFile = "application/octet-stream"),
        (BinaryFile = "video/*"),
        (BinaryFile = "audio/*"),
        (UploadForm = "multipart/form-data"),
        (url_ingest::UrlIngest = "application/json"),
    )),
    responses(
        (status = 202, description = "Accepted and queued", body = VideoOut,
         headers(("location" = String, description = "The video's URL"))),
        (status = 400, description = "`invalid_title`, `invalid_visibility`, `invalid_multipart`, `missing_file`, \
         `upload_incomplete`, `invalid_json`, `invalid_url`",
         body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 408, description = "`upload_timeout`: the body sent nothing for UPLOAD_IDLE_TIMEOUT_SECS", body = Problem,
         content_type = "application/problem+json"),
        (status = 413, description = "`upload_too_large`, `storage_quota_exceeded`, `body_too_large` (a JSON body over 64 KiB, \
         or over 64 KiB of multipart besides the file)", body = Problem,
         content_type = "application/problem+json"),
        UriTooLong,
        (status = 415, description = "`unsupported_content_type`, `unsupported_media`", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "`url_forbidden`, `empty_upload`, `truncated_media`, `corrupt_media`, `no_media_streams`, \
         `dimensions_exceeded`, `duration_exceeded`, `frame_rate_exceeded`, `implausible_timing`, `work_budget_exceeded`, `probe_timeout`", body = Problem,
         content_type = "application/problem+json"),
        UploadQuotaExceeded,
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn create_video(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<UploadParams>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let result = create(state, caller, params, request).await;
    let label = result.as_ref().map_or_else(ApiError::code, |_| "accepted");
    metrics::counter!(telemetry::UPLOADS, "result" => label).increment(1);
    result
}

async fn create(
    state: AppState,
    caller: Caller,
    params: UploadParams,
    request: Request,
) -> Result<(StatusCode, HeaderMap, Json<VideoOut>), ApiError> {
    // The query's title and visibility are checked before the body is read, whichever wins.
    let visibility = params
        .visibility
        .as_deref()
        .map(|v| ingest::parse_visibility(Some(v), state.policy.default_visibility))
        .transpose()?;
    let title = params
        .title
        .map(|t| ingest::choose_title(Some(t), None))
        .transpose()?;
    // A JSON body is a URL ingest: its length says nothing of the file's.
    let json = is_json(&request);
    let announced = upload::announced_length(&request).filter(|_| !json);
    state
        .ingest
        .admit_upload(caller.owner_id, announced)
        .await?;
    if json {
        let asked = url_ingest::Asked {
            title,
            visibility,
            downloads: params.downloads,
            caller,
        };
        url_ingest::create_from_url(state, asked, request).await
    } else {
        let asked = Asked {
            title,
            visibility,
            downloads: params.downloads.unwrap_or(true),
        };
        accept_upload(state, caller, asked, request).await
    }
}

fn is_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// What the query asked for, checked: its `title` and `visibility` win over the multipart fields.
struct Asked {
    title: Option<String>,
    visibility: Option<Visibility>,
    downloads: bool,
}

async fn accept_upload(
    state: AppState,
    caller: Caller,
    asked: Asked,
    request: Request,
) -> Result<(StatusCode, HeaderMap, Json<VideoOut>), ApiError> {
    let Asked {
        title,
        visibility,
        downloads,
    } = asked;
    let cap = state.limits.max_upload_bytes;
    let idle = state.limits.upload_idle_timeout();
    let kind = upload::body_kind(&request)?;
    upload::check_announced_length(&request, cap)?;
    // A body of unknown length streams no further than the owner's quota has room for.
    let room = state.ingest.room_left(caller.owner_id).await?;
    let limit = room.map_or(cap, |room| room.min(cap));
    let file = TempFile::new(state.media.incoming_path());
    let received = match kind {
        BodyKind::Raw => upload::receive_raw(request.into_body(), file, limit, idle).await,
        BodyKind::Multipart => upload::receive_multipart(request, file, limit, idle).await,
    }
    .map_err(|err| match room {
        Some(room) if room < cap && err.code() == ErrorCode::UploadTooLarge.as_str() => {
            IngestError::CutOffAtQuota { room }.into()
        }
        _ => err,
    })?;
    state
        .ingest
        .check_room(caller.owner_id, received.size)
        .await?;
    // The form's fields are checked even when the query's win.
    let form_title = received
        .title
        .map(|t| ingest::choose_title(Some(t), None))
        .transpose()?;
    let form_visibility = received
        .visibility
        .as_deref()
        .map(|v| ingest::parse_visibility(Some(v), state.policy.default_visibility))
        .transpose()?;
    let title = ingest::choose_title(title.or(form_title), received.filename.as_deref())?;
    let visibility = visibility
        .or(form_visibility)
        .unwrap_or(state.policy.default_visibility);
    let info = state.ingest.probe(received.file.path()).await?;

    let video_id = VideoId::generate();
    let dest = MediaRoot::source_relative(video_id);
    received
        .file
        .persist(state.store.as_ref(), &dest)
        .await
        .map_err(ApiError::internal)?;
    // From here the original is in place: if recording fails, take it away again.
    let accepted = Accepted {
        video_id,
        title,
        owner_id: caller.owner_id,
        visibility,
        downloads,
        size: received.size,
        info,
    };
    if let Err(err) = state
        .ingest
        .record_and_enqueue(accepted, Origin::Direct)
        .await
    {
        if let Err(e) = state.store.remove_original(&dest).await {
            tracing::warn!(%video_id, error = %e, "could not remove the original of an upload not recorded");
        }
        return Err(err.into());
    }

    let video = load_video(&state, video_id, caller.scope()).await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, video_location(video_id));
    Ok((StatusCode::ACCEPTED, headers, Json(video)))
}

/// One video: status, progress, source, renditions and playback URLs.
#[utoipa::path(get, path = "/v1/videos/{id}", tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    responses(
        (status = 200, description = "The video", body = VideoOut),
        Unauthorized,
        VideoNotFound,
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn get_video(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<VideoId>,
) -> Result<Json<VideoOut>, ApiError> {
    Ok(Json(load_video(&state, id, caller.scope()).await?))
}

/// What `PATCH /v1/videos/{id}` may change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoPatch {
    #[schema(value_type = Option<Title>)]
    pub title: Option<String>,
    /// `public` or `private`. Signed URLs issued while private keep working until they expire.
    pub visibility: Option<Visibility>,
}

/// Change a video's title or visibility.
#[utoipa::path(patch, path = "/v1/videos/{id}", tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    request_body(content = VideoPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The video as it is now", body = VideoOut),
        (status = 400, description = "`invalid_json`, `invalid_title`", body = Problem,
         content_type = "application/problem+json"),
        Unauthorized,
        VideoNotFound,
        JsonBodyTooLarge,
        (status = 415, description = "`unsupported_content_type`: send application/json", body = Problem,
         content_type = "application/problem+json"),
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn update_video(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<VideoId>,
    body: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>,
) -> Result<Json<VideoOut>, ApiError> {
    // Read as a JSON object first: serde would also build the struct from an array.
    let Json(object) = body.map_err(|rejection| match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedContentType,
            "send the changes as application/json, e.g. {\"visibility\": \"public\"}",
        ),
        other => super::limits::json_rejection(other),
    })?;
    let patch: VideoPatch = serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidJson, e.to_string()))?;
    let title = patch
        .title
        .map(|t| ingest::choose_title(Some(t), None))
        .transpose()?;
    let mut conn = state.pool.acquire().await?;
    if !db::videos::update(
        &mut conn,
        id,
        caller.scope(),
        title.as_deref(),
        patch.visibility,
    )
    .await?
    {
        return Err(ApiError::not_found("this video"));
    }
    drop(conn);
    state.public_videos.forget(id);
    Ok(Json(load_video(&state, id, caller.scope()).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only videos in this state.
    #[param(value_type = Option<JobState>)]
    status: Option<String>,
    /// Page size, 1-100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<Uuid>)]
    cursor: Option<String>,
}

/// Videos, newest first, a page at a time: the caller's own (an admin key sees every owner's).
#[utoipa::path(get, path = "/v1/videos", tag = "videos", params(ListParams),
    responses(
        (status = 200, description = "A page of videos", body = VideoPage),
        (status = 400, description = "`invalid_status`, `invalid_limit`, `invalid_cursor`", body = Problem,
         content_type = "application/problem+json"),
        Unauthorized,
        UriTooLong,
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn list_videos(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<VideoPage>, ApiError> {
    let status = params
        .status
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidStatus, e))?;
    let limit = match params.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(text) => text.trim().parse::<i64>().unwrap_or(0),
    };
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidLimit,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let cursor = params
        .cursor
        .as_deref()
        .map(str::parse::<VideoId>)
        .transpose()
        .map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidCursor,
                "cursor must be a `next_cursor` from a previous page",
            )
        })?;

    let mut conn = state.pool.acquire().await?;
    // One extra row tells whether another page follows.
    let mut rows = db::videos::list(&mut conn, caller.scope(), status, cursor, limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let ids: Vec<VideoId> = rows.iter().map(|r| r.id).collect();
    let mut renditions: HashMap<VideoId, Vec<_>> = HashMap::new();
    for r in db::videos::renditions(&mut conn, &ids).await? {
        renditions.entry(r.video_id).or_default().push(r);
    }
    let items: Vec<VideoOut> = rows
        .into_iter()
        .map(|row| {
            let mine = renditions.remove(&row.id).unwrap_or_default();
            VideoOut::new(row, mine, &state.playback)
        })
        .collect();
    let next_cursor = has_more.then(|| items.last().map(|v| v.id)).flatten();
    Ok(Json(VideoPage { items, next_cursor }))
}
