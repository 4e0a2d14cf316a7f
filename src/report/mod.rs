//! The one result model; renderers read it and nothing else.

pub mod junit;
pub mod render;
pub mod schema;
pub mod stream;
pub mod terminal;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const SCHEMA: &str = "nslab-report/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    Skipped,
    Errored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepVerdict {
    Passed,
    Failed,
    Errored,
    NotRun,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    pub schema: String,
    pub nslab_version: String,
    pub started_at: String,
    pub duration_ms: f64,
    pub environment: Environment,
    #[serde(default)]
    pub metadata: Metadata,
    pub summary: Summary,
    pub scenarios: Vec<ScenarioReport>,
    pub host_integrity: HostIntegrity,
    /// What the run itself used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Resources {
    /// Peak resident memory of nslab's own process.
    pub runner_peak_rss_kib: u64,
    /// Largest peak of any process nslab waited for: labs, their agents and
    /// commands, and workers.
    pub children_peak_rss_kib: u64,
    /// The most network namespaces the kernel held (live or awaiting its
    /// asynchronous teardown) when a scenario was about to start. Read
    /// from /proc/slabinfo, so root runs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_namespaces_peak: Option<u64>,
    /// Time scenarios waited for the kernel to free network namespaces of
    /// earlier ones (see `NSLAB_NETNS_BACKLOG`).
    #[serde(default)]
    pub netns_backlog_wait_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub course: Option<String>,
}

impl Metadata {
    pub fn is_empty(&self) -> bool {
        self.title.is_none() && self.author.is_none() && self.course.is_none()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Environment {
    pub kernel: String,
    pub arch: String,
    pub uid: u32,
    /// `root` or `rootless`.
    pub mode: String,
    pub hostname: String,
    /// Bytes of stdout and of stderr kept per command.
    pub output_cap_bytes: usize,
}

impl Environment {
    pub fn of(machine: &crate::env::Machine, output_cap_bytes: usize) -> Environment {
        Environment {
            kernel: machine.kernel.clone(),
            arch: machine.arch.clone(),
            uid: machine.uid,
            mode: if machine.is_root() {
                "root"
            } else {
                "rootless"
            }
            .into(),
            hostname: machine.hostname.clone(),
            output_cap_bytes,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub errored: usize,
}

impl Summary {
    pub fn of(scenarios: &[ScenarioReport]) -> Summary {
        let mut s = Summary {
            total: scenarios.len(),
            ..Summary::default()
        };
        for sc in scenarios {
            match sc.verdict {
                Verdict::Passed => s.passed += 1,
                Verdict::Failed => s.failed += 1,
                Verdict::Skipped => s.skipped += 1,
                Verdict::Errored => s.errored += 1,
            }
        }
        s
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioReport {
    pub name: String,
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub file: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub duration_ms: f64,
    /// Of which building the lab, its sandboxes and links took this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_ms: Option<f64>,
    /// The lab host's hostname when the scenario started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab_hostname: Option<String>,
    /// The lab host's namespace inodes, for comparison with the sandboxes'.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lab_namespaces: BTreeMap<String, u64>,
    pub sandboxes: Vec<SandboxReport>,
    pub steps: Vec<StepReport>,
    /// With `--control`: the same scenario with no sandbox isolated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<ControlReport>,
}

/// The positive control: which checks failed once the sandboxes shared
/// every namespace with the lab host (they depend on isolation), and which
/// still passed (they would pass without it).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ControlReport {
    pub verdict: Verdict,
    pub vacuous: bool,
    pub reason: Option<String>,
    pub failed_checks: Vec<String>,
    pub passed_checks: Vec<String>,
}

impl ControlReport {
    pub fn from_run(control: &ScenarioReport) -> ControlReport {
        let mut failed_checks = Vec::new();
        let mut passed_checks = Vec::new();
        for st in &control.steps {
            for c in &st.checks {
                let label = format!(
                    "step {} {}{}",
                    st.index,
                    c.check,
                    c.in_
                        .as_deref()
                        .map(|i| format!(" in {i}"))
                        .unwrap_or_default()
                );
                if c.passed {
                    passed_checks.push(label);
                } else {
                    failed_checks.push(label);
                }
            }
        }
        ControlReport {
            verdict: control.verdict,
            vacuous: control.verdict == Verdict::Passed,
            reason: control.reason.clone(),
            failed_checks,
            passed_checks,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SandboxReport {
    pub name: String,
    pub namespaces: BTreeMap<String, u64>,
    pub isolated: Vec<String>,
    /// What the scenario asked for, with what that implies.
    #[serde(default)]
    pub requested: Vec<String>,
    /// Its hostname when the scenario started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StepReport {
    pub index: usize,
    pub name: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argument: Option<String>,
    #[serde(rename = "in")]
    pub in_: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    pub verdict: StepVerdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<String>,
    pub observations: Vec<Observation>,
    pub checks: Vec<CheckReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Observation {
    #[serde(rename = "in")]
    pub in_: String,
    /// Probe steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Run steps: null when the command was killed by a signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<Option<i32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the command's processes were killed, when a limit did it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed: Option<String>,
    /// What the sandbox's cgroup limits did during the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitCounters>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct LimitCounters {
    pub oom_kills: u64,
    pub throttled_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct CheckReport {
    pub check: String,
    #[serde(rename = "in", default, skip_serializing_if = "Option::is_none")]
    pub in_: Option<String>,
    pub expected: String,
    pub actual: String,
    pub passed: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct HostIntegrity {
    pub unchanged: bool,
    pub checked: Vec<String>,
    pub differences: Vec<String>,
}

/// Writes beside the target and renames, so a reader never sees half a file.
/// Not fsynced: rename is what makes it atomic, and a flush to disk cost
/// more than a whole lab on this kind of machine.
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if is_special(path) {
        use std::io::Write;
        return std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all(data);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let res = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Whether a path names something other than a regular file (a device, a
/// pipe): such a target is written in place, never replaced by a rename.
pub fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

pub fn to_json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("the report model serializes");
    s.push('\n');
    s
}

/// Joins the reports of shards into one: scenarios in the order given, a
/// new summary, the earliest start, and the machine called unchanged only
/// if every shard said so.
pub fn merge(reports: Vec<Report>) -> Result<Report, String> {
    let mut it = reports.into_iter();
    let mut all = it.next().ok_or("no reports to merge")?;
    let mut seen: std::collections::HashSet<String> =
        all.scenarios.iter().map(|s| s.name.clone()).collect();
    for r in it {
        if r.schema != all.schema {
            return Err(format!("cannot merge {} with {}", r.schema, all.schema));
        }
        for s in r.scenarios {
            if !seen.insert(s.name.clone()) {
                return Err(format!("scenario `{}` is in more than one report", s.name));
            }
            all.scenarios.push(s);
        }
        if r.started_at < all.started_at {
            all.started_at = r.started_at;
        }
        // Shards run side by side; the longest is the suite's wall time.
        all.duration_ms = all.duration_ms.max(r.duration_ms);
        all.host_integrity.unchanged &= r.host_integrity.unchanged;
        all.host_integrity
            .differences
            .extend(r.host_integrity.differences);
        if let (Some(a), Some(b)) = (all.resources.as_mut(), r.resources) {
            a.runner_peak_rss_kib = a.runner_peak_rss_kib.max(b.runner_peak_rss_kib);
            a.children_peak_rss_kib = a.children_peak_rss_kib.max(b.children_peak_rss_kib);
        }
    }
    all.summary = Summary::of(&all.scenarios);
    Ok(all)
}
