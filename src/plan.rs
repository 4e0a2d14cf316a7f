//! Pure planning: from a scenario and the machine's facts to what the lab
//! must look like, or the reason the scenario cannot run here.

use crate::env::{Machine, package_for};
use crate::ns::{Ns, NsSet};
use crate::sandbox::{LabIdMaps, LabSpec, SandboxSpec};
use crate::scenario::{IdMapLine, Scenario};

/// What the machine offers, gathered by the caller so this stays pure.
#[derive(Debug, Clone)]
pub struct Offer {
    pub machine: Machine,
    /// Commands from `requires.commands` that are not on PATH.
    pub missing_commands: Vec<String>,
    /// Namespace types this kernel lacks.
    pub missing_namespaces: Vec<Ns>,
    /// First host id of a root-run lab's 65536-id range.
    pub id_base: u32,
    /// For an unprivileged user: its /etc/subuid and /etc/subgid ranges,
    /// when newuidmap and newgidmap are there to grant them.
    pub subids: Option<SubIds>,
}

/// (first id, count) of a user's subordinate uid and gid ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubIds {
    pub uid: (u32, u32),
    pub gid: (u32, u32),
}

pub const LAB_ID_COUNT: u32 = 65536;

#[derive(Debug, Clone)]
pub enum Plan {
    Run(LabSpec),
    Skip(String),
}

fn fits(lines: &[IdMapLine], available: u32) -> bool {
    lines
        .iter()
        .all(|l| l.outside as u64 + l.count as u64 <= available as u64)
}

/// `control`: every sandbox shares all namespaces with the lab host.
pub fn plan(s: &Scenario, offer: &Offer, control: bool) -> Plan {
    if let Some(cmd) = offer.missing_commands.first() {
        let how = match package_for(cmd) {
            Some(pkg) => format!("install it (Debian/Ubuntu: apt-get install {pkg})"),
            None => "install it or put it on PATH".to_owned(),
        };
        let all = offer.missing_commands.join(", ");
        return Plan::Skip(format!(
            "missing command{} {all}: {how}",
            if offer.missing_commands.len() > 1 {
                "s"
            } else {
                ""
            }
        ));
    }
    if let Some(k) = s.requires.kernel
        && offer.machine.kernel_version < k
    {
        return Plan::Skip(format!(
            "needs Linux {}.{}.{} or later; this machine runs {}: run it on a newer kernel",
            k.0, k.1, k.2, offer.machine.kernel
        ));
    }
    let wanted = s.namespaces();
    if let Some(ns) = offer
        .missing_namespaces
        .iter()
        .find(|n| wanted.contains(**n))
    {
        return Plan::Skip(format!(
            "this kernel has no {ns} namespaces (no /proc/self/ns/{}): run it on a kernel built with them",
            ns.proc_name()
        ));
    }
    let root = offer.machine.is_root();
    if s.privileged && !root {
        return Plan::Skip(
            "`privileged: true` needs real root: run nslab as root (e.g. with sudo)".into(),
        );
    }
    let user = if s.privileged {
        None
    } else if root {
        let m = format!("0 {} {LAB_ID_COUNT}\n", offer.id_base);
        Some(LabIdMaps {
            uid_map: m.clone(),
            gid_map: m,
            deny_setgroups: false,
            use_helpers: false,
        })
    } else if let Some(sub) = offer.subids {
        // Root inside is the user; ids from 1 on are its subordinate range.
        Some(LabIdMaps {
            uid_map: format!("0 {} 1\n1 {} {}\n", offer.machine.uid, sub.uid.0, sub.uid.1),
            gid_map: format!("0 {} 1\n1 {} {}\n", offer.machine.gid, sub.gid.0, sub.gid.1),
            deny_setgroups: false,
            use_helpers: true,
        })
    } else {
        Some(LabIdMaps {
            uid_map: format!("0 {} 1\n", offer.machine.uid),
            gid_map: format!("0 {} 1\n", offer.machine.gid),
            deny_setgroups: true,
            use_helpers: false,
        })
    };
    let available = match (root, offer.subids) {
        (true, _) => LAB_ID_COUNT,
        (false, Some(sub)) => 1 + sub.uid.1.min(sub.gid.1),
        (false, None) => 1,
    };
    let mut sandboxes = Vec::new();
    for sb in &s.sandboxes {
        if !control && sb.namespaces.contains(Ns::User) {
            let (u, g) = (sb.effective_uid_map(), sb.effective_gid_map());
            if !(s.privileged || fits(&u, available) && fits(&g, available)) {
                let fix = if offer.subids.is_some() {
                    "run nslab as root, or give your user a larger range in /etc/subuid and /etc/subgid"
                } else {
                    "run nslab as root, or give your user a range in /etc/subuid and /etc/subgid and install newuidmap and newgidmap (Debian: apt-get install uidmap)"
                };
                return Plan::Skip(format!(
                    "sandbox `{}` maps lab ids beyond the {available} a rootless lab has here: {fix}",
                    sb.name
                ));
            }
        }
        sandboxes.push(if control {
            SandboxSpec {
                name: sb.name.clone(),
                namespaces: NsSet::empty(),
                hostname: None,
                uid_map: None,
                gid_map: None,
                root_mapped: false,
                time_offsets: None,
                loopback: None,
                cgroup_procs: Vec::new(),
            }
        } else {
            let u = sb.effective_uid_map();
            let g = sb.effective_gid_map();
            let maps_root = |m: &[IdMapLine]| m.iter().any(|l| l.inside == 0);
            SandboxSpec {
                name: sb.name.clone(),
                namespaces: sb.namespaces,
                hostname: sb.hostname.clone(),
                uid_map: Some(IdMapLine::render(&u)),
                gid_map: Some(IdMapLine::render(&g)),
                root_mapped: maps_root(&u) && maps_root(&g),
                time_offsets: sb.time_offsets,
                loopback: sb.loopback,
                cgroup_procs: Vec::new(),
            }
        });
    }
    Plan::Run(LabSpec {
        user,
        hostname: s.hostname.clone(),
        sandboxes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Machine;

    fn machine(uid: u32) -> Machine {
        Machine {
            uid,
            gid: uid,
            kernel: "6.1.0".into(),
            kernel_version: (6, 1, 0),
            arch: "x86_64".into(),
            hostname: "vm".into(),
        }
    }

    fn offer(uid: u32, subids: Option<SubIds>) -> Offer {
        Offer {
            machine: machine(uid),
            missing_commands: vec![],
            missing_namespaces: vec![],
            id_base: 100_000,
            subids,
        }
    }

    fn scenario(yaml: &str) -> Scenario {
        crate::scenario::load_str("t.yaml", std::path::Path::new("t.yaml"), yaml).unwrap()
    }

    const MAPPED: &str = "name: m\nsandboxes:\n  box:\n    namespaces: [user]\n    uid_map: \"0 1000 1\"\n    gid_map: \"0 1000 1\"\nsteps:\n  - run: \"true\"\n";

    #[test]
    fn root_maps_65536_unprivileged_ids() {
        let Plan::Run(spec) = plan(&scenario(MAPPED), &offer(0, None), false) else {
            panic!()
        };
        let u = spec.user.unwrap();
        assert_eq!(u.uid_map, "0 100000 65536\n");
        assert!(!u.use_helpers && !u.deny_setgroups);
        assert_eq!(spec.sandboxes[0].uid_map.as_deref(), Some("0 1000 1\n"));
    }

    #[test]
    fn rootless_maps_root_to_the_user_and_skips_what_needs_more() {
        let Plan::Skip(why) = plan(&scenario(MAPPED), &offer(1000, None), false) else {
            panic!()
        };
        assert!(
            why.contains("/etc/subuid") && why.contains("uidmap"),
            "{why}"
        );
        let Plan::Run(spec) = plan(
            &scenario("name: n\nsteps:\n  - run: \"true\"\n"),
            &offer(1000, None),
            false,
        ) else {
            panic!()
        };
        let u = spec.user.unwrap();
        assert_eq!((u.uid_map.as_str(), u.deny_setgroups), ("0 1000 1\n", true));
    }

    #[test]
    fn rootless_with_subordinate_ids_uses_the_helpers() {
        let sub = SubIds {
            uid: (200_000, 65536),
            gid: (300_000, 65536),
        };
        let Plan::Run(spec) = plan(&scenario(MAPPED), &offer(1000, Some(sub)), false) else {
            panic!()
        };
        let u = spec.user.unwrap();
        assert!(u.use_helpers);
        assert_eq!(u.uid_map, "0 1000 1\n1 200000 65536\n");
        assert_eq!(u.gid_map, "0 1000 1\n1 300000 65536\n");
        let small = SubIds {
            uid: (200_000, 10),
            gid: (300_000, 10),
        };
        assert!(matches!(
            plan(&scenario(MAPPED), &offer(1000, Some(small)), false),
            Plan::Skip(_)
        ));
    }

    #[test]
    fn privileged_needs_root_and_control_isolates_nothing() {
        let p = "name: p\nprivileged: true\nsteps:\n  - run: \"true\"\n";
        assert!(
            matches!(plan(&scenario(p), &offer(1000, None), false), Plan::Skip(w) if w.contains("real root"))
        );
        let Plan::Run(spec) = plan(&scenario(p), &offer(0, None), false) else {
            panic!()
        };
        assert!(spec.user.is_none());
        let Plan::Run(spec) = plan(&scenario(MAPPED), &offer(0, None), true) else {
            panic!()
        };
        assert!(spec.sandboxes[0].namespaces.is_empty());
    }
}
