//! The device status cache: the last status (`running` / `stopped`) seen per device, which
//! [`route`](crate::routing::route) reads for a `device.started` / `device.stopped` event's
//! `oldStatus` and updates (contract §3). The device consumer owns one and handles its
//! deliveries in order, so it needs no locking. It is bounded: a node sees every device of the
//! platform over time, and a status it no longer remembers only costs the contract's default
//! `oldStatus`.

use std::collections::{HashMap, VecDeque};

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
/// device's next start/stop gets the contract's default `oldStatus`, as if never seen. A limit of
/// 0 remembers nothing. Every operation is amortised O(1).
#[derive(Debug, Clone)]
pub struct DeviceStatusCache {
    entries: HashMap<String, CacheEntry>,
    /// Devices in the order their status was set; entries whose `seq` no longer matches the map
    /// are stale (updated or removed since) and are skipped or compacted away.
    order: VecDeque<(String, u64)>,
    next_seq: u64,
    limit: usize,
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
        }
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
