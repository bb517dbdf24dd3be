//! The deployment files agree with the reference in `docs/` (`docker compose config` and a
//! Kubernetes API server are not available here, so the files are read and checked as data):
//! every variable they set for pushgate is documented in `docs/configuration.md`, the
//! container port is `PORT`, the probes hit `/ready` and `/health`, the grace period covers
//! the drain and the close, and every metric the Grafana dashboard queries is documented in
//! `docs/metrics.md`.

#[path = "deployment_files/doc_tables.rs"]
mod doc_tables;
#[path = "deployment_files/yaml.rs"]
mod yaml;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// How long pushgate takes to close its clients and stop after the drain, at most
/// (`server::ShutdownHandle::shutdown`: the broker link's 10 s, 3 s for the clients'
/// connections, the HTTP server's 3 s).
const CLOSE_BUDGET_MS: u64 = 16_000;
/// `SHUTDOWN_DRAIN_MS` when neither the manifest nor the docs give it.
const DRAIN_DEFAULT_MS: u64 = 5_000;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn yaml_documents(path: &str) -> Vec<Value> {
    yaml::parse_documents(&repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {value}"))
}

/// The variables set that `docs/configuration.md` does not document.
fn undocumented<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let documented = doc_tables::documented_variables();
    names
        .into_iter()
        .filter(|n| !documented.contains(*n))
        .collect()
}

// ------------------------------------------------------------------ Docker Compose

/// The services of a compose file that run pushgate (built here, or its image).
fn pushgate_services(compose: &Value) -> Vec<(&String, &Value)> {
    compose["services"]
        .as_object()
        .expect("services")
        .iter()
        .filter(|(_, s)| {
            s.get("build").is_some()
                || s["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("pushgate"))
        })
        .collect()
}

/// Check one compose file; returns its pushgate services' environments.
fn check_compose(path: &str) -> Vec<serde_json::Map<String, Value>> {
    let docs = yaml_documents(path);
    assert_eq!(docs.len(), 1, "{path}: one document");
    let compose = &docs[0];
    let services = compose["services"].as_object().unwrap();
    let brokers: Vec<_> = services
        .iter()
        .filter(|(_, s)| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("rabbitmq:3."))
        })
        .collect();
    assert_eq!(brokers.len(), 1, "{path}: one RabbitMQ 3.x broker");
    let (broker_name, broker) = brokers[0];
    assert!(
        broker["healthcheck"]["test"].is_array(),
        "{path}: broker healthcheck"
    );
    let mounted = broker["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|v| v.contains("advanced.config"))
        .unwrap_or_else(|| panic!("{path}: the recommended advanced.config is mounted"));
    let source = mounted.split(':').next().unwrap();
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(source).is_file(),
        "{path}: {source}"
    );

    let mut environments = Vec::new();
    for (name, service) in pushgate_services(compose) {
        let env = service["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("{path}: {name}: environment as a mapping"));
        let missing = undocumented(env.keys().map(String::as_str));
        assert!(
            missing.is_empty(),
            "{path}: {name} sets undocumented {missing:?}"
        );
        let port = str_of(&env["PORT"], "PORT");
        for mapping in service["ports"].as_array().expect("ports") {
            let container = str_of(mapping, "a port").rsplit(':').next().unwrap();
            assert_eq!(container, port, "{path}: {name}: container port is PORT");
        }
        let health: Vec<&str> = service["healthcheck"]["test"]
            .as_array()
            .expect("a healthcheck")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            health
                .iter()
                .any(|a| a.ends_with(&format!(":{port}/health"))),
            "{path}: {name}: healthcheck on /health at PORT: {health:?}"
        );
        let url = str_of(&env["RABBITMQ_URL"], "RABBITMQ_URL");
        assert!(
            url.contains(&format!("@{broker_name}:5672/")),
            "{path}: {name}: the broker is the service {broker_name}, got {url}"
        );
        let depends = &service["depends_on"][broker_name]["condition"];
        assert_eq!(
            depends, "service_healthy",
            "{path}: {name} waits for the broker"
        );
        environments.push(env.clone());
    }
    environments
}

#[test]
fn the_compose_file_runs_one_node_and_a_broker() {
    let envs = check_compose("docker-compose.yml");
    assert_eq!(envs.len(), 1);
    for var in ["JWT_SECRET", "PUSH_API_KEY", "NODE_ID"] {
        assert!(envs[0].contains_key(var), "{var} is set");
    }
}

#[test]
fn the_cluster_compose_file_runs_three_nodes_on_one_broker() {
    let envs = check_compose("docker-compose.cluster.yml");
    assert_eq!(envs.len(), 3, "three pushgate nodes");
    let ids: BTreeSet<&str> = envs
        .iter()
        .map(|e| str_of(&e["NODE_ID"], "NODE_ID"))
        .collect();
    assert_eq!(ids.len(), 3, "each node its own NODE_ID: {ids:?}");
    for env in &envs {
        assert_eq!(env["CLUSTER"], "rabbitmq");
    }
}

// ------------------------------------------------------------------ Kubernetes

/// Every document of every manifest `deploy/kubernetes/kustomization.yaml` lists.
fn manifests() -> Vec<Value> {
    let kustomization = &yaml_documents("deploy/kubernetes/kustomization.yaml")[0];
    let resources = kustomization["resources"].as_array().expect("resources");
    assert!(!resources.is_empty());
    resources
        .iter()
        .flat_map(|r| yaml_documents(&format!("deploy/kubernetes/{}", str_of(r, "resource"))))
        .collect()
}

fn of_kind<'a>(manifests: &'a [Value], kind: &str) -> Vec<&'a Value> {
    manifests.iter().filter(|m| m["kind"] == kind).collect()
}

/// Milliseconds from a manifest or docs value.
fn millis(value: &str) -> u64 {
    value.parse().unwrap_or_else(|e| panic!("{value:?}: {e}"))
}

#[test]
fn the_statefulset_has_stable_node_ids_probes_and_time_to_drain() {
    let manifests = manifests();
    let sets = of_kind(&manifests, "StatefulSet");
    assert_eq!(sets.len(), 1, "one StatefulSet");
    let set = sets[0];
    let pod = &set["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];

    let env = container["env"].as_array().expect("env");
    let names: Vec<&str> = env.iter().map(|e| str_of(&e["name"], "env name")).collect();
    let missing = undocumented(names.iter().copied());
    assert!(
        missing.is_empty(),
        "the StatefulSet sets undocumented {missing:?}"
    );
    let var = |name: &str| env.iter().find(|e| e["name"] == name);

    let node_id = var("NODE_ID").expect("NODE_ID is set");
    assert_eq!(
        node_id["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name",
        "NODE_ID is the pod's stable name"
    );

    let port = str_of(&var("PORT").expect("PORT is set")["value"], "PORT");
    let ports = container["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(str_of(&ports[0]["containerPort"], "containerPort"), port);
    let port_name = str_of(&ports[0]["name"], "port name");
    for (probe, path) in [("readinessProbe", "/ready"), ("livenessProbe", "/health")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(
            get["port"] == port_name || get["port"] == port,
            "{probe} port"
        );
    }

    let drain = var("SHUTDOWN_DRAIN_MS")
        .map(|e| str_of(&e["value"], "SHUTDOWN_DRAIN_MS").to_owned())
        .or_else(|| doc_tables::documented_default("SHUTDOWN_DRAIN_MS"))
        .map_or(DRAIN_DEFAULT_MS, |v| millis(&v));
    let grace = millis(str_of(&pod["terminationGracePeriodSeconds"], "grace")) * 1000;
    assert!(
        grace >= drain + CLOSE_BUDGET_MS,
        "terminationGracePeriodSeconds ({grace} ms) covers the drain ({drain} ms) and the close"
    );

    // Every secret the pod reads is in the Secret shipped beside it.
    let secrets = of_kind(&manifests, "Secret");
    for e in env {
        let Some(reference) = e["valueFrom"].get("secretKeyRef") else {
            continue;
        };
        let secret = secrets
            .iter()
            .find(|s| s["metadata"]["name"] == reference["name"])
            .unwrap_or_else(|| panic!("Secret {} is defined", reference["name"]));
        let key = str_of(&reference["key"], "key");
        assert!(
            secret["stringData"].get(key).is_some(),
            "the Secret holds {key}"
        );
    }
    for secret in ["JWT_SECRET", "PUSH_API_KEY"] {
        assert!(
            var(secret).is_some_and(|e| e["valueFrom"].get("secretKeyRef").is_some()),
            "{secret} comes from a Secret"
        );
    }

    // The Services reach the container port, and the headless one names the pods.
    let services = of_kind(&manifests, "Service");
    assert!(!services.is_empty());
    for service in &services {
        for p in service["spec"]["ports"].as_array().unwrap() {
            assert!(
                p["targetPort"] == port_name || p["targetPort"] == port,
                "{p}"
            );
        }
    }
    let headless = services
        .iter()
        .find(|s| s["metadata"]["name"] == set["spec"]["serviceName"])
        .expect("the StatefulSet's serviceName is a Service");
    assert_eq!(headless["spec"]["clusterIP"], "None");
}

// ------------------------------------------------------------------ Grafana

/// Every `pushgate_*` name in `text`.
fn metric_names(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices("pushgate_").map(move |(at, _)| {
        let rest = &text[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        &rest[..end]
    })
}

fn exprs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_queries_only_documented_metrics() {
    let dashboard: Value =
        serde_json::from_str(&repo_file("deploy/grafana/pushgate.json")).expect("JSON");
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    let documented = doc_tables::documented_metrics();
    let mut queried = BTreeSet::new();
    for name in all.iter().flat_map(|e| metric_names(e)) {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| documented.contains(*b)))
            .unwrap_or(name);
        assert!(
            documented.contains(base),
            "{name} is not in docs/metrics.md"
        );
        queried.insert(base);
    }
    for needed in [
        "pushgate_connected_clients",
        "pushgate_pushes_total",
        "pushgate_push_fanout_seconds",
        "pushgate_amqp_messages_total",
        "pushgate_consumer_up",
        "pushgate_disconnects_total",
        "pushgate_recoveries_total",
    ] {
        assert!(queried.contains(needed), "the dashboard shows {needed}");
    }
}
