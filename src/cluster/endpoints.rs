//! Where gossip binds, what this node advertises, and where the seeds are.
//!
//! Owns turning the `[cluster]` settings and the resolved gRPC listen
//! address into concrete addresses at start-up: the gRPC address others
//! should use (`advertise`, else the listen address), the UDP address gossip
//! binds (`gossip_listen`, else the listen address), the gossip address
//! others send to (the bind address, or with a wildcard bind the advertised
//! host with the gossip port), and the seeds. Also binds the gossip socket
//! exclusively (no SO_REUSEPORT), so a second process cannot share the port
//! silently, waiting for a socket a killed process left to be released.
//!
//! Invariants: the advertised gossip address is never a wildcard; a seed
//! given as an IP address is used as is, a host name is resolved each time
//! the node announces itself (a seed that does not resolve yet is skipped
//! then, not fatal).

use crate::config::{split_host_port, ClusterConfig};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long start-up waits for a gossip port a killed process still holds.
const RELEASE_WAIT: Duration = Duration::from_secs(5);
const RELEASE_POLL: Duration = Duration::from_millis(50);

/// The addresses this node uses and advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    /// gRPC address (`HOST:PORT`) others should use.
    pub(crate) grpc: String,
    /// Where the gossip socket binds.
    pub(crate) gossip_bind: SocketAddr,
    /// Where others send gossip to this node.
    pub(crate) gossip: SocketAddr,
    pub(crate) seeds: Vec<Seed>,
}

/// A seed as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seed {
    Addr(SocketAddr),
    Name(String, u16),
}

impl Seed {
    fn parse(text: &str) -> Option<Seed> {
        if let Ok(a) = text.parse() {
            return Some(Seed::Addr(a));
        }
        let (host, port) = split_host_port(text)?;
        Some(Seed::Name(host.to_string(), port))
    }

    /// The seed's address; a host name is looked up (blocking: call it off
    /// the executor's thread). `None` if it does not resolve.
    pub(crate) fn resolve(&self) -> Option<SocketAddr> {
        match self {
            Seed::Addr(a) => Some(*a),
            Seed::Name(host, port) => (host.as_str(), *port).to_socket_addrs().ok()?.next(),
        }
    }
}

/// The IP of `host` (an IP address, IPv6 in brackets, or a host name,
/// looked up).
fn host_ip(host: &str) -> Result<IpAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse() {
        return Ok(ip);
    }
    (bare, 0)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| "no address".to_string())
}

/// The endpoints for `c` on a node whose gRPC listener is bound at `listen`
/// (port 0 already resolved). Errors name the key at fault.
pub(crate) fn resolve(c: &ClusterConfig, listen: SocketAddr) -> Result<Endpoints, String> {
    let grpc = if c.advertise.is_empty() {
        listen.to_string()
    } else {
        c.advertise.clone()
    };
    let gossip_bind = if c.gossip_listen.is_empty() {
        listen
    } else {
        c.gossip_listen
            .parse()
            .map_err(|_| format!("cluster.gossip_listen {:?} is not IP:PORT", c.gossip_listen))?
    };
    let gossip = if gossip_bind.ip().is_unspecified() {
        let (host, _) = split_host_port(&grpc)
            .ok_or_else(|| format!("cluster.advertise {grpc:?} is not HOST:PORT"))?;
        let ip = host_ip(host)
            .map_err(|e| format!("cluster.advertise host {host:?} does not resolve: {e}"))?;
        if ip.is_unspecified() {
            return Err(format!(
                "cluster.advertise {grpc} is a wildcard address; set it to the HOST:PORT \
                 other nodes should use (node.listen {listen} is one too)"
            ));
        }
        SocketAddr::new(ip, gossip_bind.port())
    } else {
        gossip_bind
    };
    let seeds = c
        .seeds
        .iter()
        .map(|s| Seed::parse(s).ok_or_else(|| format!("cluster.seeds: {s:?} is not HOST:PORT")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Endpoints {
        grpc,
        gossip_bind,
        gossip,
        seeds,
    })
}

/// Binds the gossip UDP socket at `addr` without SO_REUSEPORT, so nobody
/// else serves it. A busy port is retried for up to [`RELEASE_WAIT`]: a
/// node killed a moment ago leaves its socket to the kernel for a while.
pub(crate) fn bind(addr: SocketAddr) -> Result<socket2::Socket, String> {
    bind_waiting(addr, RELEASE_WAIT)
}

/// [`bind`] waiting up to `wait` for a busy port.
fn bind_waiting(addr: SocketAddr, wait: Duration) -> Result<socket2::Socket, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let deadline = Instant::now() + wait;
    loop {
        let bound = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .and_then(|s| s.bind(&addr.into()).map(|()| s));
        match bound {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(RELEASE_POLL);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(format!(
                    "another process already serves the gossip address {addr} (UDP, \
                     cluster.gossip_listen; by default the port of node.listen): still busy \
                     after {} ms; stop it or choose another address",
                    wait.as_millis()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "cannot bind the gossip address {addr} (UDP, cluster.gossip_listen): {e}"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_follow_the_listen_address() {
        let e = resolve(&ClusterConfig::default(), listen("127.0.0.1:7000")).unwrap();
        assert_eq!(e.grpc, "127.0.0.1:7000");
        assert_eq!(e.gossip_bind, listen("127.0.0.1:7000"));
        assert_eq!(e.gossip, listen("127.0.0.1:7000"));
        assert!(e.seeds.is_empty());
    }

    #[test]
    fn a_wildcard_bind_advertises_the_advertised_host() {
        let c = ClusterConfig {
            advertise: "10.1.2.3:7000".into(),
            gossip_listen: "0.0.0.0:7946".into(),
            seeds: vec!["10.1.2.4:7946".into(), "node-c.example:7946".into()],
            ..ClusterConfig::default()
        };
        let e = resolve(&c, listen("0.0.0.0:7000")).unwrap();
        assert_eq!(e.grpc, "10.1.2.3:7000");
        assert_eq!(e.gossip_bind, listen("0.0.0.0:7946"));
        assert_eq!(e.gossip, listen("10.1.2.3:7946"));
        assert_eq!(
            e.seeds,
            [
                Seed::Addr(listen("10.1.2.4:7946")),
                Seed::Name("node-c.example".into(), 7946)
            ]
        );
        let c = ClusterConfig {
            advertise: "[::1]:7000".into(),
            ..ClusterConfig::default()
        };
        let e = resolve(&c, listen("[::]:7000")).unwrap();
        assert_eq!(e.gossip, listen("[::1]:7000"));
    }

    #[test]
    fn a_bound_port_is_refused_naming_the_key() {
        let held = bind(listen("127.0.0.1:0")).unwrap();
        let addr = held.local_addr().unwrap().as_socket().unwrap();
        let wait = Duration::from_millis(120);
        let started = Instant::now();
        let err = bind_waiting(addr, wait).unwrap_err();
        assert!(started.elapsed() >= wait);
        assert!(err.contains("cluster.gossip_listen") && err.contains("already serves"));
    }
}
