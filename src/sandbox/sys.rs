//! The few system calls nix does not wrap safely. Every `unsafe` block of
//! nslab is in this module or says why it is elsewhere in `sandbox`.

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// `clone(2)` used like `fork(2)`: no new stack, the child continues here.
/// Returns `None` in the child.
///
/// The caller must be single-threaded: the child gets a copy of only the
/// calling thread, and locks held by other threads would stay locked.
pub fn clone_process(flags: CloneFlags) -> Result<Option<Pid>, Errno> {
    // SAFETY: with a null stack pointer the raw clone syscall has fork
    // semantics (the child runs on a copy-on-write copy of this stack), so no
    // Rust invariant is broken; nslab only calls it from its single-threaded
    // runner and from agents, which never start threads.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags.bits() as libc::c_long) | libc::SIGCHLD as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// `fork(2)`, for the same single-threaded callers as [`clone_process`].
pub fn fork_process() -> Result<Option<Pid>, Errno> {
    clone_process(CloneFlags::empty())
}

/// Ends a forked child without running the parent's destructors or flushing
/// the parent's buffered output a second time.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// Sets IFF_UP on an interface of the caller's network namespace.
pub fn interface_up(name: &str) -> Result<(), Errno> {
    interface_flags(name, true).map(|_| ())
}

/// Whether an interface is running: up, with carrier, and activated by the
/// kernel's link watcher. Until then its queue discards what is sent, and
/// the link watcher may take up to a second.
pub fn interface_running(name: &str) -> Result<bool, Errno> {
    interface_flags(name, false).map(|f| f & libc::IFF_RUNNING as libc::c_short != 0)
}

fn interface_flags(name: &str, set_up: bool) -> Result<libc::c_short, Errno> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(Errno::EINVAL);
    }
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    use std::os::fd::AsRawFd;
    // SAFETY: ifreq is plain old data, all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into a properly sized ifreq on a live socket.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    if !set_up {
        return Ok(flags);
    }
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: as above, SIOCSIFFLAGS reads the same ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(Errno::last());
    }
    Ok(flags | libc::IFF_UP as libc::c_short)
}

/// Signal dispositions a command expects to start with: all default,
/// nothing blocked. Rust ignores SIGPIPE in its own process, nslab may
/// itself have been started with signals ignored (`nohup`), and ignored
/// signals survive exec: without this, `yes | head -1` in a scenario would
/// never end. For a forked child, just before exec.
pub fn reset_signals_for_exec() {
    // glibc's signal() and sigaction() refuse its internal signals 32 and
    // 33, and a parent that started nslab with posix_spawn (Rust's
    // `Command` does) leaves them ignored: the raw system call resets all.
    // The kernel's struct sigaction for SIG_DFL with no flags and an empty
    // mask is all zeros: handler, flags, restorer, mask.
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads a kernel sigaction from `dfl`, which is
        // the right size and alive; the old action pointer is null. Setting
        // SIG_DFL runs no handler code, so this is safe in a forked child.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig as libc::c_long,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8 as libc::c_long,
            );
        }
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

/// Signals 1 to 64, glibc's two internal ones (32 and 33) included, for
/// posix_spawn's "set to default" attribute. glibc's posix_spawn child
/// leaves those two *ignored* otherwise, and an ignored signal survives
/// exec; sigaddset refuses them, so the bits are set directly.
pub fn every_signal() -> nix::sys::signal::SigSet {
    const WORDS: usize = std::mem::size_of::<libc::sigset_t>() / 8;
    const _: () = assert!(std::mem::size_of::<libc::sigset_t>() == WORDS * 8 && WORDS >= 1);
    // Bit n-1 of the first word is signal n, as the kernel lays it out.
    let mut words = [0u64; WORDS];
    words[0] = u64::MAX;
    // SAFETY: on Linux sigset_t is a plain array of 64-bit words with no
    // invalid bit patterns and the same size as `words` (checked above).
    let raw: libc::sigset_t = unsafe { std::mem::transmute(words) };
    // SAFETY: the set is fully initialised; posix_spawnattr_setsigdefault
    // copies it and the spawn child tests its bits one by one.
    unsafe { nix::sys::signal::SigSet::from_sigset_t_unchecked(raw) }
}

/// Sends one file descriptor over a Unix socket, with a one-byte payload.
pub fn send_fd(sock: std::os::fd::RawFd, fd: std::os::fd::RawFd) -> Result<(), Errno> {
    use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
    let fds = [fd];
    let iov = [std::io::IoSlice::new(b"F")];
    sendmsg::<UnixAddr>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(|_| ())
}

/// Receives a file descriptor sent by [`send_fd`].
pub fn recv_fd(sock: std::os::fd::RawFd) -> Result<std::os::fd::OwnedFd, Errno> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor in our table
            // for us; nothing else owns it.
            return Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        }
    }
    Err(Errno::EBADMSG)
}

/// Replaces what /proc/PID/cmdline shows for this process. Labs and agents
/// are forks of nslab that never exec, so without this `ps -eo args` in a
/// lab shows nslab's own command line, as if the real machine's nslab were
/// visible inside.
pub fn set_cmdline(name: &str) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let Some(close) = stat.rfind(')') else { return };
    // Fields after the command name start at field 3; arg_start and arg_end
    // are fields 48 and 49.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let (Some(start), Some(end)) = (
        fields.get(48 - 3).and_then(|f| f.parse::<usize>().ok()),
        fields.get(49 - 3).and_then(|f| f.parse::<usize>().ok()),
    ) else {
        return;
    };
    if end <= start || end - start > 1 << 20 {
        return;
    }
    let len = end - start;
    // SAFETY: [arg_start, arg_end) is the argument block the kernel placed
    // on this process's stack at exec; it is mapped and writable, and Rust
    // code here does not read it (std copied nothing we use afterwards). We
    // write within its bounds only.
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, len);
        let n = name.len().min(len - 1);
        std::ptr::copy_nonoverlapping(name.as_ptr(), p, n);
    }
}

/// Makes a terminal the caller's controlling terminal (after setsid).
pub fn set_controlling_terminal(fd: std::os::fd::RawFd) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an int argument by value; fd is open.
    if unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The window size of a terminal, if fd is one.
pub fn window_size(fd: std::os::fd::RawFd) -> Option<nix::pty::Winsize> {
    // SAFETY: winsize is plain old data; all-zero is valid.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointer we pass.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } < 0 {
        return None;
    }
    Some(ws)
}
