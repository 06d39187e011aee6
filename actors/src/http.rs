//! A request's failure as an HTTP answer (feature `actix-web`): an actix-web
//! handler can return `Result<_, lpm::PoolError>` and let `?` pick the status.
//!
//! | [`ErrorKind`] | Status | Why |
//! |---|---|---|
//! | `queue_full`, `no_workers`, `restart_limit` | 503, `Retry-After: 1` | overloaded or recovering: the same request may succeed soon |
//! | `shutting_down`, `pool_stopped`, `killed` | 503 | this instance is stopping: try another |
//! | `timeout` | 504 | the worker did not answer in time |
//! | `worker_died`, `worker_killed`, `quarantined`, `not_retried`, `worker_gone` | 502 | the worker failed, not the request |
//! | `reload_failed` | 502 | the new workers of a reload could not start |
//! | `autoscaling`, `reload_in_progress` | 409 | the pool's size or command is being changed by something else |
//! | `payload_too_large` | 413 | the request or its answer exceeds the frame limit |
//! | `not_handled` | 501 | no worker serves this call |
//! | `handler` | 500 | the worker's handler returned an error |
//! | `decode`, `encode`, `codec_mismatch`, `descriptor`, `invalid_size`, `already_replied`, `no_fd_passing` | 500 | a bug or a misconfiguration on the server |
//!
//! The body is JSON: `{"error": "<kind>", "message": "<what happened>",
//! "request_id": "<uuid>" or null}`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::{Error, ErrorKind};

/// Seconds a client should wait before retrying an overloaded pool.
const RETRY_AFTER_SECS: &str = "1";

/// The HTTP status for a failure of this kind (see the [module](self) table).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::QueueFull
        | ErrorKind::NoWorkers
        | ErrorKind::RestartLimit
        | ErrorKind::ShuttingDown
        | ErrorKind::PoolStopped
        | ErrorKind::Killed => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::WorkerDied
        | ErrorKind::WorkerKilled
        | ErrorKind::Quarantined
        | ErrorKind::NotRetried
        | ErrorKind::WorkerGone => StatusCode::BAD_GATEWAY,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Autoscaling | ErrorKind::ReloadInProgress => StatusCode::CONFLICT,
        ErrorKind::ReloadFailed => StatusCode::BAD_GATEWAY,
        ErrorKind::NotHandled => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Handler
        | ErrorKind::Decode
        | ErrorKind::Encode
        | ErrorKind::CodecMismatch
        | ErrorKind::Descriptor
        | ErrorKind::InvalidSize
        | ErrorKind::AlreadyReplied
        | ErrorKind::NoFdPassing => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Whether a client may retry the same request here soon.
fn retry_soon(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::QueueFull | ErrorKind::NoWorkers | ErrorKind::RestartLimit
    )
}

#[derive(serde::Serialize)]
struct Body {
    error: &'static str,
    message: String,
    request_id: Option<lpm_protocol::RequestId>,
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        status_of(self.kind())
    }

    fn error_response(&self) -> HttpResponse {
        let kind = self.kind();
        let mut response = HttpResponse::build(status_of(kind));
        if retry_soon(kind) {
            response.insert_header((
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            ));
        }
        response.json(Body {
            error: kind.as_str(),
            message: self.to_string(),
            request_id: self.request_id(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn overload_asks_for_a_retry_and_says_what_happened() {
        let response = Error::QueueFull { capacity: 8 }.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let body = response.into_body().try_into_bytes().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "queue_full");
        assert!(json["message"].as_str().unwrap().contains('8'));
        assert!(json["request_id"].is_null());
    }

    #[test]
    fn timeouts_and_shutdown_have_their_own_statuses() {
        let timeout = Error::Timeout {
            id: uuid::Uuid::nil(),
            after: std::time::Duration::from_secs(1),
            attempts: 1,
        };
        assert_eq!(timeout.status_code(), StatusCode::GATEWAY_TIMEOUT);
        assert!(timeout
            .error_response()
            .headers()
            .get(header::RETRY_AFTER)
            .is_none());
        assert_eq!(
            Error::ShuttingDown.status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status_of(ErrorKind::WorkerDied), StatusCode::BAD_GATEWAY);
        assert_eq!(
            status_of(ErrorKind::NotHandled),
            StatusCode::NOT_IMPLEMENTED
        );
    }
}
