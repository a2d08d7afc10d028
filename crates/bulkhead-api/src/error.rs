//! API errors: a status code and a message, sent as docker's `{"message": ...}` so the docker CLI and the
//! SDKs print them as they print dockerd's.

use bulkhead_engine::EngineError;
use hyper::StatusCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// An endpoint (or a method on one) this server does not implement: named, never an empty success.
    pub fn unsupported(method: &hyper::Method, path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("bulkhead does not support {method} {path}"),
        )
    }
}

/// Docker's status for each kind of engine failure: 404 for what does not exist, 409 for a conflict with
/// the current state, 400 for a bad parameter, 403 for what the isolation policy refuses, 500 otherwise.
impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        ApiError::from(&e)
    }
}

impl From<&EngineError> for ApiError {
    fn from(e: &EngineError) -> ApiError {
        use bulkhead_engine::ImageError;
        let status = match e {
            EngineError::NoSuchContainer(_)
            | EngineError::NoSuchPath { .. }
            | EngineError::NoSuchVolume(_)
            | EngineError::NoSuchNetwork(_)
            | EngineError::Image(ImageError::NotFound { .. }) => StatusCode::NOT_FOUND,
            EngineError::NameInUse(_)
            | EngineError::WrongState { .. }
            | EngineError::VolumeInUse { .. }
            | EngineError::NetworkExists(_)
            | EngineError::NetworkInUse { .. }
            | EngineError::Image(ImageError::InUse { .. } | ImageError::MultipleTags { .. }) => {
                StatusCode::CONFLICT
            }
            EngineError::InvalidOption(_)
            | EngineError::Ambiguous(_)
            | EngineError::WouldWidenPrivileges { .. }
            | EngineError::Image(
                ImageError::InvalidReference { .. }
                | ImageError::InvalidDigest { .. }
                | ImageError::Ambiguous { .. },
            ) => StatusCode::BAD_REQUEST,
            EngineError::PolicyRefused { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}
