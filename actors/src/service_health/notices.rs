//! The two `notification` bodies admins get (docs/socketio.md): `service.health.changed` for an
//! announced change of one instance, `service.health.snapshot` for every instance at once.
//! Timestamps are RFC 3339 with milliseconds, UTC.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::debounce::Transition;
use super::health_state::{Instance, InstanceKey};

/// `{"type":"service.health.changed","data":{...}}` for one transition, as JSON text.
pub fn changed(transition: &Transition, now: SystemTime) -> String {
    let key = &transition.key;
    json!({
        "type": "service.health.changed",
        "data": {
            "service": key.service,
            "serviceId": key.service_id,
            "node": key.node,
            "oldStatus": transition.old_status,
            "newStatus": transition.new_status,
            "checks": transition.checks,
            "timestamp": timestamp(now),
        },
    })
    .to_string()
}

/// The `services` list of a snapshot: one object per instance, in key order.
pub fn services<'a>(instances: impl Iterator<Item = (&'a InstanceKey, &'a Instance)>) -> Value {
    instances
        .map(|(key, instance)| {
            json!({
                "service": key.service,
                "serviceId": key.service_id,
                "node": key.node,
                "status": instance.status,
                "checks": instance.checks,
            })
        })
        .collect()
}

/// `{"type":"service.health.snapshot","data":{"services":[...],"timestamp":...}}` as JSON text.
pub fn snapshot(services: &Value, now: SystemTime) -> String {
    json!({
        "type": "service.health.snapshot",
        "data": { "services": services, "timestamp": timestamp(now) },
    })
    .to_string()
}

fn timestamp(now: SystemTime) -> String {
    humantime::format_rfc3339_millis(now).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_health::{Check, Status};
    use std::time::{Duration, UNIX_EPOCH};

    fn key() -> InstanceKey {
        InstanceKey {
            service: "user-service".into(),
            service_id: "user-service-1".into(),
            node: "n1".into(),
        }
    }

    fn check() -> Check {
        Check {
            name: "HTTP /health".into(),
            status: Status::Critical,
            output: "connection refused".into(),
        }
    }

    #[test]
    fn changed_names_the_instance_both_statuses_and_the_checks() {
        let t = Transition {
            key: key(),
            old_status: Some(Status::Passing),
            new_status: Some(Status::Critical),
            checks: vec![check()],
        };
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let v: Value = serde_json::from_str(&changed(&t, at)).unwrap();
        assert_eq!(
            v,
            json!({"type": "service.health.changed", "data": {
                "service": "user-service", "serviceId": "user-service-1", "node": "n1",
                "oldStatus": "passing", "newStatus": "critical",
                "checks": [{"name": "HTTP /health", "status": "critical",
                            "output": "connection refused"}],
                "timestamp": "2023-11-14T22:13:20.123Z"}})
        );
        let appeared = Transition {
            old_status: None,
            ..t
        };
        let v: Value = serde_json::from_str(&changed(&appeared, at)).unwrap();
        assert_eq!(v["data"]["oldStatus"], Value::Null);
    }

    #[test]
    fn a_snapshot_lists_every_instance_with_its_status() {
        let instance = Instance {
            status: Status::Critical,
            checks: vec![check()],
        };
        let k = key();
        let list = services([(&k, &instance)].into_iter());
        let v: Value = serde_json::from_str(&snapshot(&list, UNIX_EPOCH)).unwrap();
        assert_eq!(v["type"], "service.health.snapshot");
        assert_eq!(v["data"]["timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["data"]["services"][0]["serviceId"], "user-service-1");
        assert_eq!(v["data"]["services"][0]["status"], "critical");
        assert_eq!(
            v["data"]["services"][0]["checks"][0]["output"],
            "connection refused"
        );
    }
}
