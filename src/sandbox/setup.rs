//! Creating the lab host and its sandboxes. Each function names the side of
//! the process boundary it runs on.

use super::proto::{self, Response};
use super::sys::{self, clone_process, exit_now, fork_process};
use super::{LabError, LabSpec, SandboxSpec, agent};
use crate::ns::{Ns, NsSet};
use crate::scenario::Loopback;
use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::sched::CloneFlags;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::{Gid, Pid, Uid, pipe2, read, setresgid, setresuid, write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

fn clone_flags(ns: NsSet) -> CloneFlags {
    let mut f = CloneFlags::empty();
    for n in ns.iter() {
        f |= match n {
            Ns::Mount => CloneFlags::CLONE_NEWNS,
            Ns::Pid => CloneFlags::CLONE_NEWPID,
            Ns::Net => CloneFlags::CLONE_NEWNET,
            Ns::Ipc => CloneFlags::CLONE_NEWIPC,
            Ns::Uts => CloneFlags::CLONE_NEWUTS,
            Ns::User => CloneFlags::CLONE_NEWUSER,
            Ns::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            // clone(2) cannot take CLONE_NEWTIME (it collides with CSIGNAL);
            // time namespaces are made with unshare in a spawner instead.
            Ns::Time => CloneFlags::empty(),
        };
    }
    f
}

fn write_file(path: &str, data: &str) -> Result<(), String> {
    std::fs::write(path, data).map_err(|e| format!("writing {path:?}: {e}"))
}

/// Runner side: creates the lab's init and hands it its id maps. Returns
/// the init's pid, the runner's ends of the channels, and the lifeline: the
/// write end of a pipe the runner holds until it is done with the lab.
pub(super) fn start_lab(spec: &LabSpec) -> Result<(Pid, Vec<UnixStream>, OwnedFd), LabError> {
    let create = |what: &str, e: std::io::Error| LabError::Create(format!("{what}: {e}"));
    let mut runner_ends = Vec::new();
    let mut agent_ends = Vec::new();
    for _ in 0..=spec.sandboxes.len() {
        let (a, b) = UnixStream::pair().map_err(|e| create("socketpair", e))?;
        runner_ends.push(a);
        agent_ends.push(b);
    }
    let (go_r, go_w) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| create("pipe", std::io::Error::from(e)))?;
    let mut ns = NsSet::empty()
        .with(Ns::Mount)
        .with(Ns::Pid)
        .with(Ns::Net)
        .with(Ns::Uts)
        .with(Ns::Ipc)
        .with(Ns::Cgroup);
    if spec.user.is_some() {
        ns = ns.with(Ns::User);
    }
    let child = clone_process(clone_flags(ns)).map_err(|e| {
        LabError::Create(format!(
            "clone with new {} namespaces: {e}",
            ns.words().join(", ")
        ))
    })?;
    let Some(init) = child else {
        // ---- child: the lab's init, PID 1 of the lab ----
        drop(runner_ends);
        drop(go_w);
        lab_init_main(spec, agent_ends, go_r)
    };
    // ---- runner ----
    drop(agent_ends);
    drop(go_r);
    if let Some(maps) = &spec.user {
        let pid = init.as_raw();
        let res = if maps.use_helpers {
            map_with_helper("newuidmap", pid, &maps.uid_map)
                .and_then(|()| map_with_helper("newgidmap", pid, &maps.gid_map))
        } else {
            (|| {
                if maps.deny_setgroups {
                    write_file(&format!("/proc/{pid}/setgroups"), "deny")?;
                }
                write_file(&format!("/proc/{pid}/uid_map"), &maps.uid_map)?;
                write_file(&format!("/proc/{pid}/gid_map"), &maps.gid_map)
            })()
        };
        if let Err(e) = res {
            let _ = nix::sys::signal::kill(init, Signal::SIGKILL);
            let _ = waitpid(init, None);
            return Err(LabError::Create(format!("lab user namespace: {e}")));
        }
    }
    if write(&go_w, b"g").is_err() {
        let _ = waitpid(init, None);
        return Err(LabError::Create(
            "the lab's init ended before it started".into(),
        ));
    }
    Ok((init, runner_ends, go_w))
}

/// `newuidmap PID inside outside count …`, with the map's lines as words.
fn map_with_helper(helper: &str, pid: i32, map: &str) -> Result<(), String> {
    let out = std::process::Command::new(helper)
        .arg(pid.to_string())
        .args(map.split_whitespace())
        .output()
        .map_err(|e| format!("running {helper}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{helper} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Blocks until the parent says go; `false` if the parent died instead.
fn wait_go(go_r: &OwnedFd) -> bool {
    let mut b = [0u8; 1];
    matches!(read(go_r, &mut b), Ok(1))
}

/// Whether the other end of a lifeline pipe is still held: it closes when
/// the process holding it dies.
fn lifeline_held(r: &OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => true,
        _ => !fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
    }
}

/// Lab side: PID 1 of the lab.
fn lab_init_main(spec: &LabSpec, mut agent_ends: Vec<UnixStream>, go_r: OwnedFd) -> ! {
    let mut host = agent_ends.remove(0);
    match lab_init(spec, agent_ends, go_r) {
        Ok(()) => {
            if proto::send(&mut host, &agent::ready(1)).is_err() {
                exit_now(1);
            }
            agent::serve(host);
            exit_now(0)
        }
        Err(error) => {
            let _ = proto::send(&mut host, &Response::SetupFailed { error });
            exit_now(1)
        }
    }
}

fn lab_init(spec: &LabSpec, sandbox_ends: Vec<UnixStream>, go_r: OwnedFd) -> Result<(), String> {
    // The runner is single-threaded, so "parent thread exits" here means the
    // runner itself exits.
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("pdeathsig: {e}"))?;
    let _ = prctl::set_name(c"nslab-init");
    sys::set_cmdline("nslab-init");
    // A session of its own: Ctrl-C at the terminal is for nslab, which
    // then tears the lab down, not for the lab's processes.
    let _ = nix::unistd::setsid();
    if !wait_go(&go_r) {
        exit_now(1);
    }
    if spec.user.is_some() {
        become_root()?;
        // Changing credentials cleared the parent-death signal: set it again,
        // then make sure the runner did not die before it was set.
        prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("pdeathsig: {e}"))?;
    }
    if !lifeline_held(&go_r) {
        exit_now(1);
    }
    drop(go_r);
    // Nothing mounted in the lab may propagate back to the real machine.
    make_root_private()?;
    mount_fresh_proc()?;
    // A fresh sysfs shows the lab's own interfaces; it hides the host's
    // /sys/fs/cgroup, which nslab manages from outside.
    let _ = mount(
        Some("sysfs"),
        "/sys",
        Some("sysfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    );
    for (dir, mode) in [("/tmp", "1777"), ("/run", "755")] {
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("mode={mode}").as_str()),
        )
        .map_err(|e| format!("tmpfs on {dir}: {e}"))?;
    }
    // POSIX shared memory and message queues belong with the IPC namespace.
    if std::path::Path::new("/dev/shm").is_dir() {
        let _ = mount(
            Some("tmpfs"),
            "/dev/shm",
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        );
    }
    if std::path::Path::new("/dev/mqueue").is_dir() {
        let _ = mount(
            Some("mqueue"),
            "/dev/mqueue",
            Some("mqueue"),
            MsFlags::empty(),
            None::<&str>,
        );
    }
    sys::interface_up("lo").map_err(|e| format!("bringing lo up: {e}"))?;
    if let Some(h) = &spec.hostname {
        nix::unistd::sethostname(h).map_err(|e| format!("sethostname: {e}"))?;
    }
    for (sb, end) in spec.sandboxes.iter().zip(sandbox_ends) {
        spawn_sandbox(sb, end)?;
    }
    Ok(())
}

/// Mounts copied into a new mount namespace keep their propagation; made
/// private, none of them carries a mount back out.
fn make_root_private() -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / private: {e}"))
}

fn mount_fresh_proc() -> Result<(), String> {
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mounting a fresh /proc: {e}"))
}

/// After the parent wrote our maps: become root of the new user namespace.
/// Until then the process is "nobody" in it, and an exec would drop every
/// capability.
fn become_root() -> Result<(), String> {
    let _ = nix::unistd::setgroups(&[]);
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .map_err(|e| format!("setresgid(0): {e}"))?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .map_err(|e| format!("setresuid(0): {e}"))?;
    // Changing ids cleared the dumpable flag, which hands our /proc/self
    // files to the real root, unmapped here: timens_offsets and the maps of
    // our children would become unwritable.
    prctl::set_dumpable(true).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))
}

/// Lab side: creates one sandbox's agent. The socket end moves into it.
fn spawn_sandbox(sb: &SandboxSpec, end: UnixStream) -> Result<(), String> {
    if !sb.namespaces.contains(Ns::Time) && sb.cgroup_procs.is_empty() {
        return create_agent(sb, end).map(|_| ());
    }
    spawn_via_spawner(sb, end)
}

/// A time namespace applies to the children of whoever unshares it, only
/// before any process is in it may its offsets be set, and a cgroup
/// namespace is rooted where its creator stands: so a short-lived spawner
/// joins the sandbox's cgroups, unshares time and sets the offsets, then
/// creates the agent as its child.
fn spawn_via_spawner(sb: &SandboxSpec, mut end: UnixStream) -> Result<(), String> {
    match fork_process().map_err(|e| format!("fork: {e}"))? {
        None => {
            // ---- child: the spawner ----
            let res = (|| {
                for fd in &sb.cgroup_procs {
                    write(fd.as_ref(), b"0")
                        .map_err(|e| format!("joining the sandbox's cgroup: {e}"))?;
                }
                if sb.namespaces.contains(Ns::Time) {
                    let o = sb.time_offsets.unwrap_or_default();
                    nix::sched::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
                        .map_err(|e| format!("unshare(CLONE_NEWTIME): {e}"))?;
                    write_file(
                        "/proc/self/timens_offsets",
                        &format!("monotonic {} 0\nboottime {} 0\n", o.monotonic, o.boottime),
                    )?;
                }
                let e = end.try_clone().map_err(|e| e.to_string())?;
                create_agent(sb, e).map(|_| ())
            })();
            if let Err(error) = res {
                let _ = proto::send(&mut end, &Response::SetupFailed { error });
                exit_now(1);
            }
            exit_now(0)
        }
        Some(spawner) => {
            // A failed spawner told the runner why, on the sandbox's channel.
            let _ = waitpid(spawner, None);
            Ok(())
        }
    }
}

/// Creates the agent with the sandbox's namespaces and writes its id maps.
fn create_agent(sb: &SandboxSpec, end: UnixStream) -> Result<Pid, String> {
    let (go_r, go_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let child = clone_process(clone_flags(sb.namespaces)).map_err(|e| {
        format!(
            "clone with new {} namespaces for sandbox `{}`: {e}",
            sb.namespaces.words().join(", "),
            sb.name
        )
    })?;
    let Some(pid) = child else {
        // ---- child: the sandbox's agent ----
        drop(go_w);
        agent_main(sb, end, go_r)
    };
    drop(go_r);
    if sb.namespaces.contains(Ns::User) {
        let p = pid.as_raw();
        let res = (|| {
            write_file(
                &format!("/proc/{p}/uid_map"),
                sb.uid_map.as_deref().unwrap_or("0 0 1\n"),
            )?;
            write_file(
                &format!("/proc/{p}/gid_map"),
                sb.gid_map.as_deref().unwrap_or("0 0 1\n"),
            )
        })();
        if let Err(e) = res {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(format!("sandbox `{}`: {e}", sb.name));
        }
    }
    write(&go_w, b"g").map_err(|e| format!("sandbox `{}`: {e}", sb.name))?;
    Ok(pid)
}

/// Sandbox side.
fn agent_main(sb: &SandboxSpec, mut end: UnixStream, go_r: OwnedFd) -> ! {
    if !wait_go(&go_r) {
        exit_now(1);
    }
    drop(go_r);
    match agent_setup(sb) {
        Ok(()) => {
            let pid = nix::unistd::getpid().as_raw();
            if proto::send(&mut end, &agent::ready(pid)).is_err() {
                exit_now(1);
            }
            agent::serve(end);
            exit_now(0)
        }
        Err(error) => {
            let _ = proto::send(
                &mut end,
                &Response::SetupFailed {
                    error: format!("sandbox `{}`: {error}", sb.name),
                },
            );
            exit_now(1)
        }
    }
}

fn agent_setup(sb: &SandboxSpec) -> Result<(), String> {
    let ns = sb.namespaces;
    if ns.contains(Ns::User) && sb.root_mapped {
        become_root()?;
    }
    let name = if ns.contains(Ns::Pid) {
        "nslab-init"
    } else {
        "nslab-agent"
    };
    let _ = prctl::set_name(if ns.contains(Ns::Pid) {
        c"nslab-init"
    } else {
        c"nslab-agent"
    });
    sys::set_cmdline(name);
    // Orphaned daemons come back to the agent, where a timeout can find them.
    let _ = prctl::set_child_subreaper(true);
    if ns.contains(Ns::Mount) {
        make_root_private()?;
    }
    if ns.contains(Ns::Pid) {
        mount_fresh_proc()?;
    }
    if ns.contains(Ns::Net) && ns.contains(Ns::Mount) {
        let _ = mount(
            Some("sysfs"),
            "/sys",
            Some("sysfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        );
    }
    if let Some(h) = &sb.hostname {
        nix::unistd::sethostname(h).map_err(|e| format!("sethostname: {e}"))?;
    }
    if sb.loopback == Some(Loopback::Up) {
        sys::interface_up("lo").map_err(|e| format!("bringing lo up: {e}"))?;
    }
    Ok(())
}
