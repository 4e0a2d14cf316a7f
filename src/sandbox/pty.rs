//! `nslab shell`: an interactive shell inside a context, on a pseudo-
//! terminal the runner opens and relays to the user's terminal.

use super::{Lab, LabError, proto, sys};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

/// Agent side: starts the shell on the pty's slave end as its controlling
/// terminal, under a watcher that holds `done` open until the shell exits:
/// the shell's own background jobs may keep the terminal open after it.
pub(super) fn spawn_shell(slave: OwnedFd, done: OwnedFd, label: &str) -> Result<(), String> {
    match sys::fork_process().map_err(|e| e.to_string())? {
        None => {
            // ---- child: the watcher ----
            // `done` arrived close-on-exec: the shell does not hold it.
            match spawn_shell_process(slave, label) {
                Ok(pid) => {
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                }
                Err(_) => sys::exit_now(1),
            }
            drop(done);
            sys::exit_now(0)
        }
        Some(_) => Ok(()),
    }
}

fn spawn_shell_process(slave: OwnedFd, label: &str) -> Result<i32, String> {
    let prompt = format!("(nslab {label}) \\u@\\h:\\w\\$ ");
    let plain = format!("(nslab {label}) # ");
    match sys::fork_process().map_err(|e| e.to_string())? {
        None => {
            // ---- child: the shell ----
            let _ = nix::unistd::setsid();
            let _ = sys::set_controlling_terminal(slave.as_raw_fd());
            let _ = nix::unistd::dup2_stdin(&slave);
            let _ = nix::unistd::dup2_stdout(&slave);
            let _ = nix::unistd::dup2_stderr(&slave);
            drop(slave);
            sys::reset_signals_for_exec();
            let env = |ps1: &str| {
                let mut e: Vec<std::ffi::CString> = std::env::vars()
                    .filter(|(k, _)| k != "PS1")
                    .filter_map(|(k, v)| std::ffi::CString::new(format!("{k}={v}")).ok())
                    .collect();
                e.push(std::ffi::CString::new(format!("PS1={ps1}")).unwrap_or_default());
                e.push(c"NSLAB_CONTEXT=1".to_owned());
                e
            };
            if std::path::Path::new("/bin/bash").exists() {
                let _ = nix::unistd::execve(
                    c"/bin/bash",
                    &[c"bash", c"--norc", c"--noprofile", c"-i"],
                    &env(&prompt),
                );
            }
            let _ = nix::unistd::execve(c"/bin/sh", &[c"sh", c"-i"], &env(&plain));
            sys::exit_now(127)
        }
        Some(pid) => Ok(pid.as_raw()),
    }
}

/// Copies what the pty still holds to stdout, without waiting for more.
fn drain(master: &OwnedFd) {
    use std::io::Write;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(n) if n > 0 => match nix::unistd::read(master, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = std::io::stdout().write_all(&buf[..n]);
                }
                _ => break,
            },
            _ => break,
        }
    }
    let _ = std::io::stdout().flush();
}

/// Restores the user's terminal however the relay ends.
struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// `None` when standard input is not a terminal.
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Runner side: opens a pty, has context `ctx` start a shell on it, and
/// relays between it and this terminal until the shell is gone.
pub fn interact(lab: &mut Lab, ctx: usize, label: &str) -> Result<(), LabError> {
    let fail = |e: String| LabError::Create(e);
    let stdin = std::io::stdin();
    let winsize = sys::window_size(stdin.as_raw_fd());
    let pty =
        nix::pty::openpty(winsize.as_ref(), None).map_err(|e| fail(format!("openpty: {e}")))?;
    let name = lab.names[ctx].clone();
    proto::send(
        &mut lab.channels[ctx],
        &proto::Request::Shell {
            label: label.to_owned(),
        },
    )
    .map_err(|error| LabError::Io {
        context: name.clone(),
        error,
    })?;
    let (done_r, done_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail(format!("pipe: {e}")))?;
    for fd in [pty.slave.as_raw_fd(), done_w.as_raw_fd()] {
        sys::send_fd(lab.channels[ctx].as_raw_fd(), fd)
            .map_err(|e| fail(format!("passing the terminal: {e}")))?;
    }
    // Only the lab holds these now: the watcher's end of `done` closes when
    // the shell exits.
    drop(pty.slave);
    drop(done_w);
    match lab.receive(ctx, Instant::now() + std::time::Duration::from_secs(10))? {
        proto::Response::Done(Ok(())) => {}
        proto::Response::Done(Err(e)) => {
            return Err(LabError::Setup {
                context: name,
                error: e,
            });
        }
        other => return Err(fail(format!("unexpected answer {other:?}"))),
    }
    let _raw = RawMode::enter();
    let master = pty.master;
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        // SIGTERM or SIGHUP (a closed terminal) end the session: the lab is
        // torn down and this terminal restored on the way out.
        if super::interrupt::check().is_some() {
            return Ok(());
        }
        let mut fds = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(done_r.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(sfd) = super::interrupt::fd() {
            fds.push(PollFd::new(sfd, PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let master_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let shell_gone = fds[1].revents().is_some_and(|r| !r.is_empty());
        let stdin_ready = stdin_open
            && fds
                .last()
                .filter(|_| fds.len() > 2 + usize::from(super::interrupt::fd().is_some()))
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
        if shell_gone && !master_ready {
            // What the shell wrote last is in the pty already, or never.
            drain(&master);
            return Ok(());
        }
        if master_ready {
            match nix::unistd::read(&master, &mut buf) {
                Ok(0) | Err(_) => return Ok(()), // EIO: the shell and its children are gone
                Ok(n) => {
                    use std::io::Write;
                    let mut out = std::io::stdout();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
            }
        }
        if stdin_ready {
            match nix::unistd::read(&stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    // Input ended (a pipe, not a person): end the shell's too.
                    stdin_open = false;
                    let _ = nix::unistd::write(&master, b"\x04");
                }
                Ok(n) => {
                    let _ = nix::unistd::write(&master, &buf[..n]);
                }
            }
        }
    }
}
