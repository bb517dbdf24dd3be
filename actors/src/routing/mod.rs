//! The event → rooms routing table (docs/rabbitmq.md).
//!
//! Pure code: given one AMQP delivery (routing key + body) and the time pushgate received it,
//! [`route`] says which Socket.IO pushes the room supervisor must emit, whether the delivery is
//! ignored (no row for its routing key), or whether it is poison (dead-letter it). The only state
//! is the per-node [`DeviceStatusCache`] (last status seen per device), which the device consumer
//! owns and passes in; one consumer handles its deliveries in order, so no locking is needed.
//!
//! This module is the table itself; beside it, [`event_family`] (binding keys, routed keys),
//! `event_body` (reading the body and its ids), `alert_text` (when an alert is critical, the
//! admin notifications' texts) and `timestamps`. [`PushEvent`] lives in [`crate::messages`].
//!
//! Decisions beyond the table's letter (all covered by tests):
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
//! * A routed key's body larger than the consumer's limit (`MAX_PAYLOAD_BYTES`, the largest
//!   message a client takes) is poison ([`PoisonReason::TooLarge`]), found from its length
//!   before anything is parsed; pushing it would close every receiver's connection (or make it
//!   a slow reader) and cost a parse of megabytes. A body of exactly the limit is routed.
//!   Ignored keys stay ignored whatever their size (the key is looked up first).
//! * JSON nested deeper than [`MAX_JSON_DEPTH`] is poison ([`PoisonReason::NotJson`]) and is
//!   rejected by a linear scan before parsing, so no input can overflow the stack whatever
//!   serde_json features the workspace enables.
//! * `data` is the event byte for byte as published: its text is kept and copied into the
//!   payload, so numbers are never re-rounded, and member order, whitespace inside the object,
//!   escapes, `_trace` and unknown fields are what the publisher wrote. Whitespace around the
//!   object is not part of it. Duplicate keys are passed through as published too; where
//!   pushgate reads a member (ids, levels, usage, timestamps) it reads the last occurrence, as
//!   the client's `JSON.parse` does, so the push goes where its receiver reads it would.
//! * Quota events get `alertLevel` / `usagePercent` added (see `console_members`), spliced in
//!   before the object's closing `}`; nothing else is added to or changed in `data`.
//! * Every push to the admin room (the `message` copies and the `critical` / `error`
//!   notifications) names the event's user room in [`RoutedPush::except_members_of`]: the
//!   sessions in both rooms get the event once, as their own `notification`.
//! * Payloads are JSON text, built once per delivery and shared by the pushes that carry the
//!   same one.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use crate::device_status_cache::DeviceStatusCache;

mod alert_text;
mod console_members;
#[cfg(test)]
mod console_tests;
mod event_body;
pub mod event_family;
#[cfg(test)]
mod tests;
mod timestamps;

pub use crate::messages::PushEvent;
pub use alert_text::CRITICAL_PERCENT;
pub use event_body::MAX_JSON_DEPTH;
pub use event_family::{EventFamily, DEVICE_BINDING_KEY, QUOTA_BINDING_KEY, ROUTED_KEYS};

use alert_text::{critical_level, critical_message, exceeded_message};
use console_members::console_members;
use event_body::{parse_object, required_id, EventBody};
use timestamps::event_timestamp;

/// Room every admin socket joins; admin pushes go there.
pub const ADMIN_ROOM: &str = "admin";

/// Prefix of a user's room: `user:<userId>`.
pub const USER_ROOM_PREFIX: &str = "user:";

/// One push the room supervisor must emit.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedPush {
    /// Target room: `user:<userId>` or `admin`.
    pub room: String,
    /// Socket.IO event to emit.
    pub event: PushEvent,
    /// The event's single argument as JSON text, shared by the pushes that carry the same one
    /// (a user's push and its copy to the admin room), so that it is encoded once.
    pub payload: Arc<str>,
    /// Admin-room copies skip the sessions that are also in this room (the event's user room):
    /// those get the event already, as their `notification`.
    pub except_members_of: Option<String>,
    /// An alert (`quota.alert`, `quota.exceeded`, and their admin `critical` / `error`
    /// notifications): never held by a coalescing window (docs/limits.md).
    pub priority: bool,
}

/// Which quota an event is about: its `userId` and `quotaId` (as strings, like the rooms).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuotaKey {
    /// The event's `userId`.
    pub user_id: String,
    /// The event's `quotaId`.
    pub quota_id: String,
}

/// What storm coalescing (`QUOTA_COALESCE_MS`) makes of a routed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StormRole {
    /// A device event: delivered one by one, never held.
    Unrelated,
    /// A `quota.updated`: within the window, the latest for its quota wins.
    LatestWins(QuotaKey),
    /// Another quota event (`quota.alert`, `quota.exceeded`, `quota.renewed`): never held; an
    /// update held for the same quota is pushed before it, so the console's state is right.
    FlushesHeld(QuotaKey),
}

/// What to do with one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteOutcome {
    /// Deliver these pushes, in this order (the user push first, then the admin-room copies);
    /// the role says how storm coalescing treats the event.
    Routed(Vec<RoutedPush>, StormRole),
    /// Routing key has no row in the table: ack and count as ignored, whatever the body.
    Ignored,
    /// Malformed: dead-letter (reject, no requeue); the reason is logged once.
    Poison(PoisonReason),
}

/// Why a delivery is poison. `Display` gives a one-line reason for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoisonReason {
    /// The body is larger than the limit (`MAX_PAYLOAD_BYTES`); nothing of it was parsed.
    TooLarge {
        /// The body's length.
        bytes: usize,
        /// The limit it is over.
        limit: usize,
    },
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
            PoisonReason::TooLarge { bytes, limit } => {
                write!(
                    f,
                    "body of {bytes} bytes is over the limit of {limit} bytes"
                )
            }
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

const RUNNING: &str = "running";
const STOPPED: &str = "stopped";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Row {
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
    pub(super) fn for_key(routing_key: &str) -> Option<Row> {
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
/// A routed key's body over `max_event_bytes` is [`PoisonReason::TooLarge`] before it is read.
/// `received_at` is when pushgate received the delivery (used when the event has no timestamp).
/// `devices` is the consumer's status cache; it is read and updated only for routed device
/// events (never for ignored or poison deliveries).
pub fn route(
    routing_key: &str,
    body: &[u8],
    max_event_bytes: usize,
    received_at: SystemTime,
    devices: &mut DeviceStatusCache,
) -> RouteOutcome {
    let Some(row) = Row::for_key(routing_key) else {
        return RouteOutcome::Ignored;
    };
    if body.len() > max_event_bytes {
        return RouteOutcome::Poison(PoisonReason::TooLarge {
            bytes: body.len(),
            limit: max_event_bytes,
        });
    }
    match route_row(row, routing_key, body, received_at, devices) {
        Ok((pushes, role)) => RouteOutcome::Routed(pushes, role),
        Err(reason) => RouteOutcome::Poison(reason),
    }
}

fn route_row(
    row: Row,
    routing_key: &str,
    body: &[u8],
    received_at: SystemTime,
    devices: &mut DeviceStatusCache,
) -> Result<(Vec<RoutedPush>, StormRole), PoisonReason> {
    let event = parse_object(body)?;
    let fields = &event.fields;
    let user_id = required_id(fields, "userId")?;
    let user_room = format!("{USER_ROOM_PREFIX}{user_id}");
    let quota_key = |quota_id: &str| QuotaKey {
        user_id: user_id.clone(),
        quota_id: quota_id.to_owned(),
    };

    let (pushes, role) = match row {
        Row::QuotaUpdated => {
            let quota_id = required_id(fields, "quotaId")?;
            let data = quota_data(&event);
            let pushes = to_user_and_admin_message(user_room, typed(routing_key, &data));
            (pushes, StormRole::LatestWins(quota_key(&quota_id)))
        }
        Row::QuotaRenewed => {
            let quota_id = required_id(fields, "quotaId")?;
            let pushes = vec![to_user(user_room, typed(routing_key, &quota_data(&event)))];
            (pushes, StormRole::FlushesHeld(quota_key(&quota_id)))
        }
        Row::QuotaAlert => {
            let quota_id = required_id(fields, "quotaId")?;
            let data = quota_data(&event);
            let mut pushes = to_user_and_admin_message(user_room, typed(routing_key, &data));
            if let Some(level) = critical_level(fields) {
                let critical = AdminNotification {
                    kind: "critical",
                    title: "Quota critical",
                    message: critical_message(&user_id, &quota_id, fields, level),
                    timestamp: event_timestamp(fields, &["timestamp"], received_at),
                };
                pushes.push(critical.push(&data, &pushes[0].room));
            }
            (alerts(pushes), StormRole::FlushesHeld(quota_key(&quota_id)))
        }
        Row::QuotaExceeded => {
            let quota_id = required_id(fields, "quotaId")?;
            let data = quota_data(&event);
            let mut pushes = to_user_and_admin_message(user_room, typed(routing_key, &data));
            let exceeded = AdminNotification {
                kind: "error",
                title: "Quota exceeded",
                message: exceeded_message(&user_id, &quota_id, fields),
                timestamp: event_timestamp(fields, &["timestamp"], received_at),
            };
            pushes.push(exceeded.push(&data, &pushes[0].room));
            (alerts(pushes), StormRole::FlushesHeld(quota_key(&quota_id)))
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
            let data = format!(
                r#"{{"deviceId":{},"deviceName":{},"oldStatus":{},"newStatus":{},"timestamp":{}}}"#,
                event.raw["deviceId"].get(),
                json_string(&device_name),
                json_string(old_status),
                json_string(new_status),
                json_string(&timestamp),
            );
            devices.set(&device_id, new_status);
            let pushes =
                to_user_and_admin_message(user_room, typed("device.status.changed", &data));
            (pushes, StormRole::Unrelated)
        }
        Row::DevicePassthrough => {
            let device_id = required_id(fields, "deviceId")?;
            if routing_key == "device.deleted" {
                devices.remove(&device_id);
            }
            let pushes = to_user_and_admin_message(user_room, typed(routing_key, event.text));
            (pushes, StormRole::Unrelated)
        }
    };
    Ok((pushes, role))
}

/// `pushes` marked as alerts ([`RoutedPush::priority`]).
fn alerts(mut pushes: Vec<RoutedPush>) -> Vec<RoutedPush> {
    for push in &mut pushes {
        push.priority = true;
    }
    pushes
}

/// A quota event's `data`: the event as published, plus the members the console reads when
/// only their publisher's names are there (see [`console_members`]).
fn quota_data(event: &EventBody<'_>) -> String {
    event.with_members(&console_members(event))
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    Value::from(text).to_string()
}

/// `{"type":<kind>,"data":<data>}`, `data` being JSON text.
fn typed(kind: &str, data: &str) -> Arc<str> {
    format!(r#"{{"type":{},"data":{data}}}"#, json_string(kind)).into()
}

fn to_user(user_room: String, payload: Arc<str>) -> RoutedPush {
    RoutedPush {
        room: user_room,
        event: PushEvent::Notification,
        payload,
        except_members_of: None,
        priority: false,
    }
}

/// The user's push, and its copy to the admin room as `message` for the admins who are not
/// that user (one payload for both).
fn to_user_and_admin_message(user_room: String, payload: Arc<str>) -> Vec<RoutedPush> {
    let admin_copy = RoutedPush {
        room: ADMIN_ROOM.to_owned(),
        event: PushEvent::Message,
        payload: payload.clone(),
        except_members_of: Some(user_room.clone()),
        priority: false,
    };
    vec![to_user(user_room, payload), admin_copy]
}

/// The admin room's `critical` / `error` notification about a quota event.
struct AdminNotification {
    kind: &'static str,
    title: &'static str,
    message: String,
    timestamp: String,
}

impl AdminNotification {
    /// The push to the admin room, except the members of `user_room`; `data` is the event's
    /// JSON text.
    fn push(&self, data: &str, user_room: &str) -> RoutedPush {
        let payload = format!(
            r#"{{"type":{},"title":{},"message":{},"data":{data},"timestamp":{}}}"#,
            json_string(self.kind),
            json_string(self.title),
            json_string(&self.message),
            json_string(&self.timestamp),
        );
        RoutedPush {
            room: ADMIN_ROOM.to_owned(),
            event: PushEvent::Notification,
            payload: payload.into(),
            except_members_of: Some(user_room.to_owned()),
            priority: true,
        }
    }
}
