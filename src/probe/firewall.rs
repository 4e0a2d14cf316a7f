//! IPv4 filter policies read from nf_tables over netlink, as iptables-nft
//! and nft write them: no iptables program needed.

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, sendto,
    socket,
};
use serde_json::{Value, json};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETCHAIN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NF_DROP: u32 = 0;
/// NF_INET_LOCAL_IN, NF_INET_FORWARD, NF_INET_LOCAL_OUT.
const HOOKS: [(u32, &str); 3] = [(1, "input"), (2, "forward"), (3, "output")];

/// One base chain: which hook it sits on and its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseChain {
    pub family: u8,
    pub hook: u32,
    pub policy: u32,
}

fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

/// Parses one datagram of a GETCHAIN dump. Returns the base chains in it and
/// whether the dump is complete.
pub fn parse_dump(mut buf: &[u8]) -> Result<(Vec<BaseChain>, bool), String> {
    let mut chains = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < 16 || len > buf.len() {
            return Err("truncated netlink message".into());
        }
        let body = &buf[16..len];
        match ty {
            NLMSG_DONE => return Ok((chains, true)),
            NLMSG_ERROR => {
                let code = body
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                    .unwrap_or(0);
                if code == 0 {
                    return Ok((chains, true));
                }
                return Err(format!(
                    "reading nftables: {}",
                    nix::errno::Errno::from_raw(-code)
                ));
            }
            _ if ty >> 8 == NFNL_SUBSYS_NFTABLES && body.len() >= 4 => {
                let family = body[0];
                let mut hook = None;
                let mut policy = None;
                for (t, v) in attrs(&body[4..]) {
                    match t {
                        NFTA_CHAIN_HOOK => {
                            for (ht, hv) in attrs(v) {
                                if ht == NFTA_HOOK_HOOKNUM && hv.len() >= 4 {
                                    hook = Some(u32::from_be_bytes(hv[..4].try_into().unwrap()));
                                }
                            }
                        }
                        NFTA_CHAIN_POLICY if v.len() >= 4 => {
                            policy = Some(u32::from_be_bytes(v[..4].try_into().unwrap()));
                        }
                        _ => {}
                    }
                }
                if let (Some(hook), Some(policy)) = (hook, policy) {
                    chains.push(BaseChain {
                        family,
                        hook,
                        policy,
                    });
                }
            }
            _ => {}
        }
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    Ok((chains, false))
}

/// A hook drops when any IPv4-relevant base chain on it has policy drop:
/// a packet must pass every base chain of its hook.
pub fn policies(chains: &[BaseChain]) -> Value {
    let mut m = serde_json::Map::new();
    for (hook, name) in HOOKS {
        let drop = chains.iter().any(|c| {
            c.hook == hook && c.policy == NF_DROP && matches!(c.family, NFPROTO_IPV4 | NFPROTO_INET)
        });
        m.insert(name.into(), json!(if drop { "drop" } else { "accept" }));
    }
    Value::Object(m)
}

fn dump() -> Result<Vec<BaseChain>, String> {
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(|e| format!("netlink socket: {e}"))?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&sock),
        &NetlinkAddr::new(0, 0),
    )
    .map_err(|e| format!("netlink bind: {e}"))?;
    let mut req = Vec::with_capacity(20);
    req.extend_from_slice(&20u32.to_ne_bytes());
    req.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN).to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: every family, version 0, resource id 0.
    req.extend_from_slice(&[0, 0, 0, 0]);
    sendto(
        std::os::fd::AsRawFd::as_raw_fd(&sock),
        &req,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(|e| format!("netlink send: {e}"))?;
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = recv(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            &mut buf,
            MsgFlags::empty(),
        )
        .map_err(|e| format!("netlink recv: {e}"))?;
        let (chains, done) = parse_dump(&buf[..n])?;
        all.extend(chains);
        if done || n == 0 {
            return Ok(all);
        }
    }
}

/// Every base chain (family, hook, policy), or the error reading them.
pub fn snapshot() -> Vec<String> {
    match dump() {
        Ok(chains) => chains
            .iter()
            .map(|c| format!("family {} hook {} policy {}", c.family, c.hook, c.policy))
            .collect(),
        Err(e) => vec![format!("unreadable: {e}")],
    }
}

pub fn take() -> Result<Value, String> {
    match dump() {
        Ok(chains) => Ok(policies(&chains)),
        // No nf_tables in this kernel means no chain, so nothing drops.
        Err(e) if e.contains("Protocol not supported") || e.contains("ENOENT") => Ok(policies(&[])),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(ty: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn attr(ty: u16, v: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(v);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn chain(family: u8, hook: u32, policy: u32) -> Vec<u8> {
        let mut body = vec![family, 0, 0, 0];
        body.extend(attr(1, b"filter\0"));
        body.extend(attr(3, b"INPUT\0"));
        body.extend(attr(
            0x8000 | NFTA_CHAIN_HOOK,
            &attr(NFTA_HOOK_HOOKNUM, &hook.to_be_bytes()),
        ));
        body.extend(attr(NFTA_CHAIN_POLICY, &policy.to_be_bytes()));
        nlmsg((NFNL_SUBSYS_NFTABLES << 8) | 3, &body)
    }

    #[test]
    fn input_drop_in_ip_filter() {
        let mut d = chain(NFPROTO_IPV4, 1, NF_DROP);
        d.extend(chain(NFPROTO_IPV4, 3, 1));
        d.extend(nlmsg(NLMSG_DONE, &[0; 4]));
        let (chains, done) = parse_dump(&d).unwrap();
        assert!(done);
        assert_eq!(
            policies(&chains),
            json!({"input": "drop", "forward": "accept", "output": "accept"})
        );
    }

    #[test]
    fn ipv6_chains_do_not_count_and_empty_is_accept() {
        let d = chain(10, 1, NF_DROP);
        let (chains, done) = parse_dump(&d).unwrap();
        assert!(!done);
        assert_eq!(policies(&chains)["input"], "accept");
        assert_eq!(policies(&[])["output"], "accept");
    }

    #[test]
    fn error_message_is_reported() {
        let d = nlmsg(NLMSG_ERROR, &(-libc::EPERM).to_ne_bytes());
        assert!(parse_dump(&d).unwrap_err().contains("EPERM"));
    }
}
