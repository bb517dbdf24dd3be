//! The service-health snapshot shared by the watcher (which writes it after each answer and
//! each announced change) and its readers: a session whose client joins `admin`, and
//! `GET /api/v1/services`. Readers never wait on Consul: they read the last list written.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde_json::Value;

use super::debounce::Debounce;
use super::notices;

/// The last announced list of service instances.
#[derive(Debug)]
pub struct HealthBoard {
    services: RwLock<Arc<Value>>,
}

impl Default for HealthBoard {
    fn default() -> Self {
        HealthBoard {
            services: RwLock::new(Arc::new(Value::Array(Vec::new()))),
        }
    }
}

impl HealthBoard {
    /// An empty board: no instance known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Write what `debounce` has announced.
    pub fn publish(&self, debounce: &Debounce) {
        let list = Arc::new(notices::services(debounce.announced()));
        *self.services.write().unwrap_or_else(|e| e.into_inner()) = list;
    }

    /// The `service.health.snapshot` notification body, stamped now.
    pub fn snapshot(&self) -> String {
        let list = self
            .services
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        notices::snapshot(&list, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_health::parse_health_state;
    use std::time::{Duration, Instant};

    #[test]
    fn the_snapshot_is_what_was_last_published() {
        let board = HealthBoard::new();
        let empty: Value = serde_json::from_str(&board.snapshot()).unwrap();
        assert_eq!(empty["data"]["services"], serde_json::json!([]));
        let mut d = Debounce::new(Duration::from_secs(2));
        let body = br#"[{"Node":"n1","CheckID":"c","Name":"c","Status":"warning","Output":"slow","ServiceID":"web-1","ServiceName":"web"}]"#;
        d.observe(parse_health_state(body).unwrap(), Instant::now());
        board.publish(&d);
        let v: Value = serde_json::from_str(&board.snapshot()).unwrap();
        assert_eq!(v["data"]["services"][0]["status"], "warning");
        assert_eq!(v["data"]["services"][0]["service"], "web");
    }
}
