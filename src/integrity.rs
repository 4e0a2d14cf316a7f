//! The real machine's state before and after a run. A lab that leaked onto
//! the machine fails the run, whatever its scenarios said.

use std::collections::BTreeMap;

pub type Snapshot = BTreeMap<&'static str, Vec<String>>;

pub const CHECKED: [&str; 6] = [
    "hostname",
    "interfaces",
    "netns",
    "firewall",
    "mounts",
    "ipc",
];

fn lines(path: &str, skip: usize) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().skip(skip).map(str::to_owned).collect())
        .unwrap_or_default()
}

pub fn snapshot() -> Snapshot {
    let mut s = Snapshot::new();
    s.insert(
        "hostname",
        vec![
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ],
    );
    s.insert(
        "interfaces",
        lines("/proc/self/net/dev", 2)
            .iter()
            .filter_map(|l| l.split(':').next())
            .map(|n| n.trim().to_owned())
            .collect(),
    );
    let mut netns: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    netns.sort();
    s.insert("netns", netns);
    s.insert("firewall", crate::probe::firewall_snapshot());
    // Mount ids and the mount points, not the options: options like
    // relatime change on their own on some filesystems.
    s.insert(
        "mounts",
        lines("/proc/self/mountinfo", 0)
            .iter()
            .map(|l| l.split(' ').take(5).collect::<Vec<_>>().join(" "))
            .collect(),
    );
    let mut ipc = Vec::new();
    for f in ["msg", "shm", "sem"] {
        ipc.extend(
            lines(&format!("/proc/sysvipc/{f}"), 1)
                .into_iter()
                .map(|l| {
                    let key_id: Vec<&str> = l.split_whitespace().take(2).collect();
                    format!("{f} {}", key_id.join(" "))
                }),
        );
    }
    s.insert("ipc", ipc);
    s
}

/// Human-readable differences, one per changed aspect.
pub fn differences(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for key in CHECKED {
        let (b, a) = (&before[key], &after[key]);
        if b == a {
            continue;
        }
        let added: Vec<&String> = a.iter().filter(|x| !b.contains(x)).collect();
        let removed: Vec<&String> = b.iter().filter(|x| !a.contains(x)).collect();
        let mut parts = Vec::new();
        if !added.is_empty() {
            parts.push(format!(
                "added {}",
                added
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !removed.is_empty() {
            parts.push(format!(
                "removed {}",
                removed
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if parts.is_empty() {
            parts.push("changed order".into());
        }
        out.push(format!("{key}: {}", parts.join("; ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_added_and_removed() {
        let mut a = snapshot();
        let b = a.clone();
        assert!(differences(&b, &a).is_empty());
        a.get_mut("netns").unwrap().push("mynetns".into());
        let d = differences(&b, &a);
        assert_eq!(d, vec!["netns: added \"mynetns\"".to_owned()]);
    }
}
