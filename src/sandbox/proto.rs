//! What the runner and the agents inside the lab say to each other: one
//! length-prefixed JSON frame per message over a Unix stream socket.

use crate::scenario::Probe;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};

/// A frame this large is a bug or an attack, not a message.
const MAX_FRAME: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    Run {
        command: String,
        timeout_ms: u64,
        user: Option<u32>,
        background: bool,
    },
    Probe {
        probe: Probe,
        user: Option<u32>,
    },
    /// Answered with [`Response::FdFollows`] and this context's network
    /// namespace as a file descriptor.
    NetnsFd,
    /// Followed by a network namespace file descriptor: create a veth pair
    /// here whose peer lives there.
    AddVeth {
        name: String,
        peer: String,
    },
    /// Address an interface of this context and bring it up.
    Configure {
        name: String,
        address: Option<String>,
    },
    /// Wait until an interface of this context is running.
    WaitRunning {
        name: String,
    },
    /// Followed by a terminal's file descriptor: start an interactive shell
    /// on it, with a prompt that names `label`.
    Shell {
        label: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    /// An agent is up. It brings what the report shows of every context,
    /// saving two round trips per context before the first step.
    Ready {
        pid: i32,
        namespaces: BTreeMap<String, u64>,
        hostname: Option<String>,
    },
    SetupFailed {
        error: String,
    },
    Run(RunOutcome),
    Probe(Result<serde_json::Value, String>),
    FdFollows,
    Done(Result<(), String>),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunOutcome {
    pub exit_status: Option<i32>,
    /// The signal that ended the command, if one did.
    pub signal: Option<String>,
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: f64,
    pub timed_out: bool,
    pub truncated: bool,
    /// The pid of a background command, as seen in its context.
    pub pid: Option<i32>,
    /// Why the command could not be started at all.
    pub error: Option<String>,
}

pub fn send<W: Write, T: Serialize>(w: &mut W, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)
}

/// `Ok(None)` on a clean end of stream.
pub fn recv<R: Read, T: for<'de> Deserialize<'de>>(r: &mut R) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::other(format!(
            "frame of {len} bytes is too large"
        )));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(io::Error::other)
}
