//! Matchers and comparisons: pure functions from what was observed and what
//! was expected to check results. No I/O here.

use crate::report::CheckReport;
use crate::scenario::{Matchers, StatusExpect};
use serde_json::Value;

/// Longest text kept in a check's `actual`; the full output is in the
/// observation.
const ACTUAL_CAP: usize = 2000;

fn cap(s: &str) -> String {
    if s.len() <= ACTUAL_CAP {
        return s.to_owned();
    }
    let mut end = ACTUAL_CAP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len())
}

fn check(
    name: String,
    ctx: Option<&str>,
    expected: String,
    actual: String,
    passed: bool,
) -> CheckReport {
    CheckReport {
        check: name,
        in_: ctx.map(str::to_owned),
        expected,
        actual,
        passed,
    }
}

pub fn status(
    expect: &StatusExpect,
    exit: Option<i32>,
    signal: Option<&str>,
    ctx: &str,
) -> CheckReport {
    let actual = match (exit, signal) {
        (Some(c), _) => c.to_string(),
        (None, Some(s)) => format!("killed by {s}"),
        (None, None) => "no exit status".to_owned(),
    };
    let (expected, passed) = match expect {
        StatusExpect::Code(c) => (c.to_string(), exit == Some(*c)),
        StatusExpect::Nonzero => ("nonzero".to_owned(), exit.is_some_and(|c| c != 0)),
    };
    check("status".into(), Some(ctx), expected, actual, passed)
}

fn strip_nl(s: &str) -> &str {
    s.strip_suffix('\n').unwrap_or(s)
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list(items: &[Value]) -> String {
    items
        .iter()
        .map(|v| format!("{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Matchers over captured text (`stdout`, `stderr`).
pub fn text(subject: &str, m: &Matchers, text: &str, ctx: &str) -> Vec<CheckReport> {
    let mut out = Vec::new();
    let name = |k: &str| format!("{subject}.{k}");
    if let Some(x) = &m.equals {
        let x = text_of(x);
        let passed = strip_nl(text) == strip_nl(&x);
        out.push(check(
            name("equals"),
            Some(ctx),
            format!("{x:?}"),
            cap(&format!("{text:?}")),
            passed,
        ));
    }
    if let Some(x) = &m.not_equals {
        let x = text_of(x);
        let passed = strip_nl(text) != strip_nl(&x);
        out.push(check(
            name("not_equals"),
            Some(ctx),
            format!("not {x:?}"),
            cap(&format!("{text:?}")),
            passed,
        ));
    }
    if let Some(xs) = &m.contains {
        let missing: Vec<Value> = xs
            .iter()
            .filter(|x| !text.contains(&text_of(x)))
            .cloned()
            .collect();
        let actual = if missing.is_empty() {
            cap(text)
        } else {
            format!("missing {}; output: {}", list(&missing), cap(text))
        };
        out.push(check(
            name("contains"),
            Some(ctx),
            format!("contains {}", list(xs)),
            actual,
            missing.is_empty(),
        ));
    }
    if let Some(xs) = &m.not_contains {
        let found: Vec<Value> = xs
            .iter()
            .filter(|x| text.contains(&text_of(x)))
            .cloned()
            .collect();
        let actual = if found.is_empty() {
            cap(text)
        } else {
            format!("found {}; output: {}", list(&found), cap(text))
        };
        out.push(check(
            name("not_contains"),
            Some(ctx),
            format!("does not contain {}", list(xs)),
            actual,
            found.is_empty(),
        ));
    }
    if let Some(p) = &m.matches {
        out.push(check(
            name("matches"),
            Some(ctx),
            format!("matches /{}/", p.source),
            cap(text),
            p.regex.is_match(text),
        ));
    }
    if let Some(p) = &m.not_matches {
        out.push(check(
            name("not_matches"),
            Some(ctx),
            format!("does not match /{}/", p.source),
            cap(text),
            !p.regex.is_match(text),
        ));
    }
    out
}

/// JSON equality where 1 and 1.0 are the same number.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// An element matches a wanted item when equal, or, for a mapping, when the
/// element has all of its fields with equal values.
fn element_matches(element: &Value, wanted: &Value) -> bool {
    match (element, wanted) {
        (Value::Object(e), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| e.get(k).is_some_and(|x| json_eq(x, v))),
        _ => json_eq(element, wanted),
    }
}

/// `contains` over a value: list elements, map keys (or fields), substrings.
pub fn value_contains(value: &Value, wanted: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|e| element_matches(e, wanted)),
        Value::Object(map) => match wanted {
            Value::String(k) => map.contains_key(k),
            Value::Object(_) => element_matches(value, wanted),
            _ => false,
        },
        Value::String(s) => s.contains(&text_of(wanted)),
        _ => false,
    }
}

/// Matchers over a probe's JSON value.
pub fn value(m: &Matchers, v: &Value, ctx: &str) -> Vec<CheckReport> {
    let mut out = Vec::new();
    let actual = cap(&v.to_string());
    if let Some(x) = &m.equals {
        out.push(check(
            "value.equals".into(),
            Some(ctx),
            x.to_string(),
            actual.clone(),
            json_eq(v, x),
        ));
    }
    if let Some(x) = &m.not_equals {
        out.push(check(
            "value.not_equals".into(),
            Some(ctx),
            format!("not {x}"),
            actual.clone(),
            !json_eq(v, x),
        ));
    }
    if let Some(xs) = &m.contains {
        let ok = xs.iter().all(|x| value_contains(v, x));
        out.push(check(
            "value.contains".into(),
            Some(ctx),
            format!("contains {}", list(xs)),
            actual.clone(),
            ok,
        ));
    }
    if let Some(xs) = &m.not_contains {
        let ok = !xs.iter().any(|x| value_contains(v, x));
        out.push(check(
            "value.not_contains".into(),
            Some(ctx),
            format!("does not contain {}", list(xs)),
            actual.clone(),
            ok,
        ));
    }
    let t = text_of(v);
    if let Some(p) = &m.matches {
        out.push(check(
            "value.matches".into(),
            Some(ctx),
            format!("matches /{}/", p.source),
            actual.clone(),
            p.regex.is_match(&t),
        ));
    }
    if let Some(p) = &m.not_matches {
        out.push(check(
            "value.not_matches".into(),
            Some(ctx),
            format!("does not match /{}/", p.source),
            actual,
            !p.regex.is_match(&t),
        ));
    }
    out
}

/// `differ`: every two contexts saw different values; `same`: all equal.
pub fn compare(values: &[(String, Value)], differ: bool) -> CheckReport {
    let actual = values
        .iter()
        .map(|(_, v)| cap(&v.to_string()))
        .collect::<Vec<_>>()
        .join(" / ");
    let passed = if differ {
        values
            .iter()
            .enumerate()
            .all(|(i, (_, a))| values[i + 1..].iter().all(|(_, b)| !json_eq(a, b)))
    } else {
        values.windows(2).all(|w| json_eq(&w[0].1, &w[1].1))
    };
    let (name, expected) = if differ {
        ("differ", "different values")
    } else {
        ("same", "the same value")
    };
    check(name.into(), None, expected.into(), actual, passed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Pattern;
    use serde_json::json;

    fn m() -> Matchers {
        Matchers::default()
    }

    fn re(s: &str) -> Pattern {
        Pattern {
            source: s.into(),
            regex: regex::RegexBuilder::new(s)
                .multi_line(true)
                .build()
                .unwrap(),
        }
    }

    #[test]
    fn text_equals_ignores_one_trailing_newline() {
        let mut x = m();
        x.equals = Some(json!("box"));
        assert!(text("stdout", &x, "box\n", "host")[0].passed);
        assert!(!text("stdout", &x, "box\n\n", "host")[0].passed);
        x.equals = Some(json!(0));
        assert!(text("stdout", &x, "0\n", "host")[0].passed);
    }

    #[test]
    fn text_contains_each_and_not_contains_any() {
        let mut x = m();
        x.contains = Some(vec![json!("lo"), json!("enp0s3")]);
        assert!(text("stdout", &x, "1: lo\n2: enp0s3@if3", "c")[0].passed);
        let r = &text("stdout", &x, "1: lo", "c")[0];
        assert!(!r.passed && r.actual.contains("missing \"enp0s3\""));
        let mut y = m();
        y.not_contains = Some(vec![json!("enp0s3:"), json!("x")]);
        assert!(text("stdout", &y, "1: lo", "c")[0].passed);
        assert!(!text("stdout", &y, "enp0s3: up", "c")[0].passed);
    }

    #[test]
    fn regex_is_multiline() {
        let mut x = m();
        x.matches = Some(re("^policy DROP$"));
        assert!(text("stdout", &x, "Chain\npolicy DROP\n", "c")[0].passed);
        x.matches = None;
        x.not_matches = Some(re("^DROP"));
        assert!(text("stdout", &x, "policy DROP", "c")[0].passed);
    }

    #[test]
    fn value_contains_elements_fields_and_keys() {
        let procs = json!([{"pid": 1, "command": "nslab-init"}, {"pid": 7, "command": "sleep"}]);
        assert!(value_contains(&procs, &json!({"pid": 1})));
        assert!(value_contains(
            &procs,
            &json!({"pid": 1, "command": "nslab-init"})
        ));
        assert!(!value_contains(
            &procs,
            &json!({"pid": 1, "command": "sleep"})
        ));
        assert!(value_contains(&json!(["lo", "eth0"]), &json!("eth0")));
        assert!(value_contains(&json!({"net": 1, "uts": 2}), &json!("uts")));
        assert!(!value_contains(&json!({"net": 1}), &json!("pid")));
        assert!(value_contains(&json!("/sandbox/box"), &json!("box")));
    }

    #[test]
    fn value_matchers_report_json() {
        let mut x = m();
        x.equals = Some(json!(1));
        let r = value(&x, &json!(1.0), "box");
        assert!(r[0].passed);
        x.equals = Some(json!("a"));
        let r = value(&x, &json!(2), "box");
        assert!(!r[0].passed);
        assert_eq!(
            (r[0].expected.as_str(), r[0].actual.as_str()),
            ("\"a\"", "2")
        );
        let mut y = m();
        y.matches = Some(re("^nslab-"));
        assert!(
            value(&y, &json!("nslab-init"), "c")[0].passed,
            "strings are matched unquoted"
        );
        y.matches = Some(re("\"pid\":1"));
        assert!(value(&y, &json!({"pid": 1}), "c")[0].passed);
    }

    #[test]
    fn differ_needs_every_pair_different() {
        let v =
            |a: Value, b: Value, c: Value| vec![("a".into(), a), ("b".into(), b), ("c".into(), c)];
        assert!(compare(&v(json!(1), json!(2), json!(3)), true).passed);
        assert!(!compare(&v(json!(1), json!(2), json!(1)), true).passed);
        assert!(compare(&v(json!(1), json!(1), json!(1)), false).passed);
        assert!(!compare(&v(json!(1), json!(1), json!(2)), false).passed);
    }

    #[test]
    fn status_nonzero_and_signals() {
        assert!(status(&StatusExpect::Nonzero, Some(3), None, "h").passed);
        assert!(!status(&StatusExpect::Nonzero, Some(0), None, "h").passed);
        let r = status(&StatusExpect::Code(0), None, Some("SIGKILL"), "h");
        assert!(!r.passed && r.actual == "killed by SIGKILL");
    }
}
