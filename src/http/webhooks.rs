//! `/v1/webhooks`: an owner's endpoints (register, list, delete) and their recent deliveries.
//! What is sent and how is in [`crate::webhooks`]; which events exist in [`db::webhooks`].

use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Caller,
    error::{ApiError, ErrorCode, Problem},
    extract::Id,
    formats::HttpUrl,
    responses::{InternalError, JsonBodyTooLarge, Unauthorized, WebhookNotFound},
};
use crate::{
    db::{self, webhooks::EventType},
    fetch::FetchError,
    ids::{VideoId, WebhookId},
    webhooks,
};

/// Deliveries `GET /v1/webhooks/{id}/deliveries` lists, newest first.
const RECENT_DELIVERIES: i64 = 50;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(delete_webhook))
        .routes(routes!(list_deliveries))
}

/// `{"url": "https://…", "events": ["video.ready", …]}`
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookIn {
    /// An http or https URL on a public address, or on a host in WEBHOOK_ALLOW_HOSTS. An https
    /// endpoint's certificate is verified at every attempt (the system's CAs and
    /// OUTBOUND_CA_BUNDLE's).
    #[schema(value_type = HttpUrl, example = "https://example.com/hooks/prostream")]
    pub url: String,
    /// One or more events (repeats count once).
    #[schema(value_type = Vec<WebhookEvent>, min_items = 1, example = json!(["video.ready", "video.failed"]))]
    pub events: Vec<String>,
}

/// An event an endpoint can subscribe to (the names of [`EventType`]; a test holds them together).
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built: `check_events` reads the names
pub enum WebhookEvent {
    #[schema(rename = "video.playable")]
    Playable,
    #[schema(rename = "video.ready")]
    Ready,
    #[schema(rename = "video.failed")]
    Failed,
    #[schema(rename = "video.canceled")]
    Canceled,
    #[schema(rename = "video.captions_changed")]
    CaptionsChanged,
}

/// A registered endpoint, as listed (the secret is shown only when it is created).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    #[schema(value_type = Uuid)]
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A new endpoint with its signing secret, which is never shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCreated {
    #[schema(value_type = Uuid)]
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<String>,
    /// `whsec_` + base64 of 32 random bytes: give it to your Standard Webhooks library.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookOut>,
}

/// One event sent (or being sent) to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: Uuid,
    /// The event's id: the `webhook-id` header of every attempt.
    pub event_id: Uuid,
    /// `video.playable`, `video.ready`, `video.failed`, `video.canceled` or
    /// `video.captions_changed`.
    pub event_type: String,
    #[schema(value_type = Uuid)]
    pub video_id: VideoId,
    /// `pending` (being sent or waiting to be tried again), `delivered` or `failed` (no 2xx
    /// within WEBHOOK_RETRY_WINDOW_SECS of the event).
    pub state: String,
    /// When the next attempt is due (pending only).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Every attempt so far, oldest first.
    pub attempts: Vec<AttemptOut>,
}

/// One POST of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    /// 1 for the first.
    pub attempt: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub duration_ms: i32,
    /// The HTTP status the endpoint answered; null when it did not (see `error`).
    pub status: Option<i32>,
    /// Why there is no status: timeout, connection refused, forbidden address… A TLS failure
    /// starts with its code: `tls_untrusted_certificate:`, `tls_wrong_host:`,
    /// `tls_certificate_expired:` or `tls_failed:`.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryOut>,
}

impl From<db::webhooks::WebhookRow> for WebhookOut {
    fn from(row: db::webhooks::WebhookRow) -> Self {
        Self {
            id: row.id,
            url: row.url,
            events: row.events,
            created_at: row.created_at,
        }
    }
}

/// Register an endpoint. The answer carries its secret, once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body(content = WebhookIn, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered; `Location: /v1/webhooks/{id}`", body = WebhookCreated),
        (status = 400, description = "`invalid_json`, `invalid_url` (not in the form `HttpUrl` states), `invalid_events`", body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 403, description = "`forbidden`: a request without a key (AUTH_MODE=open) has no owner to hold the webhook", body = Problem, content_type = "application/problem+json"),
        JsonBodyTooLarge,
        (status = 422, description = "`url_forbidden`: a literal internal address, or a name that resolves to one \
         (loopback, private, link-local…), not in WEBHOOK_ALLOW_HOSTS", body = Problem, content_type = "application/problem+json"),
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<WebhookIn>, JsonRejection>,
) -> Result<(StatusCode, HeaderMap, Json<WebhookCreated>), ApiError> {
    let Json(body) = body.map_err(super::limits::json_rejection)?;
    let owner_id = caller.owner_id.ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "a webhook belongs to an owner: register it with an API key",
        )
    })?;
    let events = check_events(&body.events)?;
    let url = state
        .webhooks
        .check_endpoint(&body.url)
        .await
        .map_err(refusal)?;
    let secret = webhooks::new_secret();
    let mut conn = state.pool.acquire().await?;
    let row = db::webhooks::insert(
        &mut conn,
        WebhookId::generate(),
        owner_id,
        url.as_str(),
        &events,
        &secret,
    )
    .await?;
    tracing::info!(webhook_id = %row.id, %owner_id, url = %row.url, "webhook registered");
    let mut headers = HeaderMap::new();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/webhooks/{}", row.id)).map_err(ApiError::internal)?,
    );
    let created = WebhookCreated {
        id: row.id,
        url: row.url,
        events: row.events,
        secret,
        created_at: row.created_at,
    };
    Ok((StatusCode::CREATED, headers, Json(created)))
}

/// The distinct known event names, in the order given; 400 for none or an unknown one.
fn check_events(names: &[String]) -> Result<Vec<String>, ApiError> {
    let mut events: Vec<String> = Vec::new();
    for name in names {
        let Some(kind) = EventType::parse(name) else {
            let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
            return Err(ApiError::bad_request(
                ErrorCode::InvalidEvents,
                format!("unknown event {name:?}; expected {}", known.join(", ")),
            ));
        };
        if !events.iter().any(|e| e == kind.as_str()) {
            events.push(kind.as_str().to_owned());
        }
    }
    if events.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidEvents,
            "`events` must name at least one event",
        ));
    }
    Ok(events)
}

fn refusal(err: FetchError) -> ApiError {
    match err {
        FetchError::Forbidden(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::UrlForbidden, m)
        }
        other => ApiError::bad_request(ErrorCode::InvalidUrl, other.to_string()),
    }
}

/// The caller's endpoints, newest first (an admin key sees every owner's). No secrets.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "The endpoints", body = WebhookList),
        Unauthorized,
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookList>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let rows = db::webhooks::list(&mut conn, caller.scope()).await?;
    Ok(Json(WebhookList {
        webhooks: rows.into_iter().map(WebhookOut::from).collect(),
    }))
}

/// Delete an endpoint; its pending deliveries are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id (a UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        Unauthorized,
        WebhookNotFound,
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<WebhookId>,
) -> Result<StatusCode, ApiError> {
    let mut conn = state.pool.acquire().await?;
    if !db::webhooks::delete(&mut conn, id, caller.scope()).await? {
        return Err(ApiError::not_found("this webhook"));
    }
    tracing::info!(webhook_id = %id, "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The endpoint's 50 most recent deliveries, newest first, each with its attempts.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id (a UUID)")),
    responses(
        (status = 200, description = "The deliveries", body = DeliveryList),
        Unauthorized,
        WebhookNotFound,
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<WebhookId>,
) -> Result<Json<DeliveryList>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    if !db::webhooks::exists(&mut conn, id, caller.scope()).await? {
        return Err(ApiError::not_found("this webhook"));
    }
    let rows = db::webhooks::deliveries(&mut conn, id, RECENT_DELIVERIES).await?;
    let ids: Vec<Uuid> = rows.iter().map(|d| d.id).collect();
    let mut attempts = db::webhooks::attempts(&mut conn, &ids).await?;
    let deliveries = rows
        .into_iter()
        .map(|d| {
            let mine: Vec<AttemptOut> = attempts
                .extract_if(.., |a| a.delivery_id == d.id)
                .map(|a| AttemptOut {
                    attempt: a.attempt,
                    started_at: a.started_at,
                    duration_ms: a.duration_ms,
                    status: a.status,
                    error: a.error,
                })
                .collect();
            DeliveryOut {
                id: d.id,
                event_id: d.event_id,
                event_type: d.event_type,
                video_id: d.video_id,
                state: d.state,
                next_attempt_at: d.next_attempt_at,
                delivered_at: d.delivered_at,
                created_at: d.created_at,
                attempts: mine,
            }
        })
        .collect();
    Ok(Json(DeliveryList { deliveries }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_events_are_the_known_ones() {
        let schema =
            serde_json::to_value(<WebhookEvent as utoipa::PartialSchema>::schema()).unwrap();
        let documented: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(documented, known);
    }
}
