//! What every admin resource shares: the handlers' state, the one error
//! type and its mapping, body parsing, name checks.

use crate::context::Ctx;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Largest request body accepted.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) shutdown: CancellationToken,
}

/// An API error: status, message and the field it is about.
pub(crate) struct ApiError {
    status: StatusCode,
    field: Option<String>,
    message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            field,
            message: message.into(),
        }
    }
    pub(crate) fn bad(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(field.to_owned()), message)
    }
    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, format!("{what} not found"))
    }
    /// The same error, about `field` of this request (a lookup made for
    /// one field of the body).
    pub(crate) fn about(self, field: &str) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..self
        }
    }
    /// The one mapping of store failures: a taken name or a row still in
    /// use is 409 on `field` (with `message`, else the store's own), any
    /// other failure 500.
    pub(crate) fn store(
        field: &str,
        message: Option<String>,
    ) -> impl FnOnce(burrow_store::StoreError) -> Self + '_ {
        move |e| match e {
            burrow_store::StoreError::Exists { .. } | burrow_store::StoreError::InUse { .. } => {
                let message = message.unwrap_or_else(|| e.to_string());
                Self::new(StatusCode::CONFLICT, Some(field.to_owned()), message)
            }
            other => Self::internal(other),
        }
    }
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "admin API internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "internal error; see the edge log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.field {
            Some(f) => json!({"error": self.message, "field": f}),
            None => json!({"error": self.message}),
        };
        (self.status, Json(body)).into_response()
    }
}

pub(crate) fn body<T>(r: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    r.map(|Json(t)| t).map_err(|e| {
        // A body over the limit is 413 (axum says so in the rejection's
        // status), every other unreadable body 400.
        let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, None, e.body_text())
    })
}

pub(crate) fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.bytes().all(|b| b == b'.') {
        return Err(ApiError::bad(
            "name",
            "'.' and '..' are not names (they are path segments)",
        ));
    }
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(ApiError::bad(
            "name",
            "must be 1-64 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

pub(crate) fn config_error(e: burrow_config::ConfigError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, Some(e.field), e.reason)
}
