//! From text to a validated [`Scenario`]: every error in a file is collected
//! before anything runs, each with its line and column.

use super::diag::{Diagnostic, closest};
use super::model::*;
use super::yaml::{self, Node, Pos, pos};
use crate::ns::{Ns, NsSet};
use regex::RegexBuilder;
use serde_json::Value;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// Larger files are not scenarios; refusing them early keeps parsing cheap.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
const REGEX_SIZE_LIMIT: usize = 1 << 20;

const TOP_KEYS: &[&str] = &[
    "name",
    "title",
    "description",
    "tags",
    "requires",
    "privileged",
    "timeout",
    "host",
    "sandboxes",
    "links",
    "steps",
];
const SANDBOX_KEYS: &[&str] = &[
    "namespaces",
    "hostname",
    "uid_map",
    "gid_map",
    "time_offsets",
    "loopback",
    "limits",
];
const STEP_KEYS: &[&str] = &[
    "name",
    "run",
    "probe",
    "in",
    "expect",
    "timeout",
    "background",
    "always",
    "explain",
    "user",
];
const EXPECT_KEYS: &[&str] = &["status", "stdout", "stderr", "value", "differ", "same"];

pub fn load_file(path: &Path) -> Result<Scenario, Vec<Diagnostic>> {
    let shown = path.display().to_string();
    let whole_file = |message: String, help: Option<String>| {
        vec![Diagnostic {
            file: shown.clone(),
            line: 1,
            column: 1,
            message,
            help,
            source_line: None,
        }]
    };
    let meta =
        std::fs::metadata(path).map_err(|e| whole_file(format!("cannot read file: {e}"), None))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(whole_file(
            format!(
                "file is {} bytes; scenario files are limited to {} bytes",
                meta.len(),
                MAX_FILE_BYTES
            ),
            Some("split it into several scenarios".into()),
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| whole_file(format!("cannot read file: {e}"), None))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        whole_file(
            format!(
                "file is not valid UTF-8 (byte {})",
                e.utf8_error().valid_up_to()
            ),
            Some("save the file as UTF-8".into()),
        )
    })?;
    load_str(&shown, path, &text)
}

pub fn load_str(shown: &str, path: &Path, src: &str) -> Result<Scenario, Vec<Diagnostic>> {
    let mut l = Loader {
        file: shown,
        src,
        errors: Vec::new(),
        suggested: Vec::new(),
    };
    let root = match yaml::parse(src) {
        Ok(root) => root,
        Err(e) => {
            let p = e
                .location()
                .map(Pos::from)
                .unwrap_or(Pos { line: 1, column: 1 });
            let msg = e.without_snippet().to_string();
            let msg = clean_yaml_message(msg.lines().next().unwrap_or("invalid YAML"));
            l.err(p, format!("invalid YAML: {msg}"), None);
            return Err(l.errors);
        }
    };
    let scenario = l.scenario(&root, path);
    match scenario {
        Some(s) if l.errors.is_empty() => Ok(s),
        _ => {
            if l.errors.is_empty() {
                l.err(pos(&root), "invalid scenario".into(), None);
            }
            Err(l.errors)
        }
    }
}

type Fields<'n> = BTreeMap<String, (&'n Spanned<Node>, &'n Spanned<Node>)>;

struct Loader<'a> {
    file: &'a str,
    src: &'a str,
    errors: Vec<Diagnostic>,
    /// Keys already suggested for a typo, so "missing `steps`" is not said
    /// again about a file that wrote `stepz`.
    suggested: Vec<String>,
}

impl<'a> Loader<'a> {
    fn err(&mut self, p: Pos, message: String, help: Option<String>) {
        let p = if p.line == 0 {
            Pos { line: 1, column: 1 }
        } else {
            p
        };
        let source_line = self
            .src
            .lines()
            .nth(p.line as usize - 1)
            .map(|s| s.chars().take(200).collect());
        self.errors.push(Diagnostic {
            file: self.file.to_owned(),
            line: p.line,
            column: p.column,
            message: shorten_words(&message),
            help,
            source_line,
        });
    }

    fn type_err(&mut self, n: &Spanned<Node>, what: &str, expected: &str) {
        self.err(
            pos(n),
            format!("{what} must be {expected}, found {}", n.value.kind()),
            None,
        );
    }

    /// A mapping's entries by key; unknown keys are reported with the
    /// closest valid one.
    fn fields<'n>(
        &mut self,
        n: &'n Spanned<Node>,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let Node::Map(entries) = &n.value else {
            if what == "the scenario" && matches!(n.value, Node::Null) {
                self.err(
                    pos(n),
                    "the file has no scenario in it".into(),
                    Some("a scenario starts with `name:` and has `steps:`".into()),
                );
                return None;
            }
            self.type_err(n, what, "a mapping");
            return None;
        };
        let mut out = Fields::new();
        for (k, v) in entries {
            let Node::Str(key) = &k.value else {
                self.err(
                    pos(k),
                    format!("keys of {what} must be strings, found {}", k.value.kind()),
                    None,
                );
                continue;
            };
            if !allowed.contains(&key.as_str()) {
                let help = match closest(key, allowed) {
                    Some(c) => {
                        self.suggested.push(c.to_owned());
                        format!("did you mean `{c}`?")
                    }
                    None => format!("valid keys here: {}", allowed.join(", ")),
                };
                self.err(pos(k), format!("unknown key `{key}` in {what}"), Some(help));
                continue;
            }
            out.insert(key.clone(), (k, v));
        }
        Some(out)
    }

    fn string(&mut self, n: &Spanned<Node>, what: &str) -> Option<String> {
        match &n.value {
            Node::Str(s) => Some(s.clone()),
            Node::Int(_) | Node::Float(_) | Node::Bool(_) => Some(n.value.scalar_string()),
            _ => {
                self.type_err(n, what, "a string");
                None
            }
        }
    }

    fn bool(&mut self, n: &Spanned<Node>, what: &str) -> Option<bool> {
        match n.value {
            Node::Bool(b) => Some(b),
            _ => {
                self.type_err(n, what, "true or false");
                None
            }
        }
    }

    fn int(&mut self, n: &Spanned<Node>, what: &str) -> Option<i64> {
        match n.value {
            Node::Int(i) => Some(i),
            _ => {
                self.type_err(n, what, "an integer");
                None
            }
        }
    }

    fn string_list(&mut self, n: &Spanned<Node>, what: &str) -> Option<Vec<Spanned<String>>> {
        let items: Vec<&Spanned<Node>> = match &n.value {
            Node::Seq(items) => items.iter().collect(),
            v if v.is_scalar() && !matches!(v, Node::Null) => vec![n],
            _ => {
                self.type_err(n, what, "a string or a list of strings");
                return None;
            }
        };
        let mut out = Vec::new();
        for item in items {
            let s = self.string(item, what)?;
            out.push(Spanned {
                value: s,
                referenced: item.referenced,
                defined: item.defined,
            });
        }
        Some(out)
    }

    fn duration(&mut self, n: &Spanned<Node>, what: &str) -> Option<Duration> {
        let text = match &n.value {
            Node::Str(s) => s.clone(),
            Node::Int(i) => {
                self.err(
                    pos(n),
                    format!("{what} needs a unit"),
                    Some(format!("write `{i}s` for {i} seconds, or `{i}ms`")),
                );
                return None;
            }
            _ => {
                self.type_err(n, what, "a duration such as `500ms`, `10s` or `2m`");
                return None;
            }
        };
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(msg) => {
                self.err(
                    pos(n),
                    format!("{what}: {msg}"),
                    Some("durations look like `500ms`, `10s`, `2m` or `1h`".into()),
                );
                None
            }
        }
    }

    fn scenario(&mut self, root: &Spanned<Node>, path: &Path) -> Option<Scenario> {
        let f = self.fields(root, "the scenario", TOP_KEYS)?;
        for key in ["name", "steps"] {
            if !f.contains_key(key) && !self.suggested.iter().any(|k| k == key) {
                self.err(
                    pos(root),
                    format!("the scenario has no `{key}`"),
                    Some(
                        match key {
                            "name" => "add `name: my-scenario` (lowercase letters, digits, dashes)",
                            _ => "add `steps:` with at least one `run:` or `probe:` step",
                        }
                        .into(),
                    ),
                );
            }
        }
        let name = f.get("name").and_then(|(_, v)| {
            let s = self.string(v, "`name`")?;
            if !valid_name(&s, true) {
                self.err(
                    pos(v),
                    format!("`name` {s:?} is not a valid scenario id"),
                    Some("use lowercase letters, digits and dashes, starting with a letter or digit (`^[a-z0-9][a-z0-9-]*$`)".into()),
                );
            }
            Some(s)
        });
        let title = self.opt_string(&f, "title");
        let description = self.opt_string(&f, "description");
        let tags = match f.get("tags") {
            Some((_, v)) => self
                .string_list(v, "`tags`")
                .map(|t| t.into_iter().map(|s| s.value).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let requires = f
            .get("requires")
            .and_then(|(_, v)| self.requires(v))
            .unwrap_or_default();
        let privileged = f
            .get("privileged")
            .and_then(|(_, v)| self.bool(v, "`privileged`"))
            .unwrap_or(false);
        let timeout = f
            .get("timeout")
            .and_then(|(_, v)| self.duration(v, "`timeout`"))
            .unwrap_or(DEFAULT_SCENARIO_TIMEOUT);
        let hostname = f.get("host").and_then(|(_, v)| {
            let h = self.fields(v, "`host`", &["hostname"])?;
            let (_, hv) = h.get("hostname")?;
            let s = self.string(hv, "`host.hostname`")?;
            self.check_hostname(hv, &s);
            Some(s)
        });
        let sandboxes = f
            .get("sandboxes")
            .map(|(_, v)| self.sandboxes(v))
            .unwrap_or_default();
        let mut contexts: Vec<&str> = vec![HOST];
        contexts.extend(sandboxes.iter().map(|s| s.name.as_str()));
        let links = f
            .get("links")
            .map(|(_, v)| self.links(v, &contexts, &sandboxes))
            .unwrap_or_default();
        let steps = f
            .get("steps")
            .map(|(_, v)| self.steps(v, &contexts))
            .unwrap_or_default();

        Some(Scenario {
            file: path.to_path_buf(),
            name: name?,
            title,
            description,
            tags,
            requires,
            privileged,
            timeout,
            hostname,
            sandboxes,
            links,
            steps,
        })
    }

    fn opt_string(&mut self, f: &Fields, key: &str) -> Option<String> {
        f.get(key)
            .and_then(|(_, v)| self.string(v, &format!("`{key}`")))
    }

    fn check_hostname(&mut self, n: &Spanned<Node>, s: &str) {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !ok {
            self.err(
                pos(n),
                format!("hostname {s:?} is not valid"),
                Some("use 1 to 64 letters, digits, dashes and dots".into()),
            );
        }
    }

    fn requires(&mut self, n: &Spanned<Node>) -> Option<Requires> {
        let f = self.fields(n, "`requires`", &["commands", "kernel"])?;
        let mut r = Requires::default();
        if let Some((_, v)) = f.get("commands") {
            for c in self
                .string_list(v, "`requires.commands`")
                .unwrap_or_default()
            {
                if c.value.is_empty()
                    || c.value.contains('/')
                    || c.value.contains(char::is_whitespace)
                {
                    self.err(
                        c.referenced.into(),
                        format!("{:?} is not a command name", c.value),
                        Some("name a program found on PATH, such as `iptables`".into()),
                    );
                }
                r.commands.push(c.value);
            }
        }
        if let Some((_, v)) = f.get("kernel") {
            // `kernel: 5.10` is a float to YAML; the author meant the text.
            let text = self.raw_scalar(v);
            match text.as_deref().and_then(parse_kernel_version) {
                Some(k) => r.kernel = Some(k),
                None => self.err(
                    pos(v),
                    "`requires.kernel` must be a version such as \"5.6\"".into(),
                    Some("quote it: kernel: \"5.10\"".into()),
                ),
            }
        }
        Some(r)
    }

    /// The scalar exactly as written in the file.
    fn raw_scalar(&self, n: &Spanned<Node>) -> Option<String> {
        if let Node::Str(s) = &n.value {
            return Some(s.clone());
        }
        if !n.value.is_scalar() {
            return None;
        }
        let span = n.referenced.span();
        let start = span.byte_offset()? as usize;
        let len = span.byte_len()? as usize;
        self.src
            .get(start..start + len)
            .map(|s| s.trim().to_owned())
    }

    fn sandboxes(&mut self, n: &Spanned<Node>) -> Vec<Sandbox> {
        let Node::Map(entries) = &n.value else {
            self.type_err(
                n,
                "`sandboxes`",
                "a mapping from sandbox names to their settings",
            );
            return Vec::new();
        };
        let mut out: Vec<Sandbox> = Vec::new();
        for (k, v) in entries {
            let Some(name) = self.string(k, "a sandbox name") else {
                continue;
            };
            if name == HOST {
                self.err(
                    pos(k),
                    "`host` is reserved for the lab host and cannot name a sandbox".into(),
                    Some("choose another name, such as `box`".into()),
                );
                continue;
            }
            if !valid_name(&name, false) {
                self.err(
                    pos(k),
                    format!("sandbox name {name:?} is not valid"),
                    Some("use lowercase letters, digits and dashes, starting with a letter (`^[a-z][a-z0-9-]*$`)".into()),
                );
                continue;
            }
            if let Some(s) = self.sandbox(name, v) {
                out.push(s);
            }
        }
        out
    }

    fn sandbox(&mut self, name: String, n: &Spanned<Node>) -> Option<Sandbox> {
        let what = format!("sandbox `{name}`");
        let f = self.fields(n, &what, SANDBOX_KEYS)?;
        let mut ns = NsSet::empty();
        match f.get("namespaces") {
            None => {
                self.err(
                    pos(n),
                    format!("{what} has no `namespaces`"),
                    Some("add e.g. `namespaces: [net, uts]`, or `namespaces: all`".into()),
                );
                return None;
            }
            Some((_, v)) => {
                for w in self.string_list(v, "`namespaces`")? {
                    if w.value == "all" {
                        ns = ns.union(NsSet::all());
                    } else if let Some(x) = Ns::from_word(&w.value) {
                        ns = ns.with(x);
                    } else {
                        let help = match closest(&w.value, Ns::WORDS) {
                            Some(c) => format!("did you mean `{c}`?"),
                            None => format!("namespace words: {}", Ns::WORDS.join(", ")),
                        };
                        self.err(
                            w.referenced.into(),
                            format!("unknown namespace `{}`", w.value),
                            Some(help),
                        );
                    }
                }
                if ns.is_empty() && self.errors.is_empty() {
                    self.err(
                        pos(v),
                        format!("{what} lists no namespaces"),
                        Some("a sandbox without namespaces of its own is the lab host; name at least one".into()),
                    );
                }
            }
        }
        let needs = |l: &mut Self, key: &str, ns_needed: Ns| {
            if let Some((k, _)) = f.get(key)
                && !ns.contains(ns_needed)
            {
                l.err(
                    pos(k),
                    format!(
                        "`{key}` needs the `{ns_needed}` namespace, which {what} does not list"
                    ),
                    Some(format!("add `{ns_needed}` to its `namespaces`")),
                );
            }
        };
        needs(self, "hostname", Ns::Uts);
        needs(self, "uid_map", Ns::User);
        needs(self, "gid_map", Ns::User);
        needs(self, "time_offsets", Ns::Time);
        needs(self, "loopback", Ns::Net);

        let hostname = f.get("hostname").and_then(|(_, v)| {
            let s = self.string(v, "`hostname`")?;
            self.check_hostname(v, &s);
            Some(s)
        });
        let uid_map = f
            .get("uid_map")
            .and_then(|(_, v)| self.id_map(v, "`uid_map`"));
        let gid_map = f
            .get("gid_map")
            .and_then(|(_, v)| self.id_map(v, "`gid_map`"));
        let time_offsets = f.get("time_offsets").and_then(|(_, v)| {
            let t = self.fields(v, "`time_offsets`", &["monotonic", "boottime"])?;
            let mut o = TimeOffsets::default();
            if let Some((_, x)) = t.get("monotonic") {
                o.monotonic = self.offset(x, "`time_offsets.monotonic`")?;
            }
            if let Some((_, x)) = t.get("boottime") {
                o.boottime = self.offset(x, "`time_offsets.boottime`")?;
            }
            Some(o)
        });
        let loopback =
            f.get("loopback")
                .and_then(|(_, v)| match self.string(v, "`loopback`")?.as_str() {
                    "up" => Some(Loopback::Up),
                    "down" => Some(Loopback::Down),
                    other => {
                        self.err(
                            pos(v),
                            format!("`loopback` must be `up` or `down`, not {other:?}"),
                            None,
                        );
                        None
                    }
                });
        let limits = f
            .get("limits")
            .and_then(|(_, v)| self.limits(v))
            .unwrap_or_default();
        Some(Sandbox {
            name,
            namespaces: ns.with_implied(),
            hostname,
            uid_map,
            gid_map,
            time_offsets,
            loopback,
            limits,
        })
    }

    fn offset(&mut self, n: &Spanned<Node>, what: &str) -> Option<i64> {
        let v = self.int(n, what)?;
        // The kernel refuses offsets that would overflow its clocks; ten
        // thousand years is far past any demonstration.
        if v.unsigned_abs() > 10_000 * 365 * 86_400 {
            self.err(pos(n), format!("{what} is out of range"), None);
            return None;
        }
        Some(v)
    }

    fn id_map(&mut self, n: &Spanned<Node>, what: &str) -> Option<Vec<IdMapLine>> {
        let text = self.string(n, what)?;
        let mut lines = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let nums: Vec<Option<u32>> = line.split_whitespace().map(|x| x.parse().ok()).collect();
            match nums.as_slice() {
                [Some(i), Some(o), Some(c)] if *c > 0 => lines.push(IdMapLine {
                    inside: *i,
                    outside: *o,
                    count: *c,
                }),
                _ => {
                    self.err(
                        pos(n),
                        format!("{what} line {line:?} is not \"inside outside count\""),
                        Some("e.g. \"0 1000 1\": id 0 inside is 1000 outside, for 1 id".into()),
                    );
                    return None;
                }
            }
        }
        if lines.is_empty() || lines.len() > 340 {
            self.err(pos(n), format!("{what} needs 1 to 340 lines"), None);
            return None;
        }
        for (i, a) in lines.iter().enumerate() {
            for b in &lines[i + 1..] {
                let overlap = |x: u32, y: u32, c1: u32, c2: u32| {
                    (x as u64) < y as u64 + c2 as u64 && (y as u64) < x as u64 + c1 as u64
                };
                if overlap(a.inside, b.inside, a.count, b.count)
                    || overlap(a.outside, b.outside, a.count, b.count)
                {
                    self.err(pos(n), format!("{what} has overlapping ranges"), None);
                    return None;
                }
            }
        }
        Some(lines)
    }

    fn limits(&mut self, n: &Spanned<Node>) -> Option<Limits> {
        let f = self.fields(n, "`limits`", &["pids", "memory", "cpu"])?;
        let mut l = Limits::default();
        if let Some((_, v)) = f.get("pids") {
            match self.int(v, "`limits.pids`") {
                Some(p) if p > 0 => l.pids = Some(p as u64),
                Some(_) => self.err(pos(v), "`limits.pids` must be positive".into(), None),
                None => {}
            }
        }
        if let Some((_, v)) = f.get("memory") {
            let text = self.raw_scalar(v).unwrap_or_default();
            match parse_size(&text) {
                Some(b) if b >= 1024 * 1024 => l.memory = Some(b),
                _ => self.err(
                    pos(v),
                    format!("`limits.memory` {text:?} is not a size of at least 1M"),
                    Some("write e.g. `64M`, `1G`, or a number of bytes".into()),
                ),
            }
        }
        if let Some((_, v)) = f.get("cpu") {
            let c = match v.value {
                Node::Int(i) => Some(i as f64),
                Node::Float(x) => Some(x),
                _ => None,
            };
            match c {
                Some(c) if c > 0.0 && c <= 1024.0 => l.cpu = Some(c),
                _ => self.err(
                    pos(v),
                    "`limits.cpu` must be a number of CPUs greater than 0, such as 0.5".into(),
                    None,
                ),
            }
        }
        Some(l)
    }

    fn links(&mut self, n: &Spanned<Node>, contexts: &[&str], sandboxes: &[Sandbox]) -> Vec<Link> {
        let Node::Seq(items) = &n.value else {
            self.type_err(n, "`links`", "a list");
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut names_seen: HashSet<(String, String)> = HashSet::new();
        for item in items {
            let Some(f) = self.fields(item, "a link", &["between", "addresses", "names"]) else {
                continue;
            };
            let pair = |l: &mut Self, key: &str| -> Option<[Spanned<String>; 2]> {
                let (_, v) = f.get(key)?;
                let list = l.string_list(v, &format!("`{key}`"))?;
                match <[Spanned<String>; 2]>::try_from(list) {
                    Ok(p) => Some(p),
                    Err(_) => {
                        l.err(
                            pos(v),
                            format!("`{key}` needs exactly two entries, one per end"),
                            None,
                        );
                        None
                    }
                }
            };
            let Some(between) = pair(self, "between") else {
                if !f.contains_key("between") {
                    self.err(pos(item), "a link needs `between: [a, b]`".into(), None);
                }
                continue;
            };
            let mut ok = true;
            for end in &between {
                if !contexts.contains(&end.value.as_str()) {
                    self.unknown_context(end, contexts);
                    ok = false;
                }
            }
            if ok {
                let net_of = |c: &str| {
                    sandboxes
                        .iter()
                        .find(|s| s.name == c && s.namespaces.contains(Ns::Net))
                        .map(|s| s.name.clone())
                        .unwrap_or_else(|| HOST.to_owned())
                };
                if net_of(&between[0].value) == net_of(&between[1].value) {
                    self.err(
                        between[0].referenced.into(),
                        format!(
                            "`{}` and `{}` share a network namespace, so a link between them has nowhere to go",
                            between[0].value, between[1].value
                        ),
                        Some("give one of them `net` in its `namespaces`".into()),
                    );
                    ok = false;
                }
            }
            let addresses = pair(self, "addresses");
            if let Some(a) = &addresses {
                for x in a {
                    if parse_cidr(&x.value).is_none() {
                        self.err(
                            x.referenced.into(),
                            format!("{:?} is not an address with a prefix length", x.value),
                            Some("write e.g. 10.0.0.1/24 or fd00::1/64".into()),
                        );
                        ok = false;
                    }
                }
            }
            let names = pair(self, "names");
            if let Some(nm) = &names {
                for (x, ctx) in nm.iter().zip(&between) {
                    let valid = !x.value.is_empty()
                        && x.value.len() <= 15
                        && !x.value.contains(['/', ':'])
                        && !x.value.contains(char::is_whitespace);
                    if !valid {
                        self.err(
                            x.referenced.into(),
                            format!("{:?} is not a valid interface name", x.value),
                            Some("use 1 to 15 characters without '/', ':' or spaces".into()),
                        );
                        ok = false;
                    } else if !names_seen.insert((ctx.value.clone(), x.value.clone())) {
                        self.err(
                            x.referenced.into(),
                            format!("interface {:?} is named twice in `{}`", x.value, ctx.value),
                            None,
                        );
                        ok = false;
                    }
                }
            }
            if ok {
                out.push(Link {
                    between: between.map(|s| s.value),
                    addresses: addresses.map(|a| a.map(|s| s.value)),
                    names: names.map(|a| a.map(|s| s.value)),
                });
            }
        }
        out
    }

    fn unknown_context(&mut self, c: &Spanned<String>, contexts: &[&str]) {
        let help = match closest(&c.value, contexts) {
            Some(x) => format!("did you mean `{x}`?"),
            None => format!("contexts in this scenario: {}", contexts.join(", ")),
        };
        self.err(
            c.referenced.into(),
            format!(
                "`{}` names no context (neither `host` nor a sandbox)",
                c.value
            ),
            Some(help),
        );
    }

    fn steps(&mut self, n: &Spanned<Node>, contexts: &[&str]) -> Vec<Step> {
        let Node::Seq(items) = &n.value else {
            self.type_err(n, "`steps`", "a list");
            return Vec::new();
        };
        if items.is_empty() {
            self.err(
                pos(n),
                "`steps` is empty".into(),
                Some("add at least one `run:` or `probe:` step".into()),
            );
        }
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.step(i + 1, item, contexts))
            .collect()
    }

    fn step(&mut self, index: usize, n: &Spanned<Node>, contexts: &[&str]) -> Option<Step> {
        let what = format!("step {index}");
        let f = self.fields(n, &what, STEP_KEYS)?;
        let action = match (f.get("run"), f.get("probe")) {
            (Some(_), Some((k, _))) => {
                self.err(
                    pos(k),
                    format!("{what} has both `run` and `probe`"),
                    Some("a step does one thing: split it into two steps".into()),
                );
                return None;
            }
            (None, None) => {
                self.err(
                    pos(n),
                    format!("{what} has neither `run` nor `probe`"),
                    Some("add `run: <shell command>` or `probe: <name>`".into()),
                );
                return None;
            }
            (Some((_, v)), None) => {
                let cmd = self.string(v, "`run`")?;
                if cmd.trim().is_empty() {
                    self.err(pos(v), "`run` is empty".into(), None);
                    return None;
                }
                Action::Run(cmd)
            }
            (None, Some((_, v))) => Action::Probe(self.probe(v)?),
        };
        let contexts_named: Vec<String> = match f.get("in") {
            None => vec![HOST.to_owned()],
            Some((_, v)) => {
                let list = self.string_list(v, "`in`")?;
                if list.is_empty() {
                    self.err(pos(v), "`in` is empty".into(), None);
                    return None;
                }
                let mut seen = HashSet::new();
                for c in &list {
                    if !contexts.contains(&c.value.as_str()) {
                        self.unknown_context(c, contexts);
                    } else if !seen.insert(c.value.clone()) {
                        self.err(
                            c.referenced.into(),
                            format!("`{}` is listed twice in `in`", c.value),
                            None,
                        );
                    }
                }
                list.into_iter().map(|c| c.value).collect()
            }
        };
        let name = self.opt_string(&f, "name");
        let explain = self.opt_string(&f, "explain");
        let timeout = f
            .get("timeout")
            .and_then(|(_, v)| self.duration(v, "`timeout`"))
            .unwrap_or(DEFAULT_STEP_TIMEOUT);
        let background = f
            .get("background")
            .and_then(|(_, v)| self.bool(v, "`background`"))
            .unwrap_or(false);
        let always = f
            .get("always")
            .and_then(|(_, v)| self.bool(v, "`always`"))
            .unwrap_or(false);
        let user = f
            .get("user")
            .and_then(|(_, v)| match self.int(v, "`user`") {
                Some(u) if (0..=u32::MAX as i64 - 1).contains(&u) => Some(u as u32),
                Some(_) => {
                    self.err(
                        pos(v),
                        "`user` must be a uid from 0 to 4294967294".into(),
                        None,
                    );
                    None
                }
                None => None,
            });
        let is_run = matches!(action, Action::Run(_));
        if background {
            if !is_run {
                let (k, _) = f["background"];
                self.err(pos(k), "`background` is only for `run` steps".into(), None);
            }
            if let Some((k, _)) = f.get("expect") {
                self.err(
                    pos(k),
                    format!("{what} runs in the background, so it has no result to `expect`"),
                    Some(
                        "remove `expect`, or `background: true`, and check it in a later step"
                            .into(),
                    ),
                );
            }
        }
        let expect = match f.get("expect") {
            Some((_, v)) => self.expect(v, is_run, contexts_named.len())?,
            None => Expect {
                status: (is_run && !background).then_some(StatusExpect::Code(0)),
                ..Expect::default()
            },
        };
        Some(Step {
            index,
            line: pos(n).line,
            name,
            action,
            contexts: contexts_named,
            expect,
            timeout,
            background,
            always,
            explain,
            user,
        })
    }

    fn probe(&mut self, n: &Spanned<Node>) -> Option<Probe> {
        let (name_node, arg): (&Spanned<Node>, Option<&Spanned<Node>>) = match &n.value {
            Node::Map(entries) if entries.len() == 1 => (&entries[0].0, Some(&entries[0].1)),
            Node::Map(_) => {
                self.err(pos(n), "`probe` as a mapping takes exactly one probe, e.g. `probe: { namespace: net }`".into(), None);
                return None;
            }
            _ => (n, None),
        };
        let name = self.string(name_node, "`probe`")?;
        if !Probe::NAMES.contains(&name.as_str()) {
            let help = match closest(&name, Probe::NAMES) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("probes: {}", Probe::NAMES.join(", ")),
            };
            self.err(
                pos(name_node),
                format!("unknown probe `{name}`"),
                Some(help),
            );
            return None;
        }
        let needs_arg = matches!(name.as_str(), "namespace" | "reach");
        match (needs_arg, arg) {
            (true, None) => {
                let example = if name == "namespace" {
                    "{ namespace: net }"
                } else {
                    "{ reach: 10.0.0.2:80 }"
                };
                self.err(
                    pos(name_node),
                    format!("probe `{name}` needs an argument"),
                    Some(format!("write `probe: {example}`")),
                );
                None
            }
            (false, Some(a)) if !matches!(a.value, Node::Null) => {
                self.err(
                    pos(a),
                    format!("probe `{name}` takes no argument"),
                    Some(format!("write `probe: {name}`")),
                );
                None
            }
            (false, _) => Some(match name.as_str() {
                "hostname" => Probe::Hostname,
                "pid" => Probe::Pid,
                "processes" => Probe::Processes,
                "uid" => Probe::Uid,
                "gid" => Probe::Gid,
                "uid_map" => Probe::UidMap,
                "gid_map" => Probe::GidMap,
                "namespaces" => Probe::Namespaces,
                "interfaces" => Probe::Interfaces,
                "mounts" => Probe::Mounts,
                "ipc" => Probe::Ipc,
                "cgroup" => Probe::Cgroup,
                _ => Probe::Firewall,
            }),
            (true, Some(a)) => {
                let text = self.string(a, &format!("the argument of `{name}`"))?;
                if name == "namespace" {
                    match Ns::from_word(&text) {
                        Some(ns) => Some(Probe::Namespace(ns)),
                        None => {
                            let help = closest(&text, &Ns::WORDS[..10])
                                .map(|c| format!("did you mean `{c}`?"));
                            self.err(pos(a), format!("unknown namespace `{text}`"), help);
                            None
                        }
                    }
                } else if parse_host_port(&text).is_some() {
                    Some(Probe::Reach(text))
                } else {
                    self.err(
                        pos(a),
                        format!("`reach` needs ADDRESS:PORT, not {text:?}"),
                        Some("write e.g. 10.0.0.2:80 or [fd00::2]:80".into()),
                    );
                    None
                }
            }
        }
    }

    fn expect(&mut self, n: &Spanned<Node>, is_run: bool, n_contexts: usize) -> Option<Expect> {
        let f = self.fields(n, "`expect`", EXPECT_KEYS)?;
        let mut e = Expect::default();
        let only = |l: &mut Self, key: &str, ok: bool, why: &str| {
            if let Some((k, _)) = f.get(key)
                && !ok
            {
                l.err(pos(k), format!("`{key}` {why}"), None);
                return false;
            }
            true
        };
        let status_ok = only(
            self,
            "status",
            is_run,
            "is for `run` steps; a probe has no exit status",
        );
        let stdout_ok = only(
            self,
            "stdout",
            is_run,
            "is for `run` steps; check a probe with `value`",
        );
        let stderr_ok = only(
            self,
            "stderr",
            is_run,
            "is for `run` steps; check a probe with `value`",
        );
        let value_ok = only(
            self,
            "value",
            !is_run,
            "is for `probe` steps; check a command with `stdout`",
        );
        if let Some((_, v)) = f.get("status").filter(|_| status_ok) {
            e.status = match &v.value {
                Node::Int(i) if (0..=255).contains(i) => Some(StatusExpect::Code(*i as i32)),
                Node::Str(s) if s == "nonzero" => Some(StatusExpect::Nonzero),
                _ => {
                    self.err(
                        pos(v),
                        "`status` must be an exit status from 0 to 255, or `nonzero`".into(),
                        None,
                    );
                    None
                }
            };
        }
        if let Some((_, v)) = f.get("stdout").filter(|_| stdout_ok) {
            e.stdout = self.matchers(v, "`stdout`", true);
        }
        if let Some((_, v)) = f.get("stderr").filter(|_| stderr_ok) {
            e.stderr = self.matchers(v, "`stderr`", true);
        }
        if let Some((_, v)) = f.get("value").filter(|_| value_ok) {
            e.value = self.matchers(v, "`value`", false);
        }
        for key in ["differ", "same"] {
            if let Some((k, v)) = f.get(key) {
                let b = self.bool(v, &format!("`{key}`")).unwrap_or(false);
                if b && n_contexts < 2 {
                    self.err(
                        pos(k),
                        format!("`{key}` compares contexts, but this step runs in only one"),
                        Some("list two or more contexts in `in`, e.g. `in: [host, box]`".into()),
                    );
                }
                if key == "differ" {
                    e.differ = b
                } else {
                    e.same = b
                }
            }
        }
        if e.differ && e.same {
            let (k, _) = f["same"];
            self.err(pos(k), "`differ` and `same` cannot both hold".into(), None);
        }
        // A run step keeps its default status check unless it names another.
        if is_run && e.status.is_none() && !f.contains_key("status") {
            e.status = Some(StatusExpect::Code(0));
        }
        let checks_something = e.status.is_some()
            || e.stdout.is_some()
            || e.stderr.is_some()
            || e.value.is_some()
            || e.differ
            || e.same;
        if !checks_something && self.errors.is_empty() {
            self.err(
                pos(n),
                "this `expect` checks nothing".into(),
                Some("add a matcher such as `value: { equals: 1 }`, or `differ: true`; or remove `expect`".into()),
            );
        }
        Some(e)
    }

    fn matchers(&mut self, n: &Spanned<Node>, what: &str, text: bool) -> Option<Matchers> {
        // `stdout: "text"` is shorthand for `{ contains: "text" }`.
        if text && n.value.is_scalar() && !matches!(n.value, Node::Null) {
            return Some(Matchers {
                contains: Some(vec![Value::String(n.value.scalar_string())]),
                ..Matchers::default()
            });
        }
        let f = self.fields(n, what, Matchers::KEYS)?;
        if f.is_empty() && matches!(&n.value, Node::Map(e) if e.is_empty()) {
            self.err(
                pos(n),
                format!("{what} has no matcher, so it checks nothing"),
                Some(format!("matchers: {}", Matchers::KEYS.join(", "))),
            );
            return None;
        }
        let mut m = Matchers::default();
        let one = |l: &mut Self, v: &Spanned<Node>| -> Option<Value> {
            if text {
                if !v.value.is_scalar() || matches!(v.value, Node::Null) {
                    l.type_err(v, &format!("a matcher of {what}"), "text");
                    return None;
                }
                Some(Value::String(v.value.scalar_string()))
            } else {
                Some(v.value.to_json())
            }
        };
        let many = |l: &mut Self, v: &Spanned<Node>| -> Option<Vec<Value>> {
            match &v.value {
                Node::Seq(items) if !items.is_empty() => items.iter().map(|i| one(l, i)).collect(),
                Node::Seq(_) => {
                    l.err(pos(v), "an empty list checks nothing".into(), None);
                    None
                }
                _ => one(l, v).map(|x| vec![x]),
            }
        };
        for (key, (_, v)) in &f {
            match key.as_str() {
                "equals" => m.equals = one(self, v),
                "not_equals" => m.not_equals = one(self, v),
                "contains" => m.contains = many(self, v),
                "not_contains" => m.not_contains = many(self, v),
                "matches" => m.matches = self.pattern(v),
                _ => m.not_matches = self.pattern(v),
            }
        }
        Some(m)
    }

    fn pattern(&mut self, n: &Spanned<Node>) -> Option<Pattern> {
        let source = self.string(n, "a regular expression")?;
        match RegexBuilder::new(&source)
            .multi_line(true)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
        {
            Ok(regex) => Some(Pattern { source, regex }),
            Err(e) => {
                let detail = e.to_string();
                let last = detail.lines().last().unwrap_or("").trim();
                let last = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                self.err(
                    pos(n),
                    format!("invalid regular expression {source:?}: {last}"),
                    None,
                );
                None
            }
        }
    }
}

/// Messages quote what the file says; a 100 000-character value quoted in
/// full helps nobody.
fn shorten_words(m: &str) -> String {
    const MAX: usize = 60;
    m.split(' ')
        .map(|w| {
            if w.chars().count() <= MAX {
                w.to_owned()
            } else {
                let head: String = w.chars().take(MAX - 1).collect();
                format!("{head}… ({} characters)", w.chars().count())
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The parser's messages end with a location we already show, and some
/// carry advice for programmers using the library, not for authors.
fn clean_yaml_message(m: &str) -> String {
    if let Some(rest) = m.split("budget breached: ").nth(1) {
        let what = rest.split([' ', '{']).next().unwrap_or("");
        let limit = match what {
            "Depth" => "nesting deeper than 24 levels",
            "Nodes" => "more than 100000 values (after expanding aliases)",
            "Aliases" => "more than 1000 aliases",
            "Anchors" => "more than 1000 anchors",
            "Events" => "more than 200000 parser events",
            _ => "more than a scenario needs",
        };
        return format!("the file is too large to be a scenario: {limit}");
    }
    if m.contains("multiple YAML documents") {
        return "a scenario file holds one YAML document; put each scenario in a file of its own"
            .into();
    }
    let mut m = m.to_owned();
    if let Some(i) = m.find(", set DuplicateKeyPolicy") {
        let rest = &m[i..];
        let keep = rest.find(" at line ").map(|j| &rest[j..]).unwrap_or("");
        m = format!("{}{}", &m[..i], keep);
    }
    if let Some(i) = m.rfind(" at line ") {
        m.truncate(i);
    }
    m
}

fn valid_name(s: &str, scenario: bool) -> bool {
    let mut chars = s.chars();
    let first_ok = match chars.next() {
        Some(c) if scenario => c.is_ascii_lowercase() || c.is_ascii_digit(),
        Some(c) => c.is_ascii_lowercase(),
        None => false,
    };
    first_ok
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{t:?} has no unit (ms, s, m or h)"))?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{t:?} does not start with a number"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {t:?}")),
    };
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("{t:?} must be longer than zero"));
    }
    if secs > 86_400.0 {
        return Err(format!("{t:?} is longer than a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn parse_kernel_version(s: &str) -> Option<(u32, u32, u32)> {
    let core = s
        .trim()
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut parts = core.split('.').filter(|p| !p.is_empty());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map(|p| p.parse().ok()).unwrap_or(Some(0))?;
    let patch = parts.next().map(|p| p.parse().ok()).unwrap_or(Some(0))?;
    Some((major, minor, patch))
}

/// `64M`, `1G`, `512K`, `1048576`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, len) = s.split_once('/')?;
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

pub fn parse_host_port(s: &str) -> Option<std::net::SocketAddr> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("5.6"), Some((5, 6, 0)));
        assert_eq!(parse_kernel_version("6.18.44-fc-v1272"), Some((6, 18, 44)));
        assert_eq!(parse_kernel_version("x"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("lots"), None);
    }
}

#[cfg(test)]
mod corpus {
    /// The fuzzer's corpus (`fuzz/corpus/loader`), replayed on every test
    /// run: whatever the inputs, the loader refuses or accepts, never panics.
    #[test]
    fn fuzz_corpus_never_panics() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/loader");
        let mut n = 0;
        for e in std::fs::read_dir(&dir)
            .expect("the corpus is in the repository")
            .flatten()
        {
            let bytes = std::fs::read(e.path()).unwrap();
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = super::load_str("c.yaml", std::path::Path::new("c.yaml"), text);
            }
            n += 1;
        }
        assert!(n > 100, "only {n} corpus files");
    }
}
