//! Runs a list of scenarios, `jobs` at a time in worker processes (threads
//! would break user namespaces and parent-death signals), and hands each
//! result on in file order as soon as it and all before it are in.

use crate::env::Machine;
use crate::plan::Offer;
use crate::report::{ControlReport, HostIntegrity, Resources, ScenarioReport, Verdict};
use crate::sandbox::interrupt;
use crate::scenario::{Listed, Scenario};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::collections::BTreeMap;
use std::os::fd::AsFd;

fn run_one(s: &Scenario, base: &Offer, control: bool) -> ScenarioReport {
    let offer = crate::runner::offer_for(s, base);
    let mut r = crate::runner::run_scenario(s, &offer, false);
    if control
        && !s.sandboxes.is_empty()
        && r.verdict == Verdict::Passed
        && interrupt::caught().is_none()
    {
        let c = crate::runner::run_scenario(s, &offer, true);
        r.control = Some(ControlReport::from_run(&c));
    }
    r
}

/// A scenario that did not run to the end, or at all.
pub fn errored(s: &Scenario, reason: String) -> ScenarioReport {
    let mut r = crate::runner::run_scenario_shell(s);
    r.verdict = Verdict::Errored;
    r.reason = Some(reason);
    r
}

/// An errored report for a listed scenario: with its steps (not run) when
/// the file still parses, with its name alone when it does not.
fn errored_listed(l: &Listed, reason: String) -> ScenarioReport {
    match l.load() {
        Ok(s) => errored(&s, reason),
        Err(_) => ScenarioReport {
            name: l.name.clone(),
            title: None,
            description: None,
            file: l.file.display().to_string(),
            tags: l.tags.clone(),
            verdict: Verdict::Errored,
            reason: Some(reason),
            duration_ms: 0.0,
            setup_ms: None,
            lab_hostname: None,
            lab_namespaces: Default::default(),
            sandboxes: Vec::new(),
            steps: Vec::new(),
            control: None,
        },
    }
}

/// Parses a listed scenario again and runs it.
fn load_and_run(l: &Listed, base: &Offer, control: bool) -> ScenarioReport {
    match l.load() {
        Ok(s) => run_one(&s, base, control),
        Err(e) => errored_listed(l, e.to_string()),
    }
}

fn not_run_interrupted(l: &Listed) -> ScenarioReport {
    let sig = interrupt::caught()
        .map(|s| s.as_str())
        .unwrap_or("a signal");
    errored_listed(l, format!("not run: the run was interrupted by {sig}"))
}

/// How a whole run ended, beside the scenarios' own results.
pub struct SuiteEnd {
    pub host_integrity: HostIntegrity,
    pub resources: Resources,
}

/// A whole run: the real machine's state snapshotted before and after,
/// cgroup folders of killed runs swept first (by the next run that makes
/// cgroups), the scenarios run `jobs` at a time behind the network
/// namespace throttle, each result handed to `done` in order.
pub fn run_suite(
    scenarios: &[Listed],
    machine: &Machine,
    jobs: usize,
    control: bool,
    backlog: crate::backlog::Settings,
    done: &mut dyn FnMut(ScenarioReport),
) -> SuiteEnd {
    let offer = crate::runner::machine_offer(machine);
    if scenarios.iter().any(|s| s.has_limits)
        && let Some(layout) = crate::sandbox::cgroup::detect_here()
    {
        crate::sandbox::cgroup::sweep_stale(&layout);
    }
    let before = crate::integrity::snapshot();
    let mut throttle = crate::backlog::Throttle::from_kernel(backlog);
    run_all(scenarios, &offer, jobs, control, &mut throttle, done);
    crate::sandbox::collect_dying(true);
    let after = crate::integrity::snapshot();
    let differences = crate::integrity::differences(&before, &after);
    SuiteEnd {
        host_integrity: HostIntegrity {
            unchanged: differences.is_empty(),
            checked: crate::integrity::CHECKED
                .iter()
                .map(|s| s.to_string())
                .collect(),
            differences,
        },
        resources: resources(&throttle),
    }
}

fn resources(throttle: &crate::backlog::Throttle) -> Resources {
    use nix::sys::resource::{UsageWho, getrusage};
    let kib = |w| getrusage(w).map(|u| u.max_rss().max(0) as u64).unwrap_or(0);
    Resources {
        runner_peak_rss_kib: kib(UsageWho::RUSAGE_SELF),
        children_peak_rss_kib: kib(UsageWho::RUSAGE_CHILDREN),
        net_namespaces_peak: throttle.peak,
        netns_backlog_wait_ms: (throttle.waited.as_secs_f64() * 1e4).round() / 10.0,
    }
}

pub fn run_all(
    scenarios: &[Listed],
    base: &Offer,
    jobs: usize,
    control: bool,
    throttle: &mut crate::backlog::Throttle,
    done: &mut dyn FnMut(ScenarioReport),
) {
    // Only results that wait for an earlier one are held: at most `jobs`.
    let mut results: BTreeMap<usize, ScenarioReport> = BTreeMap::new();
    let mut printed = 0;
    let mut flush = |results: &mut BTreeMap<usize, ScenarioReport>, printed: &mut usize| {
        while let Some(r) = results.remove(printed) {
            done(r);
            *printed += 1;
        }
    };
    if jobs == 1 || scenarios.len() == 1 {
        for (i, s) in scenarios.iter().enumerate() {
            let r = if interrupt::check().is_some() {
                not_run_interrupted(s)
            } else {
                throttle.before_scenario();
                load_and_run(s, base, control)
            };
            results.insert(i, r);
            flush(&mut results, &mut printed);
        }
    } else {
        let mut next = 0;
        let mut running: Vec<(usize, i32, std::fs::File)> = Vec::new();
        let mut forwarded = false;
        while next < scenarios.len() || !running.is_empty() {
            interrupt::check();
            while running.len() < jobs && next < scenarios.len() && interrupt::caught().is_none() {
                let s = &scenarios[next];
                throttle.before_scenario();
                match crate::sandbox::fork_worker(|| {
                    serde_json::to_vec(&load_and_run(s, base, control)).unwrap_or_default()
                }) {
                    Ok((pid, fd)) => running.push((next, pid, std::fs::File::from(fd))),
                    Err(e) => {
                        results.insert(
                            next,
                            errored_listed(s, format!("cannot start a worker: {e}")),
                        );
                    }
                }
                next += 1;
            }
            if let Some(sig) = interrupt::caught() {
                // No new scenario starts; the running ones end early, as the
                // workers see the signal too (sent to them if it was only
                // sent to us).
                if !forwarded {
                    for (_, pid, _) in &running {
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), sig);
                    }
                    forwarded = true;
                }
                while next < scenarios.len() {
                    results.insert(next, not_run_interrupted(&scenarios[next]));
                    next += 1;
                }
            }
            if running.is_empty() {
                continue;
            }
            let ready = {
                let mut fds: Vec<PollFd> = running
                    .iter()
                    .map(|(_, _, f)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                    .collect();
                if let Some(sfd) = interrupt::fd() {
                    fds.push(PollFd::new(sfd, PollFlags::POLLIN));
                }
                let _ = poll(&mut fds, PollTimeout::NONE);
                fds[..running.len()]
                    .iter()
                    .position(|f| f.any().unwrap_or(false))
            };
            let Some(idx) = ready else {
                continue; // a signal: handled at the top of the loop
            };
            let (i, pid, mut f) = running.remove(idx);
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut f, &mut buf);
            crate::sandbox::reap_worker(pid);
            let r = serde_json::from_slice(&buf).unwrap_or_else(|e| {
                errored_listed(
                    &scenarios[i],
                    format!("the worker running it ended without a result ({e})"),
                )
            });
            results.insert(i, r);
            flush(&mut results, &mut printed);
        }
    }
    flush(&mut results, &mut printed);
    debug_assert_eq!(printed, scenarios.len(), "every scenario has a result");
}
