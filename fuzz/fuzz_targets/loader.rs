//! The scenario loader and validator on arbitrary input: it may refuse,
//! never panic, and whatever it accepts must render its diagnostics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match nslab::scenario::load_str("fuzz.yaml", Path::new("fuzz.yaml"), text) {
        Ok(s) => {
            // An accepted scenario plans without panicking, too.
            let _ = s.namespaces();
            for step in &s.steps {
                let _ = step.label();
            }
        }
        Err(diags) => {
            assert!(!diags.is_empty());
            for d in diags {
                let _ = d.to_string();
            }
        }
    }
});
