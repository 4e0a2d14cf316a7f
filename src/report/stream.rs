//! Writes a JSON report while the run goes on: each scenario is written as
//! soon as it is done and then dropped, so memory stays flat however many
//! scenarios a suite has. The file appears under its name only when
//! complete (written beside it, then renamed).

use super::{
    Environment, HostIntegrity, Metadata, Resources, SCHEMA, ScenarioReport, Summary, Verdict,
};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

enum Sink {
    File {
        tmp: PathBuf,
        dest: PathBuf,
        f: io::BufWriter<std::fs::File>,
    },
    /// A device or pipe (`/dev/null`, `/dev/stdout`, a FIFO): written in
    /// place, since renaming over it would replace it with a file.
    Special(io::BufWriter<std::fs::File>),
    Memory(Vec<u8>),
}

pub struct ReportWriter {
    sink: Sink,
    first: bool,
    pub summary: Summary,
    /// Scenarios whose positive control found nothing to depend on.
    pub vacuous: usize,
}

fn indented<T: serde::Serialize>(v: &T, indent: &str) -> String {
    let s = serde_json::to_string_pretty(v).expect("the report model serializes");
    s.replace('\n', &format!("\n{indent}"))
}

impl ReportWriter {
    /// `dest` None keeps the report in memory (for stdout).
    pub fn create(
        dest: Option<&Path>,
        started_at: &str,
        environment: &Environment,
        metadata: &Metadata,
    ) -> io::Result<Self> {
        let sink = match dest {
            None => Sink::Memory(Vec::new()),
            Some(dest) if super::is_special(dest) => Sink::Special(io::BufWriter::new(
                std::fs::OpenOptions::new().write(true).open(dest)?,
            )),
            Some(dest) => {
                if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let name = dest
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "report".into());
                let tmp = dest.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
                let f = io::BufWriter::new(std::fs::File::create(&tmp)?);
                Sink::File {
                    tmp,
                    dest: dest.to_path_buf(),
                    f,
                }
            }
        };
        let mut w = ReportWriter {
            sink,
            first: true,
            summary: Summary::default(),
            vacuous: 0,
        };
        let head = format!(
            "{{\n  \"schema\": {},\n  \"nslab_version\": {},\n  \"started_at\": {},\n  \"environment\": {},\n  \"metadata\": {},\n  \"scenarios\": [",
            serde_json::to_string(SCHEMA)?,
            serde_json::to_string(env!("CARGO_PKG_VERSION"))?,
            serde_json::to_string(started_at)?,
            indented(environment, "  "),
            indented(metadata, "  "),
        );
        w.write(head.as_bytes())?;
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        match &mut self.sink {
            Sink::File { f, .. } | Sink::Special(f) => f.write_all(b),
            Sink::Memory(v) => {
                v.extend_from_slice(b);
                Ok(())
            }
        }
    }

    pub fn scenario(&mut self, s: &ScenarioReport) -> io::Result<()> {
        self.summary.total += 1;
        match s.verdict {
            Verdict::Passed => self.summary.passed += 1,
            Verdict::Failed => self.summary.failed += 1,
            Verdict::Skipped => self.summary.skipped += 1,
            Verdict::Errored => self.summary.errored += 1,
        }
        if s.control.as_ref().is_some_and(|c| c.vacuous) {
            self.vacuous += 1;
        }
        let sep = if self.first { "\n    " } else { ",\n    " };
        self.first = false;
        let body = format!("{sep}{}", indented(s, "    "));
        self.write(body.as_bytes())
    }

    /// Completes the report; returns it as text when it was kept in memory.
    pub fn finish(
        mut self,
        duration_ms: f64,
        host_integrity: &HostIntegrity,
        resources: &Resources,
    ) -> io::Result<Option<Vec<u8>>> {
        let tail = format!(
            "{}],\n  \"duration_ms\": {},\n  \"summary\": {},\n  \"host_integrity\": {},\n  \"resources\": {}\n}}\n",
            if self.first { "" } else { "\n  " },
            serde_json::to_string(&duration_ms)?,
            indented(&self.summary, "  "),
            indented(host_integrity, "  "),
            indented(resources, "  "),
        );
        self.write(tail.as_bytes())?;
        match std::mem::replace(&mut self.sink, Sink::Memory(Vec::new())) {
            Sink::Memory(v) => Ok(Some(v)),
            Sink::Special(mut f) => f.flush().map(|()| None),
            Sink::File { tmp, dest, f } => {
                let res = f
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|_| std::fs::rename(&tmp, &dest));
                if res.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                res.map(|()| None)
            }
        }
    }
}

impl Drop for ReportWriter {
    fn drop(&mut self) {
        // An unfinished report leaves no temporary file behind.
        if let Sink::File { tmp, .. } = &self.sink
            && tmp.exists()
        {
            let _ = std::fs::remove_file(tmp);
        }
    }
}
