//! `/v1/videos/{id}/captions`: caption tracks an owner adds to a video after upload.
//!
//! A caption is a WebVTT or SubRip file (the body), read strictly (`media::captions`: a mistake
//! is a 422 naming its line), kept in Postgres as normalised WebVTT and published as a subtitle
//! rendition of the video's HLS (`crate::captions`): at once if the video's master playlist is
//! up (also while it encodes), else by the worker with its master. The same owner rules as the
//! video's other routes apply; caption bytes count against the owner's storage quota.

use axum::{
    Json,
    body::Body,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    auth::Caller,
    error::{ApiError, ErrorCode, Problem},
    extract::{Id, Path, Query},
    formats::{LanguageTag, Title},
    lifecycle::visible,
    limits::{self, BodyGuard},
    responses::{InternalError, Unauthorized, UriTooLong, VideoNotFound},
};
use crate::{
    captions::{self, Change},
    db::{self, CaptionKind, captions::CaptionRow, webhooks::EventType},
    ids::{CaptionId, VideoId},
    ingest::{self, MAX_TITLE_CHARS, quotas},
    media::{self, captions as caption_files},
};

/// The largest caption file: a two-hour film's subtitles are about 100 KiB.
pub const MAX_CAPTION_BYTES: usize = 1 << 20;

pub fn router() -> OpenApiRouter<AppState> {
    // The body is bounded by `read_body`; the global 64 KiB JSON bound would cut real files.
    let (schemas, paths, add) = routes!(add_caption, list_captions);
    OpenApiRouter::new()
        .routes((schemas, paths, add.layer(DefaultBodyLimit::disable())))
        .routes(routes!(get_caption, delete_caption))
}

/// A caption track of a video.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaptionOut {
    #[schema(value_type = Uuid)]
    pub id: CaptionId,
    /// BCP 47 (`en`, `pt-BR`, `und`).
    pub language: String,
    /// What a player's menu shows. Unique among the video's captions; the master playlist
    /// numbers it if a subtitle track of the source has the same name.
    pub label: String,
    pub kind: CaptionKind,
    /// How many cues the file holds.
    pub cues: i32,
    /// The stored WebVTT's size: what counts against the owner's storage quota.
    pub size_bytes: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&CaptionRow> for CaptionOut {
    fn from(row: &CaptionRow) -> Self {
        Self {
            id: row.id,
            language: row.language.clone(),
            label: row.label.clone(),
            kind: row.kind,
            cues: row.cue_count,
            size_bytes: row.size_bytes,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaptionList {
    /// Oldest first.
    pub items: Vec<CaptionOut>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaptionParams {
    /// BCP 47 (`en`, `pt-BR`; ISO 639 `eng` is read as `en`); default `und`.
    #[param(value_type = Option<LanguageTag>)]
    language: Option<String>,
    /// What a player's menu shows, with the rules of a `Title` (refused with 400
    /// `invalid_label`); default: the language's name, numbered if the video has a caption of
    /// that name.
    #[param(value_type = Option<Title>)]
    label: Option<String>,
    /// `subtitles` (a translation, the default) or `captions` (the dialogue and the sounds, for
    /// viewers who cannot hear: players offer them to those who asked for captions).
    #[param(value_type = Option<CaptionKind>)]
    kind: Option<String>,
}

/// `{id}/captions/{caption_id}`.
#[derive(Deserialize)]
pub struct CaptionPath {
    caption_id: String,
}

/// Add a caption track: the body is a WebVTT or SubRip file (UTF-8, at most 1 MiB). It is
/// checked, converted to WebVTT and published as a subtitle rendition: the master playlist
/// names it at once if the video is playable (also while it encodes), else as soon as it is.
#[utoipa::path(post, path = "/v1/videos/{id}/captions", tag = "captions",
    params(("id" = String, Path, description = "The video's id (a UUID)"), CaptionParams),
    request_body(description = "The caption file", content(
        (String = "text/vtt"),
        (String = "application/x-subrip"),
        (String = "text/plain"),
    )),
    responses(
        (status = 201, description = "Added and published", body = CaptionOut,
         headers(("location" = String, description = "The caption's URL"))),
        (status = 400, description = "`invalid_language`, `invalid_label`, `invalid_kind`, `upload_incomplete`",
         body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        VideoNotFound,
        (status = 408, description = "`upload_timeout`: the body sent nothing for UPLOAD_IDLE_TIMEOUT_SECS",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`caption_label_taken`, `too_many_captions` (16 per video)",
         body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`captions_too_large` (over 1 MiB), `storage_quota_exceeded`",
         body = Problem, content_type = "application/problem+json"),
        UriTooLong,
        (status = 415, description = "`unsupported_content_type`: send text/vtt, application/x-subrip or text/plain",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_captions`: not UTF-8 WebVTT or SubRip; the detail names the line",
         body = Problem, content_type = "application/problem+json"),
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn add_caption(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<VideoId>,
    Query(params): Query<CaptionParams>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let language = match params.language.as_deref() {
        None => media::UNDETERMINED.to_owned(),
        Some(text) => media::parse_bcp47(text).ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidLanguage,
                format!("{text:?} is not a language tag; give BCP 47 or ISO 639, e.g. en, pt-BR"),
            )
        })?,
    };
    let label = params.label.map(check_label).transpose()?;
    let kind = match params.kind.as_deref() {
        None | Some("subtitles") => CaptionKind::Subtitles,
        Some("captions") => CaptionKind::Captions,
        Some(other) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidKind,
                format!("kind {other:?} is neither subtitles nor captions"),
            ));
        }
    };
    check_content_type(request.headers())?;
    // A video the caller cannot see is refused before its body is read.
    visible(&state, &caller, id).await?;
    let body = read_body(&state, request.into_body()).await?;
    let (_, cues) = caption_files::parse(&body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidCaptions,
            e.to_string(),
        )
    })?;
    let webvtt = caption_files::render(&cues);

    let mut tx = state.pool.begin().await?;
    // Held to the commit: every master rewrite of this video waits, and the video cannot be
    // deleted under us.
    db::captions::lock_video(&mut tx, id).await?;
    let Some(owner) = db::captions::video_owner_for_share(&mut tx, id).await? else {
        return Err(ApiError::not_found("this video"));
    };
    let existing = db::captions::list(&mut tx, id).await?;
    if existing.len() >= captions::MAX_PER_VIDEO {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::TooManyCaptions,
            format!(
                "the video has {} captions already, the most it may have; delete one first",
                existing.len()
            ),
        ));
    }
    let label = match label {
        Some(label) if existing.iter().any(|c| c.label == label) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::CaptionLabelTaken,
                format!(
                    "the video has a caption labelled {label:?}; choose another label or delete that one"
                ),
            ));
        }
        Some(label) => label,
        None => default_label(&language, &existing),
    };
    let size_bytes = webvtt.len() as u64;
    if let Some(owner) = owner {
        quotas::reserve_storage(&mut tx, &state.policy, owner, size_bytes).await?;
    }
    let row = CaptionRow {
        id: CaptionId::generate(),
        video_id: id,
        language,
        label,
        kind,
        cue_count: i32::try_from(cues.len()).unwrap_or(i32::MAX),
        size_bytes: size_bytes as i64,
        created_at: OffsetDateTime::now_utc(),
    };
    db::captions::insert(&mut tx, &row, &webvtt).await?;
    db::webhooks::enqueue_event(&mut tx, id, EventType::CaptionsChanged).await?;
    captions::republish(
        &mut tx,
        state.store.as_ref(),
        id,
        Change::Added(&row, &webvtt),
    )
    .await
    .map_err(ApiError::internal)?;
    tx.commit().await?;
    tracing::info!(video_id = %id, caption_id = %row.id, cues = cues.len(), "caption added");

    let mut headers = HeaderMap::new();
    let location = format!("/v1/videos/{id}/captions/{}", row.id);
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(ApiError::internal)?,
    );
    Ok((StatusCode::CREATED, headers, Json(CaptionOut::from(&row))))
}

/// List a video's caption tracks (the ones added through this API; the source's own subtitle
/// tracks are the video's `subtitle_tracks`).
#[utoipa::path(get, path = "/v1/videos/{id}/captions", tag = "captions",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    responses(
        (status = 200, description = "The captions, oldest first", body = CaptionList),
        Unauthorized,
        VideoNotFound,
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn list_captions(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<VideoId>,
) -> Result<Json<CaptionList>, ApiError> {
    let mut conn = visible(&state, &caller, id).await?;
    let rows = db::captions::list(&mut conn, id).await?;
    Ok(Json(CaptionList {
        items: rows.iter().map(CaptionOut::from).collect(),
    }))
}

/// One caption track.
#[utoipa::path(get, path = "/v1/videos/{id}/captions/{caption_id}", tag = "captions",
    params(
        ("id" = String, Path, description = "The video's id (a UUID)"),
        ("caption_id" = String, Path, description = "The caption's id (a UUID)"),
    ),
    responses(
        (status = 200, description = "The caption", body = CaptionOut),
        Unauthorized,
        (status = 404, description = "`not_found`: no such video or caption (also another owner's)",
         body = Problem, content_type = "application/problem+json"),
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn get_caption(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<VideoId>,
    Path(path): Path<CaptionPath>,
) -> Result<Json<CaptionOut>, ApiError> {
    let caption_id = caption_id(&path)?;
    let mut conn = visible(&state, &caller, id).await?;
    let rows = db::captions::list(&mut conn, id).await?;
    rows.iter()
        .find(|c| c.id == caption_id)
        .map(|c| Json(CaptionOut::from(c)))
        .ok_or_else(|| ApiError::not_found("this caption"))
}

/// Delete a caption track: the master playlist stops naming it, then its files are removed.
#[utoipa::path(delete, path = "/v1/videos/{id}/captions/{caption_id}", tag = "captions",
    params(
        ("id" = String, Path, description = "The video's id (a UUID)"),
        ("caption_id" = String, Path, description = "The caption's id (a UUID)"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        Unauthorized,
        (status = 404, description = "`not_found`: no such video or caption (also another owner's)",
         body = Problem, content_type = "application/problem+json"),
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn delete_caption(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<VideoId>,
    Path(path): Path<CaptionPath>,
) -> Result<StatusCode, ApiError> {
    let caption_id = caption_id(&path)?;
    let mut tx = state.pool.begin().await?;
    if !db::videos::visible_to(&mut tx, id, caller.scope()).await? {
        return Err(ApiError::not_found("this video"));
    }
    db::captions::lock_video(&mut tx, id).await?;
    if !db::captions::delete(&mut tx, id, caption_id).await? {
        return Err(ApiError::not_found("this caption"));
    }
    db::webhooks::enqueue_event(&mut tx, id, EventType::CaptionsChanged).await?;
    captions::republish(
        &mut tx,
        state.store.as_ref(),
        id,
        Change::Removed(caption_id),
    )
    .await
    .map_err(ApiError::internal)?;
    tx.commit().await?;
    tracing::info!(video_id = %id, %caption_id, "caption deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn caption_id(path: &CaptionPath) -> Result<CaptionId, ApiError> {
    path.caption_id
        .parse()
        .map_err(|_| ApiError::not_found("this caption"))
}

/// A label has a title's rules (`ingest::choose_title`): the document states them once.
fn check_label(label: String) -> Result<String, ApiError> {
    ingest::choose_title(Some(label), None).map_err(|_| {
        ApiError::bad_request(
            ErrorCode::InvalidLabel,
            format!(
                "a label has 1 to {MAX_TITLE_CHARS} characters once trimmed, and no control, \
                 line-separator or bidi-override characters"
            ),
        )
    })
}

/// The language's name ("English", "Français"), else "Captions"; numbered while taken.
fn default_label(language: &str, existing: &[CaptionRow]) -> String {
    let primary = language.split('-').next();
    let base = media::language_name(primary).unwrap_or_else(|| "Captions".to_owned());
    let mut label = base.clone();
    let mut n = 2;
    while existing.iter().any(|c| c.label == label) {
        label = format!("{base} {n}");
        n += 1;
    }
    label
}

/// Caption files come as text; the format is read from the file itself.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    const ACCEPTED: [&str; 6] = [
        "text/vtt",
        "application/x-subrip",
        "application/x-srt",
        "text/srt",
        "text/plain",
        "application/octet-stream",
    ];
    let essence = headers.get(header::CONTENT_TYPE).map(|v| {
        v.to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    match essence {
        // curl --data-binary without -H sends a form type; a body without one is read too.
        None => Ok(()),
        Some(e) if ACCEPTED.contains(&e.as_str()) => Ok(()),
        Some(e) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedContentType,
            format!(
                "{e:?} is not a caption file's type; send text/vtt, application/x-subrip or text/plain"
            ),
        )),
    }
}

/// The body, at most [`MAX_CAPTION_BYTES`], each chunk awaited at most the upload idle timeout.
async fn read_body(state: &AppState, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let guard = BodyGuard::raw(state.limits.upload_idle_timeout());
    axum::body::to_bytes(guard.wrap_body(body), MAX_CAPTION_BYTES)
        .await
        .map_err(|err| {
            if limits::is_over_limit(&err) {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::CaptionsTooLarge,
                    format!("a caption file is at most {MAX_CAPTION_BYTES} bytes"),
                )
            } else {
                guard.explain(ApiError::bad_request(
                    ErrorCode::UploadIncomplete,
                    format!("the body broke off before its end: {err}"),
                ))
            }
        })
}
