//! The layer.

use resile_classify::StatusSet;
use tower_layer::Layer;

use crate::read::ApiErrorReader;
use std::sync::Arc;

use crate::service::{Config, ErrorForStatus};

/// Turns final responses whose status is in a set (by default every 4xx and 5xx) into
/// `Err(ApiError)`, their body read within the [`ApiErrorReader`]'s bounds; every other
/// response passes untouched, its body not read.
///
/// Put it outermost, outside the retry layer: a `503` is still retried, and the `ApiError`
/// describes the last attempt and counts the attempts.
#[derive(Clone, Debug)]
pub struct ErrorForStatusLayer {
    statuses: StatusSet,
    reader: ApiErrorReader,
}

impl ErrorForStatusLayer {
    /// Every 4xx and 5xx becomes an error, read with the default reader.
    pub fn new() -> Self {
        ErrorForStatusLayer {
            statuses: client_and_server_errors(),
            reader: ApiErrorReader::new(),
        }
    }

    /// The statuses that become errors.
    pub fn statuses(mut self, statuses: StatusSet) -> Self {
        self.statuses = statuses;
        self
    }

    /// How bodies are read and parsed.
    pub fn reader(mut self, reader: ApiErrorReader) -> Self {
        self.reader = reader;
        self
    }
}

impl Default for ErrorForStatusLayer {
    fn default() -> Self {
        ErrorForStatusLayer::new()
    }
}

/// Every status from 400 to 599.
pub fn client_and_server_errors() -> StatusSet {
    StatusSet::from_statuses((400..=599).filter_map(|c| http::StatusCode::from_u16(c).ok()))
}

impl<S> Layer<S> for ErrorForStatusLayer {
    type Service = ErrorForStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorForStatus::new(
            inner,
            Arc::new(Config {
                statuses: self.statuses,
                reader: self.reader.clone(),
            }),
        )
    }
}
