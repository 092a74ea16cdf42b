//! Where an OVSDB server listens, as OVS's own tools spell it (`tcp:IP:PORT`, `ssl:IP:PORT`,
//! `unix:PATH`), plus the short form a user types for the OVN northbound database: a bare IP
//! address, meaning TCP on the default port.
//!
//! Parsed once, at the option's parse, so that every later stage holds a value that can only
//! be one of these and a typo is reported with the option's name before anything is built.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// One OVSDB server address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Remote {
    /// `tcp:IP:PORT` (IPv6 in brackets).
    Tcp(SocketAddr),
    /// `ssl:IP:PORT`: TLS with the client's key and certificate.
    Ssl(SocketAddr),
    /// `unix:PATH`, an absolute path.
    Unix(PathBuf),
}

impl Remote {
    /// Parses `text`: a bare IP address (TCP on `default_port`), or `tcp:`/`ssl:` with an
    /// `IP:PORT` (IPv6 bracketed: `tcp:[fd00::1]:6641`), or `unix:` with an absolute path.
    /// The error says what is wrong with the text, for the caller to put after the option.
    pub fn parse(text: &str, default_port: u16) -> Result<Remote, String> {
        let text = text.trim();
        if let Ok(ip) = IpAddr::from_str(text) {
            return check_host(ip).map(|()| Remote::Tcp(SocketAddr::new(ip, default_port)));
        }
        let Some((method, rest)) = text.split_once(':') else {
            return Err(format!(
                "{text:?} is neither an IP address nor tcp:IP:PORT, ssl:IP:PORT or unix:PATH"
            ));
        };
        match method {
            "tcp" => socket_address(rest).map(Remote::Tcp),
            "ssl" => socket_address(rest).map(Remote::Ssl),
            "unix" => {
                if rest.starts_with('/') && !rest.contains('\0') {
                    Ok(Remote::Unix(PathBuf::from(rest)))
                } else {
                    Err(format!("{text:?}: unix: takes an absolute socket path"))
                }
            }
            "ptcp" | "pssl" | "punix" => Err(format!(
                "{text:?} is a listening (passive) remote; give the address the server \
                 listens on as tcp:, ssl: or unix:"
            )),
            _ => Err(format!(
                "{text:?}: unknown method {method:?} (use tcp:IP:PORT, ssl:IP:PORT or unix:PATH)"
            )),
        }
    }

    /// Whether the connection needs TLS.
    pub fn is_ssl(&self) -> bool {
        matches!(self, Remote::Ssl(_))
    }
}

/// An `IP:PORT` with a non-zero port, IPv6 in brackets.
fn socket_address(text: &str) -> Result<SocketAddr, String> {
    let address = SocketAddr::from_str(text).map_err(|_| {
        format!("{text:?} is not IP:PORT (an IPv6 address goes in brackets: [fd00::1]:6641)")
    })?;
    if address.port() == 0 {
        return Err(format!(
            "{text:?}: port 0 is not a port a server listens on"
        ));
    }
    check_host(address.ip())?;
    Ok(address)
}

/// A server address must be one a client can connect to.
fn check_host(ip: IpAddr) -> Result<(), String> {
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
        return Err(format!("{ip} is not an address a server can be reached at"));
    }
    Ok(())
}

impl fmt::Display for Remote {
    /// OVS's spelling, which [`Remote::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Tcp(address) => write!(f, "tcp:{address}"),
            Remote::Ssl(address) => write!(f, "ssl:{address}"),
            Remote::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Remote, String> {
        Remote::parse(text, 6641)
    }

    #[test]
    fn a_bare_address_is_tcp_on_the_default_port() {
        assert_eq!(parse("10.0.0.1").unwrap().to_string(), "tcp:10.0.0.1:6641");
        assert_eq!(
            parse(" fd00::1 ").unwrap().to_string(),
            "tcp:[fd00::1]:6641"
        );
    }

    #[test]
    fn explicit_remotes_round_trip() {
        for text in [
            "tcp:10.0.0.1:6643",
            "ssl:10.0.0.2:6641",
            "tcp:[fd00::2]:16641",
            "ssl:[fd00::3]:6641",
            "unix:/var/run/ovn/ovnnb_db.sock",
        ] {
            let remote = parse(text).unwrap();
            assert_eq!(remote.to_string(), text);
            assert_eq!(parse(&remote.to_string()).unwrap(), remote);
        }
        assert!(parse("ssl:10.0.0.2:6641").unwrap().is_ssl());
        assert!(!parse("tcp:10.0.0.2:6641").unwrap().is_ssl());
    }

    #[test]
    fn bad_remotes_say_what_is_wrong() {
        for (text, says) in [
            ("", "neither an IP address"),
            ("host.example", "neither an IP address"),
            ("tcp:10.0.0.1", "is not IP:PORT"),
            ("tcp:fd00::1:6641", "in brackets"),
            ("tcp:10.0.0.1:0", "port 0"),
            ("tcp:10.0.0.1:70000", "is not IP:PORT"),
            ("ssl:host:6641", "is not IP:PORT"),
            ("unix:relative/db.sock", "absolute socket path"),
            ("ptcp:6641", "listening"),
            ("udp:10.0.0.1:6641", "unknown method"),
            ("0.0.0.0", "can be reached at"),
            ("tcp:[::]:6641", "can be reached at"),
            ("224.0.0.1", "can be reached at"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
