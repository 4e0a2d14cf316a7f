//! Labs and sandboxes: the only code that forks, enters namespaces, mounts
//! or uses `unsafe`.
//!
//! The process tree, and why it needs no cleanup code:
//!
//! ```text
//! nslab (runner, single-threaded, host namespaces)
//! └── nslab-init        lab host: PID 1 of the lab's pid namespace, with new
//!     │                 mount, net, uts, ipc, cgroup (and user) namespaces
//!     ├── sh -c …       a step in the lab host
//!     ├── nslab-init    a sandbox with a pid namespace of its own (its PID 1)
//!     │   └── sh -c …
//!     └── nslab-agent   a sandbox sharing the lab's pid namespace
//! ```
//!
//! The lab's init dies with the runner (PR_SET_PDEATHSIG, set from the
//! runner's only thread), and when the PID 1 of a pid namespace dies the
//! kernel kills every process in it and in the namespaces nested below.
//! Nothing is bind-mounted on the real machine, so the lab's namespaces,
//! mounts, interfaces and `ip netns` entries go with its last process.
//!
//! The runner talks to one agent per context (the lab's init for `host`,
//! and one per sandbox) over a socket pair made before the lab exists;
//! agents take probes and start commands from inside their namespaces, so
//! nothing has to enter a namespace after the fact.

mod agent;
pub mod cgroup;
pub mod interrupt;
mod netlink;
pub mod proto;
pub mod pty;
mod setup;
mod sys;

use crate::ns::NsSet;
use crate::scenario::{Loopback, TimeOffsets};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use proto::{Request, Response};
use std::os::unix::net::UnixStream;
use std::time::Instant;

pub use agent::OUTPUT_CAP;

/// How the lab's user namespace maps ids; `None` in [`LabSpec::user`] means
/// a privileged lab with no user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabIdMaps {
    pub uid_map: String,
    pub gid_map: String,
    /// An unprivileged writer must give up setgroups before writing gid_map.
    pub deny_setgroups: bool,
    /// Write the maps through the setuid helpers newuidmap and newgidmap,
    /// which grant an unprivileged user its /etc/subuid and /etc/subgid
    /// ranges.
    pub use_helpers: bool,
}

#[derive(Debug, Clone)]
pub struct LabSpec {
    pub user: Option<LabIdMaps>,
    pub hostname: Option<String>,
    pub sandboxes: Vec<SandboxSpec>,
}

#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub name: String,
    pub namespaces: NsSet,
    pub hostname: Option<String>,
    pub uid_map: Option<String>,
    pub gid_map: Option<String>,
    /// Whether id 0 inside is mapped, so the agent can become root in it.
    pub root_mapped: bool,
    pub time_offsets: Option<TimeOffsets>,
    pub loopback: Option<Loopback>,
    /// cgroup.procs files the sandbox joins before its namespaces exist.
    pub cgroup_procs: Vec<std::sync::Arc<std::os::fd::OwnedFd>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot create the lab: {0}")]
    Create(String),
    #[error("{context}: setup failed: {error}")]
    Setup { context: String, error: String },
    #[error("{0}: the agent ended unexpectedly")]
    AgentGone(String),
    #[error("timed out")]
    Timeout,
    #[error("interrupted by {}", .0.as_str())]
    Interrupted(nix::sys::signal::Signal),
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
}

/// A running lab. Dropping it kills every process in it.
pub struct Lab {
    init: Pid,
    /// Held for the lab's life; the lab's init checks it is still open after
    /// arming its parent-death signal, which closes the race with our death.
    _lifeline: std::os::fd::OwnedFd,
    names: Vec<String>,
    channels: Vec<UnixStream>,
    /// Each context's agent pid as the context itself sees it.
    pub agent_pids: Vec<i32>,
    /// Each context's namespace inodes and hostname, when it became ready.
    pub facts: Vec<ContextFacts>,
}

/// What the report shows of a context as it was built.
#[derive(Debug, Clone)]
pub struct ContextFacts {
    pub namespaces: std::collections::BTreeMap<String, u64>,
    pub hostname: Option<String>,
}

impl Lab {
    /// Builds the lab and its sandboxes; returns once every agent is ready.
    pub fn start(spec: &LabSpec, deadline: Instant) -> Result<Lab, LabError> {
        let (init, channels, lifeline) = setup::start_lab(spec)?;
        let mut names = vec![crate::scenario::HOST.to_owned()];
        names.extend(spec.sandboxes.iter().map(|s| s.name.clone()));
        let mut lab = Lab {
            init,
            _lifeline: lifeline,
            names,
            channels,
            agent_pids: Vec::new(),
            facts: Vec::new(),
        };
        // The lab's init reports last for itself but first in order of
        // trouble: if it failed to make a sandbox, it says so here.
        for i in 0..lab.channels.len() {
            match lab.receive(i, deadline) {
                Ok(Response::Ready {
                    pid,
                    namespaces,
                    hostname,
                }) => {
                    lab.agent_pids.push(pid);
                    lab.facts.push(ContextFacts {
                        namespaces,
                        hostname,
                    });
                }
                Ok(Response::SetupFailed { error }) => {
                    return Err(LabError::Setup {
                        context: lab.names[i].clone(),
                        error,
                    });
                }
                Ok(other) => {
                    return Err(LabError::Setup {
                        context: lab.names[i].clone(),
                        error: format!("unexpected message {other:?}"),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(lab)
    }

    pub fn context_names(&self) -> &[String] {
        &self.names
    }

    /// The host pid of the lab's init, for signals from outside.
    pub fn init_pid(&self) -> i32 {
        self.init.as_raw()
    }

    pub fn request(
        &mut self,
        ctx: usize,
        req: &Request,
        deadline: Instant,
    ) -> Result<Response, LabError> {
        let name = self.names[ctx].clone();
        proto::send(&mut self.channels[ctx], req).map_err(|error| LabError::Io {
            context: name,
            error,
        })?;
        self.receive(ctx, deadline)
    }

    /// Connects two contexts' network namespaces with a veth pair, both ends
    /// addressed (if given) and up.
    pub fn link(
        &mut self,
        a: usize,
        b: usize,
        names: [&str; 2],
        addresses: [Option<&str>; 2],
        deadline: Instant,
    ) -> Result<(), LabError> {
        let fail = |ctx: &str, error: String| LabError::Setup {
            context: ctx.to_owned(),
            error,
        };
        let done = |r: Result<Response, LabError>, ctx: &str| match r? {
            Response::Done(Ok(())) => Ok(()),
            Response::Done(Err(e)) => Err(fail(ctx, e)),
            other => Err(fail(ctx, format!("unexpected answer {other:?}"))),
        };
        match self.request(b, &Request::NetnsFd, deadline)? {
            Response::FdFollows => {}
            Response::Done(Err(e)) => return Err(fail(&self.names[b].clone(), e)),
            other => {
                return Err(fail(
                    &self.names[b].clone(),
                    format!("unexpected answer {other:?}"),
                ));
            }
        }
        use std::os::fd::AsRawFd;
        let ns = sys::recv_fd(self.channels[b].as_raw_fd()).map_err(|e| {
            fail(
                &self.names[b].clone(),
                format!("receiving its namespace: {e}"),
            )
        })?;
        let (na, nb) = (self.names[a].clone(), self.names[b].clone());
        proto::send(
            &mut self.channels[a],
            &Request::AddVeth {
                name: names[0].to_owned(),
                peer: names[1].to_owned(),
            },
        )
        .map_err(|error| LabError::Io {
            context: na.clone(),
            error,
        })?;
        sys::send_fd(self.channels[a].as_raw_fd(), ns.as_raw_fd())
            .map_err(|e| fail(&na, format!("passing a namespace: {e}")))?;
        done(self.receive(a, deadline), &na)?;
        for (ctx, name, addr, label) in [
            (a, names[0], addresses[0], &na),
            (b, names[1], addresses[1], &nb),
        ] {
            let req = Request::Configure {
                name: name.to_owned(),
                address: addr.map(str::to_owned),
            };
            done(self.request(ctx, &req, deadline), label)?;
        }
        for (ctx, name, label) in [(a, names[0], &na), (b, names[1], &nb)] {
            let req = Request::WaitRunning {
                name: name.to_owned(),
            };
            done(self.request(ctx, &req, deadline), label)?;
        }
        Ok(())
    }

    fn receive(&mut self, ctx: usize, deadline: Instant) -> Result<Response, LabError> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        // Wait for the answer or a signal, whichever comes first.
        loop {
            if let Some(sig) = interrupt::check() {
                return Err(LabError::Interrupted(sig));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LabError::Timeout);
            }
            let mut fds = vec![PollFd::new(self.channels[ctx].as_fd(), PollFlags::POLLIN)];
            if let Some(sfd) = interrupt::fd() {
                fds.push(PollFd::new(sfd, PollFlags::POLLIN));
            }
            let ms = left.as_millis().clamp(1, 60_000) as i32;
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(_) if fds[0].revents().is_some_and(|r| !r.is_empty()) => break,
                _ => continue,
            }
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(std::time::Duration::from_millis(1));
        let chan = &mut self.channels[ctx];
        let _ = chan.set_read_timeout(Some(left));
        match proto::recv(chan) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(LabError::AgentGone(self.names[ctx].clone())),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err(LabError::Timeout)
            }
            Err(error) => Err(LabError::Io {
                context: self.names[ctx].clone(),
                error,
            }),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Killing the lab's PID 1 makes the kernel kill everything inside.
        // The kernel then waits for every process of the lab's pid
        // namespace to be gone, about half a millisecond: the runner goes
        // on (the report, the next scenario) and collects the lab later.
        let _ = kill(self.init, Signal::SIGKILL);
        DYING.with_borrow_mut(|d| d.push(self.init));
        collect_dying(false);
    }
}

thread_local! {
    /// Killed labs whose init, and finished workers that, have not been
    /// waited for yet.
    static DYING: std::cell::RefCell<Vec<Pid>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Waits for killed labs and finished workers: those already gone, or
/// (`all`) every one. A run collects all before it looks at the real
/// machine again, before cgroups a lab was in are removed, and before a
/// worker exits.
pub fn collect_dying(all: bool) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus};
    let flags = (!all).then_some(WaitPidFlag::WNOHANG);
    DYING.with_borrow_mut(|d| {
        d.retain(|&pid| matches!(waitpid(pid, flags), Ok(WaitStatus::StillAlive)));
    });
}

/// Runs `work` in a forked worker process that dies with the caller, and
/// returns its pid and the read end of the pipe its result arrives on.
/// Workers let `--jobs` run labs in parallel without threads, which would
/// break `unshare(CLONE_NEWUSER)` and tie PR_SET_PDEATHSIG to one thread.
pub fn fork_worker(work: impl FnOnce() -> Vec<u8>) -> Result<(i32, std::os::fd::OwnedFd), String> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let parent = nix::unistd::getpid();
    match sys::fork_process().map_err(|e| format!("fork: {e}"))? {
        None => {
            // ---- child: a worker ----
            drop(r);
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            // The parent may have died before the signal was armed.
            if nix::unistd::getppid() != parent {
                sys::exit_now(1);
            }
            let out = work();
            let mut f = std::fs::File::from(w);
            let _ = std::io::Write::write_all(&mut f, &out);
            drop(f);
            collect_dying(true);
            sys::exit_now(0)
        }
        Some(pid) => Ok((pid.as_raw(), r)),
    }
}

/// Collects a worker whose result is in, now or later.
pub fn reap_worker(pid: i32) {
    // Its result is in; it is only collecting its lab and exiting now.
    DYING.with_borrow_mut(|d| d.push(Pid::from_raw(pid)));
    collect_dying(false);
}

/// Why [`try_unshare`] did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryError {
    /// The child could not switch to the uid it was to try as.
    CannotDrop,
    Unshare(nix::errno::Errno),
}

/// Tries `unshare(flags)` in a throwaway child, optionally after dropping
/// to an unprivileged uid and gid first.
pub fn try_unshare(flags: nix::sched::CloneFlags, as_uid: Option<u32>) -> Result<(), TryError> {
    match sys::fork_process().map_err(TryError::Unshare)? {
        None => {
            // ---- child: the attempt ----
            if let Some(uid) = as_uid {
                let _ = nix::unistd::setgroups(&[]);
                let g = nix::unistd::Gid::from_raw(uid);
                let u = nix::unistd::Uid::from_raw(uid);
                if nix::unistd::setresgid(g, g, g).is_err()
                    || nix::unistd::setresuid(u, u, u).is_err()
                {
                    sys::exit_now(255);
                }
            }
            match nix::sched::unshare(flags) {
                Ok(()) => sys::exit_now(0),
                Err(e) => sys::exit_now(e as i32),
            }
        }
        Some(pid) => match waitpid(pid, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(nix::sys::wait::WaitStatus::Exited(_, 255)) => Err(TryError::CannotDrop),
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => {
                Err(TryError::Unshare(nix::errno::Errno::from_raw(code)))
            }
            _ => Err(TryError::Unshare(nix::errno::Errno::ECHILD)),
        },
    }
}

/// The clone flag of one namespace type (time included: unshare takes it).
pub fn ns_flag(ns: crate::ns::Ns) -> nix::sched::CloneFlags {
    use crate::ns::Ns;
    use nix::sched::CloneFlags as F;
    match ns {
        Ns::Mount => F::CLONE_NEWNS,
        Ns::Pid => F::CLONE_NEWPID,
        Ns::Net => F::CLONE_NEWNET,
        Ns::Ipc => F::CLONE_NEWIPC,
        Ns::Uts => F::CLONE_NEWUTS,
        Ns::User => F::CLONE_NEWUSER,
        Ns::Cgroup => F::CLONE_NEWCGROUP,
        Ns::Time => F::from_bits_retain(libc::CLONE_NEWTIME),
    }
}
