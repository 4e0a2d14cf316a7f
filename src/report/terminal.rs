//! What a person sees in the terminal: a line per scenario, and for each
//! failure the step, the command, expected against actual, and the output.

use super::{ScenarioReport, StepVerdict, Verdict};
use anstyle::{AnsiColor, Style};
use std::fmt::Write;

const RED: Style = AnsiColor::Red.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
const DIM: Style = Style::new().dimmed();
const BOLD: Style = Style::new().bold();

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Output lines kept per stream under a failure; the report has them all.
const OUTPUT_LINES: usize = 15;

fn indent_output(label: &str, text: &str, out: &mut String) {
    if text.is_empty() {
        return;
    }
    let lines: Vec<&str> = text.lines().collect();
    let _ = writeln!(out, "        {}", paint(DIM, &format!("{label}:")));
    for l in lines.iter().take(OUTPUT_LINES) {
        let _ = writeln!(out, "          {l}");
    }
    if lines.len() > OUTPUT_LINES {
        let _ = writeln!(
            out,
            "          {}",
            paint(
                DIM,
                &format!("… {} more lines in the report", lines.len() - OUTPUT_LINES)
            )
        );
    }
}

pub fn scenario_line(s: &ScenarioReport) -> String {
    let (tag, style) = match s.verdict {
        Verdict::Passed => ("PASS", GREEN),
        Verdict::Failed => ("FAIL", RED),
        Verdict::Skipped => ("SKIP", YELLOW),
        Verdict::Errored => ("ERROR", RED),
    };
    let mut out = format!(
        "{:>5}  {}  {}",
        paint(style, tag),
        paint(BOLD, &s.name),
        paint(DIM, &format!("({:.1} ms)", s.duration_ms))
    );
    if let Some(t) = &s.title {
        let _ = write!(out, "  {t}");
    }
    out.push('\n');
    if let Some(c) = &s.control {
        if c.vacuous {
            let _ = writeln!(
                out,
                "       {} every check still passed with no sandbox isolated: this scenario proves nothing",
                paint(YELLOW, "VACUOUS")
            );
        } else {
            let _ = writeln!(
                out,
                "       {} {} check(s) failed with no sandbox isolated: {}",
                paint(GREEN, "control"),
                c.failed_checks.len(),
                c.failed_checks.join(", ")
            );
        }
    }
    if matches!(s.verdict, Verdict::Skipped | Verdict::Errored)
        && let Some(r) = &s.reason
    {
        let _ = writeln!(out, "       {}", paint(style, r));
    }
    if matches!(s.verdict, Verdict::Failed | Verdict::Errored) {
        if s.verdict == Verdict::Failed
            && let Some(r) = &s.reason
        {
            let _ = writeln!(out, "       {}", paint(style, r));
        }
        for st in &s.steps {
            if !matches!(st.verdict, StepVerdict::Failed | StepVerdict::Errored) {
                continue;
            }
            let _ = writeln!(
                out,
                "       step {} {} (in {})",
                st.index,
                paint(BOLD, &st.name),
                st.in_.join(", ")
            );
            if let Some(c) = &st.command {
                let _ = writeln!(out, "        $ {c}");
            }
            let failed_checks = st.checks.iter().any(|c| !c.passed);
            if let Some(r) = st.reason.as_ref().filter(|_| !failed_checks) {
                let _ = writeln!(out, "        {}", paint(RED, r));
            }
            for c in st.checks.iter().filter(|c| !c.passed) {
                let ctx = c
                    .in_
                    .as_deref()
                    .map(|i| format!(" in {i}"))
                    .unwrap_or_default();
                let _ = writeln!(out, "        {}{ctx}", paint(BOLD, &c.check));
                let _ = writeln!(out, "          expected: {}", c.expected);
                let _ = writeln!(
                    out,
                    "          actual:   {}",
                    c.actual.lines().next().unwrap_or("")
                );
            }
            for o in &st.observations {
                let tag = if st.in_.len() > 1 {
                    format!(" ({})", o.in_)
                } else {
                    String::new()
                };
                indent_output(
                    &format!("stdout{tag}"),
                    o.stdout.as_deref().unwrap_or(""),
                    &mut out,
                );
                indent_output(
                    &format!("stderr{tag}"),
                    o.stderr.as_deref().unwrap_or(""),
                    &mut out,
                );
                if let Some(e) = o
                    .error
                    .as_ref()
                    .filter(|e| !st.reason.as_deref().unwrap_or("").contains(e.as_str()))
                {
                    let _ = writeln!(out, "        error{tag}: {e}");
                }
            }
        }
    }
    out
}

pub fn summary_line(
    s: &super::Summary,
    duration_ms: f64,
    integrity: &super::HostIntegrity,
    report_path: Option<&str>,
) -> String {
    let mut out = format!(
        "{} passed, {} failed, {} skipped, {} errored in {:.0} ms",
        s.passed, s.failed, s.skipped, s.errored, duration_ms
    );
    if let Some(p) = report_path {
        let _ = write!(out, "; report: {p}");
    }
    if !integrity.unchanged {
        let _ = write!(
            out,
            "\n{} {}",
            paint(RED, "the real machine changed during the run:"),
            integrity.differences.join("; ")
        );
    }
    out
}
