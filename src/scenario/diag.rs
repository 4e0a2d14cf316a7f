//! Errors in scenario files: where, what, and what to do instead.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub help: Option<String>,
    /// The offending source line, for the caret display.
    pub source_line: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "error: {}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(src) = &self.source_line {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            let col = (self.column as usize).saturating_sub(1);
            // Tabs keep their width so the caret lines up under them.
            let lead: String = src
                .chars()
                .take(col)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{pad} |\n{num} | {src}\n{pad} | {lead}^")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

/// Damerau-free Levenshtein distance; the inputs are short key names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The valid word closest to a misspelt one, if any is close enough to be
/// a plausible typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(closest("stepz", &["steps", "name"]), Some("steps"));
        assert_eq!(closest("namespace", &["namespaces"]), Some("namespaces"));
        assert_eq!(closest("zzzzzz", &["steps", "name"]), None);
    }

    #[test]
    fn renders_caret_under_column() {
        let d = Diagnostic {
            file: "a.yaml".into(),
            line: 3,
            column: 3,
            message: "unknown key `stepz`".into(),
            help: Some("did you mean `steps`?".into()),
            source_line: Some("  stepz: []".into()),
        };
        let s = d.to_string();
        assert!(s.contains("a.yaml:3:3"), "{s}");
        assert!(s.contains("3 |   stepz: []\n  |   ^"), "{s}");
    }
}
