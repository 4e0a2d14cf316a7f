//! The kernel frees a network namespace asynchronously: after its last
//! process is gone, a work queue tears it down (interfaces, routes, sysctl
//! tables, an RCU grace period) in batches. Labs end faster than that on a
//! busy machine, and a long suite could then pile up namespaces waiting to
//! be freed, each holding memory, until the machine slows down for
//! everyone. Before each scenario nslab counts the network namespaces the
//! kernel still holds and, past a limit above the count at the start, waits
//! for the work queue to catch up.
//!
//! The count is the `net_namespace` slab's objects in use (live and not yet
//! freed), readable by root only; without it nothing is throttled and the
//! report says so by leaving the count out.

use std::time::{Duration, Instant};

/// How many namespaces above the run's starting count may wait for
/// teardown before a new scenario waits. Labs running at the same time
/// hold a few each; 256 is far above that and far below trouble.
pub const DEFAULT_LIMIT: u64 = 256;

/// The longest a scenario waits for the backlog before it starts anyway
/// (`NSLAB_NETNS_BACKLOG_MAX_WAIT_MS` overrides it): throttling must not
/// turn into a hang if something else on the machine keeps creating
/// namespaces, and the count is by slab (7 namespaces each here), so it
/// may never come back exactly to where it started.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// Network namespaces the kernel holds, live or awaiting teardown. SLUB's
/// file for the one cache costs 16 µs to read here; /proc/slabinfo, which
/// walks every cache, 210 µs, so it is only the fallback.
pub fn net_namespaces() -> Option<u64> {
    let first = |text: String| text.split_whitespace().next()?.parse().ok();
    if let Some(n) = std::fs::read_to_string("/sys/kernel/slab/net_namespace/objects")
        .ok()
        .and_then(first)
    {
        return Some(n);
    }
    let text = std::fs::read_to_string("/proc/slabinfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("net_namespace "))
        .and_then(|rest| first(rest.to_owned()))
}

/// Waits before scenarios while too many network namespaces await teardown.
pub struct Throttle {
    count: Box<dyn FnMut() -> Option<u64>>,
    baseline: Option<u64>,
    limit: u64,
    step: Duration,
    max_wait: Duration,
    /// The most namespaces seen at any check.
    pub peak: Option<u64>,
    /// Time spent waiting, over the whole run.
    pub waited: Duration,
    /// Scenarios that had to wait.
    pub waits: u32,
}

impl Throttle {
    /// Counts from the kernel; the limit comes from `NSLAB_NETNS_BACKLOG`
    /// when set (a number of namespaces), else [`DEFAULT_LIMIT`].
    pub fn from_kernel() -> Throttle {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let limit = var("NSLAB_NETNS_BACKLOG").unwrap_or(DEFAULT_LIMIT);
        let mut t = Throttle::new(Box::new(net_namespaces), limit, Duration::from_millis(2));
        if let Some(ms) = var("NSLAB_NETNS_BACKLOG_MAX_WAIT_MS") {
            t.max_wait = Duration::from_millis(ms);
        }
        t
    }

    pub fn new(mut count: Box<dyn FnMut() -> Option<u64>>, limit: u64, step: Duration) -> Throttle {
        let baseline = count();
        Throttle {
            count,
            baseline,
            limit,
            step,
            max_wait: MAX_WAIT,
            peak: baseline,
            waited: Duration::ZERO,
            waits: 0,
        }
    }

    /// Returns once the backlog is within the limit, or after the longest
    /// wait, or on SIGINT/SIGTERM.
    pub fn before_scenario(&mut self) {
        let Some(base) = self.baseline else { return };
        let started = Instant::now();
        let mut waited = false;
        while let Some(n) = (self.count)() {
            self.peak = self.peak.max(Some(n));
            if n <= base + self.limit
                || started.elapsed() >= self.max_wait
                || crate::sandbox::interrupt::check().is_some()
            {
                break;
            }
            waited = true;
            std::thread::sleep(self.step);
        }
        if waited {
            self.waits += 1;
            self.waited += started.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_waits_until_the_backlog_is_within_the_limit() {
        // 10 at the start; then a backlog that drains one by one.
        let seen = std::rc::Rc::new(std::cell::RefCell::new(vec![10, 11, 16, 15, 14, 13, 12]));
        let feed = seen.clone();
        let counter = move || {
            let mut v = feed.borrow_mut();
            Some(if v.len() > 1 { v.remove(0) } else { v[0] })
        };
        let mut t = Throttle::new(Box::new(counter), 2, Duration::from_millis(1));
        t.before_scenario(); // 11: within 10 + 2
        assert_eq!((t.waits, t.waited), (0, Duration::ZERO));
        t.before_scenario(); // 16, 15, 14, 13 wait; 12 goes
        assert_eq!(t.waits, 1);
        assert!(t.waited >= Duration::from_millis(4), "{:?}", t.waited);
        assert_eq!(t.peak, Some(16));
        assert!(seen.borrow().len() == 1);
    }

    #[test]
    fn without_a_count_nothing_waits() {
        let mut t = Throttle::new(Box::new(|| None), 0, Duration::from_millis(1));
        t.before_scenario();
        assert_eq!((t.waits, t.peak), (0, None));
    }

    #[test]
    fn the_kernel_count_is_read_where_root_can() {
        if nix::unistd::geteuid().is_root() {
            assert!(net_namespaces().is_some_and(|n| n >= 1));
        }
    }
}
