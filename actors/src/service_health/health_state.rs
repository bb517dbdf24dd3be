//! Consul's answer to `GET /v1/health/state/any` (a JSON array of checks, each naming its node
//! and, for a service check, its service instance) turned into one status per service
//! instance: the worst of its own checks and of its node's checks (`passing` < `warning` <
//! `critical`), as Consul itself judges an instance's health.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A check's or an instance's status, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Healthy.
    Passing,
    /// Degraded.
    Warning,
    /// Failing (also Consul's state for a new check and for maintenance mode).
    Critical,
}

impl Status {
    /// The status named as Consul names it.
    pub fn parse(name: &str) -> Option<Status> {
        match name {
            "passing" => Some(Status::Passing),
            "warning" => Some(Status::Warning),
            "critical" => Some(Status::Critical),
            _ => None,
        }
    }
}

/// One check as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The check's name.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// The output of its last run.
    pub output: String,
}

/// Which service instance: a service's id on a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceKey {
    /// The service's name (`ServiceName`).
    pub service: String,
    /// The instance's id (`ServiceID`).
    pub service_id: String,
    /// The node it runs on.
    pub node: String,
}

/// One service instance's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The worst of its checks.
    pub status: Status,
    /// Its checks, its node's included.
    pub checks: Vec<Check>,
}

/// Every service instance Consul knows, by key.
pub type HealthState = BTreeMap<InstanceKey, Instance>;

/// Why an answer could not be read; the watcher logs it and asks again after a backoff.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MalformedAnswer {
    /// Not a JSON array of checks with the fields Consul documents.
    #[error("not a JSON array of Consul checks: {0}")]
    NotChecks(String),
    /// A check's `Status` is none of `passing`, `warning`, `critical`.
    #[error("check {check:?} has the unknown status {status:?}")]
    UnknownStatus {
        /// The check's id.
        check: String,
        /// Its status.
        status: String,
    },
}

/// One element of Consul's answer (the fields pushgate reads; the others are ignored).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConsulCheck {
    node: String,
    #[serde(rename = "CheckID")]
    check_id: String,
    name: String,
    status: String,
    #[serde(default)]
    output: String,
    #[serde(rename = "ServiceID", default)]
    service_id: String,
    #[serde(default)]
    service_name: String,
}

/// Read one answer of `/v1/health/state/any`. A check without a `ServiceID` is its node's and
/// counts for every instance on that node; a node without services is left out.
pub fn parse_health_state(body: &[u8]) -> Result<HealthState, MalformedAnswer> {
    let checks: Vec<ConsulCheck> =
        serde_json::from_slice(body).map_err(|e| MalformedAnswer::NotChecks(e.to_string()))?;
    let mut node_checks: BTreeMap<String, Vec<Check>> = BTreeMap::new();
    let mut state = HealthState::new();
    for c in checks {
        let status = Status::parse(&c.status).ok_or_else(|| MalformedAnswer::UnknownStatus {
            check: c.check_id.clone(),
            status: c.status.clone(),
        })?;
        let check = Check {
            name: c.name,
            status,
            output: c.output,
        };
        if c.service_id.is_empty() {
            node_checks.entry(c.node).or_default().push(check);
            continue;
        }
        let key = InstanceKey {
            service: c.service_name,
            service_id: c.service_id,
            node: c.node,
        };
        let instance = state.entry(key).or_insert_with(|| Instance {
            status: Status::Passing,
            checks: Vec::new(),
        });
        instance.status = instance.status.max(status);
        instance.checks.push(check);
    }
    for (key, instance) in state.iter_mut() {
        for check in node_checks.get(&key.node).into_iter().flatten() {
            instance.status = instance.status.max(check.status);
            instance.checks.push(check.clone());
        }
    }
    Ok(state)
}

/// The index of the next blocking query, after an answer carrying `answered` to a query with
/// `previous`: an index that went backwards (Consul restored or restarted) starts over at 0,
/// and 0 itself is never waited on again (it would answer at once, forever), so it becomes 1.
pub fn next_index(previous: u64, answered: u64) -> u64 {
    if answered < previous {
        0
    } else {
        answered.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(node: &str, id: &str, status: &str, service: &str, instance: &str) -> String {
        format!(
            r#"{{"Node":"{node}","CheckID":"{id}","Name":"{id} check","Status":"{status}","Notes":"","Output":"out {id}","ServiceID":"{instance}","ServiceName":"{service}","ServiceTags":[],"Type":"http","CreateIndex":1,"ModifyIndex":2}}"#
        )
    }

    fn key(service: &str, id: &str, node: &str) -> InstanceKey {
        InstanceKey {
            service: service.into(),
            service_id: id.into(),
            node: node.into(),
        }
    }

    #[test]
    fn an_instance_is_the_worst_of_its_checks_and_its_nodes() {
        let body = format!(
            "[{},{},{},{},{},{}]",
            check("n1", "a", "passing", "web", "web-1"),
            check("n1", "b", "warning", "web", "web-1"),
            check("n2", "c", "passing", "web", "web-2"),
            check("n2", "serfHealth", "critical", "", ""),
            check("n3", "d", "passing", "db", "db-1"),
            check("n4", "serfHealth", "passing", "", ""),
        );
        let state = parse_health_state(body.as_bytes()).unwrap();
        assert_eq!(state.len(), 3, "a node without services is left out");
        let web1 = &state[&key("web", "web-1", "n1")];
        assert_eq!(web1.status, Status::Warning);
        assert_eq!(web1.checks.len(), 2);
        assert_eq!(web1.checks[1].output, "out b");
        let web2 = &state[&key("web", "web-2", "n2")];
        assert_eq!(web2.status, Status::Critical, "its node is failing");
        assert_eq!(web2.checks[1].name, "serfHealth check");
        assert_eq!(state[&key("db", "db-1", "n3")].status, Status::Passing);
        assert!(Status::Passing < Status::Warning && Status::Warning < Status::Critical);
    }

    #[test]
    fn an_empty_answer_is_no_instances() {
        assert!(parse_health_state(b"[]").unwrap().is_empty());
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        for body in [
            &b""[..],
            b"{}",
            b"null",
            b"[1]",
            b"[{\"Node\":\"n1\"}]",
            b"[{\"Node\":1,\"CheckID\":\"a\",\"Name\":\"a\",\"Status\":\"passing\"}]",
            b"<html>proxy error</html>",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(parse_health_state(body), Err(MalformedAnswer::NotChecks(_))),
                "{body:?}"
            );
        }
        let unknown = format!("[{}]", check("n1", "a", "maintenance", "web", "web-1"));
        assert_eq!(
            parse_health_state(unknown.as_bytes()),
            Err(MalformedAnswer::UnknownStatus {
                check: "a".into(),
                status: "maintenance".into()
            })
        );
    }

    #[test]
    fn the_index_goes_forward_or_starts_over() {
        assert_eq!(next_index(0, 42), 42);
        assert_eq!(next_index(42, 42), 42, "the wait elapsed without a change");
        assert_eq!(next_index(42, 50), 50);
        assert_eq!(next_index(42, 7), 0, "backwards: start over");
        assert_eq!(next_index(0, 0), 1, "never wait on 0");
    }
}
