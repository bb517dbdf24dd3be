//! The quota consumer: queue `pushgate.<node>.quota`, bound to `quota.*`
//! (`quota.updated`, `quota.alert`, `quota.exceeded`, `quota.renewed`; other `quota.*` keys
//! are acked and counted as ignored). The logic is the shared [`EventConsumer`].

use super::event_consumer::{EventConsumer, Family};
use crate::routing::EventFamily;

/// Marker type of the quota family.
#[derive(Debug)]
pub enum QuotaEvents {}

impl Family for QuotaEvents {
    const FAMILY: EventFamily = EventFamily::Quota;
    /// Quota events never touch the device status cache.
    const DEVICE_CACHE_LIMIT: usize = 0;
    /// Quota routing keeps nothing the log carries (storms are held unacked, so the broker
    /// hands them to the next active consumer).
    const FENCED: bool = false;
}

/// The actor consuming `pushgate.<node>.quota`.
pub type QuotaEventsConsumer = EventConsumer<QuotaEvents>;
