//! Request extractors whose rejections are [`ApiError`]s that name the offending field.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `axum::Json` whose errors are 400s saying which field was wrong (unknown, missing or mistyped).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // axum reports `path: message` through serde_path_to_error; keep the path as the field.
            let detail = std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_else(|| e.body_text());
            let field = detail.split_once(": ").map(|(path, _)| path.to_owned());
            ApiError::BadRequest {
                field: field.filter(|f| f != "."),
                message: format!("invalid request body: {detail}"),
            }
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest {
            field: None,
            message: format!("request body is not valid JSON: {}", e.body_text()),
        },
        JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest {
            field: None,
            message: "send the body as JSON with `Content-Type: application/json`".into(),
        },
        other => ApiError::BadRequest {
            field: None,
            message: other.body_text(),
        },
    }
}

/// `axum::extract::Query` with 400s naming the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::BadRequest {
                field: None,
                message: e.body_text(),
            })
    }
}

/// `axum::extract::Path` with 400s naming the segment.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| ApiError::BadRequest {
                field: None,
                message: e.body_text(),
            })
    }
}
