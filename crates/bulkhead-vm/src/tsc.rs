//! The host's TSC frequency, for TCG guests.
//!
//! Under TCG, QEMU's guest `rdtsc` returns the host's TSC. The guest kernel cannot calibrate it (its PIT
//! calibration loop is too slow under binary translation), marks the TSC unstable and falls back to the
//! jiffies clocksource: 10 ms clock resolution and no high-resolution timers for the container. Telling it
//! the frequency with `tsc_early_khz=` keeps the TSC as clocksource. Only an invariant TSC
//! (`constant_tsc` and `nonstop_tsc`) is measured and passed on. The measurement waits 60 ms, so it is
//! kept in the cache per host boot (the frequency of an invariant TSC is fixed until the next boot).

use crate::cache::{default_cache_dir, remembered};
use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Measurement window: long enough that the pairing error of the two clock reads (well under 1 µs) is
/// below 0.01 %.
const WINDOW: Duration = Duration::from_millis(20);

/// The host TSC frequency in kHz, measured once per host boot; `None` without an invariant TSC.
pub fn host_tsc_khz() -> Option<u64> {
    static KHZ: OnceLock<Option<u64>> = OnceLock::new();
    *KHZ.get_or_init(|| {
        let Ok(boot_id) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else {
            return measure();
        };
        let name = format!("tsc-{}.khz", boot_id.trim());
        let dir = default_cache_dir().join("host");
        let kept: Result<String, Infallible> = remembered(
            &dir,
            &name,
            |v| v == "none" || v.parse::<u64>().is_ok(),
            || Ok(measure().map_or("none".to_string(), |khz| khz.to_string())),
        );
        kept.ok()?.parse().ok()
    })
}

fn invariant_tsc() -> bool {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|flags| {
            let has = |f: &str| flags.split_whitespace().any(|w| w == f);
            has("constant_tsc") && has("nonstop_tsc")
        })
}

#[cfg(target_arch = "x86_64")]
fn measure() -> Option<u64> {
    if !invariant_tsc() {
        return None;
    }
    // The result is kept for the whole boot: the median of three windows, so that one window stretched
    // by a preemption between its two clock reads cannot skew every later guest's clock.
    let mut samples = (0..3).map(|_| window()).collect::<Option<Vec<u64>>>()?;
    samples.sort_unstable();
    Some(samples[1])
}

#[cfg(target_arch = "x86_64")]
fn window() -> Option<u64> {
    // SAFETY: rdtsc has no memory effects; every x86_64 CPU has it.
    let read = || (Instant::now(), unsafe { core::arch::x86_64::_rdtsc() });
    let (t0, c0) = read();
    std::thread::sleep(WINDOW);
    let (t1, c1) = read();
    let nanos = t1.duration_since(t0).as_nanos();
    let ticks = u128::from(c1.checked_sub(c0)?);
    u64::try_from(ticks.checked_mul(1_000_000)? / nanos.max(1)).ok()
}

#[cfg(not(target_arch = "x86_64"))]
fn measure() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_is_stable_and_plausible() {
        if !invariant_tsc() {
            assert_eq!(host_tsc_khz(), None);
            return;
        }
        let a = measure().unwrap();
        let b = measure().unwrap();
        // Between 100 MHz and 10 GHz, and two measurements agree within 1 %.
        assert!((100_000..10_000_000).contains(&a), "{a} kHz");
        assert!(a.abs_diff(b) * 100 < a, "{a} vs {b} kHz");
    }
}
