//! nslab's integration tests: everything that creates namespaces goes
//! through the binary, because `unshare(CLONE_NEWUSER)` fails in the
//! multi-threaded test harness.

mod support;

use predicates::prelude::*;
use rstest::rstest;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::*;

// ---------- the command line ----------

#[test]
fn usage_errors_exit_2() {
    nslab().arg("--no-such-flag").assert().code(2);
    nslab().args(["run", "--jobs", "many"]).assert().code(2);
    nslab()
        .args(["run", "no/such/dir"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no such file or folder"));
    nslab().arg("--help").assert().code(0);
}

#[test]
fn validate_accepts_every_bundled_scenario() {
    nslab()
        .args(["validate", "scenarios"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "scenarios/netns.yaml  (netns-firewall)",
        ));
}

#[test]
fn list_shows_names_titles_namespaces_tags() {
    nslab()
        .args(["list", "scenarios"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("uts-hostname"))
        .stdout(predicate::str::contains("[uts]"))
        .stdout(predicate::str::contains(
            "[mount,pid,net,ipc,uts,user,cgroup,time]",
        ))
        .stdout(predicate::str::contains(
            "Firewall rules differ across network namespaces",
        ));
}

#[test]
fn duplicate_names_in_one_run_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["a.yaml", "b.yaml"] {
        std::fs::write(
            dir.path().join(f),
            "name: same\nsteps:\n  - run: \"true\"\n",
        )
        .unwrap();
    }
    let report = dir.path().join("r.json");
    nslab()
        .arg("run")
        .arg(dir.path())
        .arg("--report")
        .arg(&report)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("names must be unique"));
    assert!(!report.exists(), "nothing runs when a file is invalid");
}

/// Every malformed file is refused with exit 2 and a message that names the
/// file, line and column; the messages are snapshots.
#[rstest]
fn invalid_files_are_refused(#[files("tests/fixtures/invalid/*.yaml")] path: PathBuf) {
    let rel = rel(&path);
    let out = nslab().args(["validate", &rel]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{rel} must be refused");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("{rel}:")),
        "message names the file: {stderr}"
    );
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    insta::with_settings!({snapshot_suffix => name, prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("invalid", stderr);
    });
    // `run` refuses the same file before doing anything.
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    nslab()
        .arg("run")
        .arg(&rel)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(2);
    assert!(!report.exists());
}

// ---------- bundled scenarios, for real ----------

/// Each bundled scenario passes as root, and its positive control shows
/// that its checks depend on the namespaces it creates. As another user,
/// each passes or is skipped with a reason.
#[rstest]
fn bundled_scenario(#[files("scenarios/*.yaml")] path: PathBuf) {
    require_lab!();
    let rel = rel(&path);
    let (code, report, _) = run_report(&[&rel, "--control", "--jobs", "1"]);
    let sc = &report["scenarios"][0];
    if is_root() {
        assert_eq!(code, 0, "{rel}: {sc:#}");
        assert_eq!(sc["verdict"], "passed", "{rel}: {sc:#}");
        if sc["sandboxes"].as_array().is_some_and(|s| !s.is_empty()) {
            let control = &sc["control"];
            assert_eq!(
                control["vacuous"], false,
                "{rel} must depend on isolation: {control:#}"
            );
            assert!(!control["failed_checks"].as_array().unwrap().is_empty());
        }
    } else {
        let v = sc["verdict"].as_str().unwrap();
        assert!(
            v == "passed"
                || (v == "skipped" && sc["reason"].as_str().is_some_and(|r| !r.is_empty())),
            "{rel}: {sc:#}"
        );
    }
    assert_eq!(
        report["host_integrity"]["unchanged"], true,
        "{:#}",
        report["host_integrity"]
    );
}

#[test]
fn a_whole_folder_runs_in_parallel_with_results_in_file_order() {
    require_lab!();
    require_root!();
    let (code, report, stdout) = run_report(&["scenarios", "--jobs", "2"]);
    assert_eq!(code, 0, "{stdout}");
    let names: Vec<&str> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let mut sorted_by_file: Vec<(String, &str)> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["file"].as_str().unwrap().to_owned(),
                s["name"].as_str().unwrap(),
            )
        })
        .collect();
    sorted_by_file.sort();
    assert_eq!(
        names,
        sorted_by_file.iter().map(|(_, n)| *n).collect::<Vec<_>>()
    );
    assert!(names.len() >= 9);
    assert_eq!(report["summary"]["passed"], names.len());
    // One line per scenario, in the same order, and the closing summary.
    let order: Vec<usize> = names
        .iter()
        .map(|n| {
            stdout
                .find(&format!("PASS  {n}"))
                .expect("a line per scenario")
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{stdout}");
    assert!(stdout.contains(&format!(
        "{} passed, 0 failed, 0 skipped, 0 errored",
        names.len()
    )));
}

// ---------- failures, skips, features ----------

#[rstest]
#[case("wrong-stdout.yaml", &["passed", "failed", "not_run", "passed"])]
#[case("status.yaml", &["failed", "not_run"])]
#[case("differ.yaml", &["failed"])]
#[case("timeout.yaml", &["failed", "passed"])]
#[case("scenario-timeout.yaml", &["passed", "failed", "not_run"])]
#[case("value.yaml", &["passed", "failed"])]
#[case("daemons.yaml", &["passed", "failed", "passed"])]
fn failing_scenarios_fail_at_the_right_step(#[case] file: &str, #[case] verdicts: &[&str]) {
    require_lab!();
    let (code, report, stdout) = run_report(&[&format!("tests/fixtures/fail/{file}")]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        report["scenarios"][0]["verdict"], "failed",
        "{:#}",
        report["scenarios"][0]
    );
    assert_eq!(
        step_verdicts(&report),
        verdicts,
        "{:#}",
        report["scenarios"][0]
    );
    assert!(stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn a_failure_shows_step_command_expected_actual_and_output() {
    require_lab!();
    let (_, _, stdout) = run_report(&["tests/fixtures/fail/wrong-stdout.yaml"]);
    assert!(stdout.contains("step 2 echo two (in host)"), "{stdout}");
    assert!(stdout.contains("$ echo two"), "{stdout}");
    assert!(stdout.contains("expected: \"three\""), "{stdout}");
    assert!(stdout.contains("actual:   \"two\\n\""), "{stdout}");
    assert!(stdout.contains("stdout:\n          two"), "{stdout}");
}

#[test]
fn a_timed_out_step_is_killed_with_its_tree() {
    require_lab!();
    let t = Instant::now();
    let (_, report, _) = run_report(&["tests/fixtures/fail/timeout.yaml"]);
    assert!(t.elapsed() < Duration::from_secs(20));
    let step = &report["scenarios"][0]["steps"][0];
    assert_eq!(step["observations"][0]["timed_out"], true);
    assert_eq!(step["observations"][0]["exit_status"], Value::Null);
    assert_eq!(step["reason"], "timed out after 300ms");
    // The `always` step after it saw no survivor.
    assert_eq!(report["scenarios"][0]["steps"][1]["verdict"], "passed");
}

#[test]
fn the_scenario_timeout_ends_a_scenario() {
    require_lab!();
    let t = Instant::now();
    let (_, report, _) = run_report(&["tests/fixtures/fail/scenario-timeout.yaml"]);
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(
        report["scenarios"][0]["reason"],
        "scenario timed out after 500ms"
    );
}

#[test]
fn unmet_requirements_skip_with_a_reason_and_strict_fails_them() {
    let (code, report, _) = run_report(&["tests/fixtures/pass/skip.yaml"]);
    assert_eq!(code, 0);
    let sc = &report["scenarios"][0];
    assert_eq!(sc["verdict"], "skipped");
    assert!(
        sc["reason"]
            .as_str()
            .unwrap()
            .contains("missing command nslab-no-such-command")
    );
    assert!(sc["reason"].as_str().unwrap().contains("install it"));
    let (code, report, _) = run_report(&["tests/fixtures/pass/kernel-skip.yaml"]);
    assert_eq!(code, 0);
    assert!(
        report["scenarios"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("needs Linux 99.0.0 or later")
    );
    let (code, _, _) = run_report(&["tests/fixtures/pass/skip.yaml", "--strict"]);
    assert_eq!(code, 1);
}

#[test]
fn step_features() {
    require_lab!();
    require_root!();
    let (code, report, stdout) = run_report(&["tests/fixtures/pass/features.yaml"]);
    assert_eq!(code, 0, "{stdout}\n{:#}", report["scenarios"][0]);
    let steps = &report["scenarios"][0]["steps"];
    assert_eq!(steps[4]["observations"][0]["exit_status"], 4);
    assert_eq!(steps[4]["observations"][0]["stderr"], "oops\n");
    assert!(steps[6]["observations"][0]["pid"].as_i64().unwrap() > 1);
}

#[test]
fn firewall_and_reach_probes_agree_with_iptables_and_nft() {
    require_lab!();
    require_root!();
    for cmd in ["iptables", "nft"] {
        if std::process::Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            skip(&format!("{cmd} is not installed (.ci/run installs it)"));
            return;
        }
    }
    let (code, report, stdout) = run_report(&["tests/fixtures/pass/firewall.yaml"]);
    assert_eq!(code, 0, "{stdout}\n{:#}", report["scenarios"][0]);
}

#[test]
fn the_lecture_demo_leaves_the_machine_as_it_was() {
    require_lab!();
    require_root!();
    let netns_before = std::fs::read_dir("/run/netns")
        .map(|d| d.count())
        .unwrap_or(0);
    let links_before = std::fs::read_to_string("/proc/net/dev").unwrap();
    let (code, report, _) = run_report(&["scenarios/netns.yaml"]);
    assert_eq!(code, 0);
    assert_eq!(report["host_integrity"]["unchanged"], true);
    assert_eq!(
        report["host_integrity"]["checked"],
        serde_json::json!([
            "hostname",
            "interfaces",
            "netns",
            "firewall",
            "mounts",
            "ipc"
        ])
    );
    assert_eq!(
        std::fs::read_dir("/run/netns")
            .map(|d| d.count())
            .unwrap_or(0),
        netns_before
    );
    let names = |t: &str| {
        t.lines()
            .skip(2)
            .filter_map(|l| l.split(':').next().map(|n| n.trim().to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&std::fs::read_to_string("/proc/net/dev").unwrap()),
        names(&links_before)
    );
}

/// The report, with what changes from run to run redacted.
#[test]
fn report_snapshot() {
    require_lab!();
    require_root!();
    let (_, mut report, _) = run_report(&[
        "scenarios/uts.yaml",
        "--title",
        "Lab 3",
        "--author",
        "A. Student",
        "--course",
        "OS 101",
    ]);
    // Inode numbers change from run to run; whether two are equal does not.
    let sc = &mut report["scenarios"][0];
    let lab = sc["lab_namespaces"].clone();
    for (k, v) in sc["lab_namespaces"].as_object_mut().unwrap() {
        *v = Value::String(format!("[lab {k}]"));
    }
    for sb in sc["sandboxes"].as_array_mut().unwrap() {
        for (k, v) in sb["namespaces"].as_object_mut().unwrap() {
            let same = lab[k] == *v;
            *v = Value::String(if same {
                format!("[lab {k}]")
            } else {
                format!("[own {k}]")
            });
        }
    }
    insta::assert_json_snapshot!("report-uts", report, {
        ".started_at" => "[time]",
        ".duration_ms" => "[ms]",
        ".environment" => "[environment]",
        ".nslab_version" => "[version]",
        ".resources" => "[resources]",
        ".scenarios[].duration_ms" => "[ms]",
        ".scenarios[].setup_ms" => "[ms]",
        ".scenarios[].steps[].observations[].duration_ms" => "[ms]",
    });
}

// ---------- cleanup the kernel guarantees ----------

fn processes_with(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(marker)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// SIGKILL to nslab at any moment, even while it builds the lab, leaves no
/// process, netns, interface or mount behind.
#[test]
fn sigkill_at_any_moment_leaves_nothing_behind() {
    require_lab!();
    require_root!();
    let bin = assert_cmd::cargo::cargo_bin("nslab");
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    for delay_ms in [0u64, 1, 3, 8, 20, 60, 150, 400] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(&bin)
            .current_dir(root())
            .args(["run", "tests/fixtures/slow/kill.yaml", "--report"])
            .arg(dir.path().join("r.json"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = [processes_with("sleep 3601"), processes_with("sleep 3602")].concat();
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "killed after {delay_ms} ms, still running: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!std::path::Path::new("/run/netns/nslab-kill-test").exists());
        assert!(
            !std::fs::read_to_string("/proc/net/dev")
                .unwrap()
                .contains("nslabkill")
        );
    }
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    assert_eq!(mounts_before, mounts_after);
    // A killed nslab cannot remove the cgroups it made; the next run that
    // makes cgroups sweeps those whose nslab is gone.
    let sweep = tempfile::tempdir().unwrap();
    nslab()
        .args(["run", "scenarios/cgroup.yaml", "--report"])
        .arg(sweep.path().join("r.json"))
        .assert()
        .code(0);
    let stale = nslab_cgroups("kill-me");
    assert!(stale.is_empty(), "stale cgroups: {stale:?}");
}

#[test]
fn each_probe_differs_exactly_when_its_namespace_does() {
    require_lab!();
    require_root!();
    let (code, report, stdout) = run_report(&["tests/fixtures/pass/probe-matrix.yaml"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(report["scenarios"][0]["steps"].as_array().unwrap().len() > 20);
}

#[test]
fn links_get_default_names_addresses_and_are_up() {
    require_lab!();
    require_root!();
    let (code, report, stdout) = run_report(&["scenarios/linked.yaml"]);
    assert_eq!(code, 0, "{stdout}");
    let steps = &report["scenarios"][0]["steps"];
    assert_eq!(
        steps[0]["observations"][1]["value"],
        serde_json::json!(["lo", "veth0-left"])
    );
}

// ---------- reports: renderers and schemas ----------

const MIXED: &str = "tests/fixtures/reports/mixed.json";

fn render(file: &str, format: &str) -> String {
    let out = nslab()
        .args(["report", file, "--format", format])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A report with passed, failed, skipped and errored scenarios, rendered.
#[rstest]
#[case("markdown")]
#[case("html")]
#[case("junit")]
fn renderer_snapshots(#[case] format: &str) {
    let out = render(MIXED, format);
    insta::with_settings!({snapshot_suffix => format, prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("render", out);
    });
}

#[test]
fn junit_parses_back_with_a_suite_per_scenario() {
    let xml = render(MIXED, "junit");
    let parsed = quick_junit::Report::deserialize_from_str(&xml).expect("valid JUnit XML");
    let names: Vec<String> = parsed
        .test_suites
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "uts-hostname",
            "netns-firewall",
            "wrong-stdout",
            "needs-missing-command",
            "probe-error"
        ]
    );
    assert_eq!(parsed.failures, 1);
    assert_eq!(parsed.errors, 1);
    let uts = &parsed.test_suites[0];
    assert_eq!(uts.test_cases.len(), 4);
    assert!(uts.properties.iter().any(|p| p.name.as_str() == "kernel"));
    let skip = &parsed.test_suites[3];
    assert!(matches!(
        skip.test_cases[0].status,
        quick_junit::TestCaseStatus::Skipped { .. }
    ));
    let failed = &parsed.test_suites[2].test_cases[1];
    match &failed.status {
        quick_junit::TestCaseStatus::NonSuccess { description, .. } => {
            let d = description.as_ref().unwrap().to_string();
            assert!(d.contains("expected \"three\""), "{d}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_custom_template_replaces_the_built_in_one() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("mine.md");
    std::fs::write(&t, "{{ report.summary.passed }} of {{ report.summary.total }}{% for s in scenarios %} {{ s.name }}{% endfor %}").unwrap();
    nslab()
        .args(["report", MIXED, "--format", "markdown", "--template"])
        .arg(&t)
        .assert()
        .code(0)
        .stdout(
            "2 of 5 uts-hostname netns-firewall wrong-stdout needs-missing-command probe-error",
        );
    std::fs::write(&t, "{% if %}").unwrap();
    nslab()
        .args(["report", MIXED, "--format", "html", "--template"])
        .arg(&t)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("template error"));
}

#[test]
fn report_command_refuses_what_is_not_a_report() {
    nslab()
        .args(["report", "Cargo.toml", "--format", "html"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not an nslab report"));
    nslab()
        .args(["report", MIXED, "--format", "pdf"])
        .assert()
        .code(2);
}

fn schema(what: &str) -> jsonschema::Validator {
    let out = nslab().args(["schema", what]).output().unwrap();
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    jsonschema::validator_for(&s).unwrap()
}

#[test]
fn bundled_scenarios_and_reports_validate_against_the_schemas() {
    let scenario = schema("scenario");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.extend(
        std::fs::read_dir(root().join("tests/fixtures/pass"))
            .unwrap()
            .flatten()
            .map(|e| e.path()),
    );
    for f in files {
        let v: Value = serde_saphyr::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let errors: Vec<String> = scenario
            .iter_errors(&v)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
    // It refuses what nslab refuses, for the cases a schema can see.
    for bad in [
        "unknown-top-key",
        "run-and-probe",
        "empty-steps",
        "bad-namespace",
        "unknown-matcher",
    ] {
        let text =
            std::fs::read_to_string(root().join(format!("tests/fixtures/invalid/{bad}.yaml")))
                .unwrap();
        let v: Value = serde_saphyr::from_str(&text).unwrap();
        assert!(!scenario.is_valid(&v), "{bad} must not validate");
    }
    let report = schema("report");
    for f in [MIXED, "reports/examples/report.json"] {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(root().join(f)).unwrap()).unwrap();
        let errors: Vec<String> = report
            .iter_errors(&v)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{f}: {errors:?}");
    }
}

/// reports/examples/ is a real run of the bundled scenarios; its renderings
/// must be what nslab renders from its JSON today.
#[rstest]
#[case("markdown", "md")]
#[case("html", "html")]
#[case("junit", "xml")]
fn examples_do_not_drift(#[case] format: &str, #[case] ext: &str) {
    let want =
        std::fs::read_to_string(root().join(format!("reports/examples/report.{ext}"))).unwrap();
    let got = render("reports/examples/report.json", format);
    assert!(
        got == want,
        "reports/examples/report.{ext} is stale: regenerate it with `nslab report reports/examples/report.json --format {format} -o reports/examples/report.{ext}`"
    );
}

#[test]
fn run_writes_renderings_beside_the_json_report() {
    require_lab!();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out/lab.json");
    nslab()
        .args([
            "run",
            "scenarios/uts.yaml",
            "--format",
            "markdown,html,junit",
            "--report",
        ])
        .arg(&json)
        .assert()
        .stdout(predicate::str::contains("lab.md"));
    for ext in ["json", "md", "html", "xml"] {
        assert!(json.with_extension(ext).exists(), "{ext} written");
    }
    nslab()
        .args(["run", "scenarios/uts.yaml", "--format", "pdf"])
        .assert()
        .code(2);
}

/// The HTML report in a real browser: it renders its transcript, produces a
/// screenshot, and logs no console error.
#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {c}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        skip("no chromium on PATH (.ci/run installs Debian's chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    std::fs::write(&html, render(MIXED, "html")).unwrap();
    let shot = dir.path().join("shot.png");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1100,2400",
    ];
    let profile = format!("--user-data-dir={}", dir.path().join("profile").display());
    let url = format!("file://{}", html.display());
    let dom = std::process::Command::new(chromium)
        .args(flags)
        .arg(&profile)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom_text.contains("root@box:~#</span> hostname renamed-inside"),
        "the transcript is in the page"
    );
    assert!(
        dom_text.contains("expected &quot;three&quot;") || dom_text.contains("\"three\""),
        "the failed check is shown"
    );
    let stderr = String::from_utf8_lossy(&dom.stderr);
    assert!(!stderr.contains("CONSOLE"), "console messages: {stderr}");
    let s = std::process::Command::new(chromium)
        .args(flags)
        .arg(&profile)
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real screenshot"
    );
}

// ---------- least privilege ----------

fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs nslab as uid/gid 65534, writing its report into a folder it may
/// write; `wrap` is the shell prefix that runs setpriv (`exec`, or a
/// command that sets something up as root first and then runs its
/// arguments).
fn run_as_nobody(args: &str, wrap: &str) -> (i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("nslab");
    let report = dir.path().join("r.json");
    let script = format!(
        "{wrap} setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp NO_COLOR=1 {} run {args} --jobs 1 --report {}",
        bin.display(),
        report.display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(root())
        .output()
        .unwrap();
    let stdout =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&report).unwrap_or_else(|_| panic!("no report: {stdout}"));
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&text).unwrap(),
        stdout,
    )
}

#[test]
fn the_bundled_suite_as_an_unprivileged_user_passes_or_skips_with_a_reason() {
    require_root!();
    if !have("setpriv") {
        skip("setpriv is not installed (util-linux)");
        return;
    }
    let (code, report, out) =
        run_as_nobody("scenarios/ tests/fixtures/pass/privileged.yaml", "exec");
    assert_eq!(code, 0, "{out}");
    assert_eq!(report["environment"]["mode"], "rootless");
    let mut passed = 0;
    for sc in report["scenarios"].as_array().unwrap() {
        match sc["verdict"].as_str().unwrap() {
            "passed" => passed += 1,
            "skipped" => assert!(
                sc["reason"].as_str().is_some_and(|r| r.len() > 20),
                "{sc:#}"
            ),
            other => panic!("{} {other}: {sc:#}", sc["name"]),
        }
    }
    assert!(passed >= 8, "{out}");
    let reason = |name: &str| {
        report["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["reason"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(reason("privileged-lab").contains("needs real root"));
    assert!(reason("cgroup-namespace").contains("delegated cgroup"));
}

/// With a subordinate id range (from /etc/subuid and /etc/subgid bind
/// mounted in a private mount namespace, so the machine's own files are
/// untouched) and newuidmap, the uid-mapping scenarios run rootless too.
#[test]
fn subordinate_ids_let_uid_mapping_run_rootless() {
    require_root!();
    for cmd in ["setpriv", "newuidmap", "newgidmap", "unshare"] {
        if !have(cmd) {
            skip(&format!(
                "{cmd} is not installed (.ci/run installs uidmap and util-linux)"
            ));
            return;
        }
    }
    if !(std::path::Path::new("/etc/subuid").exists()
        && std::path::Path::new("/etc/subgid").exists())
    {
        // The test binds its own files over these; it never creates them.
        skip(
            "/etc/subuid or /etc/subgid does not exist to bind over (Debian's login package makes them)",
        );
        return;
    }
    let ids = tempfile::tempdir().unwrap();
    for f in ["subuid", "subgid"] {
        std::fs::write(ids.path().join(f), "nobody:200000:65536\n").unwrap();
    }
    let wrap = format!(
        "exec unshare -m --propagation private sh -c 'mount --bind {0}/subuid /etc/subuid && mount --bind {0}/subgid /etc/subgid && exec \"$@\"' sh",
        ids.path().display()
    );
    let (code, report, out) = run_as_nobody("scenarios/user.yaml scenarios/container.yaml", &wrap);
    assert_eq!(code, 0, "{out}");
    for sc in report["scenarios"].as_array().unwrap() {
        assert_eq!(sc["verdict"], "passed", "{sc:#}");
    }
}

#[test]
fn check_reports_what_the_machine_allows() {
    require_lab!();
    let out = nslab().args(["check", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!("check", c, {
        ".kernel" => "[kernel]",
        ".user_namespaces.*" => "[setting]",
        ".commands[].path" => "[path]",
        ".cgroup.version" => "[version]",
    });
    let text = nslab().arg("check").output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("namespace  in kernel  as root  unprivileged"),
        "{text}"
    );
    assert!(text.contains("nslab can run here."), "{text}");
}

/// Detection by trying: in a user namespace of the test's own where the
/// user-namespace limit is 0 (the machine's limit is untouched), check
/// says user namespaces fail, names the setting and the command, and exits 1.
#[test]
fn check_detects_a_user_namespace_limit() {
    require_lab!();
    if !have("unshare") {
        skip("unshare is not installed (util-linux)");
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin("nslab");
    let out = std::process::Command::new("unshare")
        .args(["-U", "-r", "sh", "-c"])
        .arg(format!(
            "echo 0 > /proc/sys/user/max_user_namespaces && exec {} check --json",
            bin.display()
        ))
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["can_run"], false);
    let user = c["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["namespace"] == "user")
        .unwrap();
    assert_eq!(user["root"]["works"], false);
    assert!(
        user["root"]["fix"]
            .as_str()
            .unwrap()
            .contains("sysctl -w user.max_user_namespaces"),
        "{user:#}"
    );
    assert_eq!(c["user_namespaces"]["max_user_namespaces"], 0);
}

// ---------- teaching tools ----------

/// `nslab shell scenarios/uts.yaml ARGS` on a pseudo-terminal (util-linux's
/// `script`), with its input and output piped to the test.
fn shell_under_pty(args: &str) -> std::process::Child {
    let bin = assert_cmd::cargo::cargo_bin("nslab");
    std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!("{} shell scenarios/uts.yaml {args}", bin.display()))
        .arg("/dev/null")
        .current_dir(root())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// `nslab shell` under a pseudo-terminal (util-linux's `script`): the first
/// N steps run, the shell is in the sandbox, and exiting it tears the lab
/// down, background processes included.
#[test]
fn shell_opens_in_a_sandbox_and_tears_down_on_exit() {
    require_lab!();
    require_root!();
    if !have("script") {
        skip("script is not installed (util-linux)");
        return;
    }
    let mut child = shell_under_pty("--in box --after 3");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"sleep 4243 &\nhostname\necho answer=$((6*7))\nexit\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("step 3 rename the sandbox from inside: passed"),
        "{text}"
    );
    assert!(
        text.contains("(nslab box)"),
        "the prompt names the context: {text}"
    );
    assert!(
        text.contains("renamed-inside\r\n"),
        "the shell is in the sandbox's UTS namespace: {text}"
    );
    assert!(text.contains("answer=42"), "{text}");
    assert!(text.contains("nslab: the lab is gone"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_with("sleep 4243").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the shell's background job outlived the lab"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn shell_refuses_unknown_contexts_and_steps() {
    nslab()
        .args(["shell", "scenarios/uts.yaml", "--in", "nobox"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no such context"));
    nslab()
        .args(["shell", "scenarios/uts.yaml", "--after", "99"])
        .assert()
        .code(2);
}

/// The lecture's own transcript, imported, runs and passes; the scenario it
/// becomes is a snapshot.
#[test]
fn the_imported_lecture_transcript_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lecture.yaml");
    nslab()
        .args(["import", "tests/fixtures/transcripts/confinement.md", "-o"])
        .arg(&out)
        .assert()
        .code(0);
    let yaml = std::fs::read_to_string(&out).unwrap();
    insta::assert_snapshot!("imported-lecture", yaml);
    assert!(
        yaml.contains("a veth pair stands in for it"),
        "a physical interface gets a stand-in"
    );
    require_lab!();
    require_root!();
    let (code, report, stdout) = run_report(&[out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{:#}", report["scenarios"][0]);
    assert_eq!(report["scenarios"][0]["steps"].as_array().unwrap().len(), 9);
}

#[test]
fn import_refuses_a_file_without_commands() {
    nslab()
        .args(["import", "Cargo.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no `user@host:~# command` lines"));
}

// ---------- reliability ----------

/// A throttle setting that is not a number is bad usage: exit 2, the
/// variable named, nothing run, no report.
#[test]
fn a_bad_backlog_setting_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    nslab()
        .env("NSLAB_NETNS_BACKLOG", "lots")
        .args(["run", "scenarios/uts.yaml", "--report"])
        .arg(&report)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "NSLAB_NETNS_BACKLOG=\"lots\" is not a whole number",
        ));
    assert!(!report.exists());
}

/// The kernel frees network namespaces asynchronously; before each scenario
/// nslab waits while more of them than NSLAB_NETNS_BACKLOG (above the count
/// at the start) await teardown. A scenario that churns through 150
/// namespaces, with a limit of 0, makes the next one wait; the run passes
/// and the report says how long it waited.
#[test]
fn scenarios_wait_for_the_kernel_to_free_network_namespaces() {
    require_lab!();
    if nslab::backlog::net_namespaces().is_none() {
        skip("/proc/slabinfo has no net_namespace line here (needs root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "name: churn\nsteps:\n  - run: for i in $(seq 150); do unshare -n true; done\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        "name: after\nsteps:\n  - probe: hostname\n",
    )
    .unwrap();
    let report = dir.path().join("r.json");
    nslab()
        .env("NSLAB_NETNS_BACKLOG", "0")
        .env("NSLAB_NETNS_BACKLOG_MAX_WAIT_MS", "300")
        .args(["run", "--jobs", "1", "--report"])
        .arg(&report)
        .arg(dir.path())
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "for the kernel to free network namespaces",
        ));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let res = &r["resources"];
    assert!(
        res["netns_backlog_wait_ms"].as_f64().unwrap() > 0.0,
        "{res}"
    );
    assert!(
        res["netns_backlog_wait_ms"].as_f64().unwrap() < 2000.0,
        "{res}"
    );
    assert!(res["net_namespaces_peak"].as_u64().unwrap() >= 2, "{res}");
}

/// A run keeps only the names of validated files and parses each again when
/// its turn comes (memory stays flat over big suites): a file changed in
/// the meantime is reported errored, never run as something else.
#[test]
fn a_file_changed_during_the_run_is_errored_not_run() {
    require_lab!();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    std::fs::write(&a, "name: a-slow\nsteps:\n  - run: sleep 1\n").unwrap();
    std::fs::write(&b, "name: b-later\nsteps:\n  - run: \"true\"\n").unwrap();
    let report = dir.path().join("r.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nslab"))
        .args(["run", "--jobs", "1", "--report"])
        .arg(&report)
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    std::fs::write(&b, "name: b-renamed\nsteps:\n  - run: \"false\"\n").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["scenarios"][0]["verdict"], "passed");
    let later = &r["scenarios"][1];
    assert_eq!(later["name"], "b-later");
    assert_eq!(later["verdict"], "errored");
    let reason = later["reason"].as_str().unwrap();
    assert!(reason.contains("changed during the run"), "{reason}");
    assert!(later["steps"].as_array().unwrap().is_empty());
}

/// SIGINT or SIGTERM (twice, as an impatient person would) during a run,
/// sequential or parallel: the lab is torn down, the report is written with
/// the interrupted scenario errored, and nslab exits 128 + the signal.
#[rstest]
#[case(nix::sys::signal::Signal::SIGINT, "1")]
#[case(nix::sys::signal::Signal::SIGTERM, "1")]
#[case(nix::sys::signal::Signal::SIGINT, "2")]
#[case(nix::sys::signal::Signal::SIGTERM, "2")]
fn an_interrupted_run_cleans_up_and_reports(
    #[case] sig: nix::sys::signal::Signal,
    #[case] jobs: &str,
) {
    require_lab!();
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("nslab"))
        .current_dir(root())
        .args([
            "run",
            "tests/fixtures/slow/kill.yaml",
            "scenarios/uts.yaml",
            "scenarios/ipc.yaml",
            "--jobs",
            jobs,
            "--report",
        ])
        .arg(&report)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // Until the scenario is well into its `sleep 30` step.
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with("sleep 30").is_empty() {
        assert!(Instant::now() < deadline, "the scenario never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    nix::sys::signal::kill(pid, sig).unwrap();
    std::thread::sleep(Duration::from_millis(3));
    let _ = nix::sys::signal::kill(pid, sig);
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.code(), Some(128 + sig as i32), "{status:?}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the report is written"))
            .unwrap();
    let kill = &r["scenarios"][0];
    assert_eq!(kill["verdict"], "errored");
    assert!(
        kill["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("interrupted by {}", sig.as_str())),
        "{kill:#}"
    );
    assert_eq!(
        r["scenarios"].as_array().unwrap().len(),
        3,
        "every scenario is in the report"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_with("sleep 3601").is_empty() || !processes_with("sleep 3602").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the lab outlived the interrupted run"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = status.signal();
}

/// A timed-out step is killed, daemons and all, within 100 ms of its
/// deadline, in the lab host and in a sandbox sharing its pid namespace.
#[test]
fn timeouts_kill_daemons_promptly() {
    require_lab!();
    let (_, report, _) = run_report(&["tests/fixtures/fail/daemons.yaml"]);
    let step = &report["scenarios"][0]["steps"][1];
    for o in step["observations"].as_array().unwrap() {
        assert_eq!(o["timed_out"], true);
        let overshoot = o["duration_ms"].as_f64().unwrap() - 300.0;
        assert!(
            (0.0..100.0).contains(&overshoot),
            "{} overshot by {overshoot} ms",
            o["in"]
        );
    }
    assert_eq!(
        report["scenarios"][0]["steps"][2]["verdict"], "passed",
        "{:#}",
        report["scenarios"][0]["steps"][2]
    );
}

/// 400 MB on stdout: captured up to the stated cap, the rest drained so the
/// command ends normally, and nslab's memory stays far below 100 MiB.
#[test]
fn an_output_flood_is_capped_and_memory_stays_bounded() {
    require_lab!();
    let (code, report, stdout) = run_report(&["tests/fixtures/stress/flood.yaml"]);
    assert_eq!(code, 0, "{stdout}");
    let cap = report["environment"]["output_cap_bytes"].as_u64().unwrap();
    assert_eq!(cap, 1 << 20);
    let o = &report["scenarios"][0]["steps"][0]["observations"][0];
    assert_eq!(o["truncated"], true);
    assert_eq!(o["exit_status"], 0, "the command was not blocked or killed");
    assert_eq!(o["stdout"].as_str().unwrap().len() as u64, cap);
    assert_eq!(o["stderr"].as_str().unwrap().len() as u64, cap);
    let res = &report["resources"];
    for k in ["runner_peak_rss_kib", "children_peak_rss_kib"] {
        let kib = res[k].as_u64().unwrap();
        assert!(kib > 0 && kib < 50 * 1024, "{k} = {kib} KiB");
    }
}

/// Two runs of the same scenarios at once, with the same `ip netns` names
/// inside: each lab is a world of its own.
#[test]
fn concurrent_runs_do_not_interfere() {
    require_lab!();
    require_root!();
    let bin = assert_cmd::cargo::cargo_bin("nslab");
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..3)
        .map(|i| {
            std::process::Command::new(&bin)
                .current_dir(root())
                .args([
                    "run",
                    "scenarios/netns.yaml",
                    "scenarios/cgroup.yaml",
                    "scenarios/linked.yaml",
                    "--jobs",
                    "1",
                    "--report",
                ])
                .arg(dir.path().join(format!("r{i}.json")))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    for i in 0..3 {
        let r: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!("r{i}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(r["summary"]["passed"], 3);
    }
}

/// cgroup limits bite: a memory hog is OOM-killed and the observation says
/// so, a CPU-bound loop is throttled, a fork bomb hits `pids`; the cgroups
/// are removed afterwards.
#[test]
fn cgroup_limits_are_enforced_and_reported() {
    require_lab!();
    require_root!();
    let (code, report, stdout) = run_report(&["tests/fixtures/stress/limits.yaml"]);
    assert_eq!(code, 0, "{stdout}\n{:#}", report["scenarios"][0]);
    let steps = &report["scenarios"][0]["steps"];
    let hog = &steps[0]["observations"][0];
    assert_eq!(hog["killed"], "out of memory, limit 64M: 1 process killed");
    assert!(
        steps[0]["checks"][0]["actual"]
            .as_str()
            .unwrap()
            .contains("killed: out of memory, limit 64M")
    );
    let cpu = steps[1]["observations"][0]["limits"]["throttled_ms"]
        .as_f64()
        .unwrap();
    assert!(
        cpu > 300.0,
        "a loop held to 0.2 CPU for 1 s is throttled most of it: {cpu} ms"
    );
    assert_eq!(steps[0]["observations"][0]["limits"]["oom_kills"], 1);
    let leftover = nslab_cgroups("limits");
    assert!(leftover.is_empty(), "cgroups left behind: {leftover:?}");
}

/// Inputs no one writes by hand: each refused with exit 2 and a message
/// naming the file, never a panic.
#[test]
fn hostile_files_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut garbage = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..65536 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        garbage.push((x >> 16) as u8);
    }
    let mut fifty_mb = b"name: huge\nsteps:\n  - run: \"true\"\n    explain: \"".to_vec();
    fifty_mb.resize(50 * 1024 * 1024, b'x');
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("fifty-mb.yaml", fifty_mb, "scenario files are limited to"),
        ("garbage.yaml", garbage, "not valid UTF-8"),
        (
            "latin1.yaml",
            b"name: caf\xe9\nsteps:\n  - run: \"true\"\n".to_vec(),
            "not valid UTF-8",
        ),
        (
            "nul.yaml",
            b"name: a\0b\nsteps:\n  - run: \"true\"\n".to_vec(),
            "nul.yaml:",
        ),
        (
            "utf16.yaml",
            b"\xff\xfen\0a\0m\0e\0".to_vec(),
            "utf16.yaml:",
        ),
        (
            "long-line.yaml",
            format!("name: {}\nsteps:\n  - run: \"true\"\n", "a".repeat(100_000)).into_bytes(),
            "not a valid scenario id",
        ),
    ];
    for (name, bytes, needle) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = nslab().arg("validate").arg(&p).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(needle), "{name}: {stderr}");
        assert!(
            stderr.len() < 10_000,
            "{name}: the message stays readable ({} bytes)",
            stderr.len()
        );
    }
}

// ---------- scaling out ----------

/// Shards partition a suite (each scenario in exactly one), and merging
/// their reports gives the whole suite's.
#[test]
fn shards_partition_the_suite_and_merge_back() {
    require_lab!();
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    let mut files = Vec::new();
    for k in 1..=3 {
        let f = dir.path().join(format!("s{k}.json"));
        let out = nslab()
            .args(["run", "scenarios", "--shard", &format!("{k}/3"), "--report"])
            .arg(&f)
            .output()
            .unwrap();
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{:#}",
            String::from_utf8_lossy(&out.stdout),
            r["host_integrity"]
        );
        names.extend(
            r["scenarios"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_owned()),
        );
        files.push(f);
    }
    let all = dir.path().join("all.json");
    nslab()
        .args(["report", "merge"])
        .args(&files)
        .arg("-o")
        .arg(&all)
        .assert()
        .code(0);
    let merged: Value = serde_json::from_str(&std::fs::read_to_string(&all).unwrap()).unwrap();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "no scenario in two shards");
    assert_eq!(merged["summary"]["total"], names.len());
    assert_eq!(merged["summary"]["passed"], names.len());
    let listed = nslab().args(["list", "scenarios"]).output().unwrap();
    assert_eq!(
        names.len(),
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        "every scenario is in some shard"
    );
    nslab()
        .args(["report", "merge"])
        .arg(&files[0])
        .arg(&files[0])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("more than one report"));
    nslab()
        .args(["run", "scenarios", "--shard", "4/3"])
        .assert()
        .code(2);
}

/// A report sent to a device or a pipe is written into it, never renamed
/// over it (which would replace /dev/null with a file).
#[test]
fn reports_to_a_pipe_are_written_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("report.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    nslab()
        .args(["run", "tests/fixtures/pass/skip.yaml", "--report"])
        .arg(&fifo)
        .assert()
        .code(0);
    let text = reader.join().unwrap();
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["summary"]["skipped"], 1);
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the pipe is still a pipe"
    );
}

/// SIGTERM to `nslab shell` ends the session: the lab goes, and with it
/// whatever the shell started.
#[test]
fn shell_ends_cleanly_on_sigterm() {
    require_lab!();
    require_root!();
    if !have("script") {
        skip("script is not installed (util-linux)");
        return;
    }
    let mut child = shell_under_pty("--in box --after 1");
    let mut stdin = child.stdin.take().unwrap();
    {
        use std::io::Write;
        stdin.write_all(b"sleep 4246 &\n").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with("sleep 4246").is_empty() {
        assert!(Instant::now() < deadline, "the shell never ran the command");
        std::thread::sleep(Duration::from_millis(10));
    }
    let shell = processes_with("shell scenarios/uts.yaml --in box --after 1");
    let nslab_pid = shell
        .iter()
        .copied()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "nslab")
        })
        .expect("the nslab process");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(nslab_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_with("sleep 4246").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the shell's job outlived SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("nslab: the lab is gone"), "{text}");
}

#[test]
fn completions_and_manual() {
    nslab()
        .args(["completions", "bash"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("_nslab()"));
    nslab()
        .args(["completions", "zsh"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("#compdef nslab"));
    nslab()
        .arg("man")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(".TH nslab 1"));
}

/// As goss does for assertions that check nothing: a probe step without
/// `expect` is valid (it is shown in reports) but validate says so.
#[test]
fn validate_notes_probe_steps_that_check_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("observe.yaml");
    std::fs::write(&f, "name: observe\nsteps:\n  - probe: hostname\n  - probe: pid\n    expect: { value: { equals: 1 } }\n").unwrap();
    let out = nslab().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("observe.yaml:3: step 1 observes `probe hostname` but checks nothing"),
        "{text}"
    );
    assert!(!text.contains("step 2"), "{text}");
}
