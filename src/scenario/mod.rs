//! Scenario files: the typed model, the YAML loader and its diagnostics.

pub mod diag;
pub mod load;
pub mod model;
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
