//! Push statistics: per Socket.IO event and per source (`amqp`, `http`, `consul`), the pushes
//! accepted, the sessions they reached (deliveries), and the latency from a push's acceptance
//! to its packet being written to a client's socket; plus the busiest rooms of the last
//! minute ([`busiest_rooms`]).
//!
//! The supervisor counts pushes and deliveries ([`PushStats::pushed`], once per push) and the
//! busiest rooms; the transports record the latency when they hand a delivery's packets to the
//! socket ([`PushStats::written`], once per receiver, into per-thread counters: see
//! [`latency`]). `GET /api/v1/stats` reads them as [`EventStats`], `/metrics` as Prometheus
//! counters and a histogram ([`PushStats::render`]).

pub mod busiest_rooms;
pub mod latency;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub use busiest_rooms::{BusiestRooms, RoomActivity};
use latency::{LatencyHistograms, LatencySnapshot};

use crate::messages::{Packets, PushEvent, PushSource};

/// Every event, in series order.
const EVENTS: [PushEvent; 2] = [PushEvent::Notification, PushEvent::Message];
/// Every source, in series order.
const SOURCES: [PushSource; 3] = [PushSource::Amqp, PushSource::Http, PushSource::Consul];
/// One series per event and source.
const SERIES: usize = EVENTS.len() * SOURCES.len();

/// The series of an event and a source.
fn series(event: PushEvent, source: PushSource) -> usize {
    let e = match event {
        PushEvent::Notification => 0,
        PushEvent::Message => 1,
    };
    let s = match source {
        PushSource::Amqp => 0,
        PushSource::Http => 1,
        PushSource::Consul => 2,
    };
    e * SOURCES.len() + s
}

/// Every (event, source) pair with its series.
fn all_series() -> impl Iterator<Item = (PushEvent, PushSource, usize)> {
    EVENTS.into_iter().flat_map(|event| {
        SOURCES
            .into_iter()
            .map(move |source| (event, source, series(event, source)))
    })
}

/// The push statistics of one server.
pub struct PushStats {
    pushes: [AtomicU64; SERIES],
    deliveries: [AtomicU64; SERIES],
    latency: LatencyHistograms,
}

impl Default for PushStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Pushes, deliveries and latency by event name, then source name.
pub type EventStats = BTreeMap<&'static str, BTreeMap<&'static str, SourceStats>>;

/// One event's statistics from one source.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SourceStats {
    /// Pushes accepted.
    pub pushes: u64,
    /// Sessions they reached.
    pub deliveries: u64,
    /// Packets written to sockets (what the latency is measured on).
    pub written: u64,
    /// Latency from acceptance to the socket, in milliseconds; `None` before the first write.
    pub latency_ms: Option<Percentiles>,
}

/// Latency percentiles, in milliseconds (each the upper edge of its histogram bucket).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    fn of(snapshot: &LatencySnapshot) -> Option<Self> {
        let ms = |q| snapshot.percentile_micros(q).map(|us| us as f64 / 1000.0);
        Some(Percentiles {
            p50: ms(0.5)?,
            p90: ms(0.9)?,
            p99: ms(0.99)?,
        })
    }
}

impl PushStats {
    /// Empty statistics.
    pub fn new() -> Self {
        PushStats {
            pushes: Default::default(),
            deliveries: Default::default(),
            latency: LatencyHistograms::new(SERIES),
        }
    }

    /// Count one push of `event` from `source` that reached `deliveries` sessions.
    pub fn pushed(&self, event: PushEvent, source: PushSource, deliveries: usize) {
        let s = series(event, source);
        self.pushes[s].fetch_add(1, Ordering::Relaxed);
        self.deliveries[s].fetch_add(deliveries as u64, Ordering::Relaxed);
    }

    /// Record that one receiver's socket was handed `packets` at `now`.
    #[inline]
    pub fn written(&self, packets: &Packets, now: Instant) {
        for stamp in packets.stamps() {
            let s = series(stamp.event, stamp.accepted.source);
            self.latency
                .record(s, now.saturating_duration_since(stamp.accepted.at));
        }
    }

    /// Everything, by event then source.
    pub fn snapshot(&self) -> EventStats {
        let mut events = EventStats::new();
        for (event, source, s) in all_series() {
            let latency = self.latency.snapshot(s);
            events.entry(event.name()).or_default().insert(
                source.name(),
                SourceStats {
                    pushes: self.pushes[s].load(Ordering::Relaxed),
                    deliveries: self.deliveries[s].load(Ordering::Relaxed),
                    written: latency.count(),
                    latency_ms: Percentiles::of(&latency),
                },
            );
        }
        events
    }

    /// Append the Prometheus text of `pushgate_pushes_by_source_total{event,source}`,
    /// `pushgate_push_deliveries_total{event,source}` and the histogram
    /// `pushgate_push_latency_seconds{event,source}` to `out`.
    pub fn render(&self, out: &mut String) {
        for (name, help, counts) in [
            (
                "pushgate_pushes_by_source_total",
                "Pushes accepted, by Socket.IO event and source",
                &self.pushes,
            ),
            (
                "pushgate_push_deliveries_total",
                "Sessions reached by pushes, by Socket.IO event and source",
                &self.deliveries,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (event, source, s) in all_series() {
                let labels = labels(event, source);
                let value = counts[s].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
        let name = "pushgate_push_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a push being accepted to its packet being written to a \
             client's socket, by Socket.IO event and source\n# TYPE {name} histogram"
        );
        for (event, source, s) in all_series() {
            let labels = labels(event, source);
            let snapshot = self.latency.snapshot(s);
            for bound in latency::prometheus_bounds_micros() {
                let le = bound as f64 / 1e6;
                let count = snapshot.count_below(bound);
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {count}");
            }
            let (count, sum) = (snapshot.count(), snapshot.sum_micros as f64 / 1e6);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
        }
    }
}

/// The `event` and `source` labels.
fn labels(event: PushEvent, source: PushSource) -> String {
    format!("event=\"{}\",source=\"{}\"", event.name(), source.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Accepted, PushStamp};
    use bytestring::ByteString;
    use std::time::Duration;

    fn stamp(event: PushEvent, source: PushSource, at: Instant) -> PushStamp {
        PushStamp {
            event,
            accepted: Accepted { source, at },
        }
    }

    #[test]
    fn pushes_deliveries_and_latency_land_in_their_event_and_source() {
        let stats = PushStats::new();
        let t0 = Instant::now();
        stats.pushed(PushEvent::Message, PushSource::Http, 3);
        stats.pushed(PushEvent::Message, PushSource::Http, 2);
        stats.pushed(PushEvent::Notification, PushSource::Amqp, 1);
        let packets: Packets = [
            (
                ByteString::from_static("a"),
                stamp(PushEvent::Message, PushSource::Http, t0),
            ),
            (
                ByteString::from_static("b"),
                stamp(PushEvent::Notification, PushSource::Amqp, t0),
            ),
        ]
        .into_iter()
        .collect();
        stats.written(&packets, t0 + Duration::from_millis(3));
        stats.written(&packets, t0 + Duration::from_millis(30));
        let all = stats.snapshot();
        let message_http = &all["message"]["http"];
        assert_eq!((message_http.pushes, message_http.deliveries), (2, 5));
        assert_eq!(message_http.written, 2);
        let p = message_http.latency_ms.unwrap();
        assert!(p.p50 >= 3.0 && p.p50 <= 3.75, "{p:?}");
        assert!(p.p90 >= 30.0 && p.p99 == p.p90, "{p:?}");
        assert_eq!(all["notification"]["amqp"].written, 2);
        assert_eq!(all["notification"]["http"], SourceStats::default());
        assert_eq!(all.len(), 2);
        assert_eq!(all["message"].len(), 3);
    }

    #[test]
    fn renders_counters_and_a_histogram_per_event_and_source() {
        let stats = PushStats::new();
        stats.pushed(PushEvent::Notification, PushSource::Amqp, 4);
        let t0 = Instant::now();
        let packets: Packets = [(
            ByteString::from_static("a"),
            stamp(PushEvent::Notification, PushSource::Amqp, t0),
        )]
        .into_iter()
        .collect();
        stats.written(&packets, t0 + Duration::from_micros(1500));
        let mut text = String::new();
        stats.render(&mut text);
        let labels = "event=\"notification\",source=\"amqp\"";
        for line in [
            format!("pushgate_pushes_by_source_total{{{labels}}} 1"),
            format!("pushgate_push_deliveries_total{{{labels}}} 4"),
            format!("pushgate_push_latency_seconds_bucket{{{labels},le=\"0.001024\"}} 0"),
            format!("pushgate_push_latency_seconds_bucket{{{labels},le=\"0.002048\"}} 1"),
            format!("pushgate_push_latency_seconds_bucket{{{labels},le=\"+Inf\"}} 1"),
            format!("pushgate_push_latency_seconds_sum{{{labels}}} 0.0015"),
            format!("pushgate_push_latency_seconds_count{{{labels}}} 1"),
            "pushgate_push_latency_seconds_count{event=\"message\",source=\"http\"} 0".into(),
            "# TYPE pushgate_push_latency_seconds histogram".into(),
        ] {
            assert!(text.contains(&line), "missing {line} in:\n{text}");
        }
    }
}
