//! The layer.

use std::fmt;

use tower_layer::Layer;

use crate::handle::Telemetry;
use crate::service::TelemetryService;
use crate::window::View;

/// Records every request of the wrapped service into a [`Telemetry`]: its status code or the
/// kind of its error, and the latency to the response head.
///
/// Made by [`Telemetry::layer`] (what callers see: put it outermost) or
/// [`Telemetry::attempt_layer`] (what the server answered: put it inside the retry layer, so
/// that each attempt is one record). [`TelemetryLayer::new`] makes a layer with telemetry of
/// its own, read through [`TelemetryLayer::telemetry`].
#[derive(Clone)]
pub struct TelemetryLayer {
    telemetry: Telemetry,
    view: View,
}

impl TelemetryLayer {
    /// A layer recording what callers see into new telemetry with the defaults.
    pub fn new() -> Self {
        Telemetry::new().layer()
    }

    pub(crate) fn from_telemetry(telemetry: Telemetry, view: View) -> Self {
        TelemetryLayer { telemetry, view }
    }

    /// The telemetry this layer records into.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Which view this layer records.
    pub fn view(&self) -> View {
        self.view
    }
}

impl Default for TelemetryLayer {
    fn default() -> Self {
        TelemetryLayer::new()
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = TelemetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TelemetryService::new(inner, self.telemetry.clone(), self.view)
    }
}

impl fmt::Debug for TelemetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryLayer")
            .field("telemetry", &self.telemetry)
            .field("view", &self.view)
            .finish()
    }
}
