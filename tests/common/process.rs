//! The real `pushgate` binary as a child process on 127.0.0.1, for the tests that must see
//! what an operator sees: its resident memory (`/proc/<pid>/status`) and its log lines.
//!
//! Isolated from the machine it runs on: an empty environment but for what it is given, an
//! empty working and configuration directory of its own, an unreachable broker, recovery off
//! (the §2 wire, as [`crate::common::server`]'s servers), no shutdown drain,
//! [`SECRET`](super::SECRET) and [`API_KEY`](super::API_KEY). The child is killed and its
//! directory removed on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{API_KEY, SECRET};

/// A running `pushgate` child.
pub struct ServerProcess {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    dir: PathBuf,
    /// What it logged up to and with its "listening" line.
    pub startup_log: Vec<String>,
    /// Every line it logs after its "listening" line, as it comes.
    pub log: mpsc::Receiver<String>,
}

impl ServerProcess {
    /// Start it with `vars` on top of the isolation above (a `vars` entry overrides a default),
    /// and wait for its listening address.
    pub fn start(vars: &[(&str, &str)]) -> ServerProcess {
        let dir =
            std::env::temp_dir().join(format!("pushgate-child-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let node_id = format!("pg-test-child-{:08x}", rand::random::<u32>());
        let mut child = Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .env_clear()
            .current_dir(&dir)
            .env("PUSHGATE_CONFIG_DIR", &dir)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("NODE_ID", node_id)
            .env("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
            .env("RUST_LOG", "info,tracing::span=warn")
            .env("RECOVERY_WINDOW_MS", "0")
            .env("SHUTDOWN_DRAIN_MS", "0")
            .env("JWT_SECRET", SECRET)
            .env("PUSH_API_KEY", API_KEY)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pushgate");
        // The log goes on being read, so that the child never blocks on a full pipe.
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut startup_log = Vec::new();
        let addr = loop {
            let line = log
                .recv_timeout(Duration::from_secs(15))
                .expect("pushgate logs its address");
            startup_log.push(line.clone());
            // A text line ends with the address, a JSON line (`LOG_FORMAT=json`) with `"}`.
            if let Some((_, rest)) = line.split_once("pushgate listening on ") {
                let addr = rest.split('"').next().unwrap_or(rest);
                break addr.trim().parse().expect("an address");
            }
        };
        ServerProcess {
            child,
            addr,
            dir,
            startup_log,
            log,
        }
    }

    /// A line of `/proc/<pid>/status` in KiB (`VmRSS`: resident now, `VmHWM`: its peak).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in {status}"))
    }

    /// Its resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.memory_kib("VmRSS")
    }

    /// `GET path`: the answer's status code and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let stream = TcpStream::connect(self.addr).expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        (&stream).write_all(request.as_bytes()).expect("write");
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut &stream, &mut answer).expect("read");
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line in {head}"));
        (status, body.to_owned())
    }

    /// Its `/metrics` page.
    pub fn metrics(&self) -> String {
        self.get("/metrics").1
    }

    /// Send it a signal (`TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid}");
    }

    /// Its exit status, waiting at most `timeout` for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of the metric line starting with `series` (its name and labels).
    pub fn metric(&self, series: &str) -> u64 {
        let metrics = self.metrics();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    }

    /// Stop it (SIGKILL) and return every line it logged that was not read yet.
    pub fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log.iter().collect()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
