//! The device consumer: queue `pushgate.<node>.device`, bound to `device.*`
//! (`device.started` / `stopped` as `device.status.changed`, and `created`, `deleted`, `error`,
//! `connection_lost`, `creation_failed`). It owns this node's device status cache, so
//! `oldStatus` follows the order of the queue. The logic is the shared [`EventConsumer`].

use super::event_consumer::{EventConsumer, Family};
use crate::device_status_cache::DEFAULT_DEVICE_CACHE_LIMIT;
use crate::routing::EventFamily;

/// Marker type of the device family.
#[derive(Debug)]
pub enum DeviceEvents {}

impl Family for DeviceEvents {
    const FAMILY: EventFamily = EventFamily::Device;
    const DEVICE_CACHE_LIMIT: usize = DEFAULT_DEVICE_CACHE_LIMIT;
    /// `oldStatus` comes from the status changes the log carries.
    const FENCED: bool = true;
}

/// The actor consuming `pushgate.<node>.device`.
pub type DeviceEventsConsumer = EventConsumer<DeviceEvents>;
