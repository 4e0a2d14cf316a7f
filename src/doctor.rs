//! `nslab check`: what this machine allows, found by trying, with the fix
//! for each "no".

use crate::env::{Machine, package_for, which};
use crate::ns::Ns;
use nix::errno::Errno;
use serde::Serialize;

/// The uid an unprivileged attempt drops to when nslab runs as root.
const NOBODY: u32 = 65534;

#[derive(Debug, Serialize)]
pub struct Attempt {
    pub works: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct NamespaceCheck {
    pub namespace: String,
    pub in_kernel: bool,
    /// Tried as root; absent when nslab does not run as root.
    pub root: Option<Attempt>,
    /// Tried as an unprivileged user, inside a new user namespace.
    pub unprivileged: Attempt,
}

#[derive(Debug, Serialize, Default)]
pub struct UserNsSettings {
    pub max_user_namespaces: Option<u64>,
    pub unprivileged_userns_clone: Option<u64>,
    pub apparmor_restrict_unprivileged_userns: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct CgroupCheck {
    pub version: String,
    pub writable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CommandCheck {
    pub command: String,
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MachineCheck {
    pub kernel: String,
    pub uid: u32,
    pub mode: String,
    pub namespaces: Vec<NamespaceCheck>,
    pub user_namespaces: UserNsSettings,
    pub subordinate_ids: Option<String>,
    pub cgroup: CgroupCheck,
    pub commands: Vec<CommandCheck>,
    /// A real lab with a sandbox of every namespace type was built.
    pub lab: Attempt,
    pub can_run: bool,
}

fn sysctl(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn user_ns_settings() -> UserNsSettings {
    UserNsSettings {
        max_user_namespaces: sysctl("/proc/sys/user/max_user_namespaces"),
        unprivileged_userns_clone: sysctl("/proc/sys/kernel/unprivileged_userns_clone"),
        apparmor_restrict_unprivileged_userns: sysctl(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        ),
    }
}

/// Why an attempt failed and what to do about it.
pub fn explain(ns: Ns, unprivileged: bool, err: Errno, s: &UserNsSettings) -> String {
    let user_ns_involved = unprivileged || ns == Ns::User;
    match err {
        Errno::ENOSPC if user_ns_involved => format!(
            "the user namespace limit is reached (user.max_user_namespaces = {}): sudo sysctl -w user.max_user_namespaces=15000",
            s.max_user_namespaces.map(|n| n.to_string()).unwrap_or_else(|| "?".into())
        ),
        Errno::ENOSPC => format!("the limit of {ns} namespaces is reached: raise user.max_{ns}_namespaces"),
        Errno::EPERM | Errno::EACCES if user_ns_involved && s.apparmor_restrict_unprivileged_userns == Some(1) => {
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1, Ubuntu 23.10 and later): sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give nslab an AppArmor profile with `userns,`".into()
        }
        Errno::EPERM if user_ns_involved && s.unprivileged_userns_clone == Some(0) => {
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0): sudo sysctl -w kernel.unprivileged_userns_clone=1".into()
        }
        Errno::EPERM | Errno::EACCES => "not permitted here: a seccomp filter or container runtime forbids it; run nslab on a VM or a host, or as root".into(),
        Errno::EINVAL => format!("the kernel refused it: it may be built without {ns} namespaces (CONFIG_{}_NS)", ns.word().to_uppercase()),
        other => format!("failed with {other}"),
    }
}

fn attempt(ns: Ns, as_uid: Option<u32>, s: &UserNsSettings) -> Attempt {
    let mut flags = crate::sandbox::ns_flag(ns);
    let unprivileged = as_uid.is_some() || !nix::unistd::geteuid().is_root();
    if unprivileged {
        flags |= nix::sched::CloneFlags::CLONE_NEWUSER;
    }
    match crate::sandbox::try_unshare(flags, as_uid) {
        Ok(()) => Attempt { works: true, error: None, fix: None },
        Err(crate::sandbox::TryError::CannotDrop) => Attempt {
            works: false,
            error: Some(format!("cannot switch to uid {NOBODY} to try")),
            fix: Some("that uid is not mapped here; run `nslab check` as an unprivileged user to see what one may do".into()),
        },
        Err(crate::sandbox::TryError::Unshare(e)) => Attempt {
            works: false,
            error: Some(e.desc().to_owned()),
            fix: Some(explain(ns, unprivileged, e, s)),
        },
    }
}

fn cgroup_check(root: bool) -> CgroupCheck {
    use crate::sandbox::cgroup::{self, Layout};
    let Some(layout) = cgroup::detect_here() else {
        return CgroupCheck {
            version: "none".into(),
            writable: false,
            fix: Some("mount a cgroup hierarchy at /sys/fs/cgroup".into()),
        };
    };
    let version = match &layout {
        Layout::V1(_) if std::path::Path::new("/sys/fs/cgroup/unified").exists() => {
            "hybrid (v1 controllers, v2 unified)"
        }
        Layout::V1(_) => "v1",
        Layout::V2(..) => "v2",
    };
    let limits = crate::scenario::Limits {
        pids: Some(16),
        ..Default::default()
    };
    let writable = match cgroup::create(
        &layout,
        &format!("nslab-{}-check", std::process::id()),
        "probe",
        &limits,
    ) {
        Ok(cg) => {
            cgroup::remove(cg);
            true
        }
        Err(_) => false,
    };
    CgroupCheck {
        version: version.into(),
        writable,
        fix: (!writable).then(|| {
            if root {
                "nslab's cgroup is not writable even as root: is /sys/fs/cgroup read-only here?".into()
            } else {
                "run as root, or inside a delegated cgroup: systemd-run --user --scope -p Delegate=yes nslab run …".into()
            }
        }),
    }
}

/// Commands the scenarios under `dir` need, and nslab's own helpers.
fn needed_commands(dir: &std::path::Path) -> Vec<String> {
    let mut cmds: Vec<String> = crate::scenario::discover(&[dir.to_path_buf()])
        .unwrap_or_default()
        .iter()
        .filter_map(|f| crate::scenario::load_file(f).ok())
        .flat_map(|s| s.requires.commands)
        .collect();
    cmds.extend(["newuidmap".to_owned(), "newgidmap".to_owned()]);
    cmds.sort();
    cmds.dedup();
    cmds
}

fn lab_attempt(machine: &Machine) -> Attempt {
    let yaml = "name: check\nsandboxes:\n  box:\n    namespaces: all\nsteps:\n  - probe: pid\n    in: box\n";
    let s = crate::scenario::load_str("check", std::path::Path::new("check"), yaml)
        .expect("a valid built-in scenario");
    let base = crate::runner::machine_offer(machine);
    let r = crate::runner::run_scenario(&s, &crate::runner::offer_for(&s, &base), false);
    crate::sandbox::collect_dying(true);
    match r.verdict {
        crate::report::Verdict::Passed => Attempt {
            works: true,
            error: None,
            fix: None,
        },
        _ => Attempt {
            works: false,
            error: r.reason.clone(),
            fix: Some("see the namespace table above for what fails and how to allow it".into()),
        },
    }
}

pub fn check(scenarios: &std::path::Path) -> MachineCheck {
    let machine = Machine::read();
    let root = machine.is_root();
    let settings = user_ns_settings();
    let namespaces = Ns::ALL
        .iter()
        .map(|&ns| {
            let in_kernel = crate::env::kernel_has_namespace(ns);
            NamespaceCheck {
                namespace: ns.word().into(),
                in_kernel,
                root: root.then(|| attempt(ns, None, &settings)),
                unprivileged: attempt(ns, root.then_some(NOBODY), &settings),
            }
        })
        .collect();
    let subordinate_ids = if root {
        Some("not needed as root: the lab maps 65536 ids".into())
    } else {
        crate::env::subids_here(&machine)
            .map(|s| format!("uids {}+{}, gids {}+{}", s.uid.0, s.uid.1, s.gid.0, s.gid.1))
    };
    let commands = needed_commands(scenarios)
        .into_iter()
        .map(|c| {
            let path = which(&c).map(|p| p.display().to_string());
            let fix = path.is_none().then(|| match package_for(&c) {
                Some(p) => format!("apt-get install {p}"),
                None if c.starts_with("new") => {
                    "apt-get install uidmap (needed only for rootless labs with more than one id)"
                        .into()
                }
                None => "install it or put it on PATH".into(),
            });
            CommandCheck {
                command: c,
                path,
                fix,
            }
        })
        .collect();
    let lab = lab_attempt(&machine);
    MachineCheck {
        kernel: machine.kernel.clone(),
        uid: machine.uid,
        mode: if root { "root" } else { "rootless" }.into(),
        namespaces,
        user_namespaces: settings,
        subordinate_ids,
        cgroup: cgroup_check(root),
        commands,
        can_run: lab.works,
        lab,
    }
}

fn yes_no(a: &Attempt) -> &'static str {
    if a.works { "yes" } else { "NO" }
}

pub fn render_text(c: &MachineCheck) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "kernel {} · running as uid {} ({})\n",
        c.kernel, c.uid, c.mode
    );
    let _ = writeln!(o, "namespace  in kernel  as root  unprivileged");
    let mut fixes = Vec::new();
    for n in &c.namespaces {
        let root = n.root.as_ref().map(yes_no).unwrap_or("(not root)");
        let _ = writeln!(
            o,
            "{:<10} {:<10} {:<8} {}",
            n.namespace,
            if n.in_kernel { "yes" } else { "NO" },
            root,
            yes_no(&n.unprivileged)
        );
        for (who, a) in [
            ("as root", n.root.as_ref()),
            ("unprivileged", Some(&n.unprivileged)),
        ] {
            if let Some(a) = a.filter(|a| !a.works) {
                fixes.push(format!(
                    "{} {who}: {}: {}",
                    n.namespace,
                    a.error.as_deref().unwrap_or(""),
                    a.fix.as_deref().unwrap_or("")
                ));
            }
        }
    }
    let u = &c.user_namespaces;
    let show = |v: Option<u64>| {
        v.map(|n| n.to_string())
            .unwrap_or_else(|| "(not present)".into())
    };
    let _ = writeln!(
        o,
        "\nuser namespaces: user.max_user_namespaces = {}, kernel.unprivileged_userns_clone = {}, kernel.apparmor_restrict_unprivileged_userns = {}",
        show(u.max_user_namespaces),
        show(u.unprivileged_userns_clone),
        show(u.apparmor_restrict_unprivileged_userns)
    );
    let _ = writeln!(
        o,
        "subordinate ids: {}",
        c.subordinate_ids.as_deref().unwrap_or(
            "none (a rootless lab maps only your own id; /etc/subuid and newuidmap give it more)"
        )
    );
    let _ = writeln!(
        o,
        "cgroup: {}, nslab may write it: {}",
        c.cgroup.version,
        if c.cgroup.writable { "yes" } else { "NO" }
    );
    if let Some(f) = &c.cgroup.fix {
        fixes.push(format!("cgroup: {f}"));
    }
    let _ = writeln!(o, "\ncommands the bundled scenarios need:");
    for cmd in &c.commands {
        let _ = writeln!(
            o,
            "  {:<12} {}",
            cmd.command,
            cmd.path.as_deref().unwrap_or("NOT INSTALLED")
        );
        if let Some(f) = &cmd.fix {
            fixes.push(format!("{}: {f}", cmd.command));
        }
    }
    let _ = writeln!(
        o,
        "\na lab with every namespace type: {}",
        if c.lab.works { "built" } else { "FAILED" }
    );
    if let Some(e) = &c.lab.error {
        fixes.push(format!("lab: {e}"));
    }
    if !fixes.is_empty() {
        let _ = writeln!(o, "\nto fix:");
        for f in fixes {
            let _ = writeln!(o, "  - {f}");
        }
    }
    let _ = writeln!(
        o,
        "\nnslab {} run here.",
        if c.can_run { "can" } else { "cannot" }
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_name_the_setting_and_the_command() {
        let mut s = UserNsSettings {
            max_user_namespaces: Some(0),
            ..Default::default()
        };
        assert!(
            explain(Ns::User, true, Errno::ENOSPC, &s)
                .contains("sysctl -w user.max_user_namespaces")
        );
        s.apparmor_restrict_unprivileged_userns = Some(1);
        assert!(
            explain(Ns::Net, true, Errno::EACCES, &s)
                .contains("kernel.apparmor_restrict_unprivileged_userns=0")
        );
        s.apparmor_restrict_unprivileged_userns = None;
        s.unprivileged_userns_clone = Some(0);
        assert!(
            explain(Ns::User, true, Errno::EPERM, &s)
                .contains("kernel.unprivileged_userns_clone=1")
        );
        assert!(explain(Ns::Time, false, Errno::EINVAL, &s).contains("CONFIG_TIME_NS"));
    }
}
