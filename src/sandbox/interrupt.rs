//! SIGINT, SIGTERM and SIGHUP, without threads or async handlers: they are
//! blocked in the runner and read from a signalfd that every wait for an
//! agent also watches, so an interrupted run still tears its lab down and
//! writes its report. A second signal during cleanup is simply queued.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

static FD: OnceLock<SignalFd> = OnceLock::new();
static CAUGHT: AtomicI32 = AtomicI32::new(0);

fn set() -> SigSet {
    let mut s = SigSet::empty();
    s.add(Signal::SIGINT);
    s.add(Signal::SIGTERM);
    s.add(Signal::SIGHUP);
    s
}

/// Call once, before any fork, from the runner's only thread.
pub fn install() -> Result<(), String> {
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set()), None).map_err(|e| e.to_string())?;
    let fd = SignalFd::with_flags(&set(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| e.to_string())?;
    let _ = FD.set(fd);
    Ok(())
}

/// The descriptor to poll alongside whatever the runner waits for.
pub fn fd() -> Option<BorrowedFd<'static>> {
    FD.get().map(|f| f.as_fd())
}

/// Reads pending signals; the first one caught is remembered for good.
pub fn check() -> Option<Signal> {
    if let Some(fd) = FD.get() {
        while let Ok(Some(info)) = fd.read_signal() {
            let _ = CAUGHT.compare_exchange(
                0,
                info.ssi_signo as i32,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }
    caught()
}

pub fn caught() -> Option<Signal> {
    match CAUGHT.load(Ordering::SeqCst) {
        0 => None,
        n => Signal::try_from(n).ok(),
    }
}

/// The conventional exit status for death by a signal: 128 + its number.
pub fn exit_status(sig: Signal) -> i32 {
    128 + sig as i32
}
