//! Who is calling: the API key in `Authorization: Bearer KEY`, resolved to its owner.
//!
//! Every `/v1` handler takes a [`Caller`]. A non-admin caller sees only its owner's videos,
//! uploads and webhooks; another owner's resource answers 404, exactly like one that does not
//! exist, so ids cannot be probed. An admin key sees everything.

use axum::{
    extract::FromRequestParts,
    http::{HeaderValue, StatusCode, header, request::Parts},
};

use super::{
    AppState,
    error::{ApiError, ErrorCode},
};
use crate::{auth, db, ids::OwnerId};

/// Whether `/v1` requires a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Every `/v1` request needs a live key (the default).
    Required,
    /// Requests without a key act as an admin: for a local demo only; logged loudly at start.
    Open,
}

/// The caller of a `/v1` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The key's owner; `None` only for a keyless request in `AUTH_MODE=open`.
    pub owner_id: Option<OwnerId>,
    pub admin: bool,
}

impl Caller {
    /// The owner whose rows this caller may see: `None` means every owner's (an admin).
    pub fn scope(&self) -> Option<OwnerId> {
        if self.admin { None } else { self.owner_id }
    }

    /// Whether this caller may see a resource of `owner` (an admin sees every one).
    pub fn may_see(&self, owner: Option<OwnerId>) -> bool {
        self.admin || (owner.is_some() && owner == self.owner_id)
    }

    /// Refuses a non-admin caller with 403.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this needs an admin key (prostream keys create --admin)",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return match state.auth {
                AuthMode::Open => Ok(Caller {
                    owner_id: None,
                    admin: true,
                }),
                AuthMode::Required => Err(unauthorized(
                    ErrorCode::ApiKeyRequired,
                    "send an API key as `Authorization: Bearer KEY`; an operator creates one \
                     with `prostream keys create --name NAME`",
                )),
            };
        };
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|secret| auth::looks_like_key(secret))
            .ok_or_else(|| {
                unauthorized(
                    ErrorCode::ApiKeyInvalid,
                    "the Authorization header is not `Bearer ps_…` with a ProStream API key",
                )
            })?;
        let mut conn = state.pool.acquire().await?;
        match db::keys::find_live(&mut conn, &auth::digest(secret)).await? {
            Some(key) => Ok(Caller {
                owner_id: Some(key.owner_id),
                admin: key.admin,
            }),
            None => Err(unauthorized(
                ErrorCode::ApiKeyInvalid,
                "this API key is unknown or has been revoked; ask an operator for a new one",
            )),
        }
    }
}

fn unauthorized(code: ErrorCode, detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, detail).with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="prostream""#),
    )
}
