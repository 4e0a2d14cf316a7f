use serde_json::{Value, json};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const REACH_TIMEOUT: Duration = Duration::from_secs(1);

pub fn classify(result: std::io::Result<TcpStream>) -> Result<&'static str, String> {
    match result {
        Ok(_) => Ok("open"),
        Err(e) => match (e.kind(), e.raw_os_error()) {
            (ErrorKind::ConnectionRefused, _) => Ok("closed"),
            (ErrorKind::TimedOut | ErrorKind::WouldBlock, _) => Ok("filtered"),
            (
                _,
                Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL | libc::ENETDOWN),
            ) => Ok("unreachable"),
            _ => Err(format!("connect: {e}")),
        },
    }
}

pub fn take(target: &str) -> Result<Value, String> {
    let addr: SocketAddr = target
        .parse()
        .map_err(|_| format!("{target:?} is not ADDRESS:PORT"))?;
    classify(TcpStream::connect_timeout(&addr, REACH_TIMEOUT)).map(|s| json!(s))
}

#[cfg(test)]
mod tests {
    use super::classify;
    use std::io::{Error, ErrorKind};

    #[test]
    fn connect_outcomes() {
        assert_eq!(
            classify(Err(Error::from(ErrorKind::ConnectionRefused))),
            Ok("closed")
        );
        assert_eq!(
            classify(Err(Error::from(ErrorKind::TimedOut))),
            Ok("filtered")
        );
        assert_eq!(
            classify(Err(Error::from_raw_os_error(libc::ENETUNREACH))),
            Ok("unreachable")
        );
        assert_eq!(
            classify(Err(Error::from_raw_os_error(libc::EHOSTUNREACH))),
            Ok("unreachable")
        );
        assert!(classify(Err(Error::from_raw_os_error(libc::EPERM))).is_err());
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = std::net::TcpStream::connect(l.local_addr().unwrap());
        assert_eq!(classify(open), Ok("open"));
    }
}
