//! `nslab import`: a lecture's terminal transcript (`root@vm:~# command`
//! lines, `## comment` headings, output after each command) becomes a
//! scenario that replays the commands and checks the recorded output.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: Option<String>,
    pub command: String,
    pub output: Vec<String>,
}

/// A line's shell prompt and what follows it: `root@vm: ~# ip link`.
fn split_prompt(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let at = t.find('@')?;
    // A user or host name: not empty, letters, digits and `_-.`.
    let name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    };
    if !name(&t[..at]) {
        return None;
    }
    let rest = &t[at + 1..];
    let colon = rest.find(':')?;
    if !name(&rest[..colon]) {
        return None;
    }
    let after = &rest[colon + 1..];
    let end = after.find(['#', '$'])?;
    // The working directory between ':' and the prompt sign.
    if after[..end].trim().contains(char::is_whitespace) {
        return None;
    }
    Some(after[end + 1..].trim())
}

/// Reads the commands of a transcript. In a Markdown file only fenced code
/// blocks are read.
pub fn parse(text: &str) -> Vec<Command> {
    let fenced = text.lines().any(|l| l.trim_start().starts_with("```"));
    let mut inside = !fenced;
    let mut out: Vec<Command> = Vec::new();
    let mut pending_name: Option<String> = None;
    let mut in_output = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            if fenced {
                inside = !inside;
            }
            in_output = false;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(c) = line.trim_start().strip_prefix("##") {
            pending_name = Some(c.trim().to_owned()).filter(|c| !c.is_empty());
            in_output = false;
            continue;
        }
        if let Some(cmd) = split_prompt(line) {
            if !cmd.is_empty() {
                out.push(Command {
                    name: pending_name.take(),
                    command: cmd.to_owned(),
                    output: Vec::new(),
                });
                in_output = true;
            }
            continue;
        }
        if in_output && !line.trim().is_empty() {
            out.last_mut()
                .expect("output follows a command")
                .output
                .push(line.trim_end().to_owned());
        }
    }
    out
}

fn is_mac(t: &str) -> bool {
    let parts: Vec<&str> = t.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// One token of an output line as a pattern: volatile parts (MAC addresses,
/// numbers, an interface's `@ifN` suffix) generalised, the rest literal.
fn token_pattern(t: &str) -> (String, bool) {
    if is_mac(t) {
        return ("[0-9a-f]{2}(:[0-9a-f]{2}){5}".into(), true);
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        return (r"\d+".into(), true);
    }
    if let Some(n) = t
        .strip_suffix(':')
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty())
    {
        let _ = n;
        return (r"\d+:".into(), true);
    }
    // `enp0s3:` as `ip link` prints it, which for a veth stand-in reads
    // `enp0s3@if3:`.
    if let Some(name) = t.strip_suffix(':')
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
    {
        return (format!("{}(@\\S+)?:", regex::escape(name)), true);
    }
    (regex::escape(t), false)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    Contains(String),
    Matches(String),
}

/// What a recorded output line lets us expect of the real one.
pub fn expectation(line: &str) -> Option<Expectation> {
    // A transcript elides with "...": keep what came before.
    let (body, elided) = match line.trim_end().strip_suffix("...") {
        Some(b) => (b, true),
        None => (line.trim_end(), false),
    };
    let tokens: Vec<&str> = body.split_whitespace().collect();
    if tokens.is_empty() {
        return None;
    }
    let pats: Vec<(String, bool)> = tokens.iter().map(|t| token_pattern(t)).collect();
    let volatile = pats.iter().any(|(_, v)| *v);
    let spaced = body.trim().contains("  ");
    if !volatile && !spaced && !elided {
        return Some(Expectation::Contains(body.trim().to_owned()));
    }
    // Tokens alone on a line are too weak to check; say nothing about it.
    if pats.iter().all(|(_, v)| *v) {
        return None;
    }
    let mut re = String::from(r"^\s*");
    re.push_str(
        &pats
            .iter()
            .map(|(p, _)| p.as_str())
            .collect::<Vec<_>>()
            .join(r"\s+"),
    );
    Some(Expectation::Matches(re))
}

/// Interface names on the lecturer's machine that a lab does not have.
fn physical_interface(word: &str) -> bool {
    ["en", "eth", "wl", "ww"]
        .iter()
        .any(|p| word.starts_with(p))
        && word.len() > 2
        && word.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Programs a command runs, for `requires.commands`: its first word, and
/// the command after `ip netns exec NAME`.
fn programs(cmd: &str) -> Vec<String> {
    let w: Vec<&str> = cmd.split_whitespace().collect();
    let mut out = Vec::new();
    if let Some(first) = w.first() {
        out.push((*first).to_owned());
    }
    if w.len() > 4 && w[0] == "ip" && w[1] == "netns" && w[2] == "exec" {
        out.push(w[4].to_owned());
    }
    out
}

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "imported".into()
    } else {
        out
    }
}

/// The scenario, as YAML text with comments.
pub fn to_scenario(name: &str, source: &str, commands: &[Command]) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "# Imported by `nslab import` from {source}.");
    let _ = writeln!(
        y,
        "# Expectations come from the recorded output: stable lines as `contains`,"
    );
    let _ = writeln!(
        y,
        "# lines with volatile parts (addresses, indexes, counts) as `matches`."
    );
    let _ = writeln!(y, "name: {}", slug(name));
    let _ = writeln!(y, "title: {}", q(&format!("Replay of {source}")));
    let mut reqs: Vec<String> = commands.iter().flat_map(|c| programs(&c.command)).collect();
    reqs.sort();
    reqs.dedup();
    reqs.retain(|p| {
        p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    });
    if !reqs.is_empty() {
        let _ = writeln!(y, "requires:\n  commands: [{}]", reqs.join(", "));
    }
    let _ = writeln!(y, "steps:");
    let mut made: Vec<String> = Vec::new();
    for c in commands {
        let words: Vec<&str> = c.command.split_whitespace().collect();
        // Interfaces the transcript creates are not physical.
        if words.len() > 3 && words[0] == "ip" && words[1] == "link" && words[2] == "add" {
            made.push(words[3].to_owned());
        }
        let uses_phys = words
            .windows(2)
            .filter(|w| w[0] == "set" || w[0] == "dev" || w[0] == "link")
            .map(|w| w[1])
            .chain(words.iter().copied().filter(|w| physical_interface(w)))
            .find(|w| physical_interface(w) && !made.iter().any(|m| m == w))
            .map(str::to_owned);
        if let Some(phys) = uses_phys {
            let _ = writeln!(
                y,
                "  # {phys} is a physical interface on the machine the transcript was taken on;"
            );
            let _ = writeln!(
                y,
                "  # a lab has none, so one end of a veth pair stands in for it."
            );
            let _ = writeln!(
                y,
                "  - name: {}",
                q(&format!("A stand-in for the physical interface {phys}"))
            );
            let _ = writeln!(
                y,
                "    run: {}",
                q(&format!(
                    "ip link add {phys} type veth peer name {}-peer",
                    &phys[..phys.len().min(10)]
                ))
            );
            made.push(phys);
        }
        if let Some(n) = &c.name {
            let _ = writeln!(y, "  - name: {}", q(n));
            let _ = writeln!(y, "    run: {}", q(&c.command));
        } else {
            let _ = writeln!(y, "  - run: {}", q(&c.command));
        }
        let exps: Vec<Expectation> = c.output.iter().filter_map(|l| expectation(l)).collect();
        let contains: Vec<&String> = exps
            .iter()
            .filter_map(|e| {
                if let Expectation::Contains(s) = e {
                    Some(s)
                } else {
                    None
                }
            })
            .collect();
        let matches: Vec<&String> = exps
            .iter()
            .filter_map(|e| {
                if let Expectation::Matches(s) = e {
                    Some(s)
                } else {
                    None
                }
            })
            .collect();
        if contains.is_empty() && matches.is_empty() {
            continue;
        }
        let _ = writeln!(y, "    expect:\n      stdout:");
        if !contains.is_empty() {
            let _ = writeln!(
                y,
                "        contains: [{}]",
                contains.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
            );
        }
        // One regular expression per line would need one key each; the
        // format allows one `matches`, so the lines are joined in order.
        if !matches.is_empty() {
            let joined = matches
                .iter()
                .map(|m| format!("(?:{})", m.trim_start_matches('^')))
                .collect::<Vec<_>>()
                .join(r"[\s\S]*?^\s*");
            let _ = writeln!(
                y,
                "        matches: {}",
                q(&format!("^{}", joined.replacen(r"(?:\s*", "(?:", 1)))
            );
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts() {
        assert_eq!(
            split_prompt("root@vm: ~# ip netns add x"),
            Some("ip netns add x")
        );
        assert_eq!(split_prompt("root@linux:~$ ls"), Some("ls"));
        assert_eq!(split_prompt("Chain INPUT (policy ACCEPT)"), None);
        assert_eq!(
            split_prompt("    link/ether 08:00:27:83:0a:55 brd ff"),
            None
        );
    }

    #[test]
    fn commands_names_and_output() {
        let t = "intro\n```bash\n## Make it\nroot@vm: ~# ip netns add n\n\n## List\nroot@vm: ~# iptables -L INPUT\nChain INPUT (policy ACCEPT)\ntarget    prot opt source    destination\n```\nprose\n";
        let c = parse(t);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name.as_deref(), Some("Make it"));
        assert!(c[0].output.is_empty());
        assert_eq!(c[1].output.len(), 2);
    }

    #[test]
    fn volatile_lines_become_patterns() {
        assert_eq!(
            expectation("Chain INPUT (policy DROP)"),
            Some(Expectation::Contains("Chain INPUT (policy DROP)".into()))
        );
        let Some(Expectation::Matches(m)) = expectation("target    prot opt source    destination")
        else {
            panic!()
        };
        assert_eq!(m, r"^\s*target\s+prot\s+opt\s+source\s+destination");
        let Some(Expectation::Matches(m)) = expectation(
            "2: enp0s3: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT...",
        ) else {
            panic!()
        };
        let re = regex::Regex::new(&m).unwrap();
        assert!(re.is_match("2: enp0s3@if3: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT group default qlen 1000"));
        let Some(Expectation::Matches(m)) =
            expectation("    link/ether 08:00:27:83:0a:55 brd ff:ff:ff:ff:ff:ff")
        else {
            panic!()
        };
        assert!(
            regex::Regex::new(&m)
                .unwrap()
                .is_match("    link/ether 6a:1b:00:22:33:44 brd ff:ff:ff:ff:ff:ff")
        );
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Confinement: Lab 1!"), "confinement-lab-1");
        assert_eq!(slug("???"), "imported");
    }
}
