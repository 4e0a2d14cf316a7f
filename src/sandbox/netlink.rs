//! veth pairs and addresses over rtnetlink, so links need no `ip` program.
//! Each agent configures interfaces in its own network namespace; the only
//! cross-namespace step is creating the pair, whose peer is placed by the
//! file descriptor of the other context's network namespace.

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    socket,
};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_GETLINK: u16 = 18;
const IFLA_QDISC: u16 = 6;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(align(4 + payload.len()));
    a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&ty.to_ne_bytes());
    a.extend_from_slice(payload);
    a.resize(align(a.len()), 0);
    a
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// struct ifinfomsg with everything zero.
fn ifinfomsg() -> Vec<u8> {
    vec![0u8; 16]
}

fn message(ty: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + body.len());
    m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(body);
    m
}

/// RTM_NEWLINK for a veth pair; the peer is created directly in the network
/// namespace `peer_ns` refers to.
pub fn veth_request(name: &str, peer: &str, peer_ns: RawFd) -> Vec<u8> {
    let mut peer_body = ifinfomsg();
    peer_body.extend(attr(IFLA_IFNAME, &cstr(peer)));
    peer_body.extend(attr(IFLA_NET_NS_FD, &(peer_ns as u32).to_ne_bytes()));
    let data = attr(VETH_INFO_PEER | NLA_F_NESTED, &peer_body);
    let mut info = attr(IFLA_INFO_KIND, b"veth");
    info.extend(attr(IFLA_INFO_DATA | NLA_F_NESTED, &data));
    let mut body = ifinfomsg();
    body.extend(attr(IFLA_IFNAME, &cstr(name)));
    body.extend(attr(IFLA_LINKINFO | NLA_F_NESTED, &info));
    message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &body)
}

pub fn address_request(index: u32, addr: IpAddr, prefix: u8) -> Vec<u8> {
    let (family, bytes) = match addr {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    // struct ifaddrmsg: family, prefixlen, flags, scope, index.
    let mut body = vec![family, prefix, 0, 0];
    body.extend_from_slice(&index.to_ne_bytes());
    body.extend(attr(IFA_LOCAL, &bytes));
    body.extend(attr(IFA_ADDRESS, &bytes));
    message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &body)
}

/// The kernel's answer to a request with NLM_F_ACK: `Ok` for an error code
/// of zero.
pub fn parse_ack(buf: &[u8]) -> Result<(), nix::errno::Errno> {
    if buf.len() < 20 {
        return Err(nix::errno::Errno::EBADMSG);
    }
    let ty = u16::from_ne_bytes([buf[4], buf[5]]);
    if ty != NLMSG_ERROR {
        return Err(nix::errno::Errno::EBADMSG);
    }
    match i32::from_ne_bytes(buf[16..20].try_into().unwrap()) {
        0 => Ok(()),
        code => Err(nix::errno::Errno::from_raw(-code)),
    }
}

/// The name of an interface's root queueing discipline; `noop` until the
/// kernel has activated the device.
pub fn qdisc(index: u32) -> Result<String, String> {
    let sock = route_socket()?;
    let mut body = vec![0u8; 16];
    body[4..8].copy_from_slice(&(index as i32).to_ne_bytes());
    let mut m = message(RTM_GETLINK, 0, &body);
    // A plain request: the answer is the link itself, not an ack.
    m[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    send(sock.as_raw_fd(), &m, MsgFlags::empty()).map_err(|e| format!("netlink send: {e}"))?;
    let mut buf = vec![0u8; 32768];
    let n = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())
        .map_err(|e| format!("netlink recv: {e}"))?;
    parse_qdisc(&buf[..n]).ok_or_else(|| "no qdisc in the kernel's answer".into())
}

pub fn parse_qdisc(buf: &[u8]) -> Option<String> {
    let len = u32::from_ne_bytes(buf.get(0..4)?.try_into().ok()?) as usize;
    let mut attrs = buf.get(32..len.min(buf.len()))?;
    while attrs.len() >= 4 {
        let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let ty = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if alen < 4 || alen > attrs.len() {
            return None;
        }
        if ty == IFLA_QDISC {
            let v = &attrs[4..alen];
            let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
            return Some(String::from_utf8_lossy(&v[..end]).into_owned());
        }
        attrs = &attrs[align(alen).min(attrs.len())..];
    }
    None
}

fn route_socket() -> Result<OwnedFd, String> {
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(|e| format!("netlink socket: {e}"))?;
    bind(sock.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| format!("netlink bind: {e}"))?;
    Ok(sock)
}

fn talk(req: &[u8]) -> Result<(), String> {
    let sock = route_socket()?;
    send(sock.as_raw_fd(), req, MsgFlags::empty()).map_err(|e| format!("netlink send: {e}"))?;
    let mut buf = vec![0u8; 8192];
    let n = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())
        .map_err(|e| format!("netlink recv: {e}"))?;
    parse_ack(&buf[..n]).map_err(|e| e.desc().to_owned())
}

pub fn create_veth(name: &str, peer: &str, peer_ns: &OwnedFd) -> Result<(), String> {
    talk(&veth_request(name, peer, peer_ns.as_raw_fd()))
        .map_err(|e| format!("creating veth {name} with peer {peer}: {e}"))
}

/// Gives an interface of this namespace an address (`10.0.0.1/24`) and
/// brings it up.
pub fn configure(name: &str, cidr: Option<&str>) -> Result<(), String> {
    let index =
        nix::net::if_::if_nametoindex(name).map_err(|e| format!("no interface {name}: {e}"))?;
    if let Some(c) = cidr {
        let (addr, prefix) =
            crate::scenario::load::parse_cidr(c).ok_or_else(|| format!("bad address {c}"))?;
        talk(&address_request(index, addr, prefix))
            .map_err(|e| format!("adding {c} to {name}: {e}"))?;
    }
    super::sys::interface_up(name).map_err(|e| format!("bringing {name} up: {e}"))
}

/// Waits until an interface is running, so that what a step sends next is
/// not discarded by a link the kernel has not activated yet.
pub fn wait_running(name: &str, limit: std::time::Duration) -> Result<(), String> {
    let deadline = std::time::Instant::now() + limit;
    let index =
        nix::net::if_::if_nametoindex(name).map_err(|e| format!("no interface {name}: {e}"))?;
    loop {
        // Running (carrier and operstate up) is set a moment before the
        // queue is attached; until then packets go to the `noop` qdisc.
        let running = super::sys::interface_running(name)
            .map_err(|e| format!("reading {name}'s flags: {e}"))?;
        if running && qdisc(index).is_ok_and(|q| q != "noop") {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("{name} did not come up within {limit:?}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_request_layout() {
        let m = veth_request("a", "b", 7);
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWLINK);
        assert!(m.windows(4).any(|w| w == b"veth"));
        // The peer's namespace fd is carried as a 32-bit attribute.
        let fd_attr = [8u8, 0, IFLA_NET_NS_FD as u8, 0, 7, 0, 0, 0];
        assert!(m.windows(8).any(|w| w == fd_attr));
        assert_eq!(m.len() % 4, 0);
    }

    #[test]
    fn address_request_layout() {
        let m = address_request(3, "10.0.0.1".parse().unwrap(), 24);
        assert_eq!(&m[16..20], &[libc::AF_INET as u8, 24, 0, 0]);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 3);
        assert!(m.windows(4).any(|w| w == [10, 0, 0, 1]));
    }

    #[test]
    fn qdisc_attribute() {
        let mut m = vec![0u8; 32];
        m.extend(attr(3, b"eth0\0"));
        m.extend(attr(IFLA_QDISC, b"noqueue\0"));
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(parse_qdisc(&m).as_deref(), Some("noqueue"));
    }

    #[test]
    fn acks() {
        let mut ok = vec![0u8; 36];
        ok[0..4].copy_from_slice(&36u32.to_ne_bytes());
        ok[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert_eq!(parse_ack(&ok), Ok(()));
        ok[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(parse_ack(&ok), Err(nix::errno::Errno::EEXIST));
    }
}
