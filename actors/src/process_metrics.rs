//! The standard Prometheus `process_*` metrics, read from `/proc/self` at each scrape (Linux;
//! elsewhere they are left out), and `pushgate_build_info`. Open files matter most here: each
//! client holds a socket, and `process_open_fds` near `process_max_fds` means refused clients.
//!
//! Process-wide by nature, so one instance for the process, rendered by
//! [`Metrics::render`](crate::metrics::Metrics::render).

use std::sync::{Mutex, OnceLock};

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, IntGauge, IntGaugeVec, Opts};

/// `/proc` counts CPU time in USER_HZ ticks, 100 a second in Linux's user-space ABI.
const USER_HZ: f64 = 100.0;

/// What one scrape reads from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// Entries of `/proc/self/fd`.
    pub open_fds: i64,
    /// The soft limit on open files (`/proc/self/limits`); `None` when unlimited.
    pub max_fds: Option<i64>,
    /// `VmRSS` of `/proc/self/status`, in bytes.
    pub resident_bytes: i64,
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Read them for this process; `None` where there is no `/proc`.
    pub fn read() -> Option<ProcessStats> {
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let system = std::fs::read_to_string("/proc/stat").ok()?;
        let (cpu_ticks, start_ticks) = cpu_and_start_ticks(&stat)?;
        let boot_time: f64 = system
            .lines()
            .find_map(|l| l.strip_prefix("btime"))?
            .trim()
            .parse()
            .ok()?;
        Some(ProcessStats {
            open_fds,
            max_fds: max_open_files(&limits),
            resident_bytes: resident_kib(&status)? * 1024,
            cpu_seconds: cpu_ticks as f64 / USER_HZ,
            start_time_seconds: boot_time + start_ticks as f64 / USER_HZ,
        })
    }
}

/// The soft limit of `Max open files` in `/proc/<pid>/limits`.
fn max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `VmRSS` of `/proc/<pid>/status`, in KiB.
fn resident_kib(status: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `utime + stime` and `starttime` of `/proc/<pid>/stat`, in ticks. The fields are counted
/// after the command name's closing parenthesis (the name may hold spaces and parentheses).
fn cpu_and_start_ticks(stat: &str) -> Option<(u64, u64)> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // Field 3 (state) is the first after the name: utime is field 14, stime 15, starttime 22.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)? + field(15)?, field(22)?))
}

/// The `process_*` metrics and `pushgate_build_info`.
struct ProcessMetrics {
    open_fds: IntGauge,
    max_fds: IntGauge,
    resident_memory: IntGauge,
    cpu_seconds: Counter,
    start_time: Gauge,
    build_info: IntGaugeVec,
    /// Serialises the CPU counter's catch-up between concurrent scrapes.
    cpu_update: Mutex<()>,
}

impl ProcessMetrics {
    fn new() -> Self {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "pushgate_build_info",
                "Always 1; the labels say which pushgate runs",
            ),
            &["version", "os", "arch"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[
                // The workspace's version: the server's and this crate's are one.
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::env::consts::ARCH,
            ])
            .set(1);
        ProcessMetrics {
            open_fds: gauge("process_open_fds", "Number of open file descriptors"),
            max_fds: gauge("process_max_fds", "Maximum number of open file descriptors"),
            resident_memory: gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
            ),
            cpu_seconds: Counter::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds",
            )
            .expect("valid metric"),
            start_time: Gauge::new(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
            )
            .expect("valid metric"),
            build_info,
            cpu_update: Mutex::new(()),
        }
    }

    /// Read `/proc` and return every family (only the build info without `/proc`).
    fn families(&self) -> Vec<MetricFamily> {
        let mut families = self.build_info.collect();
        let Some(stats) = ProcessStats::read() else {
            return families;
        };
        self.open_fds.set(stats.open_fds);
        self.resident_memory.set(stats.resident_bytes);
        self.start_time.set(stats.start_time_seconds);
        {
            let _one_at_a_time = self.cpu_update.lock().unwrap_or_else(|e| e.into_inner());
            let behind = stats.cpu_seconds - self.cpu_seconds.get();
            if behind > 0.0 {
                self.cpu_seconds.inc_by(behind);
            }
        }
        families.extend(self.cpu_seconds.collect());
        families.extend(self.open_fds.collect());
        if let Some(max) = stats.max_fds {
            self.max_fds.set(max);
            families.extend(self.max_fds.collect());
        }
        families.extend(self.resident_memory.collect());
        families.extend(self.start_time.collect());
        families
    }
}

/// The process metrics now, for [`Metrics::render`](crate::metrics::Metrics::render).
pub fn families() -> Vec<MetricFamily> {
    static METRICS: OnceLock<ProcessMetrics> = OnceLock::new();
    METRICS.get_or_init(ProcessMetrics::new).families()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    250 130 0 0 20 0 9 0 123456 104857600 2000 18446744073709551615";
        assert_eq!(cpu_and_start_ticks(stat), Some((380, 123456)));
        assert_eq!(cpu_and_start_ticks("4242 (short) S 1"), None);
    }

    #[test]
    fn limits_and_status_lines_are_parsed() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63704                63704                processes\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1_048_576));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(unlimited), None);
        assert_eq!(resident_kib("Name:\tx\nVmRSS:\t   12345 kB\n"), Some(12345));
    }

    #[test]
    fn this_process_is_read_from_proc() {
        let stats = ProcessStats::read().expect("Linux: /proc");
        assert!(stats.open_fds >= 3, "{stats:?}");
        assert!(stats.max_fds.unwrap_or(i64::MAX) >= stats.open_fds);
        assert!(stats.resident_bytes > 1_000_000, "{stats:?}");
        assert!(stats.start_time_seconds > 1.6e9, "{stats:?}");
        assert!(stats.cpu_seconds >= 0.0);
    }
}
