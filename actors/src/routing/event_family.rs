//! The two event families pushgate consumes (quota and device): their queue binding keys, which
//! family a routing key belongs to, and the routing keys the table has a row for.

/// Queue binding key of the quota consumer.
pub const QUOTA_BINDING_KEY: &str = "quota.*";

/// Queue binding key of the device consumer.
pub const DEVICE_BINDING_KEY: &str = "device.*";

/// Every routing key that has a row in the table; any other key is [`RouteOutcome::Ignored`](super::RouteOutcome::Ignored).
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

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }
}
