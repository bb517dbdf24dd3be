//! The device status cache: the last status (`running` / `stopped`) seen per device, which
//! [`route`](crate::routing::route) reads for a `device.started` / `device.stopped` event's
//! `oldStatus` and updates (docs/rabbitmq.md). The device consumer owns one and handles its
//! deliveries in order, so it needs no locking. It is bounded: a node sees every device of the
//! platform over time, and a status it no longer remembers only costs the documented default
//! `oldStatus`.

use std::collections::{HashMap, VecDeque};

use crate::cluster::DeviceChange;

/// Default cap of [`DeviceStatusCache`] entries.
pub const DEFAULT_DEVICE_CACHE_LIMIT: usize = 100_000;

/// Longest device id remembered, in bytes: a longer one (publishers may send any non-empty
/// string) is routed like any other but its status is not kept, so the cache's memory stays
/// bounded by entries × this.
pub const MAX_CACHED_DEVICE_ID_BYTES: usize = 128;

#[derive(Debug, Clone)]
struct CacheEntry {
    status: &'static str,
    seq: u64,
}

/// Last status seen per device (set by `device.started` / `device.stopped`, dropped by
/// `device.deleted`), keyed by the device id's string form.
///
/// Bounded: it holds at most [`capacity_limit`](Self::capacity_limit) devices
/// ([`DEFAULT_DEVICE_CACHE_LIMIT`] = 100 000 by default), each id at most
/// [`MAX_CACHED_DEVICE_ID_BYTES`] long: a few tens of MB at worst. Past the
/// cap, recording a new device evicts the device whose status was set least recently; an evicted
/// device's next start/stop gets the documented default `oldStatus`, as if never seen. A limit of
/// 0 remembers nothing. Every operation is amortised O(1).
#[derive(Debug, Clone)]
pub struct DeviceStatusCache {
    entries: HashMap<String, CacheEntry>,
    /// Devices in the order their status was set; entries whose `seq` no longer matches the map
    /// are stale (updated or removed since) and are skipped or compacted away.
    order: VecDeque<(String, u64)>,
    next_seq: u64,
    limit: usize,
    /// Cluster mode: the change the last routed event made, for its log record.
    journal: Option<Option<DeviceChange>>,
}

impl Default for DeviceStatusCache {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceStatusCache {
    /// An empty cache capped at [`DEFAULT_DEVICE_CACHE_LIMIT`] devices.
    pub fn new() -> Self {
        Self::with_capacity_limit(DEFAULT_DEVICE_CACHE_LIMIT)
    }

    /// An empty cache capped at `limit` devices (0: remembers nothing).
    pub fn with_capacity_limit(limit: usize) -> Self {
        DeviceStatusCache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            limit,
            journal: None,
        }
    }

    /// Note each change routing makes ([`take_change`](Self::take_change)), for cluster mode,
    /// where it goes into the log with the event's pushes.
    pub fn journaled(mut self) -> Self {
        self.journal = Some(None);
        self
    }

    /// The change routing made since the last call (journaled caches only).
    pub fn take_change(&mut self) -> Option<DeviceChange> {
        self.journal.as_mut().and_then(Option::take)
    }

    /// Apply a change another node routed (read from the cluster's log); not journaled.
    pub fn apply(&mut self, change: DeviceChange) {
        let journal = self.journal.take();
        match change {
            DeviceChange::Set { device_id, status } => self.set(&device_id, status),
            DeviceChange::Removed { device_id } => self.remove(&device_id),
        }
        self.journal = journal;
    }

    /// The most devices this cache holds.
    pub fn capacity_limit(&self) -> usize {
        self.limit
    }

    /// Last status seen for `device_id` (`"running"` or `"stopped"`), if remembered.
    pub fn get(&self, device_id: &str) -> Option<&'static str> {
        self.entries.get(device_id).map(|e| e.status)
    }

    /// Number of devices remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no device is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remember `status` as the last one of `device_id` (an id longer than
    /// [`MAX_CACHED_DEVICE_ID_BYTES`] is never remembered).
    pub(crate) fn set(&mut self, device_id: &str, status: &'static str) {
        if let Some(journal) = &mut self.journal {
            *journal = Some(DeviceChange::Set {
                device_id: device_id.to_owned(),
                status,
            });
        }
        if self.limit == 0 || device_id.len() > MAX_CACHED_DEVICE_ID_BYTES {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(entry) = self.entries.get_mut(device_id) {
            entry.status = status;
            entry.seq = seq;
        } else {
            while self.entries.len() >= self.limit {
                self.evict_oldest();
            }
            self.entries
                .insert(device_id.to_owned(), CacheEntry { status, seq });
        }
        self.order.push_back((device_id.to_owned(), seq));
        self.compact_if_needed();
    }

    /// Forget `device_id`.
    pub(crate) fn remove(&mut self, device_id: &str) {
        if let Some(journal) = &mut self.journal {
            *journal = Some(DeviceChange::Removed {
                device_id: device_id.to_owned(),
            });
        }
        self.entries.remove(device_id);
        self.compact_if_needed();
    }

    fn is_live(&self, device_id: &str, seq: u64) -> bool {
        self.entries.get(device_id).is_some_and(|e| e.seq == seq)
    }

    fn evict_oldest(&mut self) {
        while let Some((device_id, seq)) = self.order.pop_front() {
            if self.is_live(&device_id, seq) {
                self.entries.remove(&device_id);
                return;
            }
        }
        // Unreachable while `order` holds one live element per entry; stay bounded regardless.
        self.entries.clear();
    }

    fn compact_if_needed(&mut self) {
        if self.order.len() > 2 * self.entries.len() + 32 {
            let entries = &self.entries;
            self.order
                .retain(|(id, seq)| entries.get(id).is_some_and(|e| e.seq == *seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_defaults() {
        let cache = DeviceStatusCache::new();
        assert_eq!(cache.capacity_limit(), 100_000);
        assert!(cache.is_empty());
        assert_eq!(DeviceStatusCache::default().capacity_limit(), 100_000);
    }

    #[test]
    fn a_journaled_cache_notes_routed_changes_but_not_applied_ones() {
        let mut plain = DeviceStatusCache::new();
        plain.set("d", "running");
        assert_eq!(plain.take_change(), None);
        let mut cache = DeviceStatusCache::new().journaled();
        cache.set("d", "running");
        let set = DeviceChange::Set {
            device_id: "d".into(),
            status: "running",
        };
        assert_eq!(cache.take_change(), Some(set));
        assert_eq!(cache.take_change(), None);
        cache.apply(DeviceChange::Set {
            device_id: "e".into(),
            status: "stopped",
        });
        assert_eq!(cache.get("e"), Some("stopped"));
        assert_eq!(cache.take_change(), None, "applied, not routed");
        cache.remove("d");
        assert_eq!(
            cache.take_change(),
            Some(DeviceChange::Removed {
                device_id: "d".into()
            })
        );
        cache.apply(DeviceChange::Removed {
            device_id: "e".into(),
        });
        assert_eq!(cache.get("e"), None);
    }

    #[test]
    fn cache_stays_bounded_under_churn() {
        let mut cache = DeviceStatusCache::with_capacity_limit(100);
        for i in 0..10_000u32 {
            let id = format!("d{}", i % 150);
            cache.set(&id, if i % 2 == 0 { "running" } else { "stopped" });
            if i % 7 == 0 {
                cache.remove(&format!("d{}", i % 13));
            }
            assert!(cache.len() <= 100);
            assert!(cache.order.len() <= 2 * cache.len() + 33);
        }
        // Every remembered device is still reachable by eviction order.
        for (id, entry) in &cache.entries {
            assert!(cache.order.iter().any(|(k, s)| k == id && *s == entry.seq));
        }
    }
}
