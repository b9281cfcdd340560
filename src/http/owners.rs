//! `GET /v1/usage` (what the caller's owner holds against its quotas) and `GET /v1/owners`
//! (every owner's, for admin keys only).

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    auth::Caller,
    error::{ApiError, Problem},
    responses::{InternalError, Unauthorized},
};
use crate::{
    db::{self, owners::UsageRow},
    ids::OwnerId,
    ingest::quotas::Limits,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_usage))
        .routes(routes!(list_owners))
}

/// An owner's usage and the limits that apply to it (`null`: no limit).
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageOut {
    #[schema(value_type = Uuid)]
    pub owner_id: OwnerId,
    pub owner: String,
    /// Bytes of originals plus the announced lengths of unfinished resumable uploads.
    pub stored_bytes: i64,
    pub max_bytes: Option<u64>,
    /// Uploads started today (UTC), refused ones included.
    pub uploads_today: i32,
    pub uploads_per_day: Option<u32>,
}

impl UsageOut {
    fn new(state: &AppState, row: UsageRow) -> Self {
        let own = db::owners::Overrides {
            max_bytes: row.max_bytes,
            max_uploads_per_day: row.max_uploads_per_day,
        };
        let limits = Limits::of(&state.policy, own);
        Self {
            owner_id: row.id,
            owner: row.name,
            stored_bytes: row.stored_bytes,
            max_bytes: limits.max_bytes,
            uploads_today: row.uploads_today,
            uploads_per_day: limits.uploads_per_day,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnersPage {
    pub items: Vec<UsageOut>,
}

/// What the key's owner stores and has uploaded today, against its quotas.
#[utoipa::path(get, path = "/v1/usage", tag = "owners",
    responses(
        (status = 200, description = "The owner's usage", body = UsageOut),
        Unauthorized,
        (status = 404, description = "`not_found`: a keyless request (AUTH_MODE=open) has no owner",
         body = Problem, content_type = "application/problem+json"),
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn get_usage(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UsageOut>, ApiError> {
    let owner_id = caller
        .owner_id
        .ok_or_else(|| ApiError::not_found("an owner of a keyless request"))?;
    let mut conn = state.pool.acquire().await?;
    let row = db::owners::usage(&mut conn, Some(owner_id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("this key's owner"))?;
    Ok(Json(UsageOut::new(&state, row)))
}

/// Every owner with its usage and quotas: admin keys only.
#[utoipa::path(get, path = "/v1/owners", tag = "owners",
    responses(
        (status = 200, description = "Every owner, by name", body = OwnersPage),
        Unauthorized,
        (status = 403, description = "`forbidden`: not an admin key", body = Problem,
         content_type = "application/problem+json"),
        InternalError,
    ),
    security(("api_key" = [])))]
pub async fn list_owners(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<OwnersPage>, ApiError> {
    caller.require_admin()?;
    let mut conn = state.pool.acquire().await?;
    let items = db::owners::usage(&mut conn, None)
        .await?
        .into_iter()
        .map(|row| UsageOut::new(&state, row))
        .collect();
    Ok(Json(OwnersPage { items }))
}
