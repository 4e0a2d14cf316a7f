//! The command line: parses arguments and hands off to the library.

use crate::env::Machine;
use crate::report::{self, Environment, Metadata, Report, Summary};
use crate::scenario::{self, Scenario};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

#[derive(Parser, Debug)]
#[command(
    name = "nslab",
    version,
    about = "Build fresh Linux namespaces, run a scenario in them, and check what is isolated"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenario files, or every *.yaml under a folder
    Run(RunArgs),
    /// Check files against the scenario format without running anything
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// One line per scenario: name, title, namespaces, tags
    List {
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// Render a saved JSON report as Markdown, HTML or JUnit XML
    ///
    /// `nslab report merge A.json B.json … -o ALL.json` joins the reports of
    /// shards (`run --shard K/N`) into one.
    Report {
        /// The JSON report `nslab run` wrote; or `merge` and the reports to join
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// markdown, html or junit
        #[arg(long)]
        format: Option<String>,
        /// Where to write it (default: stdout)
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// A minijinja template of your own for markdown or html
        #[arg(long)]
        template: Option<PathBuf>,
    },
    /// What this machine allows: each namespace type tried for real, user
    /// namespace settings, cgroups, the commands scenarios need
    Check {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        /// Where the scenarios whose commands to check are
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
    },
    /// Build a scenario's lab, run its first N steps, and open an
    /// interactive shell in one of its contexts; all is torn down on exit
    Shell {
        scenario: PathBuf,
        /// The context: `host` or a sandbox's name
        #[arg(long = "in", default_value = "host")]
        context: String,
        /// How many of the scenario's steps to run first
        #[arg(long, default_value_t = 0)]
        after: usize,
    },
    /// Turn a terminal transcript (`root@vm:~# command` lines, `## comment`
    /// headings, output) into a scenario
    Import {
        transcript: PathBuf,
        /// Where to write the scenario (default: stdout)
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// The scenario's name (default: from the file name)
        #[arg(long)]
        name: Option<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff), e.g. `nslab man > nslab.1`
    Man,
    /// Print the JSON Schema (draft 2020-12) of scenario files or reports
    Schema {
        #[arg(value_parser = ["scenario", "report"])]
        what: String,
    },
}

#[derive(Args, Debug)]
#[command(
    after_help = "Environment:\n  NSLAB_NETNS_BACKLOG              network namespaces that may await the kernel's teardown\n                                   (above the count at the start) before a scenario waits; default 256\n  NSLAB_NETNS_BACKLOG_MAX_WAIT_MS  the longest one scenario waits for them; default 10000\n\nExit status: 0 every scenario passed, 1 some failed or errored (or the machine changed),\n2 bad usage or an invalid scenario file (nothing ran)."
)]
struct RunArgs {
    /// Scenario files or folders
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Where to write the JSON report; `-` for stdout
    #[arg(long, default_value = "reports/report.json")]
    report: String,
    /// Scenarios to run in parallel (default: number of CPUs)
    #[arg(long)]
    jobs: Option<usize>,
    /// Only scenarios whose name matches this glob, or `tag:WORD`; repeatable
    #[arg(long)]
    filter: Vec<String>,
    /// Run only shard K of N (e.g. 2/4): a stable partition by scenario name,
    /// for spreading a suite over CI runners
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(u64, u64)>,
    /// Count a skipped scenario as a failure, and a vacuous one under --control
    #[arg(long)]
    strict: bool,
    /// Also run each scenario with sandboxes sharing every namespace with the
    /// lab host, to show which checks depend on isolation
    #[arg(long)]
    control: bool,
    /// Title carried into the report
    #[arg(long)]
    title: Option<String>,
    /// Author carried into the report
    #[arg(long)]
    author: Option<String>,
    /// Course carried into the report
    #[arg(long)]
    course: Option<String>,
    /// Also write these beside the JSON report: markdown, html, junit
    #[arg(long, value_delimiter = ',')]
    format: Vec<String>,
    /// A minijinja template of your own for --format markdown or html
    #[arg(long)]
    template: Option<PathBuf>,
}

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

pub fn run(args: Vec<std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    match cli.command {
        Command::Run(a) => cmd_run(a),
        Command::Validate { paths } => cmd_validate(&paths),
        Command::List { paths } => cmd_list(&paths),
        Command::Report {
            files,
            format,
            output,
            template,
        } => {
            if files[0].as_os_str() == "merge" {
                cmd_merge(&files[1..], output.as_deref())
            } else if files.len() > 1 {
                err(
                    "render one report at a time, or `nslab report merge A.json B.json … -o ALL.json`",
                );
                EXIT_USAGE
            } else if let Some(format) = format {
                cmd_report(&files[0], &format, output.as_deref(), template.as_deref())
            } else {
                err("--format markdown|html|junit is needed to render a report");
                EXIT_USAGE
            }
        }
        Command::Check { json, scenarios } => {
            let c = crate::doctor::check(&scenarios);
            if json {
                println!("{}", serde_json::to_string_pretty(&c).expect("serializes"));
            } else {
                print!("{}", crate::doctor::render_text(&c));
            }
            if c.can_run { EXIT_OK } else { EXIT_FAILED }
        }
        Command::Shell {
            scenario,
            context,
            after,
        } => cmd_shell(&scenario, &context, after),
        Command::Import {
            transcript,
            output,
            name,
        } => cmd_import(&transcript, output.as_deref(), name),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "nslab", &mut std::io::stdout());
            EXIT_OK
        }
        Command::Man => {
            use clap::CommandFactory;
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    err(&format!("cannot write the manual: {e}"));
                    EXIT_FAILED
                }
            }
        }
        Command::Schema { what } => {
            println!("{}", crate::report::schema::get(&what));
            EXIT_OK
        }
    }
}

fn cmd_shell(path: &std::path::Path, context: &str, after: usize) -> i32 {
    let s = match scenario::load_file(path) {
        Ok(s) => s,
        Err(diags) => {
            for d in diags {
                let _ = writeln!(anstream::stderr(), "{d}\n");
            }
            return EXIT_USAGE;
        }
    };
    if after > s.steps.len() {
        err(&format!(
            "--after {after}: the scenario has {} steps",
            s.steps.len()
        ));
        return EXIT_USAGE;
    }
    if context != crate::scenario::HOST && s.sandbox(context).is_none() {
        let names: Vec<&str> = std::iter::once("host")
            .chain(s.sandboxes.iter().map(|b| b.name.as_str()))
            .collect();
        err(&format!(
            "--in {context}: no such context; this scenario has {}",
            names.join(", ")
        ));
        return EXIT_USAGE;
    }
    // Ctrl-C belongs to the shell (the terminal is raw); SIGTERM and SIGHUP
    // end the session cleanly.
    if let Err(e) = crate::sandbox::interrupt::install() {
        err(&format!("cannot watch for signals: {e}"));
        return EXIT_FAILED;
    }
    let machine = Machine::read();
    let offer = crate::runner::offer_for(&s, &crate::runner::machine_offer(&machine));
    let mut session = match crate::runner::Session::open(&s, &offer) {
        Ok(x) => x,
        Err(e) => {
            err(&e);
            return EXIT_FAILED;
        }
    };
    let mut out = anstream::stderr();
    for step in &s.steps[..after] {
        let r = session.step(step);
        let verdict = serde_json::to_value(r.verdict).unwrap_or_default();
        let _ = writeln!(
            out,
            "step {} {}: {}",
            r.index,
            r.name,
            verdict.as_str().unwrap_or("")
        );
        if let Some(reason) = &r.reason {
            let _ = writeln!(out, "    {reason}");
        }
    }
    let ctx = session.context_index(context).expect("checked above");
    let _ = writeln!(
        out,
        "nslab: a shell in `{context}` of {}; exit it to tear the lab down",
        s.name
    );
    let res = session.interact(ctx, context);
    drop(session);
    match res {
        Ok(()) => {
            let _ = writeln!(out, "nslab: the lab is gone");
            match crate::sandbox::interrupt::caught() {
                Some(sig) => crate::sandbox::interrupt::exit_status(sig),
                None => EXIT_OK,
            }
        }
        Err(e) => {
            err(&e);
            EXIT_FAILED
        }
    }
}

fn cmd_import(
    transcript: &std::path::Path,
    output: Option<&std::path::Path>,
    name: Option<String>,
) -> i32 {
    let text = match std::fs::read_to_string(transcript) {
        Ok(t) => t,
        Err(e) => {
            err(&format!("cannot read {}: {e}", transcript.display()));
            return EXIT_USAGE;
        }
    };
    let commands = crate::import::parse(&text);
    if commands.is_empty() {
        err(&format!(
            "no `user@host:~# command` lines in {}",
            transcript.display()
        ));
        return EXIT_USAGE;
    }
    let name = name.unwrap_or_else(|| {
        transcript
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let shown = transcript
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let yaml = crate::import::to_scenario(&name, &shown, &commands);
    // What we write must load: refuse to hand out a broken scenario.
    if let Err(diags) = scenario::load_str("imported", std::path::Path::new("imported"), &yaml) {
        err(&format!(
            "the imported scenario does not validate: {}",
            diags[0]
        ));
        return EXIT_FAILED;
    }
    match output {
        None => {
            print!("{yaml}");
            EXIT_OK
        }
        Some(o) => match report::write_atomically(o, yaml.as_bytes()) {
            Ok(()) => {
                eprintln!("wrote {} ({} steps)", o.display(), commands.len());
                EXIT_OK
            }
            Err(e) => {
                err(&format!("cannot write {}: {e}", o.display()));
                EXIT_FAILED
            }
        },
    }
}

fn read_template(path: Option<&std::path::Path>) -> Result<Option<String>, String> {
    path.map(|p| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read template {}: {e}", p.display()))
    })
    .transpose()
}

fn load_report(file: &std::path::Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not an nslab report: {e}", file.display()))
}

fn cmd_merge(files: &[PathBuf], output: Option<&std::path::Path>) -> i32 {
    if files.is_empty() {
        err("nothing to merge: `nslab report merge A.json B.json … -o ALL.json`");
        return EXIT_USAGE;
    }
    let mut reports = Vec::new();
    for f in files {
        match load_report(f) {
            Ok(r) => reports.push(r),
            Err(e) => {
                err(&e);
                return EXIT_USAGE;
            }
        }
    }
    let merged = match report::merge(reports) {
        Ok(m) => m,
        Err(e) => {
            err(&e);
            return EXIT_USAGE;
        }
    };
    let json = report::to_json(&merged);
    match output {
        None => print!("{json}"),
        Some(o) => {
            if let Err(e) = report::write_atomically(o, json.as_bytes()) {
                err(&format!("cannot write {}: {e}", o.display()));
                return EXIT_FAILED;
            }
        }
    }
    exit_status(&merged, false)
}

fn cmd_report(
    file: &std::path::Path,
    format: &str,
    output: Option<&std::path::Path>,
    template: Option<&std::path::Path>,
) -> i32 {
    let Some(fmt) = report::render::Format::parse(format) else {
        err(&format!(
            "unknown format {format:?}: use markdown, html or junit"
        ));
        return EXIT_USAGE;
    };
    let parsed = match load_report(file) {
        Ok(r) => r,
        Err(e) => {
            err(&e);
            return EXIT_USAGE;
        }
    };
    let template = match read_template(template) {
        Ok(t) => t,
        Err(e) => {
            err(&e);
            return EXIT_USAGE;
        }
    };
    match report::render::render(&parsed, fmt, template.as_deref()) {
        Ok(out) => match output {
            None => {
                print!("{out}");
                EXIT_OK
            }
            Some(o) => match report::write_atomically(o, out.as_bytes()) {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    err(&format!("cannot write {}: {e}", o.display()));
                    EXIT_FAILED
                }
            },
        },
        Err(e) => {
            err(&e.to_string());
            EXIT_USAGE
        }
    }
}

fn err(msg: &str) {
    let _ = writeln!(
        anstream::stderr(),
        "{}error:{} {msg}",
        anstyle::AnsiColor::Red.on_default().bold(),
        anstyle::Reset
    );
}

/// Loads every file, printing every diagnostic; `None` if any was invalid.
fn load_all(paths: &[PathBuf]) -> Option<Vec<Scenario>> {
    check_all(paths, |s| s)
}

/// Validates every file, printing all errors, and keeps what `keep` makes of
/// each scenario: `nslab run` keeps a [`scenario::Listed`] and parses the
/// file again when it runs, so its memory does not grow with the suite.
fn check_all<T>(paths: &[PathBuf], mut keep: impl FnMut(Scenario) -> T) -> Option<Vec<T>> {
    let files = match scenario::discover(paths) {
        Ok(f) => f,
        Err(e) => {
            err(&e);
            return None;
        }
    };
    let mut out = Vec::new();
    let mut bad = false;
    let mut seen: std::collections::HashMap<String, PathBuf> = std::collections::HashMap::new();
    for f in files {
        match scenario::load_file(&f) {
            Ok(s) => {
                if let Some(prev) = seen.get(&s.name) {
                    err(&format!(
                        "scenario name `{}` is used by both {} and {}: names must be unique within one run",
                        s.name,
                        prev.display(),
                        s.file.display()
                    ));
                    bad = true;
                } else {
                    seen.insert(s.name.clone(), s.file.clone());
                }
                out.push(keep(s));
            }
            Err(diags) => {
                bad = true;
                for d in diags {
                    let _ = writeln!(anstream::stderr(), "{d}\n");
                }
            }
        }
    }
    (!bad).then_some(out)
}

fn cmd_validate(paths: &[PathBuf]) -> i32 {
    match load_all(paths) {
        Some(list) => {
            for s in &list {
                println!("ok  {}  ({})", s.file.display(), s.name);
                // As goss does: say which assertions check nothing.
                for st in s.steps.iter().filter(|st| {
                    matches!(st.action, scenario::Action::Probe(_))
                        && st.expect.value.is_none()
                        && !st.expect.differ
                        && !st.expect.same
                }) {
                    println!(
                        "    note: {}:{}: step {} observes `{}` but checks nothing; add `expect`",
                        s.file.display(),
                        st.line,
                        st.index,
                        st.label()
                    );
                }
            }
            EXIT_OK
        }
        None => EXIT_USAGE,
    }
}

fn cmd_list(paths: &[PathBuf]) -> i32 {
    let Some(list) = load_all(paths) else {
        return EXIT_USAGE;
    };
    let w = list.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in &list {
        let ns = s.namespaces().words().join(",");
        println!(
            "{:w$}  {}  [{}]  {}",
            s.name,
            s.title.as_deref().unwrap_or("-"),
            if ns.is_empty() { "lab only".into() } else { ns },
            s.tags.join(",")
        );
    }
    EXIT_OK
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (k, n) = s.split_once('/').ok_or("write K/N, e.g. 1/4")?;
    let (k, n): (u64, u64) = (
        k.parse().map_err(|_| "K is not a number")?,
        n.parse().map_err(|_| "N is not a number")?,
    );
    if n == 0 || k == 0 || k > n {
        return Err(format!("{k}/{n}: K must be from 1 to N"));
    }
    Ok((k, n))
}

fn cmd_run(a: RunArgs) -> i32 {
    if let Err(e) = crate::sandbox::interrupt::install() {
        err(&format!("cannot watch for signals: {e}"));
        return EXIT_FAILED;
    }
    let mut formats = Vec::new();
    for f in &a.format {
        match report::render::Format::parse(f) {
            Some(x) => formats.push(x),
            None => {
                err(&format!(
                    "unknown format {f:?}: use markdown, html or junit"
                ));
                return EXIT_USAGE;
            }
        }
    }
    let template = match read_template(a.template.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            err(&e);
            return EXIT_USAGE;
        }
    };
    if !formats.is_empty() && a.report != "-" && report::is_special(std::path::Path::new(&a.report))
    {
        err("--format writes beside the JSON report, so --report must name a file (or `-`)");
        return EXIT_USAGE;
    }
    let backlog = match crate::backlog::Settings::from_env() {
        Ok(b) => b,
        Err(e) => {
            err(&e.to_string());
            return EXIT_USAGE;
        }
    };
    let Some(all) = check_all(&a.paths, |s| scenario::Listed::of(&s)) else {
        return EXIT_USAGE;
    };
    let scenarios = scenario::select::select(all, &a.filter, a.shard);
    if scenarios.is_empty() && a.shard.is_some() {
        // An empty shard is no error: a small suite spread over many runners.
        eprintln!("nslab: no scenario falls in this shard");
    } else if scenarios.is_empty() {
        err("no scenario matches the filter");
        return EXIT_USAGE;
    }
    let jobs = a
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let to_stdout = a.report == "-";
    let machine = Machine::read();
    let started_at = crate::env::rfc3339(SystemTime::now());
    let t0 = Instant::now();
    let mut human = anstream::AutoStream::auto(if to_stdout {
        Box::new(std::io::stderr()) as Box<dyn Write>
    } else {
        Box::new(std::io::stdout())
    });
    let environment = Environment::of(&machine, crate::sandbox::OUTPUT_CAP);
    let metadata = Metadata {
        title: a.title,
        author: a.author,
        course: a.course,
    };
    let report_path = std::path::PathBuf::from(&a.report);
    let mut writer = match report::stream::ReportWriter::create(
        (!to_stdout).then_some(report_path.as_path()),
        &started_at,
        &environment,
        &metadata,
    ) {
        Ok(w) => w,
        Err(e) => {
            err(&format!("cannot write the report to {}: {e}", a.report));
            return EXIT_FAILED;
        }
    };
    let mut write_error = None;
    let end = crate::suite::run_suite(&scenarios, &machine, jobs, a.control, backlog, &mut |r| {
        let _ = write!(human, "{}", report::terminal::scenario_line(&r));
        let _ = human.flush();
        if let Err(e) = writer.scenario(&r) {
            write_error.get_or_insert(e);
        }
    });
    let host_integrity = end.host_integrity;
    let summary = writer.summary.clone();
    let vacuous = writer.vacuous;
    let duration_ms = (t0.elapsed().as_secs_f64() * 1e4).round() / 10.0;
    let finished = match write_error {
        Some(e) => Err(e),
        None => writer.finish(duration_ms, &host_integrity, &end.resources),
    };
    let in_memory = match finished {
        Ok(m) => m,
        Err(e) => {
            err(&format!("cannot write the report to {}: {e}", a.report));
            return EXIT_FAILED;
        }
    };
    if let Some(json) = &in_memory {
        let _ = std::io::stdout().write_all(json);
    }
    // Renderings go beside the JSON report (under reports/ when it went to
    // stdout), with the same name and their own extension. They need the
    // whole report, read back from what was written.
    let base = if to_stdout {
        std::path::PathBuf::from("reports/report.json")
    } else {
        report_path.clone()
    };
    let mut written = Vec::new();
    if !formats.is_empty() {
        let full: Result<Report, String> = match &in_memory {
            Some(json) => serde_json::from_slice(json).map_err(|e| e.to_string()),
            None => load_report(&report_path),
        };
        let full = match full {
            Ok(r) => r,
            Err(e) => {
                err(&format!("cannot read the report back: {e}"));
                return EXIT_FAILED;
            }
        };
        for f in formats {
            let path = base.with_extension(f.extension());
            let res = report::render::render(&full, f, template.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|out| {
                    report::write_atomically(&path, out.as_bytes()).map_err(|e| e.to_string())
                });
            match res {
                Ok(()) => written.push(path.display().to_string()),
                Err(e) => {
                    err(&format!("cannot write {}: {e}", path.display()));
                    return EXIT_FAILED;
                }
            }
        }
    }
    let shown = (!to_stdout).then(|| {
        std::iter::once(a.report.clone())
            .chain(written)
            .collect::<Vec<_>>()
            .join(", ")
    });
    let _ = writeln!(
        human,
        "{}",
        report::terminal::summary_line(&summary, duration_ms, &host_integrity, shown.as_deref())
    );
    if end.resources.netns_backlog_wait_ms > 0.0 {
        let _ = writeln!(
            human,
            "note: scenarios waited {} ms in all for the kernel to free network namespaces of earlier ones (see NSLAB_NETNS_BACKLOG in docs/performance.md)",
            end.resources.netns_backlog_wait_ms
        );
    }
    if let Some(sig) = crate::sandbox::interrupt::caught() {
        return crate::sandbox::interrupt::exit_status(sig);
    }
    exit_status_of(&summary, vacuous, host_integrity.unchanged, a.strict)
}

/// 0 when every scenario passed (skips allowed unless strict, and vacuous
/// controls too), 1 otherwise or when the real machine changed.
pub fn exit_status(report: &Report, strict: bool) -> i32 {
    let vacuous = report
        .scenarios
        .iter()
        .filter(|s| s.control.as_ref().is_some_and(|c| c.vacuous))
        .count();
    exit_status_of(
        &report.summary,
        vacuous,
        report.host_integrity.unchanged,
        strict,
    )
}

pub fn exit_status_of(s: &Summary, vacuous: usize, unchanged: bool, strict: bool) -> i32 {
    let bad = s.failed + s.errored + if strict { s.skipped + vacuous } else { 0 };
    if bad > 0 || !unchanged {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

#[cfg(test)]
mod tests {
    fn report_json(extra: &str) -> super::Report {
        let base = r#"{"schema":"nslab-report/v1","nslab_version":"0","started_at":"t","duration_ms":1,
            "environment":{"kernel":"k","arch":"a","uid":0,"mode":"root","hostname":"h","output_cap_bytes":1},
            "summary":{"total":1,"passed":0,"failed":0,"skipped":0,"errored":0},"scenarios":[],
            "host_integrity":{"unchanged":true,"checked":[],"differences":[]}}"#;
        let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
        let patch: serde_json::Value = serde_json::from_str(extra).unwrap();
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn exit_statuses() {
        use super::exit_status;
        let ok =
            report_json(r#"{"summary":{"total":1,"passed":1,"failed":0,"skipped":0,"errored":0}}"#);
        assert_eq!(exit_status(&ok, false), 0);
        let skip =
            report_json(r#"{"summary":{"total":1,"passed":0,"failed":0,"skipped":1,"errored":0}}"#);
        assert_eq!(
            (exit_status(&skip, false), exit_status(&skip, true)),
            (0, 1)
        );
        let err =
            report_json(r#"{"summary":{"total":1,"passed":0,"failed":0,"skipped":0,"errored":1}}"#);
        assert_eq!(exit_status(&err, false), 1);
        let changed = report_json(
            r#"{"summary":{"total":1,"passed":1,"failed":0,"skipped":0,"errored":0},
            "host_integrity":{"unchanged":false,"checked":["netns"],"differences":["netns: added \"x\""]}}"#,
        );
        assert_eq!(
            exit_status(&changed, false),
            1,
            "a changed machine fails the run"
        );
    }

    #[test]
    fn shard_arguments() {
        assert_eq!(super::parse_shard("2/4"), Ok((2, 4)));
        assert!(
            super::parse_shard("0/4").is_err()
                && super::parse_shard("5/4").is_err()
                && super::parse_shard("x").is_err()
        );
    }
}
