//! The one place where errors become HTTP responses: a JSON body
//! `{"error": {"code": "...", "message": "...", "details": [...]}}` and a 4xx/5xx status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gemba_engine::EngineError;
use gemba_ingest::{DecodeError, ItemError};
use serde::Serialize;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<ItemError>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[ItemError]>::is_empty")]
    details: &'a [ItemError],
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
    /// A query parameter that could not be used.
    pub fn param(name: &str, value: &str, reason: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("query parameter {name}={value:?}: {reason}"))
    }
}

/// Longest error message an answer carries, in bytes; longer ones (a parser quoting a 50 MB string
/// of the request) are cut, so that a bad request is never echoed back at its own size.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Longest message of one item error (`details`, the ingest reply's `errors`).
pub const MAX_ITEM_MESSAGE_BYTES: usize = 512;

/// `message` cut to at most `max` bytes (on a character boundary), saying how much was cut.
pub fn clip_message(message: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if message.len() <= max {
        return message.into();
    }
    let kept = &message[..message.floor_char_boundary(max)];
    format!("{kept}… ({} more bytes cut)", message.len() - kept.len()).into()
}

/// The item errors with their messages clipped to [`MAX_ITEM_MESSAGE_BYTES`].
pub fn clip_items(items: &[ItemError]) -> Vec<ItemError> {
    items
        .iter()
        .map(|e| ItemError {
            location: clip_message(&e.location, MAX_ITEM_MESSAGE_BYTES).into_owned(),
            message: clip_message(&e.message, MAX_ITEM_MESSAGE_BYTES).into_owned(),
        })
        .collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = clip_message(&self.message, MAX_MESSAGE_BYTES);
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %message, "request failed");
        }
        let details = clip_items(&self.details);
        let body = Body {
            error: Inner {
                code: self.code,
                message: &message,
                details: &details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let msg = e.to_string();
        match e {
            EngineError::UnknownSignal(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_signal", msg)
            }
            EngineError::InvalidQuery(_) => ApiError::bad_request(msg),
            EngineError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", msg),
            EngineError::Model(_) | EngineError::Plant { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_model", msg)
            }
            EngineError::Alarm(a) => {
                use gemba_engine::alarms::AlarmError as A;
                let (status, code) = match a {
                    A::Invalid { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
                    A::UnknownRule(_) | A::UnknownAlarm(_) => (StatusCode::NOT_FOUND, "not_found"),
                    A::RuleExists(_)
                    | A::AckClosed(_)
                    | A::AlreadyAcknowledged { .. }
                    | A::AlreadyClosed(_)
                    | A::StillActive(_) => (StatusCode::CONFLICT, "conflict"),
                    A::FeatureNotASignal { .. } => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_model")
                    }
                    A::UnreadableRecord { .. } | A::Unwritable { .. } | A::VaeArtefact { .. } => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                    }
                };
                ApiError::new(status, code, msg)
            }
            EngineError::WorkOrder(w) => {
                use gemba_engine::maintenance::WorkOrderError as W;
                let (status, code) = match w {
                    W::Invalid { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
                    W::Unknown(_) => (StatusCode::NOT_FOUND, "not_found"),
                    W::NotNow { .. } | W::AlarmHasOne { .. } => (StatusCode::CONFLICT, "conflict"),
                    W::UnreadableRecord { .. } | W::Unwritable { .. } => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                    }
                };
                ApiError::new(status, code, msg)
            }
            EngineError::Registry(r) => {
                use gemba_engine::models::RegistryError as R;
                let (status, code) = match r {
                    R::BadName { .. } | R::BadArtefact(_) | R::UnknownAsset(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_model")
                    }
                    R::UnknownVersion { .. } => (StatusCode::NOT_FOUND, "not_found"),
                    R::Record(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                };
                ApiError::new(status, code, msg)
            }
            EngineError::Production(p) => {
                use gemba_engine::production::ProductionError as P;
                let (status, code) = match p {
                    P::Invalid { .. } | P::BadTimezone { .. } => {
                        (StatusCode::BAD_REQUEST, "bad_request")
                    }
                    P::UnknownAsset(_) => (StatusCode::NOT_FOUND, "not_found"),
                    P::UnreadableConfig(_) | P::Unwritable(_) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                    }
                };
                ApiError::new(status, code, msg)
            }
            EngineError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", msg)
            }
            EngineError::Store(gemba_store::StoreError::InvalidQuery(_)) => {
                ApiError::bad_request(msg)
            }
            EngineError::Config(_)
            | EngineError::Store(_)
            | EngineError::Storage(_)
            | EngineError::Mqtt(_)
            | EngineError::Internal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg)
            }
        }
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        let code = match e {
            DecodeError::Syntax { .. } | DecodeError::NotUtf8 | DecodeError::Empty => "malformed",
            DecodeError::Shape { .. } | DecodeError::Topic { .. } => "invalid",
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string())
    }
}

impl From<gemba_engine::inspection::InspectError> for ApiError {
    fn from(e: gemba_engine::inspection::InspectError) -> Self {
        use gemba_engine::inspection::InspectError as E;
        let msg = e.to_string();
        match e {
            E::UnknownModel(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_model", msg),
            E::WrongModelKind(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "wrong_model_kind", msg)
            }
            E::BadImage(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_image", msg),
            E::UnknownLot(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_lot", msg),
            E::UnknownMachine(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_machine", msg)
            }
            E::Invalid { .. } => ApiError::bad_request(msg),
            E::Unavailable => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", msg),
            E::Model(_) => ApiError::internal(msg),
            E::Engine(e) => ApiError::from(e),
        }
    }
}
