//! The configured sinks as the gateway holds them: each sink's current settings (a slot its
//! worker watches) and health, in a map a reload swaps whole when it adds or removes one.

use std::collections::HashMap;
use std::sync::Arc;

use crate::sink::engine::{SinkRuntime, SinkSlot};
use crate::sink::{Health, Sink};
use crate::telemetry::Telemetry;

/// The configured sinks, by id.
pub type SinkMap = HashMap<String, Arc<SinkEntry>>;

/// What a reload changed in the sinks, for the delivery engine to apply: workers to start
/// for the sinks added (the spool already knows them), and the sinks removed, whose workers
/// are to be stopped before the spool forgets them ([`crate::spool::Spool::remove_sink`]).
#[derive(Default)]
pub struct SinkChanges {
    pub added: Vec<SinkRuntime>,
    /// By id, with their health (retired once their worker has stopped).
    pub removed: Vec<(String, Arc<Health>)>,
}

/// A configured sink: what it is and its settings (swapped whole by a reload that changes
/// them; its worker takes the new ones), and its health.
pub struct SinkEntry {
    pub(super) slot: tokio::sync::watch::Sender<Arc<SinkSlot>>,
    pub health: Arc<Health>,
}

impl SinkEntry {
    pub(super) fn new(
        sink: Arc<dyn Sink>,
        config: crate::config::SinkConfig,
        tel: &Telemetry,
    ) -> Arc<SinkEntry> {
        let health = Health::new(sink.id(), tel);
        let (slot, _) = tokio::sync::watch::channel(Arc::new(SinkSlot { sink, config }));
        Arc::new(SinkEntry { slot, health })
    }

    /// What the delivery engine runs for this sink.
    pub(super) fn runtime(&self) -> SinkRuntime {
        SinkRuntime {
            slot: self.slot.subscribe(),
            health: self.health.clone(),
        }
    }

    /// The sink as it runs now.
    pub fn current(&self) -> Arc<SinkSlot> {
        self.slot.borrow().clone()
    }
}
