//! Benchmarks through the release binary, as users run it: the cost of a
//! probe step against the same observation by a `run` step, per-step
//! overhead of `run: "true"`, and lab creation. Medians of the per-step
//! times nslab itself records in the report.
//!
//! `cargo bench --bench steps` (needs root or user namespaces).

use std::process::Command;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn run(scenario: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bench.yaml");
    std::fs::write(&file, scenario).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nslab"))
        .args(["run", "--jobs", "1", "--report", "-"])
        .arg(&file)
        .output()
        .expect("nslab runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["scenarios"][0]["verdict"], "passed", "{report:#}");
    report
}

fn step_times(report: &serde_json::Value) -> Vec<f64> {
    report["scenarios"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["observations"][0]["duration_ms"].as_f64().unwrap())
        .collect()
}

fn steps(n: usize, step: &str) -> String {
    let mut s = String::from(
        "name: bench\nsandboxes:\n  box:\n    namespaces: [net, pid, uts, ipc, mount]\n    hostname: box\nsteps:\n",
    );
    for _ in 0..n {
        s.push_str(step);
    }
    s
}

fn main() {
    let n = 300;
    let probe = step_times(&run(&steps(n, "  - { probe: hostname, in: box }\n")));
    let shell = step_times(&run(&steps(n, "  - { run: hostname, in: box }\n")));
    let truth = step_times(&run(&steps(n, "  - { run: \"true\", in: box }\n")));
    let (p, r, t) = (median(probe), median(shell), median(truth));
    println!("probe: hostname      median {p:.3} ms over {n} steps");
    println!(
        "run: hostname        median {r:.3} ms over {n} steps ({:.1}x the probe)",
        r / p
    );
    println!("run: \"true\"          median {t:.3} ms over {n} steps");

    let mut labs = Vec::new();
    let mut wall = Vec::new();
    for _ in 0..30 {
        let t0 = Instant::now();
        let rep = run(
            "name: lab\nsandboxes:\n  box:\n    namespaces: [net, pid, uts, ipc, mount]\nsteps:\n  - { probe: pid, in: box }\n",
        );
        wall.push(t0.elapsed().as_secs_f64() * 1e3);
        labs.push(rep["scenarios"][0]["duration_ms"].as_f64().unwrap());
    }
    println!(
        "lab + five-namespace sandbox + one probe: median {:.3} ms in nslab, {:.3} ms for the whole process, over 30 runs",
        median(labs),
        median(wall)
    );
}
