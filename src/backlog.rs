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

/// The throttle's settings: `NSLAB_NETNS_BACKLOG` (namespaces awaiting
/// teardown above the count at the start, default [`DEFAULT_LIMIT`]) and
/// `NSLAB_NETNS_BACKLOG_MAX_WAIT_MS` (the longest one scenario waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub limit: u64,
    pub max_wait: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{name}={value:?} is not a whole number: {meaning}")]
    NotANumber {
        name: &'static str,
        value: String,
        meaning: &'static str,
    },
}

impl Settings {
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_vars(|name| std::env::var(name).ok())
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let number = |name: &'static str, meaning: &'static str| match var(name) {
            None => Ok(None),
            Some(value) => {
                value
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| SettingsError::NotANumber {
                        name,
                        value,
                        meaning,
                    })
            }
        };
        let limit = number(
            "NSLAB_NETNS_BACKLOG",
            "how many network namespaces may await teardown before a scenario waits",
        )?;
        let wait = number(
            "NSLAB_NETNS_BACKLOG_MAX_WAIT_MS",
            "the longest a scenario waits for them, in milliseconds",
        )?;
        Ok(Settings {
            limit: limit.unwrap_or(DEFAULT_LIMIT),
            max_wait: wait.map(Duration::from_millis).unwrap_or(MAX_WAIT),
        })
    }
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
    /// Counts from the kernel.
    pub fn from_kernel(settings: Settings) -> Throttle {
        let mut t = Throttle::new(
            Box::new(net_namespaces),
            settings.limit,
            Duration::from_millis(2),
        );
        t.max_wait = settings.max_wait;
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
    fn settings_come_from_the_environment_or_defaults() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            Settings::from_vars(vars(&[])),
            Ok(Settings {
                limit: DEFAULT_LIMIT,
                max_wait: MAX_WAIT
            })
        );
        assert_eq!(
            Settings::from_vars(vars(&[
                ("NSLAB_NETNS_BACKLOG", "0"),
                ("NSLAB_NETNS_BACKLOG_MAX_WAIT_MS", " 300 ")
            ])),
            Ok(Settings {
                limit: 0,
                max_wait: Duration::from_millis(300)
            })
        );
        let e = Settings::from_vars(vars(&[("NSLAB_NETNS_BACKLOG", "lots")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("NSLAB_NETNS_BACKLOG=\"lots\" is not a whole number"),
            "{e}"
        );
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
