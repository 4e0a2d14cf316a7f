use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: i32,
    pub ppid: i32,
    pub sid: i32,
    pub zombie: bool,
    pub comm: String,
}

/// Parses /proc/PID/stat. The command name may itself hold spaces and
/// parentheses, so fields are counted from the last ')'.
pub fn parse_stat(s: &str) -> Option<ProcEntry> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let pid = s[..open].trim().parse().ok()?;
    let comm = s[open + 1..close].to_owned();
    let rest: Vec<&str> = s[close + 1..].split_whitespace().collect();
    Some(ProcEntry {
        pid,
        zombie: *rest.first()? == "Z",
        ppid: rest.get(1)?.parse().ok()?,
        sid: rest.get(3)?.parse().ok()?,
        comm,
    })
}

/// Every process visible in this context's /proc, by pid.
pub fn proc_table() -> Vec<ProcEntry> {
    let mut out: Vec<ProcEntry> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

pub fn take() -> Result<Value, String> {
    let table = proc_table();
    if table.is_empty() {
        return Err("no processes visible in /proc".into());
    }
    Ok(Value::Array(
        table
            .into_iter()
            .map(|p| json!({"pid": p.pid, "command": p.comm}))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name() {
        let e = parse_stat("42 (a b) c) S 1 42 42 0 -1 4194560").unwrap();
        assert_eq!(e.pid, 42);
        assert_eq!(e.comm, "a b) c");
        assert_eq!((e.ppid, e.sid, e.zombie), (1, 42, false));
        assert!(parse_stat("7 (x) Z 1 7 7").unwrap().zombie);
        assert_eq!(parse_stat("garbage"), None);
    }
}
