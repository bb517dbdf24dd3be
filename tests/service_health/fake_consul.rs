//! A small HTTP server inside the test that answers `GET /v1/health/state/any` the way Consul's
//! HTTP API documents blocking queries (Consul itself cannot be installed here): the answer is
//! a JSON array of checks in Consul's shape, `X-Consul-Index` carries the state's index, and a
//! request with `?index=N&wait=D` is held until the index moves past `N` or `D` elapses. A
//! request without the expected `X-Consul-Token` gets Consul's 403. The test can change checks,
//! stop the server (held requests are dropped unanswered, new connections refused), start it
//! again on the same port, and rewind its index (as a Consul restored from a snapshot does).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// What the fake knows and was asked.
struct State {
    index: u64,
    /// Checks by (node, check id).
    checks: BTreeMap<(String, String), Value>,
    up: bool,
    /// Bumped by a rewind: held requests answer at once.
    generation: u64,
    /// The `index` of every query, in order.
    queries: Vec<u64>,
}

impl State {
    /// Set one service instance's check (and add its node's `serfHealth`, passing).
    fn set_check(&mut self, service: &str, service_id: &str, node: &str, status: &str) {
        let index = self.index;
        self.checks.insert(
            (node.into(), format!("service:{service_id}")),
            json!({
                "Node": node, "CheckID": format!("service:{service_id}"),
                "Name": format!("Service '{service}' check"), "Status": status, "Notes": "",
                "Output": format!("HTTP GET http://{node}/health: {status}"),
                "ServiceID": service_id, "ServiceName": service, "ServiceTags": ["v1"],
                "Type": "http", "Namespace": "default",
                "CreateIndex": 1, "ModifyIndex": index,
            }),
        );
        self.checks
            .entry((node.into(), "serfHealth".into()))
            .or_insert_with(|| {
                json!({
                    "Node": node, "CheckID": "serfHealth", "Name": "Serf Health Status",
                    "Status": "passing", "Notes": "", "Output": "Agent alive and reachable",
                    "ServiceID": "", "ServiceName": "", "ServiceTags": [], "Type": "",
                    "CreateIndex": 1, "ModifyIndex": 1,
                })
            });
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    token: String,
}

/// The fake Consul agent.
pub struct FakeConsul {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeConsul {
    /// Serve on 127.0.0.1:0, expecting `token`, starting at `index` with no checks.
    pub fn start(token: &str, index: u64) -> FakeConsul {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Consul");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                index,
                checks: BTreeMap::new(),
                up: true,
                generation: 0,
                queries: Vec::new(),
            }),
            changed: Condvar::new(),
            token: token.to_owned(),
        });
        let addr = listener.local_addr().unwrap();
        let acceptor = Some(accept_loop(listener, shared.clone()));
        FakeConsul {
            addr,
            shared,
            acceptor,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Set the check of service instance `service_id` (of `service`) on `node`, and its node's
    /// `serfHealth` check (passing); the index moves on.
    pub fn set_check(&self, service: &str, service_id: &str, node: &str, status: &str) {
        let mut s = self.shared.state.lock().unwrap();
        s.index += 1;
        s.set_check(service, service_id, node, status);
        self.shared.changed.notify_all();
    }

    /// Set the index back to `index` (a restored Consul) with one check changed as
    /// `(service, service_id, node, status)`: held requests are answered at once with it.
    pub fn rewind(&self, index: u64, (service, id, node, status): (&str, &str, &str, &str)) {
        let mut s = self.shared.state.lock().unwrap();
        s.set_check(service, id, node, status);
        s.index = index;
        s.generation += 1;
        self.shared.changed.notify_all();
    }

    /// The `index` of every query so far.
    pub fn queries(&self) -> Vec<u64> {
        self.shared.state.lock().unwrap().queries.clone()
    }

    /// Stop: held requests are dropped unanswered, the port refuses connections.
    pub fn stop(&mut self) {
        self.shared.state.lock().unwrap().up = false;
        self.shared.changed.notify_all();
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.join().unwrap();
        }
    }

    /// Serve again on the same port, with the same state.
    pub fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).expect("bind the fake Consul again");
        self.shared.state.lock().unwrap().up = true;
        self.acceptor = Some(accept_loop(listener, self.shared.clone()));
    }
}

impl Drop for FakeConsul {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) -> JoinHandle<()> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while shared.state.lock().unwrap().up {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    let shared = shared.clone();
                    std::thread::spawn(move || answer(stream, &shared));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

/// Read one request and answer it as Consul would.
fn answer(stream: TcpStream, shared: &Shared) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut token = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("x-consul-token") {
                token = Some(value.trim().to_owned());
            }
        }
    }
    let target = request_line.split(' ').nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/v1/health/state/any" {
        return respond(stream, "404 Not Found", None, "Invalid URL path");
    }
    if token.as_deref() != Some(shared.token.as_str()) {
        return respond(stream, "403 Forbidden", None, "ACL not found");
    }
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let asked: u64 = param("index").and_then(|i| i.parse().ok()).unwrap_or(0);
    let wait = param("wait")
        .and_then(|w| w.strip_suffix('s')?.parse().ok())
        .map_or(Duration::from_secs(300), Duration::from_secs);
    let deadline = Instant::now() + wait;
    let mut s = shared.state.lock().unwrap();
    s.queries.push(asked);
    let generation = s.generation;
    while s.up && s.generation == generation && s.index <= asked && asked > 0 {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        s = shared.changed.wait_timeout(s, left).unwrap().0;
    }
    if !s.up {
        return; // dropped unanswered, as a stopped agent's connections are
    }
    let body = Value::Array(s.checks.values().cloned().collect()).to_string();
    let index = s.index;
    drop(s);
    respond(stream, "200 OK", Some(index), &body);
}

fn respond(mut stream: TcpStream, status: &str, index: Option<u64>, body: &str) {
    let index = index.map_or(String::new(), |i| format!("X-Consul-Index: {i}\r\n"));
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{index}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
