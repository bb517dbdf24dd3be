//! The event → rooms routing table (contract §3).
//!
//! Pure code: given one AMQP delivery (routing key + body) and the time pushgate received it,
//! [`route`] says which Socket.IO pushes the room supervisor must emit, whether the delivery is
//! ignored (no row for its routing key), or whether it is poison (dead-letter it). The only state
//! is the per-node [`DeviceStatusCache`] (last status seen per device), which the device consumer
//! owns and passes in; one consumer handles its deliveries in order, so no locking is needed.
//!
//! Decisions beyond the contract's letter (all covered by tests):
//!
//! * The routing key is looked up **before** the body is read: a key without a row is
//!   [`RouteOutcome::Ignored`] whatever its body (garbage, empty, huge).
//! * Required ids (`userId`, plus `quotaId` / `deviceId`) are a non-empty string of any length,
//!   or a JSON integer in `0..=2^64-1` (written without fraction or exponent: `42.0` and `1e3`
//!   are floats, hence wrong type; a larger integer cannot be read exactly and is wrong type
//!   too). The user room is `user:<the string>` or `user:<the integer in decimal>`. Strings are
//!   used as they are (not trimmed). An id longer than a JWT `sub` may be (128 characters) names
//!   a user room nobody can be in: the user push reaches no one, the admin copies still go out.
//!   Such a long `deviceId`'s status is not cached
//!   ([`MAX_CACHED_DEVICE_ID_BYTES`](crate::device_status_cache::MAX_CACHED_DEVICE_ID_BYTES)).
//! * `usagePercent` and the values of the `percentage` object count when they are finite JSON
//!   numbers or strings that parse as finite decimal numbers after trimming (`"97.5"`,
//!   `" 95 "`, `"1e2"`). Anything else there (`"97%"`, `"high"`, `"NaN"`, `true`, an object, a
//!   non-object `percentage`) is not poison: it simply does not make the event critical.
//! * `alertLevel` / `severity` match the exact lower-case string `"critical"`.
//! * Event timestamps (`timestamp`, `startedAt`, `stoppedAt`) are passed through verbatim when
//!   they are non-empty strings; when absent, empty or not a string, the next fallback applies,
//!   ending at the receive time formatted as RFC 3339 UTC with milliseconds.
//! * In the `device.status.changed` data, `deviceId` is the value as published (a string stays a
//!   string, a number stays a number); `deviceName` is the published non-empty string, else the
//!   device id as a string. The status cache keys a device by the id's string form, so `7` and
//!   `"7"` are the same device.
//! * `oldStatus` is the cached status even when it equals the new one (a second
//!   `device.started` says `running` → `running`).
//! * No body size limit is applied here (the contract sets none for AMQP); JSON nested deeper
//!   than [`MAX_JSON_DEPTH`] is poison ([`PoisonReason::NotJson`]) and is rejected by a linear
//!   scan before parsing, so no input can overflow the stack whatever serde_json features the
//!   workspace enables.
//! * `data` is the parsed event re-serialised: same members and values, `_trace` and unknown
//!   fields included, but member order follows serde_json's map (sorted unless the
//!   `preserve_order` feature is on) and duplicate keys keep the last value.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::device_status_cache::DeviceStatusCache;

/// Room every admin socket joins; admin pushes go there.
pub const ADMIN_ROOM: &str = "admin";

/// Prefix of a user's room: `user:<userId>`.
pub const USER_ROOM_PREFIX: &str = "user:";

/// Queue binding key of the quota consumer.
pub const QUOTA_BINDING_KEY: &str = "quota.*";

/// Queue binding key of the device consumer.
pub const DEVICE_BINDING_KEY: &str = "device.*";

/// Usage percentage (`usagePercent` or any `percentage` value) from which a quota alert is critical.
pub const CRITICAL_PERCENT: f64 = 95.0;

/// Deepest JSON nesting (objects and arrays) accepted in a body; deeper is poison.
pub const MAX_JSON_DEPTH: usize = 128;

/// Every routing key that has a row in the table; any other key is [`RouteOutcome::Ignored`].
pub const ROUTED_KEYS: [&str; 11] = [
    "quota.updated",
    "quota.alert",
    "quota.exceeded",
    "quota.renewed",
    "device.started",
    "device.stopped",
    "device.created",
    "device.deleted",
    "device.error",
    "device.connection_lost",
    "device.creation_failed",
];

/// Which Socket.IO event a push is emitted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushEvent {
    /// Emitted as `notification` (send to user, send notification to room).
    Notification,
    /// Emitted as `message` (send to room).
    Message,
}

impl PushEvent {
    /// The Socket.IO event name: `"notification"` or `"message"`.
    pub fn name(&self) -> &'static str {
        match self {
            PushEvent::Notification => "notification",
            PushEvent::Message => "message",
        }
    }
}

impl fmt::Display for PushEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One push the room supervisor must emit.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedPush {
    /// Target room: `user:<userId>` or `admin`.
    pub room: String,
    /// Socket.IO event to emit.
    pub event: PushEvent,
    /// The event's single argument, shared by the pushes that carry the same one (a user's
    /// push and its copy to the admin room), so that it is serialized once.
    pub payload: Arc<Value>,
}

/// What to do with one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteOutcome {
    /// Deliver these pushes, in this order (the user push first, then the admin push).
    Routed(Vec<RoutedPush>),
    /// Routing key has no row in the table: ack and count as ignored, whatever the body.
    Ignored,
    /// Malformed: dead-letter (reject, no requeue); the reason is logged once.
    Poison(PoisonReason),
}

/// Why a delivery is poison. `Display` gives a one-line reason for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoisonReason {
    /// The body is not valid JSON (or is nested deeper than [`MAX_JSON_DEPTH`]); parser message.
    NotJson(String),
    /// The body is JSON but not an object (array, string, number, bool, null).
    NotAnObject,
    /// A required field is absent.
    MissingField(&'static str),
    /// A required id is neither a string nor an integer in `0..=2^64-1` (float, negative, bool,
    /// null, array, object, too large to read exactly).
    WrongType(&'static str),
    /// A required id is the empty string.
    EmptyField(&'static str),
}

impl fmt::Display for PoisonReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoisonReason::NotJson(err) => write!(f, "body is not valid JSON: {err}"),
            PoisonReason::NotAnObject => f.write_str("body is JSON but not an object"),
            PoisonReason::MissingField(field) => write!(f, "required field `{field}` is missing"),
            PoisonReason::WrongType(field) => write!(
                f,
                "field `{field}` must be a non-empty string or a non-negative integer"
            ),
            PoisonReason::EmptyField(field) => write!(f, "field `{field}` is an empty string"),
        }
    }
}

impl std::error::Error for PoisonReason {}

/// Which consumer a routing key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventFamily {
    /// `quota.*`, queue `pushgate.<NODE_ID>.quota`.
    Quota,
    /// `device.*`, queue `pushgate.<NODE_ID>.device`.
    Device,
}

impl EventFamily {
    /// Both families, quota first.
    pub const ALL: [EventFamily; 2] = [EventFamily::Quota, EventFamily::Device];

    /// Short name: `"quota"` / `"device"` (queue suffix and the `consumer` metric label).
    pub fn name(self) -> &'static str {
        match self {
            EventFamily::Quota => "quota",
            EventFamily::Device => "device",
        }
    }

    /// The queue binding key: [`QUOTA_BINDING_KEY`] / [`DEVICE_BINDING_KEY`].
    pub fn binding_key(self) -> &'static str {
        match self {
            EventFamily::Quota => QUOTA_BINDING_KEY,
            EventFamily::Device => DEVICE_BINDING_KEY,
        }
    }

    /// The family whose binding matches `routing_key` with AMQP topic rules (`quota.*` matches
    /// exactly two words, the first being `quota`), or `None`.
    pub fn of_routing_key(routing_key: &str) -> Option<EventFamily> {
        let (first, rest) = routing_key.split_once('.')?;
        if rest.contains('.') {
            return None;
        }
        match first {
            "quota" => Some(EventFamily::Quota),
            "device" => Some(EventFamily::Device),
            _ => None,
        }
    }
}

const RUNNING: &str = "running";
const STOPPED: &str = "stopped";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    QuotaUpdated,
    QuotaAlert,
    QuotaExceeded,
    QuotaRenewed,
    DeviceStarted,
    DeviceStopped,
    /// `device.created` / `deleted` / `error` / `connection_lost` / `creation_failed`.
    DevicePassthrough,
}

impl Row {
    fn for_key(routing_key: &str) -> Option<Row> {
        Some(match routing_key {
            "quota.updated" => Row::QuotaUpdated,
            "quota.alert" => Row::QuotaAlert,
            "quota.exceeded" => Row::QuotaExceeded,
            "quota.renewed" => Row::QuotaRenewed,
            "device.started" => Row::DeviceStarted,
            "device.stopped" => Row::DeviceStopped,
            "device.created"
            | "device.deleted"
            | "device.error"
            | "device.connection_lost"
            | "device.creation_failed" => Row::DevicePassthrough,
            _ => return None,
        })
    }
}

/// The table: routes one delivery with routing key `routing_key` and body `body`.
///
/// `received_at` is when pushgate received the delivery (used when the event has no timestamp).
/// `devices` is the consumer's status cache; it is read and updated only for routed device
/// events (never for ignored or poison deliveries).
pub fn route(
    routing_key: &str,
    body: &[u8],
    received_at: SystemTime,
    devices: &mut DeviceStatusCache,
) -> RouteOutcome {
    let Some(row) = Row::for_key(routing_key) else {
        return RouteOutcome::Ignored;
    };
    match route_row(row, routing_key, body, received_at, devices) {
        Ok(pushes) => RouteOutcome::Routed(pushes),
        Err(reason) => RouteOutcome::Poison(reason),
    }
}

fn route_row(
    row: Row,
    routing_key: &str,
    body: &[u8],
    received_at: SystemTime,
    devices: &mut DeviceStatusCache,
) -> Result<Vec<RoutedPush>, PoisonReason> {
    let event = parse_object(body)?;
    let Value::Object(fields) = &event else {
        return Err(PoisonReason::NotAnObject);
    };
    let user_id = required_id(fields, "userId")?;
    let user_room = format!("{USER_ROOM_PREFIX}{user_id}");

    let pushes = match row {
        Row::QuotaUpdated => {
            required_id(fields, "quotaId")?;
            let payload = typed(routing_key, event);
            to_user_and_admin_message(user_room, payload)
        }
        Row::QuotaRenewed => {
            required_id(fields, "quotaId")?;
            vec![to_user(user_room, typed(routing_key, event))]
        }
        Row::QuotaAlert => {
            let quota_id = required_id(fields, "quotaId")?;
            match critical_level(fields) {
                None => vec![to_user(user_room, typed(routing_key, event))],
                Some(level) => {
                    let message = critical_message(&user_id, &quota_id, fields, level);
                    let timestamp = event_timestamp(fields, &["timestamp"], received_at);
                    vec![
                        to_user(user_room, typed(routing_key, event.clone())),
                        admin_notification("critical", "Quota critical", message, event, timestamp),
                    ]
                }
            }
        }
        Row::QuotaExceeded => {
            let quota_id = required_id(fields, "quotaId")?;
            let message = exceeded_message(&user_id, &quota_id, fields);
            let timestamp = event_timestamp(fields, &["timestamp"], received_at);
            vec![
                to_user(user_room, typed(routing_key, event.clone())),
                admin_notification("error", "Quota exceeded", message, event, timestamp),
            ]
        }
        Row::DeviceStarted | Row::DeviceStopped => {
            let device_id = required_id(fields, "deviceId")?;
            let (new_status, default_old, time_field) = if row == Row::DeviceStarted {
                (RUNNING, STOPPED, "startedAt")
            } else {
                (STOPPED, RUNNING, "stoppedAt")
            };
            let device_name = match fields.get("deviceName") {
                Some(Value::String(name)) if !name.is_empty() => name.clone(),
                _ => device_id.clone(),
            };
            let old_status = devices.get(&device_id).unwrap_or(default_old);
            let timestamp = event_timestamp(fields, &[time_field, "timestamp"], received_at);
            let payload = json!({
                "type": "device.status.changed",
                "data": {
                    "deviceId": fields.get("deviceId").cloned().unwrap_or(Value::Null),
                    "deviceName": device_name,
                    "oldStatus": old_status,
                    "newStatus": new_status,
                    "timestamp": timestamp,
                },
            });
            devices.set(&device_id, new_status);
            to_user_and_admin_message(user_room, payload)
        }
        Row::DevicePassthrough => {
            let device_id = required_id(fields, "deviceId")?;
            if routing_key == "device.deleted" {
                devices.remove(&device_id);
            }
            to_user_and_admin_message(user_room, typed(routing_key, event))
        }
    };
    Ok(pushes)
}

/// Parses `body` as JSON, refusing nesting deeper than [`MAX_JSON_DEPTH`] before any recursion.
fn parse_object(body: &[u8]) -> Result<Value, PoisonReason> {
    if nesting_exceeds(body, MAX_JSON_DEPTH) {
        return Err(PoisonReason::NotJson(format!(
            "nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    serde_json::from_slice(body).map_err(|e| PoisonReason::NotJson(e.to_string()))
}

/// Whether the brackets of `body` (outside strings) nest deeper than `limit`. Exact for valid
/// JSON; for invalid JSON the answer does not matter, the parser refuses it anyway.
fn nesting_exceeds(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A required id in its string form (the room suffix and cache key).
fn required_id(fields: &Map<String, Value>, field: &'static str) -> Result<String, PoisonReason> {
    match fields.get(field) {
        None => Err(PoisonReason::MissingField(field)),
        Some(Value::String(s)) if s.is_empty() => Err(PoisonReason::EmptyField(field)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|id| id.to_string())
            .ok_or(PoisonReason::WrongType(field)),
        Some(_) => Err(PoisonReason::WrongType(field)),
    }
}

/// `{"type": <routing key>, "data": <event>}`.
fn typed(routing_key: &str, event: Value) -> Value {
    json!({ "type": routing_key, "data": event })
}

fn to_user(user_room: String, payload: impl Into<Arc<Value>>) -> RoutedPush {
    RoutedPush {
        room: user_room,
        event: PushEvent::Notification,
        payload: payload.into(),
    }
}

fn to_user_and_admin_message(user_room: String, payload: Value) -> Vec<RoutedPush> {
    let payload = Arc::new(payload);
    vec![
        to_user(user_room, payload.clone()),
        RoutedPush {
            room: ADMIN_ROOM.to_owned(),
            event: PushEvent::Message,
            payload,
        },
    ]
}

fn admin_notification(
    kind: &str,
    title: &str,
    message: String,
    event: Value,
    timestamp: String,
) -> RoutedPush {
    RoutedPush {
        room: ADMIN_ROOM.to_owned(),
        event: PushEvent::Notification,
        payload: Arc::new(json!({
            "type": kind,
            "title": title,
            "message": message,
            "data": event,
            "timestamp": timestamp,
        })),
    }
}

/// The first of `fields` that is a non-empty string, verbatim; else `received_at` in RFC 3339.
fn event_timestamp(event: &Map<String, Value>, fields: &[&str], received_at: SystemTime) -> String {
    fields
        .iter()
        .find_map(|field| match event.get(*field) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| rfc3339_millis(received_at))
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-27T21:15:12.123Z`. Times before 1970 or after
/// year 9999 (which humantime cannot format) are clamped, so this never panics.
fn rfc3339_millis(time: SystemTime) -> String {
    const LAST_FORMATTABLE: Duration = Duration::from_millis(253_402_300_799_999);
    let since_epoch = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .min(LAST_FORMATTABLE);
    humantime::format_rfc3339_millis(UNIX_EPOCH + since_epoch).to_string()
}

/// Why a quota alert is critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CriticalBy {
    Usage,
    AlertLevel,
    Severity,
}

/// The highest usage percentage an event reports, and which `percentage` member it came from
/// (`None`: `usagePercent`).
struct PeakUsage<'a> {
    percent: f64,
    resource: Option<&'a str>,
}

/// A finite number, or a string holding one (trimmed); anything else is `None`.
fn percent_value(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    number.is_finite().then_some(number)
}

fn peak_usage(event: &Map<String, Value>) -> Option<PeakUsage<'_>> {
    let mut peak = event
        .get("usagePercent")
        .and_then(percent_value)
        .map(|percent| PeakUsage {
            percent,
            resource: None,
        });
    if let Some(Value::Object(percentages)) = event.get("percentage") {
        for (resource, value) in percentages {
            if let Some(percent) = percent_value(value) {
                if peak.as_ref().is_none_or(|p| percent > p.percent) {
                    peak = Some(PeakUsage {
                        percent,
                        resource: Some(resource),
                    });
                }
            }
        }
    }
    peak
}

fn critical_level(event: &Map<String, Value>) -> Option<CriticalBy> {
    let is_critical = |field: &str| event.get(field).and_then(Value::as_str) == Some("critical");
    if peak_usage(event).is_some_and(|p| p.percent >= CRITICAL_PERCENT) {
        Some(CriticalBy::Usage)
    } else if is_critical("alertLevel") {
        Some(CriticalBy::AlertLevel)
    } else if is_critical("severity") {
        Some(CriticalBy::Severity)
    } else {
        None
    }
}

/// `97.5`, `97`, `1.5e300`: at most two decimals, no float noise.
fn format_percent(percent: f64) -> String {
    if percent.abs() >= 1e9 {
        format!("{percent:e}")
    } else {
        format!("{}", (percent * 100.0).round() / 100.0)
    }
}

/// `"memory usage at 97%"` / `"usage at 97%"`; the resource name is shortened for the log line.
fn usage_phrase(peak: &PeakUsage<'_>) -> String {
    let percent = format_percent(peak.percent);
    match peak.resource {
        Some(resource) => {
            let mut name: String = resource.chars().take(64).collect();
            if name.len() < resource.len() {
                name.push('…');
            }
            format!("{name} usage at {percent}%")
        }
        None => format!("usage at {percent}%"),
    }
}

fn critical_message(
    user_id: &str,
    quota_id: &str,
    event: &Map<String, Value>,
    level: CriticalBy,
) -> String {
    let reason = match level {
        CriticalBy::Usage => "critical",
        CriticalBy::AlertLevel => "alertLevel critical",
        CriticalBy::Severity => "severity critical",
    };
    match peak_usage(event) {
        Some(peak) => format!(
            "User {user_id}: quota {quota_id} {} ({reason})",
            usage_phrase(&peak)
        ),
        None => format!("User {user_id}: quota {quota_id} usage is critical ({reason})"),
    }
}

fn exceeded_message(user_id: &str, quota_id: &str, event: &Map<String, Value>) -> String {
    match peak_usage(event) {
        Some(peak) => format!(
            "User {user_id}: quota {quota_id} exceeded ({})",
            usage_phrase(&peak)
        ),
        None => format!("User {user_id}: quota {quota_id} exceeded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2026-11-27T21:15:12.123Z
    fn received() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_814_112_123)
    }
    const RECEIVED: &str = "2026-11-27T21:15:12.123Z";

    fn run(key: &str, body: &Value, cache: &mut DeviceStatusCache) -> RouteOutcome {
        route(key, body.to_string().as_bytes(), received(), cache)
    }

    fn routed(key: &str, body: &Value) -> Vec<RoutedPush> {
        routed_with(key, body, &mut DeviceStatusCache::new())
    }

    fn routed_with(key: &str, body: &Value, cache: &mut DeviceStatusCache) -> Vec<RoutedPush> {
        match run(key, body, cache) {
            RouteOutcome::Routed(pushes) => pushes,
            other => panic!("{key}: expected Routed, got {other:?}"),
        }
    }

    fn poison(key: &str, body: &[u8]) -> PoisonReason {
        match route(key, body, received(), &mut DeviceStatusCache::new()) {
            RouteOutcome::Poison(reason) => reason,
            other => panic!("{key}: expected Poison, got {other:?}"),
        }
    }

    fn user(room: &str, payload: Value) -> RoutedPush {
        RoutedPush {
            room: room.to_owned(),
            event: PushEvent::Notification,
            payload: Arc::new(payload),
        }
    }

    fn admin(event: PushEvent, payload: Value) -> RoutedPush {
        RoutedPush {
            room: "admin".to_owned(),
            event,
            payload: Arc::new(payload),
        }
    }

    fn quota_event() -> Value {
        json!({
            "userId": "u1",
            "quotaId": "q1",
            "limits": {"maxDevices": 10, "totalCpuCores": 20},
            "usage": {"currentDevices": 5, "usedCpuCores": 8},
            "timestamp": "2026-11-27T10:00:00.000Z",
            "_trace": {"traceId": "abc", "spanId": "def"},
        })
    }

    fn alert_event(extra: Value) -> Value {
        let mut event = quota_event();
        let (Value::Object(e), Value::Object(x)) = (&mut event, extra) else {
            unreachable!()
        };
        e.extend(x);
        event
    }

    fn is_critical_alert(event: &Value) -> bool {
        let pushes = routed("quota.alert", event);
        assert_eq!(
            pushes[0],
            user(
                "user:u1",
                json!({"type": "quota.alert", "data": event.clone()})
            )
        );
        match pushes.len() {
            1 => false,
            2 => {
                assert_eq!(pushes[1].room, "admin");
                assert_eq!(pushes[1].event, PushEvent::Notification);
                assert_eq!(pushes[1].payload["type"], "critical");
                true
            }
            n => panic!("{n} pushes"),
        }
    }

    // ---- names and families -------------------------------------------------------------

    #[test]
    fn push_event_names() {
        assert_eq!(PushEvent::Notification.name(), "notification");
        assert_eq!(PushEvent::Message.name(), "message");
        assert_eq!(PushEvent::Message.to_string(), "message");
    }

    #[test]
    fn event_families() {
        assert_eq!(QUOTA_BINDING_KEY, "quota.*");
        assert_eq!(DEVICE_BINDING_KEY, "device.*");
        assert_eq!(EventFamily::Quota.binding_key(), "quota.*");
        assert_eq!(EventFamily::Device.binding_key(), "device.*");
        assert_eq!(EventFamily::Quota.name(), "quota");
        assert_eq!(EventFamily::Device.name(), "device");
        assert_eq!(
            EventFamily::of_routing_key("quota.alert"),
            Some(EventFamily::Quota)
        );
        assert_eq!(
            EventFamily::of_routing_key("device.started"),
            Some(EventFamily::Device)
        );
        assert_eq!(EventFamily::of_routing_key("quota.a.b"), None);
        assert_eq!(EventFamily::of_routing_key("quota"), None);
        assert_eq!(EventFamily::of_routing_key("user.created"), None);
        for key in ROUTED_KEYS {
            assert!(EventFamily::of_routing_key(key).is_some(), "{key}");
            assert!(Row::for_key(key).is_some(), "{key}");
        }
    }

    // ---- quota rows ---------------------------------------------------------------------

    #[test]
    fn quota_updated_goes_to_user_and_admin_message() {
        let event = quota_event();
        let expected = json!({"type": "quota.updated", "data": event.clone()});
        let pushes = routed("quota.updated", &event);
        assert_eq!(
            pushes,
            vec![
                user("user:u1", expected.clone()),
                admin(PushEvent::Message, expected)
            ]
        );
        assert!(
            Arc::ptr_eq(&pushes[0].payload, &pushes[1].payload),
            "one payload for both, serialized once"
        );
    }

    #[test]
    fn quota_renewed_goes_to_user_only() {
        let event = quota_event();
        assert_eq!(
            routed("quota.renewed", &event),
            vec![user(
                "user:u1",
                json!({"type": "quota.renewed", "data": event.clone()})
            )]
        );
    }

    #[test]
    fn quota_alert_not_critical_goes_to_user_only() {
        let event = alert_event(json!({"alertLevel": "warning", "usagePercent": 85}));
        assert_eq!(
            routed("quota.alert", &event),
            vec![user(
                "user:u1",
                json!({"type": "quota.alert", "data": event.clone()})
            )]
        );
    }

    #[test]
    fn quota_alert_critical_full_payloads() {
        let event = alert_event(json!({"severity": "critical", "usagePercent": 97}));
        assert_eq!(
            routed("quota.alert", &event),
            vec![
                user(
                    "user:u1",
                    json!({"type": "quota.alert", "data": event.clone()})
                ),
                admin(
                    PushEvent::Notification,
                    json!({
                        "type": "critical",
                        "title": "Quota critical",
                        "message": "User u1: quota q1 usage at 97% (critical)",
                        "data": event.clone(),
                        "timestamp": "2026-11-27T10:00:00.000Z",
                    })
                ),
            ]
        );
    }

    #[test]
    fn quota_alert_critical_without_timestamp_uses_receive_time() {
        let mut event = alert_event(json!({"alertLevel": "critical"}));
        event.as_object_mut().unwrap().remove("timestamp");
        let pushes = routed("quota.alert", &event);
        assert_eq!(pushes[1].payload["timestamp"], RECEIVED);
        assert_eq!(
            pushes[1].payload["message"],
            "User u1: quota q1 usage is critical (alertLevel critical)"
        );
        // Non-string and empty timestamps fall back too.
        for ts in [json!(1_795_814_112_123u64), json!(""), json!(null)] {
            let event = alert_event(json!({"alertLevel": "critical", "timestamp": ts}));
            assert_eq!(
                routed("quota.alert", &event)[1].payload["timestamp"],
                RECEIVED
            );
        }
    }

    #[test]
    fn quota_exceeded_full_payloads() {
        let event = alert_event(json!({"usagePercent": 102.5}));
        assert_eq!(
            routed("quota.exceeded", &event),
            vec![
                user(
                    "user:u1",
                    json!({"type": "quota.exceeded", "data": event.clone()})
                ),
                admin(
                    PushEvent::Notification,
                    json!({
                        "type": "error",
                        "title": "Quota exceeded",
                        "message": "User u1: quota q1 exceeded (usage at 102.5%)",
                        "data": event.clone(),
                        "timestamp": "2026-11-27T10:00:00.000Z",
                    })
                ),
            ]
        );
    }

    #[test]
    fn quota_exceeded_without_usage_or_timestamp() {
        let mut event = quota_event();
        event.as_object_mut().unwrap().remove("timestamp");
        let pushes = routed("quota.exceeded", &event);
        assert_eq!(pushes.len(), 2);
        assert_eq!(
            *pushes[1].payload,
            json!({
                "type": "error",
                "title": "Quota exceeded",
                "message": "User u1: quota q1 exceeded",
                "data": event.clone(),
                "timestamp": RECEIVED,
            })
        );
    }

    // ---- critical rules -----------------------------------------------------------------

    #[test]
    fn critical_by_alert_level() {
        assert!(is_critical_alert(&alert_event(
            json!({"alertLevel": "critical"})
        )));
        assert!(!is_critical_alert(&alert_event(
            json!({"alertLevel": "warning"})
        )));
        assert!(!is_critical_alert(&alert_event(
            json!({"alertLevel": "CRITICAL"})
        )));
    }

    #[test]
    fn critical_by_severity() {
        let event = alert_event(json!({"severity": "critical", "usagePercent": 90}));
        assert!(is_critical_alert(&event));
        assert_eq!(
            routed("quota.alert", &event)[1].payload["message"],
            "User u1: quota q1 usage at 90% (severity critical)"
        );
        assert!(!is_critical_alert(&alert_event(
            json!({"severity": "warning"})
        )));
    }

    #[test]
    fn critical_by_usage_percent_number() {
        assert!(is_critical_alert(&alert_event(json!({"usagePercent": 95}))));
        assert!(is_critical_alert(&alert_event(
            json!({"usagePercent": 99.99})
        )));
        assert!(!is_critical_alert(&alert_event(
            json!({"usagePercent": 94.9})
        )));
    }

    #[test]
    fn critical_by_usage_percent_string() {
        let event = alert_event(json!({"usagePercent": "97.5"}));
        assert!(is_critical_alert(&event));
        assert_eq!(
            routed("quota.alert", &event)[1].payload["message"],
            "User u1: quota q1 usage at 97.5% (critical)"
        );
        assert!(is_critical_alert(&alert_event(
            json!({"usagePercent": " 95 "})
        )));
        assert!(!is_critical_alert(&alert_event(
            json!({"usagePercent": "94.9"})
        )));
    }

    #[test]
    fn critical_by_percentage_object_number() {
        let event = alert_event(json!({
            "usagePercent": 50,
            "percentage": {"devices": 50, "cpu": 80.5, "memory": 96.25, "storage": 10},
        }));
        assert!(is_critical_alert(&event));
        assert_eq!(
            routed("quota.alert", &event)[1].payload["message"],
            "User u1: quota q1 memory usage at 96.25% (critical)"
        );
        assert!(!is_critical_alert(&alert_event(
            json!({"percentage": {"devices": 94.9, "cpu": 10}})
        )));
    }

    #[test]
    fn critical_by_percentage_object_string() {
        assert!(is_critical_alert(&alert_event(
            json!({"percentage": {"devices": "20", "cpu": "95.00"}})
        )));
        assert!(!is_critical_alert(&alert_event(
            json!({"percentage": {"devices": "94.9"}})
        )));
    }

    #[test]
    fn non_numeric_percentages_are_ignored_not_poison() {
        for event in [
            alert_event(json!({"usagePercent": "high"})),
            alert_event(json!({"usagePercent": "97%"})),
            alert_event(json!({"usagePercent": "NaN"})),
            alert_event(json!({"usagePercent": "inf"})),
            alert_event(json!({"usagePercent": ""})),
            alert_event(json!({"usagePercent": true})),
            alert_event(json!({"usagePercent": {"value": 99}})),
            alert_event(json!({"usagePercent": null})),
            alert_event(json!({"percentage": {"cpu": "lots", "mem": [99], "disk": null}})),
            alert_event(json!({"percentage": 99})),
            alert_event(json!({"percentage": "99"})),
            alert_event(json!({"percentage": [99]})),
        ] {
            assert!(!is_critical_alert(&event), "{event}");
        }
        // A non-numeric value does not hide a numeric one beside it.
        assert!(is_critical_alert(&alert_event(
            json!({"usagePercent": "n/a", "percentage": {"cpu": "lots", "mem": 99}})
        )));
    }

    #[test]
    fn exceeded_message_names_the_peak_resource() {
        let event = alert_event(json!({"percentage": {"devices": "110", "cpu": 50}}));
        assert_eq!(
            routed("quota.exceeded", &event)[1].payload["message"],
            "User u1: quota q1 exceeded (devices usage at 110%)"
        );
    }

    #[test]
    fn huge_resource_name_is_shortened_in_the_message() {
        let name = "r".repeat(1000);
        let event = alert_event(json!({"percentage": {name.clone(): 99}}));
        let message = routed("quota.alert", &event)[1].payload["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains(&format!("{}… usage at 99%", "r".repeat(64))));
    }

    #[test]
    fn format_percent_is_tidy() {
        assert_eq!(format_percent(97.0), "97");
        assert_eq!(format_percent(97.5), "97.5");
        assert_eq!(format_percent(96.123_456), "96.12");
        assert_eq!(format_percent(1e300), "1e300");
    }

    // ---- device rows --------------------------------------------------------------------

    #[test]
    fn device_started_full_payloads() {
        let event = json!({
            "deviceId": "d1", "userId": "u1", "deviceName": "Phone 1",
            "startedAt": "2026-11-27T10:00:01.000Z", "timestamp": "2026-11-27T10:00:02.000Z",
            "_trace": {"traceId": "abc"},
        });
        let mut cache = DeviceStatusCache::new();
        let expected = json!({
            "type": "device.status.changed",
            "data": {
                "deviceId": "d1",
                "deviceName": "Phone 1",
                "oldStatus": "stopped",
                "newStatus": "running",
                "timestamp": "2026-11-27T10:00:01.000Z",
            },
        });
        assert_eq!(
            routed_with("device.started", &event, &mut cache),
            vec![
                user("user:u1", expected.clone()),
                admin(PushEvent::Message, expected)
            ]
        );
        assert_eq!(cache.get("d1"), Some("running"));
    }

    #[test]
    fn device_stopped_full_payloads() {
        let event =
            json!({"deviceId": "d1", "userId": "u1", "stoppedAt": "2026-11-27T11:00:00.000Z"});
        let mut cache = DeviceStatusCache::new();
        let expected = json!({
            "type": "device.status.changed",
            "data": {
                "deviceId": "d1",
                "deviceName": "d1",
                "oldStatus": "running",
                "newStatus": "stopped",
                "timestamp": "2026-11-27T11:00:00.000Z",
            },
        });
        assert_eq!(
            routed_with("device.stopped", &event, &mut cache),
            vec![
                user("user:u1", expected.clone()),
                admin(PushEvent::Message, expected)
            ]
        );
        assert_eq!(cache.get("d1"), Some("stopped"));
    }

    #[test]
    fn device_timestamp_fallbacks() {
        let data_ts =
            |key: &str, event: Value| routed(key, &event)[0].payload["data"]["timestamp"].clone();
        // startedAt wins over timestamp.
        assert_eq!(
            data_ts(
                "device.started",
                json!({"deviceId": "d", "userId": "u", "startedAt": "S", "timestamp": "T"})
            ),
            "S"
        );
        // stoppedAt is not used for device.started.
        assert_eq!(
            data_ts(
                "device.started",
                json!({"deviceId": "d", "userId": "u", "stoppedAt": "X", "timestamp": "T"})
            ),
            "T"
        );
        assert_eq!(
            data_ts(
                "device.stopped",
                json!({"deviceId": "d", "userId": "u", "stoppedAt": "P", "timestamp": "T"})
            ),
            "P"
        );
        assert_eq!(
            data_ts(
                "device.stopped",
                json!({"deviceId": "d", "userId": "u", "startedAt": "X", "timestamp": "T"})
            ),
            "T"
        );
        // Empty / non-string values fall through; nothing left: receive time.
        assert_eq!(
            data_ts(
                "device.started",
                json!({"deviceId": "d", "userId": "u", "startedAt": "", "timestamp": 5})
            ),
            RECEIVED
        );
        assert_eq!(
            data_ts("device.stopped", json!({"deviceId": "d", "userId": "u"})),
            RECEIVED
        );
    }

    #[test]
    fn device_name_falls_back_to_device_id() {
        let name = |event: Value| {
            routed("device.started", &event)[0].payload["data"]["deviceName"].clone()
        };
        assert_eq!(name(json!({"deviceId": "d1", "userId": "u1"})), "d1");
        assert_eq!(
            name(json!({"deviceId": "d1", "userId": "u1", "deviceName": ""})),
            "d1"
        );
        assert_eq!(
            name(json!({"deviceId": "d1", "userId": "u1", "deviceName": null})),
            "d1"
        );
        assert_eq!(name(json!({"deviceId": 7, "userId": "u1"})), "7");
        assert_eq!(
            name(json!({"deviceId": "d1", "userId": "u1", "deviceName": "Pixel"})),
            "Pixel"
        );
    }

    #[test]
    fn old_status_comes_from_cache_then_default() {
        let mut cache = DeviceStatusCache::new();
        let old = |key: &str, cache: &mut DeviceStatusCache| {
            routed_with(key, &json!({"deviceId": "d1", "userId": "u1"}), cache)[0].payload["data"]
                ["oldStatus"]
                .clone()
        };
        assert_eq!(old("device.stopped", &mut cache), "running"); // default before stopped
        assert_eq!(old("device.stopped", &mut cache), "stopped"); // cache
        assert_eq!(old("device.started", &mut cache), "stopped");
        assert_eq!(old("device.started", &mut cache), "running");
        assert_eq!(old("device.stopped", &mut cache), "running");
        // Another device is independent and gets the default.
        let mut fresh = DeviceStatusCache::new();
        assert_eq!(old("device.started", &mut fresh), "stopped");
    }

    #[test]
    fn device_deleted_drops_cache_entry() {
        let mut cache = DeviceStatusCache::new();
        let ev = json!({"deviceId": "d1", "userId": "u1"});
        routed_with("device.stopped", &ev, &mut cache);
        routed_with(
            "device.started",
            &json!({"deviceId": "d2", "userId": "u1"}),
            &mut cache,
        );
        assert_eq!(cache.len(), 2);
        routed_with("device.deleted", &ev, &mut cache);
        assert_eq!(cache.get("d1"), None);
        assert_eq!(cache.get("d2"), Some("running"));
        assert_eq!(cache.len(), 1);
        // After deletion the default applies again.
        let pushes = routed_with("device.stopped", &ev, &mut cache);
        assert_eq!(pushes[0].payload["data"]["oldStatus"], "running");
    }

    #[test]
    fn other_device_events_do_not_touch_cache() {
        let mut cache = DeviceStatusCache::new();
        let ev = json!({"deviceId": "d1", "userId": "u1"});
        routed_with("device.stopped", &ev, &mut cache);
        for key in [
            "device.created",
            "device.error",
            "device.connection_lost",
            "device.creation_failed",
        ] {
            routed_with(key, &ev, &mut cache);
            assert_eq!(cache.get("d1"), Some("stopped"), "{key}");
        }
    }

    #[test]
    fn integer_and_string_device_ids_share_cache_entry() {
        let mut cache = DeviceStatusCache::new();
        routed_with(
            "device.started",
            &json!({"deviceId": 7, "userId": 42}),
            &mut cache,
        );
        assert_eq!(cache.get("7"), Some("running"));
        let pushes = routed_with(
            "device.stopped",
            &json!({"deviceId": "7", "userId": "42"}),
            &mut cache,
        );
        assert_eq!(pushes[0].payload["data"]["oldStatus"], "running");
        assert_eq!(pushes[0].payload["data"]["deviceId"], "7");
    }

    #[test]
    fn device_passthrough_rows() {
        for kind in [
            "created",
            "deleted",
            "error",
            "connection_lost",
            "creation_failed",
        ] {
            let key = format!("device.{kind}");
            let event = json!({
                "deviceId": "d1", "userId": "u1", "deviceName": "Phone",
                "reason": "boom", "timestamp": "2026-11-27T10:00:00.000Z",
                "_trace": {"traceId": "abc"},
            });
            let expected = json!({"type": key, "data": event.clone()});
            assert_eq!(
                routed(&key, &event),
                vec![
                    user("user:u1", expected.clone()),
                    admin(PushEvent::Message, expected)
                ],
                "{key}"
            );
        }
    }

    #[test]
    fn device_status_changed_keeps_integer_device_id() {
        let event = json!({"deviceId": 7, "userId": 42, "startedAt": "S"});
        let expected = json!({
            "type": "device.status.changed",
            "data": {"deviceId": 7, "deviceName": "7", "oldStatus": "stopped", "newStatus": "running", "timestamp": "S"},
        });
        assert_eq!(
            routed("device.started", &event),
            vec![
                user("user:42", expected.clone()),
                admin(PushEvent::Message, expected)
            ]
        );
    }

    // ---- cache bound --------------------------------------------------------------------

    #[test]
    fn cache_cap_evicts_least_recently_set() {
        let mut cache = DeviceStatusCache::with_capacity_limit(2);
        let start = |id: &str, cache: &mut DeviceStatusCache| {
            routed_with(
                "device.started",
                &json!({"deviceId": id, "userId": "u"}),
                cache,
            )
        };
        start("d1", &mut cache);
        start("d2", &mut cache);
        start("d1", &mut cache); // refreshes d1
        start("d3", &mut cache); // evicts d2
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("d1"), Some("running"));
        assert_eq!(cache.get("d2"), None);
        assert_eq!(cache.get("d3"), Some("running"));
        // An evicted device gets the default oldStatus again.
        let pushes = routed_with(
            "device.stopped",
            &json!({"deviceId": "d2", "userId": "u"}),
            &mut cache,
        );
        assert_eq!(pushes[0].payload["data"]["oldStatus"], "running");
        assert_eq!(cache.get("d1"), None); // d1 was now the oldest
    }

    #[test]
    fn cache_limit_zero_remembers_nothing() {
        let mut cache = DeviceStatusCache::with_capacity_limit(0);
        let ev = json!({"deviceId": "d1", "userId": "u1"});
        routed_with("device.started", &ev, &mut cache);
        assert!(cache.is_empty());
        assert_eq!(
            routed_with("device.started", &ev, &mut cache)[0].payload["data"]["oldStatus"],
            "stopped"
        );
    }

    #[test]
    fn poison_and_ignored_do_not_touch_cache() {
        let mut cache = DeviceStatusCache::new();
        route(
            "device.started",
            br#"{"deviceId":"d1"}"#,
            received(),
            &mut cache,
        );
        route(
            "device.foo",
            br#"{"deviceId":"d1","userId":"u1"}"#,
            received(),
            &mut cache,
        );
        assert!(cache.is_empty());
    }

    // ---- ids and passthrough ------------------------------------------------------------

    #[test]
    fn integer_ids_route_to_decimal_rooms() {
        let event = json!({"userId": 42, "quotaId": 7, "timestamp": "T"});
        let pushes = routed("quota.renewed", &event);
        assert_eq!(
            pushes,
            vec![user(
                "user:42",
                json!({"type": "quota.renewed", "data": event.clone()})
            )]
        );
        assert_eq!(
            routed("quota.renewed", &json!({"userId": 0, "quotaId": 0}))[0].room,
            "user:0"
        );
        // Any non-negative integer that fits 64 bits, past JavaScript's 2^53 too (a JWT `sub`
        // "9007199254740993" is a user like any other).
        for (id, room) in [
            (9_007_199_254_740_992u64, "user:9007199254740992"),
            (9_007_199_254_740_993u64, "user:9007199254740993"),
            (u64::MAX, "user:18446744073709551615"),
        ] {
            let event = json!({"userId": id, "quotaId": "q"});
            assert_eq!(routed("quota.renewed", &event)[0].room, room);
        }
        // The critical message uses the decimal form too.
        let alert = json!({"userId": 42, "quotaId": 7, "usagePercent": "97"});
        assert_eq!(
            routed("quota.alert", &alert)[1].payload["message"],
            "User 42: quota 7 usage at 97% (critical)"
        );
    }

    #[test]
    fn string_ids_are_used_verbatim() {
        let event = json!({"userId": "550e8400-e29b-41d4-a716-446655440000", "quotaId": "q"});
        assert_eq!(
            routed("quota.renewed", &event)[0].room,
            "user:550e8400-e29b-41d4-a716-446655440000"
        );
        let odd = json!({"userId": " a b/é ", "quotaId": "q"});
        assert_eq!(routed("quota.renewed", &odd)[0].room, "user: a b/é ");
        // 128 characters (multi-byte) is still fine.
        let long = "é".repeat(128);
        assert_eq!(
            routed(
                "quota.renewed",
                &json!({"userId": long.clone(), "quotaId": "q"})
            )[0]
            .room,
            format!("user:{long}")
        );
    }

    #[test]
    fn trace_and_unknown_fields_pass_through() {
        let body = br#"{"userId":"u1","quotaId":"q1","_trace":{"traceId":"abc","spanId":"s","sampled":true},"extra":[1,{"x":null}],"n":1.5}"#;
        let event: Value = serde_json::from_slice(body).unwrap();
        let RouteOutcome::Routed(pushes) = route(
            "quota.updated",
            body,
            received(),
            &mut DeviceStatusCache::new(),
        ) else {
            panic!()
        };
        for push in &pushes {
            assert_eq!(push.payload["data"], event);
            assert_eq!(push.payload["data"]["_trace"]["traceId"], "abc");
        }
    }

    #[test]
    fn json_nested_within_limit_is_fine() {
        let inner = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let body = format!(r#"{{"userId":"u1","quotaId":"q1","deep":{inner},"s":"[[[[{{{{"}}"#);
        assert!(matches!(
            route(
                "quota.renewed",
                body.as_bytes(),
                received(),
                &mut DeviceStatusCache::new()
            ),
            RouteOutcome::Routed(_)
        ));
    }

    // ---- ignored ------------------------------------------------------------------------

    #[test]
    fn unknown_keys_are_ignored_whatever_the_body() {
        let bodies: [&[u8]; 6] = [
            b"",
            b"not json at all",
            b"[1,2,3]",
            br#"{"userId":"u1","quotaId":"q1"}"#,
            b"\xff\xfe\x00",
            b"{{{{{{{{{{{{{{{{{{{{{{{{{{{{",
        ];
        for key in [
            "quota.deducted",
            "quota.metrics",
            "foo",
            "",
            "quota",
            "device",
            "quota.updated.extra",
            "Quota.Updated",
            "device.status.changed",
            "user.created",
        ] {
            for body in bodies {
                assert_eq!(
                    route(key, body, received(), &mut DeviceStatusCache::new()),
                    RouteOutcome::Ignored,
                    "{key}"
                );
            }
        }
        let huge = vec![b'['; 1_000_000];
        assert_eq!(
            route(
                "quota.deducted",
                &huge,
                received(),
                &mut DeviceStatusCache::new()
            ),
            RouteOutcome::Ignored
        );
    }

    // ---- poison -------------------------------------------------------------------------

    #[test]
    fn poison_not_json() {
        for body in [
            &b""[..],
            b"not json",
            b"{\"userId\":",
            b"\xff\xfe",
            b"{'userId':'u1'}",
            b"{\"userId\":\"u1\"} trailing",
        ] {
            assert!(
                matches!(poison("quota.updated", body), PoisonReason::NotJson(_)),
                "{body:?}"
            );
        }
    }

    #[test]
    fn poison_not_an_object() {
        for body in [
            "[]",
            r#"[{"userId":"u1","quotaId":"q1"}]"#,
            r#""u1""#,
            "null",
            "42",
            "true",
        ] {
            assert_eq!(
                poison("device.started", body.as_bytes()),
                PoisonReason::NotAnObject,
                "{body}"
            );
        }
    }

    #[test]
    fn poison_missing_fields() {
        assert_eq!(
            poison("quota.updated", b"{}"),
            PoisonReason::MissingField("userId")
        );
        assert_eq!(
            poison("quota.alert", br#"{"quotaId":"q1","severity":"critical"}"#),
            PoisonReason::MissingField("userId")
        );
        assert_eq!(
            poison("quota.exceeded", br#"{"userId":"u1"}"#),
            PoisonReason::MissingField("quotaId")
        );
        assert_eq!(
            poison("quota.renewed", br#"{"userId":"u1","deviceId":"d1"}"#),
            PoisonReason::MissingField("quotaId")
        );
        assert_eq!(
            poison("device.started", br#"{"userId":"u1","quotaId":"q1"}"#),
            PoisonReason::MissingField("deviceId")
        );
        assert_eq!(
            poison("device.error", br#"{"deviceId":"d1"}"#),
            PoisonReason::MissingField("userId")
        );
        assert_eq!(
            poison("device.deleted", br#"{"userId":"u1"}"#),
            PoisonReason::MissingField("deviceId")
        );
    }

    #[test]
    fn poison_empty_string_ids() {
        assert_eq!(
            poison("quota.updated", br#"{"userId":"","quotaId":"q1"}"#),
            PoisonReason::EmptyField("userId")
        );
        assert_eq!(
            poison("quota.updated", br#"{"userId":"u1","quotaId":""}"#),
            PoisonReason::EmptyField("quotaId")
        );
        assert_eq!(
            poison("device.stopped", br#"{"userId":"u1","deviceId":""}"#),
            PoisonReason::EmptyField("deviceId")
        );
    }

    #[test]
    fn poison_wrong_type_ids() {
        for id in [
            "-0",
            "-1",
            "1.5",
            "42.0",
            "1e3",
            "true",
            "false",
            "null",
            r#"{"id":1}"#,
            "[1]",
            "18446744073709551616",
        ] {
            let body = format!(r#"{{"userId":{id},"quotaId":"q1","deviceId":"d1"}}"#);
            assert_eq!(
                poison("quota.updated", body.as_bytes()),
                PoisonReason::WrongType("userId"),
                "{id}"
            );
            let body = format!(r#"{{"userId":"u1","quotaId":{id}}}"#);
            assert_eq!(
                poison("quota.alert", body.as_bytes()),
                PoisonReason::WrongType("quotaId"),
                "{id}"
            );
            let body = format!(r#"{{"userId":"u1","deviceId":{id}}}"#);
            assert_eq!(
                poison("device.created", body.as_bytes()),
                PoisonReason::WrongType("deviceId"),
                "{id}"
            );
        }
    }

    #[test]
    fn long_ids_are_routed_and_long_device_ids_not_cached() {
        // No length limit on ids (contract §3): a user id longer than any JWT `sub` names a
        // room nobody is in, but the admin copies must still go out.
        let long = "a".repeat(129);
        let event = json!({"userId": long.clone(), "quotaId": long.clone()});
        let pushes = routed("quota.exceeded", &event);
        assert_eq!(pushes.len(), 2);
        assert_eq!(pushes[0].room, format!("user:{long}"));
        assert_eq!(pushes[1].room, "admin");
        let mut cache = DeviceStatusCache::new();
        let event = json!({"userId": "u1", "deviceId": long.clone()});
        let pushes = routed_with("device.started", &event, &mut cache);
        assert_eq!(pushes.len(), 2);
        assert_eq!(pushes[1].room, "admin");
        assert_eq!(pushes[0].payload["data"]["deviceId"], json!(long));
        assert_eq!(cache.get(&long), None, "a long device id is not remembered");
        // So its next stop gets the contract's default, as an unknown device's would.
        let pushes = routed_with("device.stopped", &event, &mut cache);
        assert_eq!(pushes[0].payload["data"]["oldStatus"], "running");
        let short = "b".repeat(128);
        let event = json!({"userId": "u1", "deviceId": short.clone()});
        routed_with("device.started", &event, &mut cache);
        assert_eq!(cache.get(&short), Some("running"));
    }

    #[test]
    fn poison_deeply_nested_json_does_not_overflow_the_stack() {
        let open = "[".repeat(1_000_000);
        assert!(matches!(
            poison("quota.updated", open.as_bytes()),
            PoisonReason::NotJson(_)
        ));
        let balanced = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
        assert!(matches!(
            poison("quota.updated", balanced.as_bytes()),
            PoisonReason::NotJson(_)
        ));
        let objects = r#"{"a":"#.repeat(200_000);
        assert!(matches!(
            poison("device.started", objects.as_bytes()),
            PoisonReason::NotJson(_)
        ));
        let inside = format!(
            r#"{{"userId":"u1","quotaId":"q1","x":{}1{}}}"#,
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(matches!(
            poison("quota.updated", inside.as_bytes()),
            PoisonReason::NotJson(_)
        ));
    }

    #[test]
    fn nesting_scan_ignores_brackets_in_strings() {
        assert!(!nesting_exceeds(br#"{"a":"[[[[[[[[[[\"[[[["}"#, 2));
        assert!(nesting_exceeds(br#"{"a":[[1]]}"#, 2));
        assert!(!nesting_exceeds(br#"{"a":[1]}"#, 2));
    }

    #[test]
    fn one_megabyte_bodies() {
        // Valid 1 MB event: routed, nothing lost.
        let padding = "x".repeat(1_000_000);
        let event = json!({"userId": "u1", "quotaId": "q1", "padding": padding});
        let pushes = routed("quota.updated", &event);
        assert_eq!(pushes.len(), 2);
        assert_eq!(
            pushes[1].payload["data"]["padding"].as_str().map(str::len),
            Some(1_000_000)
        );
        // 1 MB of garbage, 1 MB array, 1 MB string: poison, promptly.
        let garbage = vec![b'x'; 1_000_000];
        assert!(matches!(
            poison("quota.updated", &garbage),
            PoisonReason::NotJson(_)
        ));
        let array = format!("[{}0]", "0,".repeat(500_000));
        assert_eq!(
            poison("device.created", array.as_bytes()),
            PoisonReason::NotAnObject
        );
        let string = format!("\"{padding}\"");
        assert_eq!(
            poison("device.created", string.as_bytes()),
            PoisonReason::NotAnObject
        );
        // 1 MB id: routed to a room nobody can be in (a JWT `sub` has at most 128
        // characters); the admin copy goes out.
        let event = json!({"userId": padding, "quotaId": "q1"});
        let pushes = routed("quota.updated", &event);
        assert_eq!(pushes.len(), 2);
        assert_eq!(pushes[0].room.len(), "user:".len() + 1_000_000);
    }

    #[test]
    fn poison_reasons_display() {
        assert_eq!(
            PoisonReason::NotAnObject.to_string(),
            "body is JSON but not an object"
        );
        assert_eq!(
            PoisonReason::MissingField("userId").to_string(),
            "required field `userId` is missing"
        );
        assert_eq!(
            PoisonReason::WrongType("quotaId").to_string(),
            "field `quotaId` must be a non-empty string or a non-negative integer"
        );
        assert_eq!(
            PoisonReason::EmptyField("deviceId").to_string(),
            "field `deviceId` is an empty string"
        );
        let PoisonReason::NotJson(msg) = poison("quota.updated", b"nope") else {
            panic!()
        };
        assert!(PoisonReason::NotJson(msg)
            .to_string()
            .starts_with("body is not valid JSON: "));
    }

    // ---- time ---------------------------------------------------------------------------

    #[test]
    fn receive_time_formatting_never_panics() {
        assert_eq!(rfc3339_millis(received()), RECEIVED);
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_secs(10)),
            "1970-01-01T00:00:00.000Z"
        );
        let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(rfc3339_millis(far), "9999-12-31T23:59:59.999Z");
    }
}
