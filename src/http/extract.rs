//! axum's `Query` and `Path` extractors, with their rejections as problem+json, and [`Id`], a
//! typed id from the path.

use axum::{
    extract::{
        FromRequestParts, RawPathParams,
        rejection::{PathRejection, QueryRejection},
    },
    http::request::Parts,
};

use super::error::{ApiError, ErrorCode};
use crate::ids::TypedId;

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(ErrorCode::InvalidQuery, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(ErrorCode::InvalidPath, rejection.body_text())
    }
}

/// The `{id}` of the path as a typed id ([`crate::ids`]). An id that is not a UUID cannot
/// exist: it answers the same 404 as an unknown one, so malformed and missing ids read alike.
pub struct Id<T>(pub T);

impl<S: Send + Sync, T: TypedId> FromRequestParts<S> for Id<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                ApiError::bad_request(ErrorCode::InvalidPath, rejection.body_text())
            })?;
        let raw = params
            .iter()
            .find_map(|(name, value)| (name == "id").then_some(value))
            .ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("a route without {{id}} asked for one"))
            })?;
        raw.parse()
            .map(Id)
            .map_err(|_| ApiError::not_found(&format!("this {}", T::NOUN)))
    }
}
