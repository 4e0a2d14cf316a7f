//! Built-in probes: observations nslab takes itself, from inside a context,
//! without starting a program. One probe per file; each parses what the
//! kernel shows through a pure function that is tested on fixtures.

mod cgroup;
mod firewall;
mod idmap;
mod interfaces;
mod ipc;
mod mounts;
mod namespaces;
mod processes;
mod reach;

use crate::scenario::Probe;
use serde_json::{Value, json};

pub use processes::{ProcEntry, proc_table};

/// The machine's nftables base chains, for host integrity checks.
pub fn firewall_snapshot() -> Vec<String> {
    firewall::snapshot()
}

/// Takes one observation in the calling process's namespaces.
pub fn take(probe: &Probe) -> Result<Value, String> {
    match probe {
        Probe::Hostname => nix::unistd::gethostname()
            .map(|h| json!(h.to_string_lossy()))
            .map_err(|e| format!("gethostname: {e}")),
        Probe::Pid => Ok(json!(nix::unistd::getpid().as_raw())),
        Probe::Uid => Ok(json!(nix::unistd::geteuid().as_raw())),
        Probe::Gid => Ok(json!(nix::unistd::getegid().as_raw())),
        Probe::Processes => processes::take(),
        Probe::UidMap => idmap::take("/proc/self/uid_map"),
        Probe::GidMap => idmap::take("/proc/self/gid_map"),
        Probe::Namespaces => namespaces::take_all(),
        Probe::Namespace(ns) => namespaces::take_one(*ns),
        Probe::Interfaces => interfaces::take(),
        Probe::Mounts => mounts::take(),
        Probe::Ipc => ipc::take(),
        Probe::Cgroup => cgroup::take(),
        Probe::Firewall => firewall::take(),
        Probe::Reach(target) => reach::take(target),
    }
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))
}
