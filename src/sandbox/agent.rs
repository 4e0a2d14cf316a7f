//! An agent serves one context: it runs commands and takes probes from
//! inside that context's namespaces, on the runner's request.

use super::proto::{self, Request, Response, RunOutcome};
use super::sys::{exit_now, fork_process, reset_signals_for_exec};
use crate::ns::Ns;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid, pipe2, read};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Bytes of stdout, and separately of stderr, kept per command; the rest is
/// read and dropped so the command never blocks on a full pipe.
pub const OUTPUT_CAP: usize = 1024 * 1024;

pub(super) fn serve(mut chan: UnixStream) {
    loop {
        reap_orphans(None);
        let req: Request = match proto::recv(&mut chan) {
            Ok(Some(r)) => r,
            _ => return,
        };
        let resp = match req {
            Request::Run {
                command,
                timeout_ms,
                user,
                background,
            } => Response::Run(run(
                &command,
                Duration::from_millis(timeout_ms),
                user,
                background,
            )),
            Request::Probe { probe, user } => Response::Probe(match user {
                None => crate::probe::take(&probe),
                Some(uid) => probe_as(&probe, uid),
            }),
            Request::NetnsFd => match std::fs::File::open("/proc/self/ns/net") {
                Ok(f) => {
                    if proto::send(&mut chan, &Response::FdFollows).is_err()
                        || super::sys::send_fd(chan.as_raw_fd(), f.as_raw_fd()).is_err()
                    {
                        return;
                    }
                    continue;
                }
                Err(e) => Response::Done(Err(format!("opening /proc/self/ns/net: {e}"))),
            },
            Request::AddVeth { name, peer } => match super::sys::recv_fd(chan.as_raw_fd()) {
                Ok(ns) => Response::Done(super::netlink::create_veth(&name, &peer, &ns)),
                Err(e) => Response::Done(Err(format!("receiving a namespace: {e}"))),
            },
            Request::Shell { label } => {
                let fds = super::sys::recv_fd(chan.as_raw_fd())
                    .and_then(|tty| super::sys::recv_fd(chan.as_raw_fd()).map(|done| (tty, done)));
                match fds {
                    Ok((tty, done)) => Response::Done(super::pty::spawn_shell(tty, done, &label)),
                    Err(e) => Response::Done(Err(format!("receiving the terminal: {e}"))),
                }
            }
            Request::WaitRunning { name } => {
                Response::Done(super::netlink::wait_running(&name, Duration::from_secs(3)))
            }
            Request::Configure { name, address } => {
                Response::Done(super::netlink::configure(&name, address.as_deref()))
            }
        };
        if proto::send(&mut chan, &resp).is_err() {
            return;
        }
    }
}

/// The Ready message of this context's agent.
pub(super) fn ready(pid: i32) -> Response {
    Response::Ready {
        pid,
        namespaces: namespaces(),
        hostname: nix::unistd::gethostname()
            .ok()
            .map(|h| h.to_string_lossy().into_owned()),
    }
}

/// Reaps every exited child (an agent is PID 1 or a subreaper, so orphans
/// end up here). Returns the status of `wanted` if it was among them.
fn reap_orphans(wanted: Option<Pid>) -> Option<WaitStatus> {
    let mut found = None;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(st) => {
                if st.pid().is_some() && st.pid() == wanted {
                    found = Some(st);
                }
            }
        }
    }
}

pub(super) fn namespaces() -> BTreeMap<String, u64> {
    Ns::ALL
        .iter()
        .filter_map(|ns| {
            let st =
                nix::sys::stat::stat(format!("/proc/self/ns/{}", ns.proc_name()).as_str()).ok()?;
            Some((ns.word().to_owned(), st.st_ino))
        })
        .collect()
}

fn switch_user(uid: u32) -> Result<(), String> {
    let _ = nix::unistd::setgroups(&[]);
    // The same number as the gid where it is mapped; the uid is what counts.
    let g = Gid::from_raw(uid);
    let _ = nix::unistd::setresgid(g, g, g);
    let u = Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u).map_err(|e| format!("cannot switch to uid {uid}: {e}"))
}

/// A probe as another user: only `uid`/`gid`-like facts change, but they
/// must be taken by a process that really has that identity.
fn probe_as(probe: &crate::scenario::Probe, uid: u32) -> Result<serde_json::Value, String> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    match fork_process().map_err(|e| e.to_string())? {
        None => {
            drop(r);
            let res = switch_user(uid).and_then(|()| crate::probe::take(probe));
            let body = serde_json::to_vec(&res).unwrap_or_default();
            let _ = nix::unistd::write(&w, &body);
            exit_now(0)
        }
        Some(child) => {
            drop(w);
            let mut out = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = read(&r, &mut buf) {
                out.extend_from_slice(&buf[..n]);
            }
            let _ = waitpid(child, None);
            serde_json::from_slice(&out).map_err(|e| format!("probe as uid {uid}: {e}"))?
        }
    }
}

struct Capture {
    fd: OwnedFd,
    buf: Vec<u8>,
    open: bool,
    truncated: bool,
}

impl Capture {
    fn new(fd: OwnedFd) -> Self {
        Capture {
            fd,
            buf: Vec::new(),
            open: true,
            truncated: false,
        }
    }

    /// Reads what is there; the pipe is non-blocking.
    fn drain(&mut self) {
        let mut chunk = [0u8; 65536];
        while self.open {
            match read(&self.fd, &mut chunk) {
                Ok(0) => self.open = false,
                Ok(n) => {
                    let room = OUTPUT_CAP.saturating_sub(self.buf.len());
                    if n > room {
                        self.truncated = true;
                    }
                    self.buf.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

fn run(command: &str, timeout: Duration, user: Option<u32>, background: bool) -> RunOutcome {
    let started = Instant::now();
    let fail = |error: String| RunOutcome {
        error: Some(error),
        ..RunOutcome::default()
    };
    let Ok(cmd) = CString::new(command) else {
        return fail("the command contains a NUL byte".into());
    };
    let pipes = (|| Ok::<_, nix::Error>((pipe2(OFlag::O_CLOEXEC)?, pipe2(OFlag::O_CLOEXEC)?)))();
    let Ok(((out_r, out_w), (err_r, err_w))) = pipes else {
        return fail("cannot create pipes".into());
    };
    // Children the agent already has (background steps, earlier orphans):
    // any other that appears during this step came from it.
    let me = nix::unistd::getpid().as_raw();
    let before = children_of_this_agent(me);
    let started_child = match user {
        // A plain spawn cannot change identity: fork, switch, exec.
        Some(uid) => fork_as(&cmd, uid, &out_w, &err_w, background),
        None => spawn_command(command, &cmd, &out_w, &err_w, background),
    };
    let child = match started_child {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    drop(out_w);
    drop(err_w);
    if background {
        return RunOutcome {
            pid: Some(child.as_raw()),
            duration_ms: ms(started.elapsed()),
            ..RunOutcome::default()
        };
    }
    for fd in [&out_r, &err_r] {
        let _ = fcntl(fd.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    }
    let mut out = Capture::new(out_r);
    let mut err = Capture::new(err_r);
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(child.as_raw()).expect("fork returned a positive pid"),
        rustix::process::PidfdFlags::empty(),
    )
    .ok();
    let deadline = started + timeout;
    let mut status = None;
    let mut timed_out = false;
    while status.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            kill_step(child, me, &before);
            status = waitpid(child, None).ok();
            break;
        }
        let mut fds = Vec::with_capacity(3);
        if out.open {
            fds.push(PollFd::new(out.fd.as_fd(), PollFlags::POLLIN));
        }
        if err.open {
            fds.push(PollFd::new(err.fd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(p) = &pidfd {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        // Without a pidfd, wake up now and then to look for the exit.
        let wait_ms = if pidfd.is_some() {
            left.as_millis()
        } else {
            left.as_millis().min(5)
        };
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(wait_ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX),
        );
        out.drain();
        err.drain();
        status = reap_orphans(Some(child));
    }
    // The shell has ended; take what its pipes already hold, but do not wait
    // for background children of its that keep them open.
    out.drain();
    err.drain();
    let (exit_status, signal) = match status {
        Some(WaitStatus::Exited(_, code)) => (Some(code), None),
        Some(WaitStatus::Signaled(_, sig, _)) => (None, Some(sig.as_str().to_owned())),
        _ => (None, None),
    };
    RunOutcome {
        exit_status,
        signal,
        stdout: out.text(),
        stderr: err.text(),
        duration_ms: ms(started.elapsed()),
        timed_out,
        truncated: out.truncated || err.truncated,
        pid: None,
        error: None,
    }
}

/// The agent's current children. /proc/thread-self/children is one small
/// read, where a scan of /proc costs a read per process in the context; the
/// scan remains for kernels built without it.
fn children_of_this_agent(me: i32) -> Vec<i32> {
    match std::fs::read_to_string("/proc/thread-self/children") {
        Ok(text) => text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
        Err(_) => crate::probe::proc_table()
            .iter()
            .filter(|p| p.ppid == me)
            .map(|p| p.pid)
            .collect(),
    }
}

/// The environment commands start with: the agent's own, which never
/// changes, so it is converted once.
fn environment() -> &'static [CString] {
    static ENV: std::sync::OnceLock<Vec<CString>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        use std::os::unix::ffi::OsStrExt;
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).ok()
            })
            .collect()
    })
}

/// Where `execvp` would find a program: the first executable regular file
/// of that name along PATH. Looked up here with stat and access, which cost
/// far less than the failed execs `execvp` makes in the child for every
/// directory before the right one.
pub fn find_program(program: &str, path: Option<&str>) -> Option<CString> {
    use nix::unistd::{AccessFlags, access};
    let executable = |p: &str| {
        nix::sys::stat::stat(p).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
            && access(p, AccessFlags::X_OK).is_ok()
    };
    if program.contains('/') {
        return executable(program).then(|| CString::new(program).ok())?;
    }
    let path = path.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|dir| {
            if dir.is_empty() {
                program.to_owned()
            } else {
                format!("{}/{program}", dir.trim_end_matches('/'))
            }
        })
        .find(|p| executable(p))
        .and_then(|p| CString::new(p).ok())
}

/// Starts a command with posix_spawn, which glibc implements with
/// CLONE_VM|CLONE_VFORK: no copy of the agent's page tables, the single
/// largest cost of a step after the exec itself. The child gets its own
/// session (so its whole tree can be killed), /dev/null as stdin, the
/// capture pipes as stdout and stderr, default signal dispositions and no
/// signal blocked (see [`reset_signals_for_exec`]).
///
/// A command without shell syntax runs directly, saving the shell's
/// start-up; if it cannot be found or executed, the shell runs it after
/// all, so errors read as the shell's own.
fn spawn_command(
    command: &str,
    cmd: &std::ffi::CStr,
    out_w: &OwnedFd,
    err_w: &OwnedFd,
    background: bool,
) -> Result<Pid, String> {
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
    use nix::sys::signal::SigSet;
    let setup = || -> nix::Result<(PosixSpawnAttr, PosixSpawnFileActions)> {
        let mut attr = PosixSpawnAttr::init()?;
        attr.set_sigdefault(&super::sys::every_signal())?;
        attr.set_sigmask(&SigSet::empty())?;
        attr.set_flags(
            PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF
                | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
                | PosixSpawnFlags::from_bits_retain(libc::c_int::from(libc::POSIX_SPAWN_SETSID)),
        )?;
        let mut actions = PosixSpawnFileActions::init()?;
        let mode = nix::sys::stat::Mode::empty();
        actions.add_open(0, "/dev/null", OFlag::O_RDWR, mode)?;
        if background {
            // Nobody reads a background command's output: it goes to
            // /dev/null, not to a pipe whose reader is gone (SIGPIPE).
            actions.add_open(1, "/dev/null", OFlag::O_WRONLY, mode)?;
            actions.add_open(2, "/dev/null", OFlag::O_WRONLY, mode)?;
        } else {
            actions.add_dup2(out_w.as_raw_fd(), 1)?;
            actions.add_dup2(err_w.as_raw_fd(), 2)?;
        }
        Ok((attr, actions))
    };
    let (attr, actions) = setup().map_err(|e| format!("preparing to start the command: {e}"))?;
    let env = environment();
    if let Some(argv) = simple_argv(command)
        && let Some(program) = find_program(
            argv[0].to_str().unwrap_or_default(),
            std::env::var("PATH").ok().as_deref(),
        )
        && let Ok(pid) = posix_spawn(program.as_c_str(), &actions, &attr, &argv, env)
    {
        return Ok(pid);
    }
    posix_spawn(c"/bin/sh", &actions, &attr, &[c"sh", c"-c", cmd], env)
        .map_err(|e| format!("cannot execute /bin/sh: {e}"))
}

/// Starts a command as another user: a fork, because posix_spawn cannot
/// switch identity before the exec.
fn fork_as(
    cmd: &std::ffi::CStr,
    uid: u32,
    out_w: &OwnedFd,
    err_w: &OwnedFd,
    background: bool,
) -> Result<Pid, String> {
    let child = fork_process().map_err(|e| format!("fork: {e}"))?;
    if let Some(child) = child {
        return Ok(child);
    }
    // ---- child: becomes the command, as `uid` ----
    let _ = nix::unistd::setsid();
    let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR, nix::sys::stat::Mode::empty());
    if let Ok(null) = &null {
        let _ = nix::unistd::dup2_stdin(null);
    }
    match (&null, background) {
        (Ok(null), true) => {
            let _ = nix::unistd::dup2_stdout(null);
            let _ = nix::unistd::dup2_stderr(null);
        }
        _ => {
            let _ = nix::unistd::dup2_stdout(out_w);
            let _ = nix::unistd::dup2_stderr(err_w);
        }
    }
    if let Err(e) = switch_user(uid) {
        eprintln!("nslab: {e}");
        exit_now(126);
    }
    reset_signals_for_exec();
    if let Some(argv) = simple_argv(cmd.to_str().unwrap_or_default()) {
        let _ = nix::unistd::execvp(&argv[0], &argv);
    }
    let _ = nix::unistd::execv(c"/bin/sh", &[c"sh", c"-c", cmd]);
    eprintln!("nslab: cannot execute /bin/sh");
    exit_now(127)
}

/// The words of a command that `sh -c` would run as one plain program:
/// nothing to expand, quote, redirect or combine, and no builtin whose
/// effect differs from the program of the same name.
pub fn simple_argv(command: &str) -> Option<Vec<CString>> {
    const BUILTINS: &[&str] = &[
        "cd", "exit", "export", "set", "unset", ".", "source", "exec", "eval", "read", "ulimit",
        "umask", "wait", "trap", "alias", "unalias", "type", "hash", "command", "times", "shift",
        "return", "break", "continue", "local", "readonly", "getopts", "jobs", "fg", "bg",
    ];
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:,@%+=".contains(c);
    let words: Vec<&str> = command.split(' ').filter(|w| !w.is_empty()).collect();
    let first = words.first()?;
    if !command.chars().all(|c| c == ' ' || plain(c))
        || BUILTINS.contains(first)
        || first.contains('=')
    {
        return None;
    }
    words.iter().map(|w| CString::new(*w).ok()).collect()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Kills a command and everything it started: its session, every
/// descendant found by parent links, and every process that became the
/// agent's child during the step (daemons that double-forked or called
/// setsid are reparented to the agent, a subreaper or PID 1). Repeated
/// until nothing new appears, so processes forking meanwhile are caught.
fn kill_step(root: Pid, agent: i32, before: &[i32]) {
    let root = root.as_raw();
    let _ = kill(Pid::from_raw(-root), Signal::SIGKILL);
    for _ in 0..8 {
        let procs = crate::probe::proc_table();
        let mut doomed: Vec<i32> = vec![root];
        doomed.extend(
            procs
                .iter()
                .filter(|p| p.ppid == agent && p.pid != root && !before.contains(&p.pid))
                .map(|p| p.pid),
        );
        let mut changed = true;
        while changed {
            changed = false;
            for p in &procs {
                if !doomed.contains(&p.pid) && (doomed.contains(&p.ppid) || p.sid == root) {
                    doomed.push(p.pid);
                    changed = true;
                }
            }
        }
        let alive: Vec<i32> = doomed
            .into_iter()
            .filter(|pid| procs.iter().any(|p| p.pid == *pid && !p.zombie))
            .collect();
        if alive.is_empty() {
            return;
        }
        for pid in alive {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::simple_argv;

    #[test]
    fn only_plain_commands_skip_the_shell() {
        let words = |c: &str| {
            simple_argv(c).map(|v| {
                v.iter()
                    .map(|s| s.to_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(words("true"), Some(vec!["true".to_owned()]));
        assert_eq!(
            words("ip netns add  mynetns"),
            Some(vec![
                "ip".into(),
                "netns".into(),
                "add".into(),
                "mynetns".into()
            ])
        );
        for shell in [
            "echo $HOME",
            "a | b",
            "x > f",
            "cd /tmp",
            "exit 3",
            "A=1 env",
            "ls *",
            "echo 'q'",
            "a && b",
            "sleep 1 &",
            "echo \\n",
            "a;b",
            "(true)",
        ] {
            assert_eq!(words(shell), None, "{shell} needs the shell");
        }
    }
}

#[cfg(test)]
mod path_tests {
    use super::find_program;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn programs_are_found_like_execvp_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |sub: &str, name: &str, mode: u32| {
            let d = dir.path().join(sub);
            std::fs::create_dir_all(&d).unwrap();
            let f = d.join(name);
            std::fs::write(&f, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            f.to_str().unwrap().to_owned()
        };
        // Not executable, then a directory of the same name, then the one.
        mk("a", "tool", 0o644);
        std::fs::create_dir_all(dir.path().join("b/tool")).unwrap();
        let real = mk("c", "tool", 0o755);
        let later = mk("d", "tool", 0o755);
        let d = |s: &str| dir.path().join(s).to_str().unwrap().to_owned();
        let path = [d("missing"), d("a"), d("b"), d("c"), d("d")].join(":");
        let found = find_program("tool", Some(&path)).unwrap();
        assert_eq!(found.to_str().unwrap(), real);
        assert_ne!(real, later);
        assert_eq!(find_program("nothing-4242", Some(&path)), None);
        // A name with a slash is taken as it is, if it can be executed.
        assert_eq!(find_program(&later, None).unwrap().to_str().unwrap(), later);
        assert_eq!(find_program(&format!("{}/a/tool", d("")), None), None);
        // Trailing slashes in PATH entries do not double.
        let slashed = format!("{}/", d("c"));
        assert_eq!(
            find_program("tool", Some(&slashed))
                .unwrap()
                .to_str()
                .unwrap(),
            real
        );
    }
}
