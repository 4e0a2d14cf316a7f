//! Runs one scenario: plan, lab, steps, checks. Everything it learns goes
//! into a [`ScenarioReport`]; it prints nothing.

use crate::check;
use crate::ns::Ns;
use crate::plan::{Offer, Plan, plan};
use crate::report::{
    CheckReport, Observation, SandboxReport, ScenarioReport, StepReport, StepVerdict, Verdict,
};
use crate::sandbox::proto::{Request, Response, RunOutcome};
use crate::sandbox::{Lab, LabError};
use crate::scenario::{Action, Scenario, Step};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Slack the runner gives an agent beyond a step's own timeout, which the
/// agent enforces itself; past this the agent is presumed stuck.
const AGENT_GRACE: Duration = Duration::from_secs(5);
/// Time to build a lab, out of the scenario's budget but capped.
const SETUP_LIMIT: Duration = Duration::from_secs(20);

/// What this machine offers every scenario, read once per run.
pub fn machine_offer(machine: &crate::env::Machine) -> Offer {
    Offer {
        machine: machine.clone(),
        missing_commands: Vec::new(),
        missing_namespaces: Ns::ALL
            .into_iter()
            .filter(|n| !crate::env::kernel_has_namespace(*n))
            .collect(),
        id_base: crate::env::lab_id_base("/etc/subuid"),
        subids: if machine.is_root() {
            None
        } else {
            crate::env::subids_here(machine)
        },
    }
}

/// The machine's offer, with the commands this scenario needs and lacks.
pub fn offer_for(s: &Scenario, base: &Offer) -> Offer {
    Offer {
        missing_commands: s
            .requires
            .commands
            .iter()
            .filter(|c| crate::env::which(c).is_none())
            .cloned()
            .collect(),
        ..base.clone()
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A report for the scenario with every step not run, to fill in.
pub fn run_scenario_shell(s: &Scenario) -> ScenarioReport {
    empty_report(s, Verdict::Passed, None)
}

fn empty_report(s: &Scenario, verdict: Verdict, reason: Option<String>) -> ScenarioReport {
    ScenarioReport {
        name: s.name.clone(),
        title: s.title.clone(),
        description: s.description.clone(),
        file: s.file.display().to_string(),
        tags: s.tags.clone(),
        verdict,
        reason,
        duration_ms: 0.0,
        setup_ms: None,
        lab_hostname: None,
        lab_namespaces: BTreeMap::new(),
        sandboxes: Vec::new(),
        steps: s.steps.iter().map(not_run).collect(),
        control: None,
    }
}

fn step_shell(step: &Step) -> StepReport {
    let (action, command, probe, argument) = match &step.action {
        Action::Run(c) => ("run", Some(c.clone()), None, None),
        Action::Probe(p) => ("probe", None, Some(p.name().to_owned()), p.argument()),
    };
    StepReport {
        index: step.index,
        name: step.label(),
        action: action.into(),
        command,
        probe,
        argument,
        in_: step.contexts.clone(),
        background: step.background,
        verdict: StepVerdict::NotRun,
        reason: None,
        explain: step.explain.clone(),
        observations: Vec::new(),
        checks: Vec::new(),
    }
}

fn not_run(step: &Step) -> StepReport {
    step_shell(step)
}

pub fn run_scenario(s: &Scenario, offer: &Offer, control: bool) -> ScenarioReport {
    let started = Instant::now();
    let mut report = match plan(s, offer, control) {
        Plan::Skip(reason) => empty_report(s, Verdict::Skipped, Some(reason)),
        Plan::Run(spec) => {
            {
                let mut spec = spec;
                match make_cgroups(s, &mut spec) {
                    Err(reason) => empty_report(s, Verdict::Skipped, Some(reason)),
                    Ok(cgroups) => {
                        let r = run_lab(s, &spec, control, started, &cgroups);
                        // run_lab has dropped (killed) the lab.
                        remove_cgroups(cgroups);
                        r
                    }
                }
            }
        }
    };
    report.duration_ms = ms(started.elapsed());
    report
}

/// A cgroup for each sandbox with `limits`, its cgroup.procs handed to the
/// sandbox's spec so that it joins before its namespaces are made.
type Cgroups = Vec<(String, crate::sandbox::cgroup::SandboxCgroup)>;

fn remove_cgroups(cgroups: Cgroups) {
    if !cgroups.is_empty() {
        // A cgroup can only be removed once the lab's processes have left.
        crate::sandbox::collect_dying(true);
    }
    for (_, cg) in cgroups {
        crate::sandbox::cgroup::remove(cg);
    }
}

fn make_cgroups(s: &Scenario, spec: &mut crate::sandbox::LabSpec) -> Result<Cgroups, String> {
    use crate::sandbox::cgroup;
    let mut made = Vec::new();
    for (sb, sbspec) in s.sandboxes.iter().zip(spec.sandboxes.iter_mut()) {
        if sb.limits.is_empty() {
            continue;
        }
        let fail = |e: String, made: Cgroups| {
            remove_cgroups(made);
            Err(format!(
                "sandbox `{}` has `limits`, but nslab cannot make cgroups here ({e}): run as root, or inside a delegated cgroup (systemd-run --user --scope -p Delegate=yes nslab run …)",
                sb.name
            ))
        };
        let Some(layout) = cgroup::detect_here() else {
            return fail("no cgroup hierarchy is mounted".into(), made);
        };
        let run_dir = format!("nslab-{}-{}", std::process::id(), s.name);
        match cgroup::create(&layout, &run_dir, &sb.name, &sb.limits) {
            Ok(mut cg) => {
                sbspec.cgroup_procs = std::mem::take(&mut cg.procs)
                    .into_iter()
                    .map(std::sync::Arc::new)
                    .collect();
                made.push((sb.name.clone(), cg));
            }
            Err(e) => return fail(e, made),
        }
    }
    Ok(made)
}

/// Which namespaces a sandbox really has of its own (inodes that differ
/// from the lab host's), what it asked for (with what that implies), and,
/// when the two differ, why that is an error: isolation is checked, never
/// assumed.
pub fn isolation(
    lab: &std::collections::BTreeMap<String, u64>,
    sandbox: &std::collections::BTreeMap<String, u64>,
    asked: crate::ns::NsSet,
) -> (Vec<String>, Vec<String>, Option<String>) {
    let isolated: Vec<String> = Ns::ALL
        .iter()
        .map(|n| n.word())
        .filter(|w| sandbox.get(*w) != lab.get(*w))
        .map(str::to_owned)
        .collect();
    let requested: Vec<String> = asked.words().into_iter().map(str::to_owned).collect();
    let mismatch = (isolated != requested).then(|| {
        format!(
            "asked for new [{}] namespaces but [{}] differ from the lab host's",
            requested.join(", "),
            isolated.join(", ")
        )
    });
    (isolated, requested, mismatch)
}

/// Builds the lab, gathers the namespace evidence and hostnames into the
/// report, and makes the links. `None` (with the report saying why) when
/// any of it fails.
fn build_lab(
    s: &Scenario,
    spec: &crate::sandbox::LabSpec,
    deadline: Instant,
    report: &mut ScenarioReport,
) -> Option<Lab> {
    let mut lab = match Lab::start(spec, deadline.min(Instant::now() + SETUP_LIMIT)) {
        Ok(lab) => lab,
        Err(LabError::Timeout) => {
            report.verdict = Verdict::Errored;
            report.reason = Some("timed out while building the lab".into());
            return None;
        }
        Err(e) => {
            report.verdict = Verdict::Errored;
            report.reason = Some(e.to_string());
            return None;
        }
    };
    // Namespace evidence (every context's inodes, compared to the lab
    // host's) and hostnames for the transcripts' prompts, as each agent
    // reported them when it became ready.
    let inodes: Vec<_> = lab.facts.iter().map(|f| f.namespaces.clone()).collect();
    let hostnames: Vec<_> = lab.facts.iter().map(|f| f.hostname.clone()).collect();
    report.lab_namespaces = inodes[0].clone();
    report.lab_hostname = hostnames[0].clone();
    for (i, sb) in spec.sandboxes.iter().enumerate() {
        let mine = &inodes[i + 1];
        let (isolated, requested, mismatch) = isolation(&inodes[0], mine, sb.namespaces);
        if let Some(why) = mismatch {
            report.verdict = Verdict::Errored;
            report.reason = Some(format!("sandbox `{}`: {why}", sb.name));
        }
        report.sandboxes.push(SandboxReport {
            name: sb.name.clone(),
            namespaces: mine.clone(),
            isolated,
            requested,
            hostname: hostnames[i + 1].clone(),
        });
    }
    if report.verdict == Verdict::Errored {
        return None;
    }
    let names: Vec<String> = lab.context_names().to_vec();
    for (i, link) in s.links.iter().enumerate() {
        let idx = |c: &str| {
            names
                .iter()
                .position(|n| n == c)
                .expect("validated context")
        };
        let ends = link_names(i, link);
        let addrs = link.addresses.as_ref();
        let res = lab.link(
            idx(&link.between[0]),
            idx(&link.between[1]),
            [&ends[0], &ends[1]],
            [addrs.map(|a| a[0].as_str()), addrs.map(|a| a[1].as_str())],
            deadline,
        );
        if let Err(e) = res {
            report.verdict = Verdict::Errored;
            report.reason = Some(format!(
                "link {} between {} and {}: {e}",
                i + 1,
                link.between[0],
                link.between[1]
            ));
            return None;
        }
    }
    Some(lab)
}

fn run_lab(
    s: &Scenario,
    spec: &crate::sandbox::LabSpec,
    control: bool,
    started: Instant,
    cgroups: &Cgroups,
) -> ScenarioReport {
    let deadline = started + s.timeout;
    let mut report = empty_report(s, Verdict::Passed, None);
    let Some(mut lab) = build_lab(s, spec, deadline, &mut report) else {
        return report;
    };
    report.setup_ms = Some(ms(started.elapsed()));
    let names: Vec<String> = lab.context_names().to_vec();
    let mut failed = false;
    let mut errored: Option<String> = None;
    let mut timed_out = false;
    for (i, step) in s.steps.iter().enumerate() {
        // The control runs every step, so that each check's dependence on
        // isolation is known, not only the first one's.
        if timed_out || (failed && !step.always && !control) {
            continue;
        }
        let r = run_step(&mut lab, &names, step, deadline, cgroups);
        match r {
            StepRun::Done(sr) => {
                match sr.verdict {
                    StepVerdict::Failed => failed = true,
                    StepVerdict::Errored => {
                        failed = true;
                        errored.get_or_insert_with(|| {
                            format!(
                                "step {}: {}",
                                step.index,
                                sr.reason.clone().unwrap_or_default()
                            )
                        });
                    }
                    _ => {}
                }
                report.steps[i] = sr;
            }
            StepRun::ScenarioTimeout(sr) => {
                report.steps[i] = sr;
                timed_out = true;
                failed = true;
            }
            StepRun::LabBroken(sr) => {
                errored.get_or_insert_with(|| sr.reason.clone().unwrap_or_default());
                report.steps[i] = sr;
                timed_out = true;
                failed = true;
            }
        }
    }
    drop(lab);
    if timed_out && errored.is_none() {
        report.verdict = Verdict::Failed;
        report.reason = Some(format!("scenario timed out after {}", humantime(s.timeout)));
    } else if let Some(reason) = errored {
        report.verdict = Verdict::Errored;
        report.reason = Some(reason);
    } else if failed {
        report.verdict = Verdict::Failed;
        let first = report
            .steps
            .iter()
            .find(|st| st.verdict == StepVerdict::Failed);
        report.reason = first.map(|st| format!("step {} failed: {}", st.index, st.name));
    }
    report
}

/// The interface names of a link's two ends: as written, or
/// `veth<N>-<other end>` (N counting links from 0), cut to the kernel's 15.
pub fn link_names(i: usize, link: &crate::scenario::Link) -> [String; 2] {
    match &link.names {
        Some(n) => n.clone(),
        None => {
            let name = |other: &str| {
                let mut s = format!("veth{i}-{other}");
                s.truncate(15);
                s
            };
            [name(&link.between[1]), name(&link.between[0])]
        }
    }
}

pub fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

enum StepRun {
    Done(StepReport),
    ScenarioTimeout(StepReport),
    LabBroken(StepReport),
}

fn run_step(
    lab: &mut Lab,
    names: &[String],
    step: &Step,
    deadline: Instant,
    cgroups: &Cgroups,
) -> StepRun {
    let mut sr = step_shell(step);
    let mut values: Vec<(String, Value)> = Vec::new();
    let mut checks: Vec<CheckReport> = Vec::new();
    let mut error: Option<String> = None;
    for ctx in &step.contexts {
        let idx = names
            .iter()
            .position(|n| n == ctx)
            .expect("validated context");
        let req = match &step.action {
            Action::Run(cmd) => Request::Run {
                command: cmd.clone(),
                timeout_ms: step.timeout.as_millis() as u64,
                user: step.user,
                background: step.background,
            },
            Action::Probe(p) => Request::Probe {
                probe: p.clone(),
                user: step.user,
            },
        };
        let step_deadline = deadline.min(Instant::now() + step.timeout + AGENT_GRACE);
        let cg = cgroups.iter().find(|(n, _)| n == ctx).map(|(_, c)| c);
        let before = cg.map(|c| c.counters());
        let t0 = Instant::now();
        let resp = lab.request(idx, &req, step_deadline);
        let limits = cg.zip(before).map(|(c, b)| limits_observation(c, b));
        match resp {
            Ok(Response::Run(out)) => {
                if let Some(e) = &out.error {
                    error.get_or_insert_with(|| format!("in {ctx}: {e}"));
                }
                let killed = limits.as_ref().and_then(|l| l.killed.clone());
                if !step.background && out.error.is_none() {
                    checks.extend(run_checks(step, ctx, &out, killed.as_deref()));
                    values.push((ctx.clone(), Value::String(out.stdout.clone())));
                }
                let mut o = run_observation(ctx, out, step.background);
                o.killed = killed;
                o.limits = limits.map(|l| l.counters);
                sr.observations.push(o);
            }
            Ok(Response::Probe(result)) => match result {
                Ok(v) => {
                    if let Some(m) = &step.expect.value {
                        checks.extend(check::value(m, &v, ctx));
                    }
                    values.push((ctx.clone(), v.clone()));
                    sr.observations
                        .push(probe_observation(ctx, Some(v), None, t0));
                }
                Err(e) => {
                    error.get_or_insert_with(|| format!("{} in {ctx}: {e}", sr.name));
                    sr.observations
                        .push(probe_observation(ctx, None, Some(e), t0));
                }
            },
            Ok(other) => {
                error.get_or_insert_with(|| format!("unexpected answer from {ctx}: {other:?}"));
            }
            Err(LabError::Timeout) => {
                sr.verdict = StepVerdict::Failed;
                sr.reason = Some(if Instant::now() >= deadline {
                    "the scenario's timeout expired during this step".into()
                } else {
                    format!("the agent in {ctx} did not answer")
                });
                sr.checks = checks;
                return StepRun::ScenarioTimeout(sr);
            }
            Err(e) => {
                sr.verdict = StepVerdict::Errored;
                sr.reason = Some(e.to_string());
                sr.checks = checks;
                return StepRun::LabBroken(sr);
            }
        }
    }
    if error.is_none() && values.len() == step.contexts.len() {
        if step.expect.differ {
            checks.push(check::compare(&values, true));
        }
        if step.expect.same {
            checks.push(check::compare(&values, false));
        }
    }
    sr.verdict = if let Some(e) = error {
        sr.reason = Some(e);
        StepVerdict::Errored
    } else if checks.iter().all(|c| c.passed) {
        StepVerdict::Passed
    } else {
        let first = checks
            .iter()
            .find(|c| !c.passed)
            .expect("some check failed");
        sr.reason = Some(match first.check.as_str() {
            "timeout" => first.actual.clone(),
            _ => format!(
                "{} in {}",
                first.check,
                first.in_.as_deref().unwrap_or("all contexts")
            ),
        });
        StepVerdict::Failed
    };
    sr.checks = checks;
    StepRun::Done(sr)
}

/// What a sandbox's cgroup limits did during a step.
struct LimitsSeen {
    counters: crate::report::LimitCounters,
    killed: Option<String>,
}

fn limits_observation(
    cg: &crate::sandbox::cgroup::SandboxCgroup,
    before: crate::sandbox::cgroup::Counters,
) -> LimitsSeen {
    let after = cg.counters();
    let oom = after.oom_kills.saturating_sub(before.oom_kills);
    let killed = (oom > 0).then(|| {
        let limit = cg.limits.memory.map(human_size).unwrap_or_default();
        format!(
            "out of memory, limit {limit}: {oom} process{} killed",
            if oom == 1 { "" } else { "es" }
        )
    });
    LimitsSeen {
        counters: crate::report::LimitCounters {
            oom_kills: oom,
            throttled_ms: after.throttled_us.saturating_sub(before.throttled_us) as f64 / 1000.0,
        },
        killed,
    }
}

fn human_size(b: u64) -> String {
    match b {
        b if b % (1 << 30) == 0 => format!("{}G", b >> 30),
        b if b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

fn run_checks(step: &Step, ctx: &str, out: &RunOutcome, killed: Option<&str>) -> Vec<CheckReport> {
    let mut checks = Vec::new();
    if out.timed_out {
        checks.push(CheckReport {
            check: "timeout".into(),
            in_: Some(ctx.to_owned()),
            expected: format!("ends within {}", humantime(step.timeout)),
            actual: format!("timed out after {}", humantime(step.timeout)),
            passed: false,
        });
        return checks;
    }
    if let Some(st) = &step.expect.status {
        let mut c = check::status(st, out.exit_status, out.signal.as_deref(), ctx);
        if let Some(k) = killed {
            c.actual = format!("{} (killed: {k})", c.actual);
        }
        checks.push(c);
    }
    if let Some(m) = &step.expect.stdout {
        checks.extend(check::text("stdout", m, &out.stdout, ctx));
    }
    if let Some(m) = &step.expect.stderr {
        checks.extend(check::text("stderr", m, &out.stderr, ctx));
    }
    checks
}

fn run_observation(ctx: &str, out: RunOutcome, background: bool) -> Observation {
    Observation {
        in_: ctx.to_owned(),
        value: None,
        exit_status: (!background).then_some(out.exit_status),
        signal: out.signal,
        stdout: (!background).then_some(out.stdout),
        stderr: (!background).then_some(out.stderr),
        duration_ms: out.duration_ms,
        timed_out: (!background).then_some(out.timed_out),
        truncated: (!background).then_some(out.truncated),
        pid: out.pid,
        error: out.error,
        killed: None,
        limits: None,
    }
}

fn probe_observation(
    ctx: &str,
    value: Option<Value>,
    error: Option<String>,
    t0: Instant,
) -> Observation {
    Observation {
        in_: ctx.to_owned(),
        value,
        exit_status: None,
        signal: None,
        stdout: None,
        stderr: None,
        duration_ms: ms(t0.elapsed()),
        timed_out: None,
        truncated: None,
        pid: None,
        error,
        killed: None,
        limits: None,
    }
}

/// A lab held open for a person: `nslab shell`.
pub struct Session {
    lab: Option<Lab>,
    cgroups: Cgroups,
    names: Vec<String>,
    pub report: ScenarioReport,
    started: Instant,
}

impl Session {
    /// Builds the scenario's lab, sandboxes and links; no step runs yet.
    pub fn open(s: &Scenario, offer: &Offer) -> Result<Session, String> {
        let mut spec = match plan(s, offer, false) {
            Plan::Skip(reason) => return Err(format!("this scenario cannot run here: {reason}")),
            Plan::Run(spec) => spec,
        };
        let cgroups = make_cgroups(s, &mut spec)?;
        let started = Instant::now();
        let mut report = empty_report(s, Verdict::Passed, None);
        // A person may take their time: the scenario's timeout does not
        // apply to the session, only each step's own.
        let far = started + Duration::from_secs(86_400 * 365);
        match build_lab(s, &spec, far, &mut report) {
            Some(lab) => Ok(Session {
                names: lab.context_names().to_vec(),
                lab: Some(lab),
                cgroups,
                report,
                started,
            }),
            None => {
                remove_cgroups(cgroups);
                Err(report.reason.unwrap_or_default())
            }
        }
    }

    pub fn step(&mut self, step: &Step) -> StepReport {
        let lab = self.lab.as_mut().expect("the lab is open");
        let far = self.started + Duration::from_secs(86_400 * 365);
        match run_step(lab, &self.names, step, far, &self.cgroups) {
            StepRun::Done(r) | StepRun::ScenarioTimeout(r) | StepRun::LabBroken(r) => r,
        }
    }

    pub fn context_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// An interactive shell in a context, until it exits.
    pub fn interact(&mut self, ctx: usize, label: &str) -> Result<(), String> {
        let lab = self.lab.as_mut().expect("the lab is open");
        crate::sandbox::pty::interact(lab, ctx, label).map_err(|e| e.to_string())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The lab's processes first, then the cgroups they were in.
        drop(self.lab.take());
        crate::sandbox::collect_dying(true);
        remove_cgroups(std::mem::take(&mut self.cgroups));
    }
}

#[cfg(test)]
mod tests {
    use super::isolation;
    use crate::ns::{Ns, NsSet};
    use std::collections::BTreeMap;

    fn inodes(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn isolation_is_checked_against_the_inodes() {
        let lab = inodes(&[("mount", 1), ("pid", 2), ("uts", 3)]);
        let asked = NsSet::empty().with(Ns::Pid).with_implied();
        let ok = inodes(&[("mount", 11), ("pid", 12), ("uts", 3)]);
        let (iso, req, bad) = isolation(&lab, &ok, asked);
        assert_eq!((iso.clone(), bad), (req, None));
        assert_eq!(iso, ["mount", "pid"]);
        // A sandbox that silently shares what it asked for is an error.
        let shared = inodes(&[("mount", 11), ("pid", 2), ("uts", 3)]);
        assert!(
            isolation(&lab, &shared, asked)
                .2
                .unwrap()
                .contains("[mount, pid] namespaces but [mount]")
        );
        // And so is one isolated beyond what it asked for.
        let extra = inodes(&[("mount", 11), ("pid", 12), ("uts", 13)]);
        assert!(isolation(&lab, &extra, asked).2.is_some());
    }
}
