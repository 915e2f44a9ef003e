//! Start-up check that no other process serves the listen address.
//!
//! glommio binds with SO_REUSEPORT, which would let a second process bind the
//! same port silently and steal connections. Binding once *without*
//! SO_REUSEPORT fails while anyone listens there, so it detects that case; it
//! also resolves port 0 to a concrete free port all cores then share.
//!
//! A failed bind does not always mean a live process serves the address: a
//! node killed with SIGKILL leaves its listening socket to the kernel, which
//! releases it only when the io_uring teardown (asynchronous) drops the last
//! reference, some hundreds of milliseconds after the process is gone. So on
//! AddrInUse the probe looks up the LISTEN socket in `/proc/net/tcp` and
//! `/proc/net/tcp6` and the process holding it through the `socket:[inode]`
//! links under `/proc/*/fd`. A live holder is refused at once, by pid and
//! name; a socket no process holds (or whose holder cannot be seen) is waited
//! for, polling every [`PORT_RELEASE_POLL`] for up to [`PORT_RELEASE_WAIT`].
//! Blocking std I/O and sleeps are fine here: this runs once, before any
//! executor starts.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long start-up waits for the kernel to release a listening socket no
/// live process holds before refusing.
pub(crate) const PORT_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// How often the probe retries while waiting for the release.
pub(crate) const PORT_RELEASE_POLL: Duration = Duration::from_millis(50);

/// The `st` column of a listening socket in /proc/net/tcp (`TCP_LISTEN`).
pub(crate) const TCP_STATE_LISTEN: u8 = 0x0A;

#[derive(Debug)]
pub enum PortError {
    /// A live process has a listening socket on the address open.
    InUse {
        addr: SocketAddr,
        pid: u32,
        name: String,
    },
    /// The address stayed busy for the whole wait and no live holder was
    /// found; `seen` is what the last lookup found.
    NotReleased {
        addr: SocketAddr,
        waited: Duration,
        seen: Holder,
    },
    Bind {
        addr: SocketAddr,
        reason: String,
    },
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortError::InUse { addr, pid, name } => write!(
                f,
                "another process (pid {pid}, {name}) already serves {addr}; stop it or choose \
                 another address with --listen"
            ),
            PortError::NotReleased { addr, waited, seen } => write!(
                f,
                "{addr} is still in use after waiting {} ms for it to be released: {seen}; stop \
                 whatever holds it or choose another address with --listen",
                waited.as_millis()
            ),
            PortError::Bind { addr, reason } => write!(f, "cannot bind {addr}: {reason}"),
        }
    }
}

impl std::error::Error for PortError {}

/// Who holds a busy listen address, as far as /proc tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A live process has the listening socket open.
    Process { pid: u32, name: String },
    /// Listening sockets (by inode) exist but no process has them open: the
    /// kernel is still releasing them after their process exited.
    Released { inodes: Vec<u64> },
    /// The holder could not be determined.
    Unknown { reason: String },
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Process { pid, name } => write!(f, "held by pid {pid} ({name})"),
            Holder::Released { inodes } => write!(
                f,
                "a listening socket (inode {}) that no process holds, left by a process that \
                 exited and not yet released by the kernel",
                join(inodes)
            ),
            Holder::Unknown { reason } => write!(f, "its holder is unknown ({reason})"),
        }
    }
}

fn join(inodes: &[u64]) -> String {
    inodes
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Binds the core's listener: SO_REUSEPORT so every core binds the same
/// address, SO_REUSEADDR (inherited by accepted sockets) so connections left
/// in TIME_WAIT by a previous run do not block a restart.
#[allow(unsafe_code)] // one call: handing the socket's fd to glommio
pub(crate) fn bind_listener(addr: SocketAddr) -> std::io::Result<glommio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    // SAFETY: `into_raw_fd` gives up the socket's only owner, so the fd is a
    // valid, open, bound and listening TCP socket that nothing else closes;
    // ownership moves to glommio's listener.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// Checks `addr` is free and returns it with port 0 resolved. A busy address
/// held by a live process is refused at once; one no live process holds is
/// waited for up to [`PORT_RELEASE_WAIT`].
pub(crate) fn probe(addr: SocketAddr) -> Result<SocketAddr, PortError> {
    probe_waiting(addr, PORT_RELEASE_WAIT, find_holder)
}

/// [`probe`] with the wait and the holder lookup given (tests shorten the
/// one and replace the other).
fn probe_waiting(
    addr: SocketAddr,
    wait: Duration,
    mut lookup: impl FnMut(SocketAddr) -> Holder,
) -> Result<SocketAddr, PortError> {
    let started = Instant::now();
    let mut waiting = false;
    loop {
        let error = match TcpListener::bind(addr) {
            Ok(l) => {
                if waiting {
                    tracing::info!(%addr, waited_ms = started.elapsed().as_millis() as u64,
                        "listen address released");
                }
                return l.local_addr().map_err(|e| PortError::Bind {
                    addr,
                    reason: e.to_string(),
                });
            }
            Err(e) => e,
        };
        if error.kind() != std::io::ErrorKind::AddrInUse {
            return Err(PortError::Bind {
                addr,
                reason: error.to_string(),
            });
        }
        let seen = lookup(addr);
        if let Holder::Process { pid, name } = seen {
            return Err(PortError::InUse { addr, pid, name });
        }
        if started.elapsed() >= wait {
            return Err(PortError::NotReleased {
                addr,
                waited: wait,
                seen,
            });
        }
        if !waiting {
            tracing::warn!(%addr, seen = %seen, wait_ms = wait.as_millis() as u64,
                "listen address is busy but no live process serves it; waiting for its release");
            waiting = true;
        }
        std::thread::sleep(PORT_RELEASE_POLL);
    }
}

/// One socket of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcTcpSocket {
    pub local: SocketAddr,
    /// The kernel's TCP state (`TCP_STATE_LISTEN` for a listener).
    pub state: u8,
    /// Inode of the socket (0 once no file refers to it).
    pub inode: u64,
}

/// Parses one line of `/proc/net/tcp` or `/proc/net/tcp6`; `None` for the
/// header or a line that does not have the expected shape. The kernel prints
/// each 32-bit word of the address as a hex number in host byte order, the
/// port in plain hex.
pub(crate) fn parse_proc_net_tcp_line(line: &str) -> Option<ProcTcpSocket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    if fields.len() < 10 || !fields[0].ends_with(':') {
        return None;
    }
    let (ip_hex, port_hex) = fields[1].split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let ip = match ip_hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word_bytes(ip_hex)?)),
        32 => {
            let mut octets = [0u8; 16];
            for (i, chunk) in octets.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word_bytes(ip_hex.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(ProcTcpSocket {
        local: SocketAddr::new(ip, port),
        state: u8::from_str_radix(fields[3], 16).ok()?,
        inode: fields[9].parse().ok()?,
    })
}

/// The network-order bytes of one 8-hex-digit word printed in host order.
fn word_bytes(hex: &str) -> Option<[u8; 4]> {
    Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
}

/// Whether a socket listening on `local` makes binding `addr` fail: same
/// port, and the same address (IPv4-mapped IPv6 counts as IPv4) or either
/// side the wildcard.
pub(crate) fn conflicts(local: SocketAddr, addr: SocketAddr) -> bool {
    fn canonical(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        }
    }
    let (a, b) = (canonical(local.ip()), canonical(addr.ip()));
    local.port() == addr.port() && (a == b || a.is_unspecified() || b.is_unspecified())
}

/// Inodes of the listening sockets in `table` (a /proc/net/tcp text) that
/// conflict with `addr`.
pub(crate) fn listening_inodes(table: &str, addr: SocketAddr) -> Vec<u64> {
    table
        .lines()
        .filter_map(parse_proc_net_tcp_line)
        .filter(|s| s.state == TCP_STATE_LISTEN && s.inode != 0 && conflicts(s.local, addr))
        .map(|s| s.inode)
        .collect()
}

/// Looks up who holds the listening socket on `addr` (see [`Holder`]).
pub(crate) fn find_holder(addr: SocketAddr) -> Holder {
    let mut inodes = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => inodes.extend(listening_inodes(&text, addr)),
            // No tcp6 table when IPv6 is disabled.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && table.ends_with('6') => {}
            Err(e) => {
                return Holder::Unknown {
                    reason: format!("cannot read {table}: {e}"),
                }
            }
        }
    }
    if inodes.is_empty() {
        return Holder::Unknown {
            reason: format!(
                "no listening socket on port {} in /proc/net/tcp",
                addr.port()
            ),
        };
    }
    let wanted: BTreeSet<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let procs = match std::fs::read_dir("/proc") {
        Ok(d) => d,
        Err(e) => {
            return Holder::Unknown {
                reason: format!("cannot list /proc: {e}"),
            }
        }
    };
    let mut unreadable = 0usize;
    for entry in procs.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        match process_holds(&entry.path(), &wanted) {
            Ok(true) => {
                let name = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|s| s.trim_end().to_string())
                    .unwrap_or_else(|_| "name unknown".into());
                return Holder::Process { pid, name };
            }
            Ok(false) => {}
            // The process exited while we looked.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => unreadable += 1,
        }
    }
    let inodes: Vec<u64> = inodes.into_iter().collect();
    if unreadable > 0 {
        Holder::Unknown {
            reason: format!(
                "listening socket inode {} is open, but the descriptors of {unreadable} \
                 processes could not be read",
                join(&inodes)
            ),
        }
    } else {
        Holder::Released { inodes }
    }
}

/// Whether the process at `/proc/PID` has one of `wanted` (`socket:[inode]`
/// link targets) open.
fn process_holds(proc_dir: &Path, wanted: &BTreeSet<String>) -> std::io::Result<bool> {
    for fd in std::fs::read_dir(proc_dir.join("fd"))?.filter_map(Result::ok) {
        // A descriptor closed while we looked has no link any more.
        if let Ok(target) = std::fs::read_link(fd.path()) {
            if target.to_str().is_some_and(|t| wanted.contains(t)) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when \
                          retrnsmt   uid  timeout inode";

    // The sample lines are as a little-endian host prints them.
    #[test]
    #[cfg(target_endian = "little")]
    fn proc_net_tcp_lines_parse() {
        assert_eq!(parse_proc_net_tcp_line(HEADER), None);
        assert_eq!(parse_proc_net_tcp_line(""), None);
        let listen = "   0: 0100007F:C383 00000000:0000 0A 00000000:00000000 00:00000000 \
                      00000000     0        0 123456 1 00000000a3d38526 100 0 0 10 0";
        assert_eq!(
            parse_proc_net_tcp_line(listen),
            Some(ProcTcpSocket {
                local: "127.0.0.1:50051".parse().unwrap(),
                state: TCP_STATE_LISTEN,
                inode: 123456,
            })
        );
        let established = "   1: 020200C0:D470 507100CB:01BB 01 00000000:00000000 \
                           00:00000000 00000000     0        0 4303 1 00000000ba67fd89 20 4 1 60 146";
        let s = parse_proc_net_tcp_line(established).expect("parses");
        assert_eq!((s.state, s.inode, s.local.port()), (0x01, 4303, 0xD470));
        // Truncated or garbled lines are skipped, not misread.
        assert_eq!(
            parse_proc_net_tcp_line("   0: 0100007F:C383 00000000:0000 0A"),
            None
        );
        assert_eq!(
            parse_proc_net_tcp_line(&listen.replace("0100007F:C383", "0100007F:XYZ1")),
            None
        );
        assert_eq!(
            parse_proc_net_tcp_line(&listen.replace("0100007F", "0100007")),
            None
        );
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn proc_net_tcp6_lines_parse() {
        let any = "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 \
                   0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0";
        let s = parse_proc_net_tcp_line(any).expect("parses");
        assert_eq!(s.local, "[::]:8080".parse().unwrap());
        assert_eq!((s.state, s.inode), (TCP_STATE_LISTEN, 777));
        let loopback = any.replace(
            "00000000000000000000000000000000:1F90",
            "00000000000000000000000001000000:1F90",
        );
        let s = parse_proc_net_tcp_line(&loopback).expect("parses");
        assert_eq!(s.local, "[::1]:8080".parse().unwrap());
        let mapped = any.replace(
            "00000000000000000000000000000000:1F90",
            "0000000000000000FFFF00000100007F:1F90",
        );
        let s = parse_proc_net_tcp_line(&mapped).expect("parses");
        assert_eq!(s.local, "[::ffff:127.0.0.1]:8080".parse().unwrap());
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn only_conflicting_listeners_are_picked() {
        let table = format!(
            "{HEADER}\n\
             0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 11 1 0 100 0 0 10 0\n\
             1: 0200007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 12 1 0 100 0 0 10 0\n\
             2: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 13 1 0 100 0 0 10 0\n\
             3: 0100007F:1F90 0100007F:D000 01 00000000:00000000 00:00000000 00000000 0 0 14 1 0 100 0 0 10 0\n\
             4: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 15 1 0 100 0 0 10 0\n\
             5: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 0 1 0 100 0 0 10 0\n"
        );
        // 127.0.0.1:8080 and the wildcard on 8080; not 127.0.0.2, not port
        // 8081, not a connection, not a socket without an inode.
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(listening_inodes(&table, addr), vec![11, 15]);
        let wildcard: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(listening_inodes(&table, wildcard), vec![11, 12, 15]);
        assert!(conflicts("[::ffff:127.0.0.1]:8080".parse().unwrap(), addr));
        assert!(conflicts("[::]:8080".parse().unwrap(), addr));
        assert!(!conflicts("[::1]:8080".parse().unwrap(), addr));
    }

    #[test]
    fn port_zero_is_resolved() {
        let free = probe("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(free.port(), 0);
    }

    #[test]
    fn a_port_this_process_holds_is_refused_at_once_naming_it() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = held.local_addr().unwrap();
        assert_eq!(
            find_holder(busy),
            Holder::Process {
                pid: std::process::id(),
                name: std::fs::read_to_string("/proc/self/comm")
                    .unwrap()
                    .trim_end()
                    .to_string(),
            }
        );
        let started = Instant::now();
        let err = probe(busy).unwrap_err();
        assert!(
            started.elapsed() < PORT_RELEASE_WAIT / 5,
            "refused after {:?}, not at once",
            started.elapsed()
        );
        match &err {
            PortError::InUse { addr, pid, .. } => {
                assert_eq!((*addr, *pid), (busy, std::process::id()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id()))
                && message.contains("already serves")
                && message.contains(&busy.to_string()),
            "{message}"
        );
    }

    #[test]
    fn a_port_no_live_process_holds_is_waited_for() {
        // The lookup claims the socket is being released; the listener goes
        // away after 300 ms, and the probe then succeeds on the same port.
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = held.local_addr().unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let started = Instant::now();
        let mut lookups = 0;
        let got = probe_waiting(busy, Duration::from_secs(5), |_| {
            lookups += 1;
            Holder::Released { inodes: vec![1] }
        })
        .expect("the port is free once released");
        releaser.join().unwrap();
        assert_eq!(got, busy);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(lookups >= 2, "retried: {lookups} lookups");
    }

    #[test]
    fn a_port_never_released_is_refused_after_the_wait_saying_what_was_seen() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = held.local_addr().unwrap();
        let wait = Duration::from_millis(300);
        let started = Instant::now();
        let err = probe_waiting(busy, wait, |_| Holder::Released { inodes: vec![42] }).unwrap_err();
        assert!(started.elapsed() >= wait);
        assert!(matches!(err, PortError::NotReleased { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("inode 42") && message.contains("300 ms"),
            "{message}"
        );
        // A live holder appearing during the wait ends it at once.
        let started = Instant::now();
        let err = probe_waiting(busy, Duration::from_secs(5), |_| Holder::Process {
            pid: 7,
            name: "other".into(),
        })
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(err.to_string().contains("pid 7, other"), "{err}");
        drop(held);
    }
}
