//! cgroups for sandboxes with `limits`, made beneath nslab's own cgroup and
//! removed when the lab is gone. The runner makes them from outside the lab;
//! a spawner inside joins one through a file descriptor opened here, before
//! it clones the sandbox, so a new cgroup namespace is rooted there.

use crate::scenario::Limits;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Controller name → (mount point, nslab's own path in it).
    V1(Vec<(String, PathBuf, String)>),
    /// Mount point and nslab's own path.
    V2(PathBuf, String),
}

/// Reads the hierarchies from mountinfo and nslab's place in them from
/// /proc/self/cgroup. Prefers v1 controllers where both exist (hybrid), as
/// the `cgroup` probe does.
pub fn detect(mountinfo: &str, self_cgroup: &str) -> Option<Layout> {
    let mut v1 = Vec::new();
    let mut v2 = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let point = left.split(' ').nth(4).unwrap_or("");
        let mut r = right.split(' ');
        let (fstype, _src, opts) = (r.next().unwrap_or(""), r.next(), r.next().unwrap_or(""));
        match fstype {
            "cgroup" => {
                for ctl in opts
                    .split(',')
                    .filter(|o| matches!(*o, "pids" | "memory" | "cpu"))
                {
                    v1.push((ctl.to_owned(), PathBuf::from(point)));
                }
            }
            "cgroup2" => v2 = Some(PathBuf::from(point)),
            _ => {}
        }
    }
    let own = |want: &str| {
        self_cgroup.lines().find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, ctls, path) = (p.next()?, p.next()?, p.next()?);
            let hit = if want.is_empty() {
                ctls.is_empty()
            } else {
                ctls.split(',').any(|c| c == want)
            };
            hit.then(|| path.to_owned())
        })
    };
    if v1.iter().any(|(c, _)| c == "pids") {
        let with_paths = v1
            .into_iter()
            .filter_map(|(c, m)| own(&c).map(|p| (c, m, p)))
            .collect();
        return Some(Layout::V1(with_paths));
    }
    let mount = v2?;
    Some(Layout::V2(mount, own("")?))
}

pub fn detect_here() -> Option<Layout> {
    detect(
        &std::fs::read_to_string("/proc/self/mountinfo").ok()?,
        &std::fs::read_to_string("/proc/self/cgroup").ok()?,
    )
}

/// The cgroups of one sandbox; dropping it does not remove them, [`remove`]
/// does, once the lab's processes are gone.
#[derive(Debug)]
pub struct SandboxCgroup {
    /// Deepest first, for removal.
    pub dirs: Vec<PathBuf>,
    /// cgroup.procs of each, opened for writing by the runner.
    pub procs: Vec<OwnedFd>,
    /// Where its out-of-memory kills and CPU throttling are counted.
    pub memory_events: Option<PathBuf>,
    pub cpu_stat: Option<PathBuf>,
    pub limits: Limits,
}

/// What a sandbox's limits did during a step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub oom_kills: u64,
    pub throttled_us: u64,
}

fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl SandboxCgroup {
    pub fn counters(&self) -> Counters {
        let read = |p: &Option<PathBuf>| p.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
        let oom_kills = read(&self.memory_events)
            .and_then(|t| field(&t, "oom_kill"))
            .unwrap_or(0);
        let throttled_us = read(&self.cpu_stat)
            .and_then(|t| {
                field(&t, "throttled_usec")
                    .or_else(|| field(&t, "throttled_time").map(|ns| ns / 1000))
            })
            .unwrap_or(0);
        Counters {
            oom_kills,
            throttled_us,
        }
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("writing {value:?} to {}: {e}", path.display()))
}

fn open_procs(dir: &Path) -> Result<OwnedFd, String> {
    let p = dir.join("cgroup.procs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .map(OwnedFd::from)
        .map_err(|e| format!("opening {}: {e}", p.display()))
}

fn join(base: &Path, own: &str, rel: &str) -> PathBuf {
    base.join(own.trim_start_matches('/')).join(rel)
}

/// `run_dir` names this scenario's folder, e.g. `nslab-4242-cgroup-ns`.
pub fn create(
    layout: &Layout,
    run_dir: &str,
    sandbox: &str,
    limits: &Limits,
) -> Result<SandboxCgroup, String> {
    let mut cg = SandboxCgroup {
        dirs: Vec::new(),
        procs: Vec::new(),
        memory_events: None,
        cpu_stat: None,
        limits: *limits,
    };
    let res = (|| {
        match layout {
            Layout::V1(ctls) => {
                let find = |c: &str| ctls.iter().find(|(n, _, _)| n == c);
                let mut wanted = vec!["pids"];
                if limits.memory.is_some() {
                    wanted.push("memory");
                }
                if limits.cpu.is_some() {
                    wanted.push("cpu");
                }
                for ctl in wanted {
                    let (_, mount, own) =
                        find(ctl).ok_or_else(|| format!("no v1 `{ctl}` controller is mounted"))?;
                    let top = join(mount, own, run_dir);
                    let dir = top.join(sandbox);
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                    cg.dirs.push(dir.clone());
                    cg.dirs.push(top);
                    match ctl {
                        "pids" => {
                            if let Some(p) = limits.pids {
                                write(&dir.join("pids.max"), &p.to_string())?;
                            }
                        }
                        "memory" => {
                            cg.memory_events = Some(dir.join("memory.oom_control"));
                            let m = limits.memory.unwrap_or_default();
                            write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                            // Without swap accounting the file is absent.
                            let _ = std::fs::write(
                                dir.join("memory.memsw.limit_in_bytes"),
                                m.to_string(),
                            );
                        }
                        _ => {
                            cg.cpu_stat = Some(dir.join("cpu.stat"));
                            let quota = (limits.cpu.unwrap_or(1.0) * CPU_PERIOD_US as f64) as u64;
                            write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                            write(&dir.join("cpu.cfs_quota_us"), &quota.max(1000).to_string())?;
                        }
                    }
                    cg.procs.push(open_procs(&dir)?);
                }
            }
            Layout::V2(mount, own) => {
                let top = join(mount, own, run_dir);
                let dir = top.join(sandbox);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                cg.dirs.push(dir.clone());
                cg.dirs.push(top.clone());
                let mut ctl = Vec::new();
                if limits.pids.is_some() {
                    ctl.push("+pids");
                }
                if limits.memory.is_some() {
                    ctl.push("+memory");
                }
                if limits.cpu.is_some() {
                    ctl.push("+cpu");
                }
                if !ctl.is_empty() {
                    write(&top.join("cgroup.subtree_control"), &ctl.join(" ")).map_err(|e| {
                        format!("{e} (the controllers must be delegated to nslab's cgroup)")
                    })?;
                }
                if let Some(p) = limits.pids {
                    write(&dir.join("pids.max"), &p.to_string())?;
                }
                cg.memory_events = Some(dir.join("memory.events"));
                cg.cpu_stat = Some(dir.join("cpu.stat"));
                if let Some(m) = limits.memory {
                    write(&dir.join("memory.max"), &m.to_string())?;
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                }
                if let Some(c) = limits.cpu {
                    let quota = (c * CPU_PERIOD_US as f64) as u64;
                    write(
                        &dir.join("cpu.max"),
                        &format!("{} {CPU_PERIOD_US}", quota.max(1000)),
                    )?;
                }
                cg.procs.push(open_procs(&dir)?);
            }
        }
        Ok(())
    })();
    match res {
        Ok(()) => Ok(cg),
        Err(e) => {
            remove(cg);
            Err(e)
        }
    }
}

/// Removes the cgroups once their processes have exited; the kernel may
/// need a moment to release a cgroup after its last process is reaped.
pub fn remove(cg: SandboxCgroup) {
    drop(cg.procs);
    for dir in &cg.dirs {
        for _ in 0..50 {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                // A sibling sandbox still holds the scenario's folder.
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => break,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
    }
}

/// Removes folders left by an nslab that was killed before it could: any
/// `nslab-PID-*` whose PID is no longer running.
pub fn sweep_stale(layout: &Layout) {
    let bases: Vec<PathBuf> = match layout {
        Layout::V1(ctls) => ctls.iter().map(|(_, m, o)| join(m, o, "")).collect(),
        Layout::V2(m, o) => vec![join(m, o, "")],
    };
    for base in bases {
        let Ok(rd) = std::fs::read_dir(&base) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("nslab-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if let Ok(children) = std::fs::read_dir(e.path()) {
                for c in children.flatten().filter(|c| c.path().is_dir()) {
                    let _ = std::fs::remove_dir(c.path());
                }
            }
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";

    #[test]
    fn hybrid_prefers_v1() {
        let l = detect(HYBRID, "8:pids:/\n4:memory:/a/b\n1:cpu:/\n0::/\n").unwrap();
        let Layout::V1(ctls) = l else {
            panic!("expected v1")
        };
        assert!(ctls.contains(&(
            "memory".into(),
            "/sys/fs/cgroup/memory".into(),
            "/a/b".into()
        )));
        assert_eq!(ctls.len(), 3);
    }

    #[test]
    fn counters_from_v1_and_v2_files() {
        assert_eq!(
            field("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"),
            Some(3)
        );
        assert_eq!(
            field("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n", "oom_kill"),
            Some(1)
        );
        assert_eq!(
            field(
                "nr_periods 10\nnr_throttled 4\nthrottled_time 5000000\n",
                "throttled_time"
            ),
            Some(5_000_000)
        );
        assert_eq!(field("usage_usec 1\n", "oom_kill"), None);
    }

    #[test]
    fn pure_v2() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            detect(mi, "0::/user.slice/x.scope\n"),
            Some(Layout::V2(
                "/sys/fs/cgroup".into(),
                "/user.slice/x.scope".into()
            ))
        );
        assert_eq!(detect("", "0::/\n"), None);
    }
}
