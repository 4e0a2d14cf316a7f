//! Markdown and HTML through templates (minijinja), over a view of the
//! report shaped for reading: a transcript per step, a table of namespace
//! evidence per scenario. Instructors may pass templates of their own.

use super::{CheckReport, ControlReport, Report, StepVerdict, Verdict};
use serde::Serialize;

pub const MARKDOWN_TEMPLATE: &str = include_str!("../../templates/report.md.j2");
pub const HTML_TEMPLATE: &str = include_str!("../../templates/report.html.j2");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
    Junit,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim() {
            "markdown" | "md" => Some(Format::Markdown),
            "html" => Some(Format::Html),
            "junit" | "xml" => Some(Format::Junit),
            _ => None,
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Html => "html",
            Format::Junit => "xml",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template error: {0:#}")]
    Template(#[from] minijinja::Error),
    #[error("junit: {0}")]
    Junit(String),
}

/// A line of a transcript: the prompt and command, or a probe and its value.
#[derive(Debug, Serialize)]
pub struct Block {
    pub context: String,
    pub prompt: String,
    pub command: String,
    pub output: String,
    pub failed: bool,
}

#[derive(Debug, Serialize)]
pub struct StepView {
    pub index: usize,
    pub name: String,
    pub verdict: StepVerdict,
    pub reason: Option<String>,
    pub explain: Option<String>,
    pub contexts: Vec<String>,
    pub blocks: Vec<Block>,
    pub failed_checks: Vec<CheckReport>,
    pub checks: Vec<CheckReport>,
}

#[derive(Debug, Serialize)]
pub struct EvidenceRow {
    pub namespace: String,
    pub lab: Option<u64>,
    /// One per sandbox, in the order of `evidence_sandboxes`.
    pub cells: Vec<EvidenceCell>,
}

#[derive(Debug, Serialize)]
pub struct EvidenceCell {
    pub inode: Option<u64>,
    pub isolated: bool,
}

#[derive(Debug, Serialize)]
pub struct ScenarioView {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub file: String,
    pub tags: Vec<String>,
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub duration_ms: f64,
    pub evidence_sandboxes: Vec<String>,
    pub evidence: Vec<EvidenceRow>,
    pub control: Option<ControlReport>,
    pub steps: Vec<StepView>,
}

#[derive(Debug, Serialize)]
pub struct View<'a> {
    pub title: String,
    pub report: &'a Report,
    pub scenarios: Vec<ScenarioView>,
}

fn prompt(hostname: Option<&str>, user: Option<u32>) -> String {
    let host = hostname.unwrap_or("lab");
    match user {
        None | Some(0) => format!("root@{host}:~#"),
        Some(uid) => format!("uid{uid}@{host}:~$"),
    }
}

pub fn view(report: &Report) -> View<'_> {
    let scenarios = report
        .scenarios
        .iter()
        .map(|sc| {
            let hostname_of = |ctx: &str| -> Option<&str> {
                if ctx == crate::scenario::HOST {
                    sc.lab_hostname.as_deref()
                } else {
                    sc.sandboxes
                        .iter()
                        .find(|s| s.name == ctx)
                        .and_then(|s| s.hostname.as_deref())
                }
            };
            let evidence = if sc.sandboxes.is_empty() {
                Vec::new()
            } else {
                crate::ns::Ns::ALL
                    .iter()
                    .map(|ns| EvidenceRow {
                        namespace: ns.word().to_owned(),
                        lab: sc.lab_namespaces.get(ns.word()).copied(),
                        cells: sc
                            .sandboxes
                            .iter()
                            .map(|s| EvidenceCell {
                                inode: s.namespaces.get(ns.word()).copied(),
                                isolated: s.isolated.iter().any(|i| i == ns.word()),
                            })
                            .collect(),
                    })
                    .collect()
            };
            let steps = sc
                .steps
                .iter()
                .map(|st| {
                    let blocks = st
                        .observations
                        .iter()
                        .map(|o| {
                            let failed = st
                                .checks
                                .iter()
                                .any(|c| !c.passed && c.in_.as_deref() == Some(o.in_.as_str()));
                            let (command, output) = match (&st.command, &o.value) {
                                (Some(cmd), _) => {
                                    let mut out = o.stdout.clone().unwrap_or_default();
                                    out.push_str(o.stderr.as_deref().unwrap_or(""));
                                    if o.timed_out == Some(true) {
                                        out.push_str("[killed: timed out]\n");
                                    }
                                    if let Some(pid) = o.pid {
                                        out.push_str(&format!(
                                            "[running in the background as pid {pid}]\n"
                                        ));
                                    }
                                    (cmd.clone(), out)
                                }
                                (None, value) => {
                                    let label = match &st.argument {
                                        Some(a) => format!(
                                            "nslab probe {} {a}",
                                            st.probe.as_deref().unwrap_or("")
                                        ),
                                        None => format!(
                                            "nslab probe {}",
                                            st.probe.as_deref().unwrap_or("")
                                        ),
                                    };
                                    let v = value
                                        .as_ref()
                                        .map(|v| {
                                            serde_json::to_string_pretty(v).unwrap_or_default()
                                                + "\n"
                                        })
                                        .unwrap_or_default();
                                    (label, v)
                                }
                            };
                            let output = match &o.error {
                                Some(e) => format!("{output}[error: {e}]\n"),
                                None => output,
                            };
                            Block {
                                context: o.in_.clone(),
                                prompt: prompt(hostname_of(&o.in_), None),
                                command,
                                output,
                                failed,
                            }
                        })
                        .collect();
                    StepView {
                        index: st.index,
                        name: st.name.clone(),
                        verdict: st.verdict,
                        reason: st.reason.clone(),
                        explain: st.explain.clone(),
                        contexts: st.in_.clone(),
                        blocks,
                        failed_checks: st.checks.iter().filter(|c| !c.passed).cloned().collect(),
                        checks: st.checks.clone(),
                    }
                })
                .collect();
            ScenarioView {
                name: sc.name.clone(),
                title: sc.title.clone(),
                description: sc.description.clone(),
                file: sc.file.clone(),
                tags: sc.tags.clone(),
                verdict: sc.verdict,
                reason: sc.reason.clone(),
                duration_ms: sc.duration_ms,
                evidence_sandboxes: sc.sandboxes.iter().map(|s| s.name.clone()).collect(),
                evidence,
                control: sc.control.clone(),
                steps,
            }
        })
        .collect();
    View {
        title: report
            .metadata
            .title
            .clone()
            .unwrap_or_else(|| "nslab report".to_owned()),
        report,
        scenarios,
    }
}

/// Markdown table cells may hold neither pipes nor newlines.
fn md_cell(s: String) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Renders with the built-in template for `format`, or with `template`.
pub fn render(
    report: &Report,
    format: Format,
    template: Option<&str>,
) -> Result<String, RenderError> {
    if format == Format::Junit {
        return super::junit::render(report).map_err(RenderError::Junit);
    }
    let mut env = minijinja::Environment::new();
    env.add_filter("md_cell", md_cell);
    // The name decides escaping: HTML-escaped for .html, verbatim for .md.
    let (name, builtin) = match format {
        Format::Html => ("report.html", HTML_TEMPLATE),
        _ => ("report.md", MARKDOWN_TEMPLATE),
    };
    env.add_template(name, template.unwrap_or(builtin))?;
    let out = env
        .get_template(name)?
        .render(minijinja::Value::from(minijinja::value::Serde(view(
            report,
        ))))?;
    Ok(out)
}
