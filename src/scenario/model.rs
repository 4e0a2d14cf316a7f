//! The validated, typed form of a scenario file. Everything here has passed
//! validation: later stages never re-check the format.

use crate::ns::{Ns, NsSet};
use regex::Regex;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);
pub const HOST: &str = "host";

#[derive(Debug, Clone)]
pub struct Scenario {
    pub file: PathBuf,
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub requires: Requires,
    pub privileged: bool,
    pub timeout: Duration,
    pub hostname: Option<String>,
    pub sandboxes: Vec<Sandbox>,
    pub links: Vec<Link>,
    pub steps: Vec<Step>,
}

impl Scenario {
    /// Every namespace that some sandbox of this scenario asks for.
    pub fn namespaces(&self) -> NsSet {
        self.sandboxes
            .iter()
            .fold(NsSet::empty(), |acc, s| acc.union(s.namespaces))
    }

    pub fn sandbox(&self, name: &str) -> Option<&Sandbox> {
        self.sandboxes.iter().find(|s| s.name == name)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Requires {
    pub commands: Vec<String>,
    /// (major, minor, patch)
    pub kernel: Option<(u32, u32, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapLine {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl IdMapLine {
    pub fn render(lines: &[IdMapLine]) -> String {
        lines
            .iter()
            .map(|l| format!("{} {} {}\n", l.inside, l.outside, l.count))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeOffsets {
    pub monotonic: i64,
    pub boottime: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loopback {
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub pids: Option<u64>,
    pub memory: Option<u64>,
    /// CPUs, e.g. 0.5 for half of one.
    pub cpu: Option<f64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.pids.is_none() && self.memory.is_none() && self.cpu.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    pub name: String,
    /// As written, plus what it implies (`mount` for `pid`).
    pub namespaces: NsSet,
    pub hostname: Option<String>,
    pub uid_map: Option<Vec<IdMapLine>>,
    pub gid_map: Option<Vec<IdMapLine>>,
    pub time_offsets: Option<TimeOffsets>,
    pub loopback: Option<Loopback>,
    pub limits: Limits,
}

impl Sandbox {
    /// The maps a `user` sandbox gets: as written, else root to the lab's root.
    pub fn effective_uid_map(&self) -> Vec<IdMapLine> {
        self.uid_map.clone().unwrap_or_else(root_to_root)
    }
    pub fn effective_gid_map(&self) -> Vec<IdMapLine> {
        self.gid_map.clone().unwrap_or_else(root_to_root)
    }
}

fn root_to_root() -> Vec<IdMapLine> {
    vec![IdMapLine {
        inside: 0,
        outside: 0,
        count: 1,
    }]
}

#[derive(Debug, Clone)]
pub struct Link {
    pub between: [String; 2],
    pub addresses: Option<[String; 2]>,
    pub names: Option<[String; 2]>,
}

#[derive(Debug, Clone)]
pub enum Action {
    Run(String),
    Probe(Probe),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    Hostname,
    Pid,
    Processes,
    Uid,
    Gid,
    UidMap,
    GidMap,
    Namespaces,
    Namespace(Ns),
    Interfaces,
    Mounts,
    Ipc,
    Cgroup,
    Firewall,
    Reach(String),
}

impl Probe {
    pub const NAMES: &'static [&'static str] = &[
        "hostname",
        "pid",
        "processes",
        "uid",
        "gid",
        "uid_map",
        "gid_map",
        "namespaces",
        "namespace",
        "interfaces",
        "mounts",
        "ipc",
        "cgroup",
        "firewall",
        "reach",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Probe::Hostname => "hostname",
            Probe::Pid => "pid",
            Probe::Processes => "processes",
            Probe::Uid => "uid",
            Probe::Gid => "gid",
            Probe::UidMap => "uid_map",
            Probe::GidMap => "gid_map",
            Probe::Namespaces => "namespaces",
            Probe::Namespace(_) => "namespace",
            Probe::Interfaces => "interfaces",
            Probe::Mounts => "mounts",
            Probe::Ipc => "ipc",
            Probe::Cgroup => "cgroup",
            Probe::Firewall => "firewall",
            Probe::Reach(_) => "reach",
        }
    }

    pub fn argument(&self) -> Option<String> {
        match self {
            Probe::Namespace(ns) => Some(ns.word().to_owned()),
            Probe::Reach(a) => Some(a.clone()),
            _ => None,
        }
    }

    /// `namespace: net`, `reach: 10.0.0.2:80`, or just the name.
    pub fn label(&self) -> String {
        match self.argument() {
            Some(a) => format!("{}: {}", self.name(), a),
            None => self.name().to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusExpect {
    Code(i32),
    Nonzero,
}

#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    pub regex: Regex,
}

/// All matchers given for one subject; every one must hold.
#[derive(Debug, Clone, Default)]
pub struct Matchers {
    pub equals: Option<Value>,
    pub not_equals: Option<Value>,
    pub contains: Option<Vec<Value>>,
    pub not_contains: Option<Vec<Value>>,
    pub matches: Option<Pattern>,
    pub not_matches: Option<Pattern>,
}

impl Matchers {
    pub const KEYS: &'static [&'static str] = &[
        "equals",
        "not_equals",
        "contains",
        "not_contains",
        "matches",
        "not_matches",
    ];
}

#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub status: Option<StatusExpect>,
    pub stdout: Option<Matchers>,
    pub stderr: Option<Matchers>,
    pub value: Option<Matchers>,
    pub differ: bool,
    pub same: bool,
}

#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based, as in the report.
    pub index: usize,
    pub line: u64,
    pub name: Option<String>,
    pub action: Action,
    pub contexts: Vec<String>,
    pub expect: Expect,
    pub timeout: Duration,
    pub background: bool,
    pub always: bool,
    pub explain: Option<String>,
    pub user: Option<u32>,
}

impl Step {
    pub fn label(&self) -> String {
        match (&self.name, &self.action) {
            (Some(n), _) => n.clone(),
            (None, Action::Run(c)) => c.clone(),
            (None, Action::Probe(p)) => format!("probe {}", p.label()),
        }
    }
}
