//! Facts about the machine nslab runs on, read once per run.

use crate::scenario::load::parse_kernel_version;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Machine {
    pub uid: u32,
    pub gid: u32,
    pub kernel: String,
    pub kernel_version: (u32, u32, u32),
    pub arch: String,
    pub hostname: String,
}

impl Machine {
    pub fn read() -> Machine {
        let u = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            u.as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let kernel = field(|u| u.release());
        Machine {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            kernel_version: parse_kernel_version(&kernel).unwrap_or((0, 0, 0)),
            kernel,
            arch: field(|u| u.machine()),
            hostname: field(|u| u.nodename()),
        }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// Where a command would be found on PATH.
pub fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(cmd)).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// The Debian package that provides a command the bundled scenarios use.
pub fn package_for(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "ip" | "ss" | "bridge" | "tc" => "iproute2",
        "iptables" | "iptables-save" | "ip6tables" => "iptables",
        "nft" => "nftables",
        "ps" | "pgrep" | "pkill" | "sysctl" | "free" => "procps",
        "unshare" | "nsenter" | "ipcmk" | "ipcs" | "ipcrm" | "mount" | "umount" | "setpriv"
        | "lsns" | "findmnt" => "util-linux",
        "ping" => "iputils-ping",
        "nc" => "netcat-openbsd",
        "bwrap" => "bubblewrap",
        "stat" | "touch" | "id" | "cat" | "awk" => "coreutils",
        _ => return None,
    })
}

/// Whether this kernel knows a namespace type at all.
pub fn kernel_has_namespace(ns: crate::ns::Ns) -> bool {
    std::path::Path::new(&format!("/proc/self/ns/{}", ns.proc_name())).exists()
}

/// The first host id of the 65536 a root-run lab maps: root's range in
/// /etc/subuid when it has one that large, else 100000 (Debian's first).
pub fn lab_id_base(subid_file: &str) -> u32 {
    std::fs::read_to_string(subid_file)
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut f = l.split(':');
                let (who, start, count) = (f.next()?, f.next()?, f.next()?);
                let (start, count): (u32, u32) = (start.parse().ok()?, count.trim().parse().ok()?);
                (who == "root" && count >= 65536).then_some(start)
            })
        })
        .unwrap_or(100_000)
}

/// A user's first subordinate id range in /etc/subuid or /etc/subgid
/// format (`name:start:count`, the name or the numeric id).
pub fn subid_range(text: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        let mine = Some(who) == name || who.parse::<u32>().ok() == Some(id);
        let (start, count) = (start.parse().ok()?, count.trim().parse().ok()?);
        (mine && count > 0).then_some((start, count))
    })
}

/// The calling user's subordinate ranges, if the helpers that grant them
/// are installed.
pub fn subids_here(machine: &Machine) -> Option<crate::plan::SubIds> {
    which("newuidmap")?;
    which("newgidmap")?;
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(machine.uid))
        .ok()
        .flatten()
        .map(|u| u.name);
    let read = |p: &str| std::fs::read_to_string(p).ok();
    Some(crate::plan::SubIds {
        uid: subid_range(&read("/etc/subuid")?, name.as_deref(), machine.uid)?,
        gid: subid_range(&read("/etc/subgid")?, name.as_deref(), machine.uid)?,
    })
}

/// Seconds since the epoch as RFC 3339 UTC, without a date library.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_412_151);
        assert_eq!(rfc3339(t), "2026-12-04T19:22:31Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn subordinate_ranges_by_name_or_id() {
        let t = "alice:100000:65536\n1001:200000:1000\n";
        assert_eq!(subid_range(t, Some("alice"), 1000), Some((100000, 65536)));
        assert_eq!(subid_range(t, Some("bob"), 1001), Some((200000, 1000)));
        assert_eq!(subid_range(t, Some("carol"), 1002), None);
    }

    #[test]
    fn subid_range_or_default() {
        let dir = std::env::temp_dir().join(format!("nslab-subid-{}", std::process::id()));
        std::fs::write(&dir, "alice:100000:65536\nroot:300000:65536\n").unwrap();
        assert_eq!(lab_id_base(dir.to_str().unwrap()), 300_000);
        std::fs::write(&dir, "root:300000:10\n").unwrap();
        assert_eq!(lab_id_base(dir.to_str().unwrap()), 100_000);
        let _ = std::fs::remove_file(&dir);
        assert_eq!(lab_id_base("/nonexistent"), 100_000);
    }
}
