//! The eight namespace types, by the words scenario files use for them.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ns {
    Mount,
    Pid,
    Net,
    Ipc,
    Uts,
    User,
    Cgroup,
    Time,
}

impl Ns {
    pub const ALL: [Ns; 8] = [
        Ns::Mount,
        Ns::Pid,
        Ns::Net,
        Ns::Ipc,
        Ns::Uts,
        Ns::User,
        Ns::Cgroup,
        Ns::Time,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Ns::Mount => "mount",
            Ns::Pid => "pid",
            Ns::Net => "net",
            Ns::Ipc => "ipc",
            Ns::Uts => "uts",
            Ns::User => "user",
            Ns::Cgroup => "cgroup",
            Ns::Time => "time",
        }
    }

    /// Accepts the spec's words and its aliases `mnt` and `network`.
    pub fn from_word(w: &str) -> Option<Ns> {
        Some(match w {
            "mount" | "mnt" => Ns::Mount,
            "pid" => Ns::Pid,
            "net" | "network" => Ns::Net,
            "ipc" => Ns::Ipc,
            "uts" => Ns::Uts,
            "user" => Ns::User,
            "cgroup" => Ns::Cgroup,
            "time" => Ns::Time,
            _ => return None,
        })
    }

    /// The file under /proc/PID/ns/. `pid` and `time` name the namespace the
    /// process itself is in, not the one its children will get.
    pub fn proc_name(self) -> &'static str {
        match self {
            Ns::Mount => "mnt",
            other => other.word(),
        }
    }

    pub const WORDS: &'static [&'static str] = &[
        "mount", "pid", "net", "ipc", "uts", "user", "cgroup", "time", "mnt", "network", "all",
    ];
}

impl fmt::Display for Ns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A set of namespace types, small enough to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct NsSet(u8);

impl NsSet {
    pub const fn empty() -> Self {
        NsSet(0)
    }
    pub fn all() -> Self {
        Ns::ALL.iter().fold(NsSet(0), |s, n| s.with(*n))
    }
    pub fn with(self, ns: Ns) -> Self {
        NsSet(self.0 | (1 << ns as u8))
    }
    pub fn contains(self, ns: Ns) -> bool {
        self.0 & (1 << ns as u8) != 0
    }
    pub fn union(self, other: NsSet) -> Self {
        NsSet(self.0 | other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Ns> {
        Ns::ALL.into_iter().filter(move |n| self.contains(*n))
    }
    /// `pid` needs a fresh /proc, and so a mount namespace of its own.
    pub fn with_implied(self) -> Self {
        if self.contains(Ns::Pid) {
            self.with(Ns::Mount)
        } else {
            self
        }
    }
    pub fn words(self) -> Vec<&'static str> {
        self.iter().map(Ns::word).collect()
    }
}

impl FromIterator<Ns> for NsSet {
    fn from_iter<I: IntoIterator<Item = Ns>>(iter: I) -> Self {
        iter.into_iter().fold(NsSet::empty(), |s, n| s.with(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_implications() {
        assert_eq!(Ns::from_word("mnt"), Some(Ns::Mount));
        assert_eq!(Ns::from_word("network"), Some(Ns::Net));
        assert_eq!(Ns::from_word("nett"), None);
        let s = NsSet::empty().with(Ns::Pid).with_implied();
        assert_eq!(s.words(), vec!["mount", "pid"]);
        assert_eq!(NsSet::all().iter().count(), 8);
    }
}
