//! The machine probe: a fixed reference workload, run before every scenario, whose cost says
//! how fast the machine was at the time.
//!
//! The benchmark machine is a shared VM whose speed drifts: the same pushgate binary, doing
//! the same instructions (callgrind), costs a quarter to a half more CPU per delivery or per
//! connect in some half hours than in others (BENCHMARKS.md, finding 11). The probe measures
//! the two things a push server's CPU goes to, with no server involved:
//! - `loopback_rtt_cpu_us`: the CPU time (both ends, user + system) of one round trip of a
//!   64-byte message over a loopback TCP connection between two threads, each blocked in
//!   `read` until the other writes: a small `send`, the loopback path, a wake-up, a `recv`,
//!   twice over — what a delivery costs the kernel.
//! - `core_ns_per_iter`: a fixed chain of multiplies, timed in the thread's own CPU time, so
//!   that waiting for a core does not count but a slower core does (the host's other guests,
//!   its clock). It is also sampled during the run ([`CoreSampler`]): a few milliseconds of
//!   arithmetic every half second, under 1 % of a core.
//!
//! Put next to a result, a probe that costs 30 % more than usual explains a run that costs
//! 30 % more than usual, without another build being involved.

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Round trips of the loopback part (~0.2–0.5 s on the benchmark machine).
const ROUND_TRIPS: u32 = 10_000;
/// Iterations of the arithmetic part before the run (~0.1 s).
const CORE_ITERS: u64 = 50_000_000;
/// Iterations of one sample during the run (~4 ms).
const SAMPLE_ITERS: u64 = 2_000_000;
/// Time between two samples during the run.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Size of each message of the loopback part: a small push frame.
const MESSAGE_BYTES: usize = 64;

/// What one probe measured.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Probe {
    /// CPU time (this process, user + system) per loopback round trip, both threads on CPU 0, µs.
    pub same_cpu_rtt_cpu_us: f64,
    /// Wall time per round trip, both threads on CPU 0, µs.
    pub same_cpu_rtt_wall_us: f64,
    /// CPU time per round trip, the threads on CPUs 0 and 1 (each wake-up crosses CPUs), µs.
    pub cross_cpu_rtt_cpu_us: f64,
    /// Wall time per round trip, the threads on CPUs 0 and 1, µs.
    pub cross_cpu_rtt_wall_us: f64,
    /// Thread CPU time per iteration of the arithmetic loop, ns.
    pub core_ns_per_iter: f64,
}

impl Probe {
    /// One line for the human summary.
    pub fn summary(&self) -> String {
        format!(
            "machine probe: loopback round trip {:.1} µs CPU on one CPU, {:.1} µs CPU ({:.1} wall) \
             across two; {:.3} ns per loop iteration",
            self.same_cpu_rtt_cpu_us,
            self.cross_cpu_rtt_cpu_us,
            self.cross_cpu_rtt_wall_us,
            self.core_ns_per_iter
        )
    }
}

/// Run the probe (blocking, ~0.5 s; loopback only).
pub fn run() -> io::Result<Probe> {
    let (first, second) = match allowed_cpus()?[..] {
        [a, b, ..] => (a, b),
        _ => return Err(io::Error::other("needs two CPUs to run on")),
    };
    let same = loopback_round_trips(ROUND_TRIPS, (first, first))?;
    let cross = loopback_round_trips(ROUND_TRIPS, (first, second))?;
    Ok(Probe {
        same_cpu_rtt_cpu_us: same.0,
        same_cpu_rtt_wall_us: same.1,
        cross_cpu_rtt_cpu_us: cross.0,
        cross_cpu_rtt_wall_us: cross.1,
        core_ns_per_iter: core_ns_per_iter(CORE_ITERS)?,
    })
}

/// Samples [`core_ns_per_iter`] on a thread of its own until stopped.
pub struct CoreSampler {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Vec<f64>>,
}

/// What the samples of a run say: the core's speed during it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CoreDuringRun {
    /// Samples taken.
    pub samples: usize,
    /// Median ns per iteration.
    pub median_ns_per_iter: f64,
    /// Slowest sample's ns per iteration.
    pub max_ns_per_iter: f64,
}

impl CoreSampler {
    /// Start sampling every [`SAMPLE_EVERY`].
    pub fn start() -> Self {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(SAMPLE_EVERY) {
                if let Ok(ns) = core_ns_per_iter(SAMPLE_ITERS) {
                    samples.push(ns);
                }
            }
            samples
        });
        Self { stop, thread }
    }

    /// Stop and summarize (`None` without a sample: a run shorter than [`SAMPLE_EVERY`]).
    pub fn finish(self) -> Option<CoreDuringRun> {
        let _ = self.stop.send(());
        let mut samples = self.thread.join().ok()?;
        samples.sort_by(f64::total_cmp);
        Some(CoreDuringRun {
            samples: samples.len(),
            median_ns_per_iter: *samples.get(samples.len() / 2)?,
            max_ns_per_iter: *samples.last()?,
        })
    }
}

impl CoreDuringRun {
    /// One line for the human summary.
    pub fn summary(&self) -> String {
        format!(
            "core during the run: median {:.3}, slowest {:.3} ns per loop iteration ({} samples)",
            self.median_ns_per_iter, self.max_ns_per_iter, self.samples
        )
    }
}

/// Thread CPU time per iteration of [`arithmetic`] over `iters` iterations, ns.
fn core_ns_per_iter(iters: u64) -> io::Result<f64> {
    let before = cpu_clock_secs(libc::CLOCK_THREAD_CPUTIME_ID)?;
    black_box(arithmetic(iters));
    Ok((cpu_clock_secs(libc::CLOCK_THREAD_CPUTIME_ID)? - before) * 1e9 / iters as f64)
}

/// `n` ping-pongs of [`MESSAGE_BYTES`] over 127.0.0.1 between two threads of their own, pinned
/// to the CPUs `cpus` (the caller's own affinity is left alone: threads spawned later inherit
/// it). CPU time (this process) and wall time per round trip, µs.
fn loopback_round_trips(n: u32, cpus: (usize, usize)) -> io::Result<(f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> io::Result<()> {
        pin_to(cpus.1)?;
        let (mut peer, _) = listener.accept()?;
        peer.set_nodelay(true)?;
        let mut buf = [0u8; MESSAGE_BYTES];
        for _ in 0..n {
            peer.read_exact(&mut buf)?;
            peer.write_all(&buf)?;
        }
        Ok(())
    });
    let ping = std::thread::spawn(move || -> io::Result<(f64, f64)> {
        pin_to(cpus.0)?;
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut buf = [7u8; MESSAGE_BYTES];
        // One round trip first, so that the echo thread has accepted and is waiting.
        stream.write_all(&buf)?;
        stream.read_exact(&mut buf)?;
        let (cpu_before, wall_before) = (process_cpu_secs()?, Instant::now());
        for _ in 1..n {
            stream.write_all(&buf)?;
            stream.read_exact(&mut buf)?;
        }
        let trips = f64::from(n.saturating_sub(1).max(1));
        Ok((
            (process_cpu_secs()? - cpu_before) * 1e6 / trips,
            wall_before.elapsed().as_secs_f64() * 1e6 / trips,
        ))
    });
    let panicked = |_| io::Error::other("probe thread panicked");
    let measured = ping.join().map_err(panicked)?;
    echo.join().map_err(panicked)??;
    measured
}

/// The CPUs this process may run on.
fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity writes at most its size,
    // and CPU_ISSET reads it within CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect())
    }
}

/// Pin the calling thread to one CPU.
fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and sched_setaffinity get a valid
    // pointer to it and its size.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A dependent chain of multiplies and xors that the optimizer cannot fold.
fn arithmetic(iters: u64) -> u64 {
    let mut x = black_box(0x9E37_79B9_7F4A_7C15u64);
    for i in 0..iters {
        x = (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ i;
    }
    x
}

/// This process's CPU time so far (all threads, user + system), seconds.
fn process_cpu_secs() -> io::Result<f64> {
    cpu_clock_secs(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// A CPU-time clock's reading, seconds.
fn cpu_clock_secs(clock: libc::clockid_t) -> io::Result<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; `clock` is one of the platform's CPU-time clocks.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_complete_and_cost_cpu() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        let (cpu_us, wall_us) = loopback_round_trips(200, (cpus[0], cpus[cpus.len() - 1])).unwrap();
        assert!(cpu_us > 0.0 && wall_us > 0.0, "{cpu_us} {wall_us}");
    }

    #[test]
    fn sampler_summarizes_its_samples() {
        let sampler = CoreSampler::start();
        std::thread::sleep(SAMPLE_EVERY * 3);
        let during = sampler.finish().expect("samples after 1.5 s");
        assert!(during.samples >= 1);
        assert!(during.median_ns_per_iter > 0.0);
        assert!(during.max_ns_per_iter >= during.median_ns_per_iter);
    }

    #[test]
    fn arithmetic_depends_on_every_iteration() {
        assert_ne!(arithmetic(1000), arithmetic(1001));
        assert_eq!(arithmetic(1000), arithmetic(1000));
    }
}
