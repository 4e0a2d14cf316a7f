//! Helpers shared by the integration tests: the binary, skips that say why,
//! and the machine facts tests depend on.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn nslab() -> Command {
    let mut c = Command::cargo_bin("nslab").expect("the nslab binary is built");
    c.current_dir(root());
    c.env("NO_COLOR", "1");
    c
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Says loudly that a test did not run, or fails it where it must run.
pub fn skip(why: &str) {
    if std::env::var("NSLAB_MUST_WORK").as_deref() == Ok("1") {
        panic!("NSLAB_MUST_WORK=1, but this test would be skipped: {why}");
    }
    eprintln!("skipped: {why}");
}

/// Whether this machine lets nslab build a lab with a sandbox at all.
pub fn lab_available() -> Result<(), String> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    AVAILABLE
        .get_or_init(|| {
            let out = nslab()
                .args(["run", "tests/fixtures/pass/probe-lab.yaml", "--report", "-"])
                .output()
                .map_err(|e| e.to_string())?;
            let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("no report from nslab: {e}"))?;
            match report["scenarios"][0]["verdict"].as_str() {
                Some("passed") => Ok(()),
                _ => Err(format!(
                    "cannot build a lab here: {}",
                    report["scenarios"][0]["reason"]
                        .as_str()
                        .unwrap_or("unknown reason")
                )),
            }
        })
        .clone()
}

/// Skips the calling test (returning) unless a lab can be built.
#[macro_export]
macro_rules! require_lab {
    () => {
        if let Err(why) = $crate::support::lab_available() {
            $crate::support::skip(&why);
            return;
        }
    };
}

/// Skips the calling test unless it runs as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::support::is_root() {
            $crate::support::skip("needs root (CI runs as root)");
            return;
        }
    };
}

/// Runs nslab on a file and returns (exit code, parsed report, stdout).
pub fn run_report(args: &[&str]) -> (i32, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut cmd = nslab();
    cmd.arg("run").args(args).arg("--report").arg(&report);
    let out = cmd.output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let text = std::fs::read_to_string(&report).unwrap_or_else(|_| {
        panic!(
            "no report written; stdout: {} stderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        code,
        serde_json::from_str(&text).unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub fn step_verdicts(report: &serde_json::Value) -> Vec<String> {
    report["scenarios"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["verdict"].as_str().unwrap().to_owned())
        .collect()
}

pub fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// cgroup folders nslab made (`nslab-PID-SCENARIO`) for a scenario, found
/// anywhere in the cgroup tree (nslab makes them beneath its own cgroup).
pub fn nslab_cgroups(scenario: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, scenario: &str, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("nslab-") && name.ends_with(&format!("-{scenario}")) {
                out.push(p);
            } else if depth > 0 {
                walk(&p, depth - 1, scenario, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 5, scenario, &mut out);
    out
}
