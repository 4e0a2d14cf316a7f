//! JUnit XML: a test suite per scenario, a test case per step.

use super::{Report, StepVerdict, Verdict};
use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64((v / 1000.0).max(0.0))
}

pub fn render(report: &Report) -> Result<String, String> {
    let mut out = quick_junit::Report::new(
        report
            .metadata
            .title
            .clone()
            .unwrap_or_else(|| "nslab".into()),
    );
    out.set_time(ms(report.duration_ms));
    for sc in &report.scenarios {
        let mut suite = TestSuite::new(sc.name.clone());
        suite.set_time(ms(sc.duration_ms));
        let env = &report.environment;
        for (k, v) in [
            ("kernel", env.kernel.clone()),
            ("arch", env.arch.clone()),
            ("mode", env.mode.clone()),
            ("nslab_version", report.nslab_version.clone()),
            ("file", sc.file.clone()),
        ] {
            suite.add_property(Property::new(k, v));
        }
        if matches!(sc.verdict, Verdict::Skipped)
            || (sc.verdict == Verdict::Errored
                && sc.steps.iter().all(|s| s.verdict == StepVerdict::NotRun))
        {
            // Nothing ran: one case carries the reason.
            let mut status = if sc.verdict == Verdict::Skipped {
                TestCaseStatus::skipped()
            } else {
                TestCaseStatus::non_success(NonSuccessKind::Error)
            };
            if let Some(r) = &sc.reason {
                status.set_message(r.clone());
            }
            suite.add_test_case(TestCase::new("scenario", status));
            out.add_test_suite(suite);
            continue;
        }
        for st in &sc.steps {
            let mut status = match st.verdict {
                StepVerdict::Passed => TestCaseStatus::success(),
                StepVerdict::NotRun => TestCaseStatus::skipped(),
                StepVerdict::Failed => TestCaseStatus::non_success(NonSuccessKind::Failure),
                StepVerdict::Errored => TestCaseStatus::non_success(NonSuccessKind::Error),
            };
            let failed: Vec<String> = st
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| {
                    format!(
                        "{}{}: expected {}, actual {}",
                        c.check,
                        c.in_
                            .as_deref()
                            .map(|i| format!(" in {i}"))
                            .unwrap_or_default(),
                        c.expected,
                        c.actual
                    )
                })
                .collect();
            match st.verdict {
                StepVerdict::NotRun => {
                    status.set_message("not run: an earlier step failed");
                }
                StepVerdict::Failed | StepVerdict::Errored => {
                    status.set_message(st.reason.clone().unwrap_or_default());
                    if !failed.is_empty() {
                        status.set_description(failed.join("\n"));
                    }
                    status.set_type(if st.verdict == StepVerdict::Failed {
                        "check"
                    } else {
                        "error"
                    });
                }
                StepVerdict::Passed => {}
            }
            let mut case = TestCase::new(format!("{:02} {}", st.index, st.name), status);
            case.set_classname(sc.name.clone());
            case.set_time(ms(st.observations.iter().map(|o| o.duration_ms).sum()));
            let stdout: String = st
                .observations
                .iter()
                .map(|o| match (&o.stdout, &o.value) {
                    (Some(s), _) => format!("[{}] {}", o.in_, s),
                    (None, Some(v)) => format!("[{}] {}\n", o.in_, v),
                    _ => String::new(),
                })
                .collect();
            let stderr: String = st
                .observations
                .iter()
                .filter_map(|o| {
                    o.stderr
                        .as_ref()
                        .filter(|s| !s.is_empty())
                        .map(|s| format!("[{}] {}", o.in_, s))
                })
                .collect();
            if !stdout.is_empty() {
                case.set_system_out(stdout);
            }
            if !stderr.is_empty() {
                case.set_system_err(stderr);
            }
            suite.add_test_case(case);
        }
        out.add_test_suite(suite);
    }
    out.to_string().map_err(|e| e.to_string())
}
