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

/// The kernel's floor for what a lab with one sandbox needs: a clone with
/// the lab's seven namespaces (user, mount, pid, net, uts, ipc, cgroup),
/// whose child clones the sandbox's five (net, pid, uts, ipc, mount), both
/// waited for. Raw syscalls, no setup inside: nothing can be cheaper.
/// clone(2) with fork semantics.
#[allow(unsafe_code)]
fn raw_clone(flags: libc::c_long) -> libc::c_long {
    // SAFETY: a null stack gives fork semantics; this bench is
    // single-threaded, and the child only calls async-signal-safe
    // functions before _exit.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as libc::c_long,
            0,
            0,
            0,
            0,
        )
    }
}

/// Median of clone(flags) + wait for a child that exits at once.
#[allow(unsafe_code)]
fn clone_ms(flags: libc::c_long, runs: usize) -> f64 {
    let mut times = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        match raw_clone(flags) {
            0 => unsafe { libc::_exit(0) }, // SAFETY: in the child; _exit always may be called.
            pid => {
                let mut st = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid as i32, &mut st, 0) };
            }
        }
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    median(times)
}

/// Raw clone floors, `runs` of them, as times in ms. Taken between nslab's
/// own runs, so that both see the machine in the same state: the floor
/// moves by a third between runs of this bench.
#[allow(unsafe_code)]
fn clone_floor_times(runs: usize) -> Vec<f64> {
    let lab = (libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWCGROUP) as libc::c_long;
    let sandbox = (libc::CLONE_NEWNET
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWNS) as libc::c_long;
    let mut times = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        match raw_clone(lab) {
            0 => {
                // SAFETY: as above; in the child. Root in the new user
                // namespace needs a map before it may clone more, so the
                // sandbox is cloned by the parent's twin below instead.
                unsafe { libc::_exit(0) }
            }
            pid => {
                let mut st = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid as i32, &mut st, 0) };
            }
        }
        match raw_clone(sandbox) {
            0 => unsafe { libc::_exit(0) }, // SAFETY: as above.
            pid => {
                let mut st = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid as i32, &mut st, 0) };
            }
        }
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times
}

/// The floor of any `run` step: posix_spawn (vfork and exec, what nslab's
/// agent does) of `/bin/true` and a wait, from this small process. On a
/// virtual machine most of it is the dynamic loader's CPU feature probe
/// (CPUID traps to the hypervisor), paid by every glibc program at start.
fn exec_floor_ms() -> f64 {
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, posix_spawn};
    let attr = PosixSpawnAttr::init().unwrap();
    let actions = PosixSpawnFileActions::init().unwrap();
    let env: Vec<std::ffi::CString> = Vec::new();
    let mut times = Vec::new();
    for _ in 0..300 {
        let t0 = Instant::now();
        let pid = posix_spawn(c"/bin/true", &actions, &attr, &[c"true"], &env).unwrap();
        nix::sys::wait::waitpid(pid, None).unwrap();
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    median(times)
}

fn main() {
    let n = 300;
    let probe = step_times(&run(&steps(n, "  - { probe: hostname, in: box }\n")));
    let shell = step_times(&run(&steps(n, "  - { run: hostname, in: box }\n")));
    let truth = step_times(&run(&steps(n, "  - { run: \"true\", in: box }\n")));
    let (p, r, t) = (median(probe), median(shell), median(truth));
    println!("probe: hostname      median {p:.3} ms over {n} steps");
    assert!(p < 0.3, "a probe step should cost under 0.3 ms");
    println!(
        "run: hostname        median {r:.3} ms over {n} steps ({:.1}x the probe)",
        r / p
    );
    let exec = exec_floor_ms();
    println!(
        "run: \"true\"          median {t:.3} ms over {n} steps; spawn+wait of /bin/true alone {exec:.3} ms ({:.2}x)",
        t / exec
    );

    let mut labs = Vec::new();
    let mut setups = Vec::new();
    let mut wall = Vec::new();
    let mut floors = Vec::new();
    for _ in 0..30 {
        let t0 = Instant::now();
        let rep = run(
            "name: lab\nsandboxes:\n  box:\n    namespaces: [net, pid, uts, ipc, mount]\nsteps:\n  - { probe: pid, in: box }\n",
        );
        wall.push(t0.elapsed().as_secs_f64() * 1e3);
        labs.push(rep["scenarios"][0]["duration_ms"].as_f64().unwrap());
        setups.push(rep["scenarios"][0]["setup_ms"].as_f64().unwrap());
        floors.extend(clone_floor_times(3));
    }
    let floor = median(floors);
    let setup = median(setups);
    println!("raw clone floor (7 + 5 namespaces, 90 runs between nslab's): median {floor:.3} ms");
    println!(
        "lab + five-namespace sandbox built: median {setup:.3} ms ({:.2}x the floor); whole scenario {:.3} ms; whole process {:.3} ms; over 30 runs",
        setup / floor,
        median(labs),
        median(wall)
    );

    // One sandbox per namespace set: its cost is setup_ms over the lab's
    // alone; its floor a raw clone with those flags (time namespaces cannot
    // be cloned, only unshared, so they have none here).
    let setup_of = |yaml: &str| {
        median(
            (0..30)
                .map(|_| run(yaml)["scenarios"][0]["setup_ms"].as_f64().unwrap())
                .collect(),
        )
    };
    let lab_only = setup_of("name: lab\nsteps:\n  - { probe: pid }\n");
    println!("lab alone (7 namespaces, mounts, lo up): median {lab_only:.3} ms over 30 runs");
    let flag = |ns: &str| {
        (match ns {
            "uts" => libc::CLONE_NEWUTS,
            "ipc" => libc::CLONE_NEWIPC,
            "net" => libc::CLONE_NEWNET,
            "pid" => libc::CLONE_NEWPID,
            "mount" => libc::CLONE_NEWNS,
            "cgroup" => libc::CLONE_NEWCGROUP,
            "user" => libc::CLONE_NEWUSER,
            _ => 0,
        }) as libc::c_long
    };
    println!(
        "| sandbox namespaces | added to the lab (median of 30) | raw clone (median of 50) | ratio |"
    );
    println!("| --- | --- | --- | --- |");
    for set in [
        "uts",
        "ipc",
        "net",
        "pid",
        "mount",
        "cgroup",
        "user",
        "time",
        "net, pid, uts, ipc, mount",
        "all",
    ] {
        let list = if set == "all" {
            "all".to_owned()
        } else {
            format!("[{set}]")
        };
        let yaml = format!(
            "name: sb\nsandboxes:\n  box:\n    namespaces: {list}\nsteps:\n  - {{ probe: pid, in: box }}\n"
        );
        let added = setup_of(&yaml) - lab_only;
        let names: Vec<&str> = if set == "all" {
            vec!["uts", "ipc", "net", "pid", "mount", "cgroup", "user"]
        } else {
            set.split(", ").collect()
        };
        let flags = names.iter().map(|n| flag(n)).fold(0, |a, b| a | b);
        if flags == 0 {
            println!("| {set} | {added:.3} ms | — | — |");
        } else {
            let floor = clone_ms(flags, 50);
            println!(
                "| {set} | {added:.3} ms | {floor:.3} ms | {:.2} |",
                added / floor
            );
        }
    }
}
