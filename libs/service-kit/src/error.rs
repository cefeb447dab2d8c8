//! The one API error of every service: client errors say what to fix; internal errors say "internal error" with a request id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

tokio::task_local! {
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request being served on this task, for error bodies and logs.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `work` (one request's handling) with `id` as its request id (the HTTP layer calls this).
pub(crate) async fn with_request_id<F: std::future::Future>(id: String, work: F) -> F::Output {
    CURRENT_REQUEST_ID.scope(id, work).await
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request was malformed; `field` names the offending field where one is known.
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Anything the caller cannot fix; the cause is logged once, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        let field = field.into();
        Self::BadRequest {
            message: format!("{field}: {message}"),
            field: Some(field),
        }
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Internal(_) => "internal",
            Self::Unavailable(_) => "unavailable",
        }
    }

    /// Logs an internal error with its whole chain, once, where it turns into a response or status.
    fn log_if_internal(&self, request_id: &str) {
        if let Self::Internal(cause) = self {
            tracing::error!(
                request_id,
                error = %crate::service::error_chain(cause.as_ref()),
                "internal error"
            );
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
                tracing::warn!(error = %error, "database unavailable");
                Self::Unavailable("the database is unavailable; try again shortly".into())
            }
            _ => Self::internal(error),
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id().unwrap_or_default();
        self.log_if_internal(&request_id);
        let field = match &self {
            Self::BadRequest { field, .. } => field.clone(),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().into(),
                message: self.to_string(),
                field,
                request_id,
            },
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Self::Unauthorized(_) = self {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        let request_id = current_request_id().unwrap_or_default();
        error.log_if_internal(&request_id);
        let message = match &error {
            ApiError::Internal(_) => format!("internal error (request id {request_id})"),
            other => other.to_string(),
        };
        match error {
            ApiError::BadRequest { .. } => tonic::Status::invalid_argument(message),
            ApiError::Unauthorized(_) => tonic::Status::unauthenticated(message),
            ApiError::Forbidden(_) => tonic::Status::permission_denied(message),
            ApiError::NotFound(_) => tonic::Status::not_found(message),
            ApiError::Conflict(_) => tonic::Status::already_exists(message),
            ApiError::Internal(_) => tonic::Status::internal(message),
            ApiError::Unavailable(_) => tonic::Status::unavailable(message),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
