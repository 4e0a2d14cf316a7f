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
        })
    } else {
        Some(LabIdMaps {
            uid_map: format!("0 {} 1\n", offer.machine.uid),
            gid_map: format!("0 {} 1\n", offer.machine.gid),
            deny_setgroups: true,
        })
    };
    let available = if root { LAB_ID_COUNT } else { 1 };
    let mut sandboxes = Vec::new();
    for sb in &s.sandboxes {
        if !control && sb.namespaces.contains(Ns::User) {
            let (u, g) = (sb.effective_uid_map(), sb.effective_gid_map());
            if !(s.privileged || fits(&u, available) && fits(&g, available)) {
                return Plan::Skip(format!(
                    "sandbox `{}` maps lab ids beyond the {available} this lab has: a rootless lab maps only your own id; run nslab as root",
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
