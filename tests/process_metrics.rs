//! The `process_*` metrics and `pushgate_build_info` on `/metrics`, from the real binary as a
//! child process: open files follow the connections it holds.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::ServerProcess;

/// The value of the sample named exactly `name` (no labels).
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

#[test]
fn process_metrics_follow_the_process() {
    let server = ServerProcess::start(&[]);
    let metrics = server.metrics();
    let open = sample(&metrics, "process_open_fds");
    assert!(open >= 3.0, "{open}");
    assert!(sample(&metrics, "process_max_fds") >= open);
    let rss = sample(&metrics, "process_resident_memory_bytes");
    assert!(rss >= 1024.0 * server.rss_kib() as f64 / 2.0, "{rss} bytes");
    assert!(sample(&metrics, "process_cpu_seconds_total") >= 0.0);
    let started = sample(&metrics, "process_start_time_seconds");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(started <= now + 1.0 && started > now - 600.0, "{started}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("pushgate_build_info{")
                && l.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
                && l.ends_with(" 1")),
        "{metrics}"
    );

    // 40 more connections held: 40 more open files. The baseline is the least of a few
    // readings: the broker link's connection attempts (to a closed port here) hold a few
    // files for a moment now and then. Connections that send no request are closed after 5 s
    // (the request timeout), so they are opened again if that happens before a reading sees
    // them (a stalled machine).
    let baseline = (0..10)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            sample(&server.metrics(), "process_open_fds")
        })
        .fold(f64::INFINITY, f64::min);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut held: Vec<TcpStream> = Vec::new();
    loop {
        if held.is_empty() || held.iter().any(closed) {
            held = (0..40)
                .map(|_| TcpStream::connect(server.addr).expect("connect"))
                .collect();
        }
        let now_open = sample(&server.metrics(), "process_open_fds");
        if now_open >= baseline + 40.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{now_open} open, {baseline} before"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the server closed `stream`.
fn closed(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let closed = matches!(stream.peek(&mut [0u8; 1]), Ok(0));
    stream.set_nonblocking(false).expect("blocking");
    closed
}
