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
        let secret = bearer_secret(value)
            .map_err(|detail| unauthorized(ErrorCode::ApiKeyInvalid, &detail))?;
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

/// The key of an `Authorization: Bearer KEY` header, or what is wrong with the header. The scheme
/// is matched case-insensitively (RFC 9110, 11.1). The messages never repeat the header's value.
fn bearer_secret(value: &HeaderValue) -> Result<&str, String> {
    const SEND: &str = "send `Authorization: Bearer KEY`";
    let text = value
        .to_str()
        .map_err(|_| format!("the Authorization header is not plain ASCII text; {SEND}"))?
        .trim();
    let (scheme, rest) = text
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(if auth::looks_like_key(text) {
            format!("the Authorization header holds a key without its scheme; {SEND}")
        } else {
            format!("the Authorization header does not use the Bearer scheme; {SEND}")
        });
    }
    let secret = rest.trim();
    if secret.is_empty() {
        return Err(format!("no API key follows `Bearer`; {SEND}"));
    }
    match auth::format_problem(secret) {
        None => Ok(secret),
        Some(problem) => Err(format!(
            "the Bearer token is not a ProStream API key: {problem}; a key is `ps_` and 43 \
             letters, digits, `-` or `_`, as `prostream keys create` printed it"
        )),
    }
}

fn unauthorized(code: ErrorCode, detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, detail).with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="prostream""#),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<String, String> {
        bearer_secret(&HeaderValue::from_str(value).unwrap()).map(str::to_owned)
    }

    #[test]
    fn the_scheme_is_matched_whatever_its_case() {
        let key = auth::generate().secret;
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            assert_eq!(
                parse(&format!("{scheme} {key}")),
                Ok(key.clone()),
                "{scheme}"
            );
        }
        assert_eq!(parse(&format!("Bearer   {key}  ")), Ok(key));
    }

    #[test]
    fn a_malformed_header_is_told_what_is_wrong_without_repeating_it() {
        let key = auth::generate().secret;
        let not_bearer = parse(&format!("Basic {key}")).unwrap_err();
        assert!(
            not_bearer.contains("does not use the Bearer scheme"),
            "{not_bearer}"
        );
        let bare = parse(&key).unwrap_err();
        assert!(bare.contains("a key without its scheme"), "{bare}");
        let empty = parse("Bearer ").unwrap_err();
        assert!(empty.contains("no API key follows `Bearer`"), "{empty}");
        let short = parse("Bearer ps_short").unwrap_err();
        assert!(
            short.contains("not a ProStream API key: it is 8 characters long"),
            "{short}"
        );
        assert!(!short.contains("Bearer scheme"), "{short}");
        let foreign = parse("bearer ghp_0123456789").unwrap_err();
        assert!(foreign.contains("does not start with `ps_`"), "{foreign}");
        for message in [not_bearer, bare, empty, short, foreign] {
            assert!(
                !message.contains(&key) && !message.contains("ghp_"),
                "{message}"
            );
        }
    }
}
