//! Tests of what the admin console needs from the table: admin-room copies of alerts, the
//! except-user rule, `alertLevel` / `usagePercent` added from the publishers' names, and the
//! event passed through byte for byte.

use std::time::UNIX_EPOCH;

use super::*;

fn pushes(key: &str, body: &str) -> Vec<RoutedPush> {
    match route(
        key,
        body.as_bytes(),
        usize::MAX,
        UNIX_EPOCH,
        &mut DeviceStatusCache::new(),
    ) {
        RouteOutcome::Routed(pushes, _) => pushes,
        other => panic!("{key}: expected Routed, got {other:?}"),
    }
}

/// The `data` text of the user's push, which must be `{"type":"<key>","data":<data>}`.
fn data_text(key: &str, body: &str) -> String {
    let payload = pushes(key, body)[0].payload.to_string();
    let prefix = format!(r#"{{"type":"{key}","data":"#);
    assert!(payload.starts_with(&prefix), "{payload}");
    payload[prefix.len()..payload.len() - 1].to_owned()
}

#[test]
fn alerts_and_exceeded_are_copied_to_admin_as_message() {
    for key in ["quota.alert", "quota.exceeded"] {
        let body = r#"{"userId":"u1","quotaId":"q1","alertLevel":"warning"}"#;
        let pushes = pushes(key, body);
        assert_eq!(pushes[0].room, "user:u1");
        assert_eq!(pushes[0].event, PushEvent::Notification);
        assert_eq!(pushes[1].room, "admin");
        assert_eq!(pushes[1].event, PushEvent::Message);
        assert!(Arc::ptr_eq(&pushes[0].payload, &pushes[1].payload), "{key}");
    }
}

#[test]
fn every_admin_copy_skips_the_members_of_the_user_room() {
    let bodies = [
        r#"{"userId":"u1","quotaId":"q1","deviceId":"d1","severity":"critical"}"#,
        r#"{"userId":42,"quotaId":"q1","deviceId":7,"usagePercent":"99"}"#,
    ];
    let mut admin_copies = 0;
    for key in ROUTED_KEYS {
        for body in bodies {
            let pushes = pushes(key, body);
            let user_room = pushes[0].room.clone();
            assert_eq!(pushes[0].except_members_of, None, "{key}");
            for push in &pushes[1..] {
                assert_eq!(push.room, ADMIN_ROOM, "{key}");
                assert_eq!(push.except_members_of.as_ref(), Some(&user_room), "{key}");
                admin_copies += 1;
            }
        }
    }
    assert_eq!(
        admin_copies,
        2 * (10 + 2),
        "every row but quota.renewed, and the two alerts"
    );
}

#[test]
fn severity_is_copied_to_alert_level_and_the_peak_percentage_to_usage_percent() {
    let body = r#"{"userId":"u1","quotaId":"q1","severity":"warning","percentage":{"devices":110.00000000000001,"cpu":"50","memory":"n/a"}}"#;
    let open = &body[..body.len() - 1];
    for key in [
        "quota.updated",
        "quota.alert",
        "quota.exceeded",
        "quota.renewed",
    ] {
        assert_eq!(
            data_text(key, body),
            format!(r#"{open},"alertLevel":"warning","usagePercent":110.00000000000001}}"#),
            "{key}"
        );
    }
    // The critical notification carries the same data.
    let body = r#"{"userId":"u1","quotaId":"q1","severity":"critical","percentage":{"a":" 97.5 ","b":"1e1"}}"#;
    let pushes = pushes("quota.alert", body);
    let notification: Value = serde_json::from_str(&pushes[2].payload).unwrap();
    assert_eq!(notification["data"]["alertLevel"], "critical");
    assert_eq!(notification["data"]["usagePercent"], json_number("97.5"));
}

fn json_number(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn usage_percent_from_strings_is_a_number() {
    let with = |percentage: &str| {
        let body = format!(r#"{{"userId":"u1","quotaId":"q1","percentage":{percentage}}}"#);
        let data: Value = serde_json::from_str(&data_text("quota.alert", &body)).unwrap();
        data["usagePercent"].as_f64()
    };
    assert_eq!(with(r#"{"a":"97.5"}"#), Some(97.5));
    assert_eq!(with(r#"{"a":" 95 ","b":94}"#), Some(95.0));
    assert_eq!(with(r#"{"a":"1e2"}"#), Some(100.0));
    assert_eq!(with(r#"{"a":"+5"}"#), Some(5.0));
    assert_eq!(with(r#"{"a":-3}"#), Some(-3.0));
}

#[test]
fn nothing_is_added_when_the_console_names_are_there_or_nothing_fits() {
    for body in [
        // The console's own names win, whatever their values.
        r#"{"userId":"u1","quotaId":"q1","alertLevel":"info","severity":"critical","usagePercent":1,"percentage":{"a":99}}"#,
        r#"{"userId":"u1","quotaId":"q1","alertLevel":null,"usagePercent":null,"severity":"x","percentage":{"a":1}}"#,
        // Nothing to copy from.
        r#"{"userId":"u1","quotaId":"q1"}"#,
        r#"{"userId":"u1","quotaId":"q1","percentage":{}}"#,
        r#"{"userId":"u1","quotaId":"q1","percentage":{"a":"97%","b":null,"c":[1],"d":"NaN"}}"#,
        r#"{"userId":"u1","quotaId":"q1","percentage":99}"#,
        r#"{"userId":"u1","quotaId":"q1","percentage":[99]}"#,
    ] {
        for key in [
            "quota.updated",
            "quota.alert",
            "quota.exceeded",
            "quota.renewed",
        ] {
            assert_eq!(data_text(key, body), body, "{key}: {body}");
        }
    }
    // Device events are passed through as they are, `severity` or not.
    let body = r#"{"userId":"u1","deviceId":"d1","severity":"error","percentage":{"a":1}}"#;
    assert_eq!(data_text("device.error", body), body);
}

#[test]
fn the_event_is_passed_through_byte_for_byte() {
    // Long fractions, big numbers, escapes, member order, whitespace inside: as published.
    let body = "{\"quotaId\":\"q1\", \"userId\":\"u1\",\n \"v\":110.00000000000001,\"w\":123456789.12345679,\"e\":1E+2,\"s\":\"\\u00e9\\/\",\"z\":-0.0}";
    assert_eq!(data_text("quota.updated", body), body);
    let device = body.replace("quotaId\":\"q1", "deviceId\":\"d1");
    assert_eq!(data_text("device.created", &device), device);
    // Whitespace around the object is not part of it.
    assert_eq!(data_text("quota.renewed", &format!(" \r\n{body}\n ")), body);
}

#[test]
fn duplicate_keys_are_passed_through_and_the_last_one_is_read() {
    let body =
        r#"{"userId":"u1","quotaId":"q1","userId":"u2","severity":"a","severity":"critical"}"#;
    let pushes = pushes("quota.alert", body);
    assert_eq!(
        pushes[0].room, "user:u2",
        "the last userId, as JSON.parse reads it"
    );
    assert_eq!(pushes.len(), 3, "the last severity is critical");
    let open = &body[..body.len() - 1];
    assert_eq!(
        data_text("quota.alert", body),
        format!(r#"{open},"alertLevel":"critical"}}"#)
    );
}

#[test]
fn device_status_changed_keeps_the_published_device_id() {
    for (device_id, name) in [
        (r#""d\u0031""#, r#""d1""#),
        ("12345678901234567890", r#""12345678901234567890""#),
    ] {
        let body = format!(r#"{{"userId":"u1","deviceId":{device_id},"startedAt":"S"}}"#);
        assert_eq!(
            &*pushes("device.started", &body)[0].payload,
            format!(
                r#"{{"type":"device.status.changed","data":{{"deviceId":{device_id},"deviceName":{name},"oldStatus":"stopped","newStatus":"running","timestamp":"S"}}}}"#
            )
        );
    }
}
