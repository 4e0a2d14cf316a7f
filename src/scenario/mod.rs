//! Scenario files: the typed model, the YAML loader and its diagnostics.

pub mod diag;
pub mod load;
pub mod model;
pub mod select;
pub mod yaml;

pub use diag::Diagnostic;
pub use load::{load_file, load_str};
pub use model::*;

use std::path::{Path, PathBuf};

/// The scenario files a path names: the file itself, or every `*.yaml` (and
/// `*.yml`) below a folder, sorted so runs are deterministic.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            found.sort();
            if found.is_empty() {
                return Err(format!("no *.yaml files under {}", p.display()));
            }
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// What a run keeps of a validated scenario until its turn comes: enough to
/// select, order and shard it. The scenario itself is parsed again when it
/// runs, so a suite of thousands of files is held in a few hundred bytes
/// each, not in its parsed steps.
#[derive(Debug, Clone)]
pub struct Listed {
    pub file: PathBuf,
    pub name: String,
    pub tags: Vec<String>,
    /// Some sandbox sets cgroup limits.
    pub has_limits: bool,
}

/// Why a listed scenario cannot be run as it was validated.
#[derive(Debug, thiserror::Error)]
pub enum ChangedError {
    #[error("{} no longer validates: {message}", file.display())]
    NoLongerValid { file: PathBuf, message: String },
    #[error("{} changed during the run: it names scenario `{now}`, not `{was}`", file.display())]
    Renamed {
        file: PathBuf,
        now: String,
        was: String,
    },
}

impl Listed {
    pub fn of(s: &Scenario) -> Listed {
        Listed {
            file: s.file.clone(),
            name: s.name.clone(),
            tags: s.tags.clone(),
            has_limits: s.sandboxes.iter().any(|b| !b.limits.is_empty()),
        }
    }

    /// The scenario, parsed again. A file edited since it was validated
    /// fails here, with the reason, rather than running something else.
    pub fn load(&self) -> Result<Scenario, ChangedError> {
        let s = load_file(&self.file).map_err(|diags| ChangedError::NoLongerValid {
            file: self.file.clone(),
            message: diags.first().map(|d| d.message.clone()).unwrap_or_default(),
        })?;
        if s.name != self.name {
            return Err(ChangedError::Renamed {
                file: self.file.clone(),
                now: s.name,
                was: self.name.clone(),
            });
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::{Listed, load_file};

    #[test]
    fn a_listed_scenario_is_parsed_again_and_must_be_the_same_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.yaml");
        std::fs::write(&f, "name: first\ntags: [a]\nsteps:\n  - run: \"true\"\n").unwrap();
        let listed = Listed::of(&load_file(&f).unwrap());
        assert_eq!(
            (listed.name.as_str(), listed.tags.as_slice()),
            ("first", &["a".to_owned()][..])
        );
        assert!(!listed.has_limits);
        assert_eq!(listed.load().unwrap().steps.len(), 1);
        std::fs::write(&f, "name: second\nsteps:\n  - run: \"true\"\n").unwrap();
        let e = listed.load().unwrap_err().to_string();
        assert!(e.contains("names scenario `second`, not `first`"), "{e}");
        std::fs::write(&f, "name: first\nsteps: 3\n").unwrap();
        let e = listed.load().unwrap_err().to_string();
        assert!(e.contains("no longer validates"), "{e}");
    }
}
