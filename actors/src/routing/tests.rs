//! The table's tests: every row, the critical rules, ids, poison and ignored deliveries.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use serde_json::json;

/// 2026-11-27T21:15:12.123Z
fn received() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_795_814_112_123)
}
const RECEIVED: &str = "2026-11-27T21:15:12.123Z";

/// The body limit of the tests that are not about it: above every body they route.
const LIMIT: usize = 4 * 1024 * 1024;

fn run(key: &str, body: &Value, cache: &mut DeviceStatusCache) -> RouteOutcome {
    route(key, body.to_string().as_bytes(), LIMIT, received(), cache)
}

/// A routed push with its payload parsed (to compare and index).
#[derive(Debug, PartialEq)]
struct Parsed {
    room: String,
    event: PushEvent,
    payload: Value,
    except_members_of: Option<String>,
}

fn parsed(push: &RoutedPush) -> Parsed {
    Parsed {
        room: push.room.clone(),
        event: push.event,
        payload: serde_json::from_str(&push.payload).expect("payloads are JSON"),
        except_members_of: push.except_members_of.clone(),
    }
}

/// The pushes for `body` as published, payloads as text.
fn routed_text(key: &str, body: &[u8]) -> Vec<RoutedPush> {
    match route(key, body, LIMIT, received(), &mut DeviceStatusCache::new()) {
        RouteOutcome::Routed(pushes, _) => pushes,
        other => panic!("{key}: expected Routed, got {other:?}"),
    }
}

fn routed(key: &str, body: &Value) -> Vec<Parsed> {
    routed_with(key, body, &mut DeviceStatusCache::new())
}

fn routed_with(key: &str, body: &Value, cache: &mut DeviceStatusCache) -> Vec<Parsed> {
    match run(key, body, cache) {
        RouteOutcome::Routed(pushes, _) => pushes.iter().map(parsed).collect(),
        other => panic!("{key}: expected Routed, got {other:?}"),
    }
}

fn poison(key: &str, body: &[u8]) -> PoisonReason {
    match route(key, body, LIMIT, received(), &mut DeviceStatusCache::new()) {
        RouteOutcome::Poison(reason) => reason,
        other => panic!("{key}: expected Poison, got {other:?}"),
    }
}

fn user(room: &str, payload: Value) -> Parsed {
    Parsed {
        room: room.to_owned(),
        event: PushEvent::Notification,
        payload,
        except_members_of: None,
    }
}

/// The user's `notification` and the admin room's `message` copy of `payload`.
fn user_and_admin_message(user_room: &str, payload: Value) -> Vec<Parsed> {
    vec![
        user(user_room, payload.clone()),
        admin(user_room, PushEvent::Message, payload),
    ]
}

/// An admin-room copy of an event of the user whose room is `user_room`.
fn admin(user_room: &str, event: PushEvent, payload: Value) -> Parsed {
    Parsed {
        room: "admin".to_owned(),
        event,
        payload,
        except_members_of: Some(user_room.to_owned()),
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
    assert_eq!(pushes[0].room, "user:u1");
    assert_eq!(pushes[0].payload["type"], "quota.alert");
    assert_eq!(
        pushes[1],
        admin("user:u1", PushEvent::Message, pushes[0].payload.clone())
    );
    match pushes.len() {
        2 => false,
        3 => {
            assert_eq!(pushes[2].room, "admin");
            assert_eq!(pushes[2].event, PushEvent::Notification);
            assert_eq!(pushes[2].payload["type"], "critical");
            assert_eq!(pushes[2].except_members_of.as_deref(), Some("user:u1"));
            true
        }
        n => panic!("{n} pushes"),
    }
}

// ---- keys ---------------------------------------------------------------------------------

#[test]
fn every_routed_key_has_a_row() {
    for key in ROUTED_KEYS {
        assert!(Row::for_key(key).is_some(), "{key}");
    }
}

// ---- quota rows ---------------------------------------------------------------------

#[test]
fn quota_updated_goes_to_user_and_admin_message() {
    let event = quota_event();
    let expected = json!({"type": "quota.updated", "data": event.clone()});
    assert_eq!(
        routed("quota.updated", &event),
        user_and_admin_message("user:u1", expected)
    );
    let pushes = routed_text("quota.updated", event.to_string().as_bytes());
    assert!(
        Arc::ptr_eq(&pushes[0].payload, &pushes[1].payload),
        "one payload for both, encoded once"
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
fn quota_alert_not_critical_goes_to_user_and_admin_message() {
    let event = alert_event(json!({"alertLevel": "warning", "usagePercent": 85}));
    let expected = json!({"type": "quota.alert", "data": event.clone()});
    assert_eq!(
        routed("quota.alert", &event),
        user_and_admin_message("user:u1", expected)
    );
}

#[test]
fn quota_alert_critical_full_payloads() {
    let event = alert_event(json!({"severity": "critical", "usagePercent": 97}));
    // The console reads `alertLevel`: the publisher's `severity` is copied there.
    let data =
        alert_event(json!({"severity": "critical", "usagePercent": 97, "alertLevel": "critical"}));
    let expected = json!({"type": "quota.alert", "data": data.clone()});
    assert_eq!(
        routed("quota.alert", &event),
        vec![
            user("user:u1", expected.clone()),
            admin("user:u1", PushEvent::Message, expected),
            admin(
                "user:u1",
                PushEvent::Notification,
                json!({
                    "type": "critical",
                    "title": "Quota critical",
                    "message": "User u1: quota q1 usage at 97% (critical)",
                    "data": data,
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
    assert_eq!(pushes[2].payload["timestamp"], RECEIVED);
    assert_eq!(
        pushes[2].payload["message"],
        "User u1: quota q1 usage is critical (alertLevel critical)"
    );
    // Non-string and empty timestamps fall back too.
    for ts in [json!(1_795_814_112_123u64), json!(""), json!(null)] {
        let event = alert_event(json!({"alertLevel": "critical", "timestamp": ts}));
        assert_eq!(
            routed("quota.alert", &event)[2].payload["timestamp"],
            RECEIVED
        );
    }
}

#[test]
fn quota_exceeded_full_payloads() {
    let event = alert_event(json!({"usagePercent": 102.5}));
    let expected = json!({"type": "quota.exceeded", "data": event.clone()});
    assert_eq!(
        routed("quota.exceeded", &event),
        vec![
            user("user:u1", expected.clone()),
            admin("user:u1", PushEvent::Message, expected),
            admin(
                "user:u1",
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
    assert_eq!(pushes.len(), 3);
    assert_eq!(
        pushes[2].payload,
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
        routed("quota.alert", &event)[2].payload["message"],
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
        routed("quota.alert", &event)[2].payload["message"],
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
        routed("quota.alert", &event)[2].payload["message"],
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
        routed("quota.exceeded", &event)[2].payload["message"],
        "User u1: quota q1 exceeded (devices usage at 110%)"
    );
}

#[test]
fn huge_resource_name_is_shortened_in_the_message() {
    let name = "r".repeat(1000);
    let event = alert_event(json!({"percentage": {name.clone(): 99}}));
    let message = routed("quota.alert", &event)[2].payload["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.len() < 200, "{message}");
    assert!(message.contains(&format!("{}… usage at 99%", "r".repeat(64))));
}

// ---- device rows --------------------------------------------------------------------

#[test]
fn device_started_and_stopped_full_payloads() {
    let started = json!({
        "deviceId": "d1", "userId": "u1", "deviceName": "Phone 1",
        "startedAt": "2026-11-27T10:00:01.000Z", "timestamp": "2026-11-27T10:00:02.000Z",
        "_trace": {"traceId": "abc"},
    });
    let stopped =
        json!({"deviceId": "d1", "userId": "u1", "stoppedAt": "2026-11-27T11:00:00.000Z"});
    // Each on a fresh cache: the old status is the old service's constant.
    for (key, event, name, old, new, timestamp) in [
        (
            "device.started",
            started,
            "Phone 1",
            "stopped",
            "running",
            "2026-11-27T10:00:01.000Z",
        ),
        (
            "device.stopped",
            stopped,
            "d1",
            "running",
            "stopped",
            "2026-11-27T11:00:00.000Z",
        ),
    ] {
        let mut cache = DeviceStatusCache::new();
        let expected = json!({
            "type": "device.status.changed",
            "data": {
                "deviceId": "d1",
                "deviceName": name,
                "oldStatus": old,
                "newStatus": new,
                "timestamp": timestamp,
            },
        });
        assert_eq!(
            routed_with(key, &event, &mut cache),
            user_and_admin_message("user:u1", expected),
            "{key}"
        );
        assert_eq!(cache.get("d1"), Some(new), "{key}");
    }
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
    let name =
        |event: Value| routed("device.started", &event)[0].payload["data"]["deviceName"].clone();
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
            user_and_admin_message("user:u1", expected),
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
        user_and_admin_message("user:42", expected)
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
        LIMIT,
        received(),
        &mut cache,
    );
    route(
        "device.foo",
        br#"{"deviceId":"d1","userId":"u1"}"#,
        LIMIT,
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
        routed("quota.alert", &alert)[2].payload["message"],
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
fn trace_and_unknown_fields_pass_through_byte_for_byte() {
    let body = r#"{"userId":"u1","quotaId":"q1","_trace":{"traceId":"abc","spanId":"s","sampled":true},"extra":[1,{"x":null}],"n":1.5}"#;
    for push in routed_text("quota.updated", body.as_bytes()) {
        assert_eq!(
            &*push.payload,
            format!(r#"{{"type":"quota.updated","data":{body}}}"#)
        );
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
            LIMIT,
            received(),
            &mut DeviceStatusCache::new()
        ),
        RouteOutcome::Routed(..)
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
                route(key, body, LIMIT, received(), &mut DeviceStatusCache::new()),
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
            LIMIT,
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
    // No length limit on ids (docs/rabbitmq.md): a user id longer than any JWT `sub` names a
    // room nobody is in, but the admin copies must still go out.
    let long = "a".repeat(129);
    let event = json!({"userId": long.clone(), "quotaId": long.clone()});
    let pushes = routed("quota.exceeded", &event);
    assert_eq!(pushes.len(), 3);
    assert_eq!(pushes[0].room, format!("user:{long}"));
    assert_eq!(pushes[1].room, "admin");
    assert_eq!(pushes[2].room, "admin");
    let mut cache = DeviceStatusCache::new();
    let event = json!({"userId": "u1", "deviceId": long.clone()});
    let pushes = routed_with("device.started", &event, &mut cache);
    assert_eq!(pushes.len(), 2);
    assert_eq!(pushes[1].room, "admin");
    assert_eq!(pushes[0].payload["data"]["deviceId"], json!(long));
    assert_eq!(cache.get(&long), None, "a long device id is not remembered");
    // So its next stop gets the documented default, as an unknown device's would.
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

/// `quota.updated` for `u1` / `q1`, padded to exactly `len` bytes of JSON.
fn quota_updated_of_len(len: usize) -> Vec<u8> {
    let bare = br#"{"userId":"u1","quotaId":"q1","pad":""}"#.len();
    let body = format!(
        r#"{{"userId":"u1","quotaId":"q1","pad":"{}"}}"#,
        "x".repeat(len - bare)
    );
    assert_eq!(body.len(), len);
    body.into_bytes()
}

#[test]
fn bodies_over_the_limit_are_poison_before_parsing() {
    let limit = 1_000;
    let outcome =
        |key: &str, body: &[u8]| route(key, body, limit, received(), &mut DeviceStatusCache::new());
    // Under and at the limit: routed.
    for len in [limit - 1, limit] {
        let body = quota_updated_of_len(len);
        assert!(
            matches!(outcome("quota.updated", &body), RouteOutcome::Routed(..)),
            "{len} bytes"
        );
    }
    // One byte over: poison, whatever the body (valid event or garbage: not parsed).
    let over = quota_updated_of_len(limit + 1);
    let too_large = RouteOutcome::Poison(PoisonReason::TooLarge {
        bytes: limit + 1,
        limit,
    });
    assert_eq!(outcome("quota.updated", &over), too_large);
    assert_eq!(outcome("device.started", &[b'x'; 1_001]), too_large);
    // Ignored keys stay ignored, whatever their size.
    assert_eq!(outcome("quota.deducted", &over), RouteOutcome::Ignored);
    assert_eq!(
        outcome("quota.metrics", &vec![b'x'; 10 * limit]),
        RouteOutcome::Ignored
    );
}

#[test]
fn an_oversized_device_event_does_not_touch_the_cache() {
    let mut cache = DeviceStatusCache::new();
    let body = br#"{"userId":"u1","deviceId":"d1"}"#;
    let outcome = route(
        "device.started",
        body,
        body.len() - 1,
        received(),
        &mut cache,
    );
    assert!(matches!(
        outcome,
        RouteOutcome::Poison(PoisonReason::TooLarge { .. })
    ));
    assert!(cache.is_empty());
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
    assert_eq!(
        PoisonReason::TooLarge {
            bytes: 10_000_001,
            limit: 1_000_000
        }
        .to_string(),
        "body of 10000001 bytes is over the limit of 1000000 bytes"
    );
    let PoisonReason::NotJson(msg) = poison("quota.updated", b"nope") else {
        panic!()
    };
    assert!(PoisonReason::NotJson(msg)
        .to_string()
        .starts_with("body is not valid JSON: "));
}

#[test]
fn alerts_are_priority_and_each_quota_event_names_its_quota_for_storm_coalescing() {
    let quota = json!({"userId": "u1", "quotaId": 7, "usagePercent": 97});
    let device = json!({"userId": "u1", "deviceId": "d1"});
    let key = QuotaKey {
        user_id: "u1".into(),
        quota_id: "7".into(),
    };
    let latest = StormRole::LatestWins(key.clone());
    let flushes = StormRole::FlushesHeld(key);
    // The key, its body, whether its pushes are priority, how many (an alert's admin critical
    // or error notification among them) and the event's storm role.
    let cases = [
        ("quota.updated", &quota, false, 2, &latest),
        ("quota.renewed", &quota, false, 1, &flushes),
        ("quota.alert", &quota, true, 3, &flushes),
        ("quota.exceeded", &quota, true, 3, &flushes),
        ("device.started", &device, false, 2, &StormRole::Unrelated),
        ("device.error", &device, false, 2, &StormRole::Unrelated),
    ];
    for (routing_key, body, priority, count, role) in cases {
        let RouteOutcome::Routed(pushes, got) =
            run(routing_key, body, &mut DeviceStatusCache::new())
        else {
            panic!("{routing_key}: expected Routed");
        };
        assert_eq!(&got, role, "{routing_key}");
        assert_eq!(pushes.len(), count, "{routing_key}");
        for push in &pushes {
            assert_eq!(push.priority, priority, "{routing_key}: {push:?}");
        }
    }
}
