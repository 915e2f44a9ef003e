//! Start-up check that no other process serves the listen address.
//!
//! glommio binds with SO_REUSEPORT, which would let a second process bind the
//! same port silently and steal connections. Binding once *without*
//! SO_REUSEPORT fails while anyone listens there, so it detects that case; it
//! also resolves port 0 to a concrete free port all cores then share.

use std::net::{SocketAddr, TcpListener};

#[derive(Debug)]
pub enum PortError {
    InUse { addr: SocketAddr },
    Bind { addr: SocketAddr, reason: String },
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortError::InUse { addr } => write!(
                f,
                "another process already serves {addr}; stop it or choose another address with --listen"
            ),
            PortError::Bind { addr, reason } => write!(f, "cannot bind {addr}: {reason}"),
        }
    }
}

impl std::error::Error for PortError {}

/// Binds the core's listener: SO_REUSEPORT so every core binds the same
/// address, SO_REUSEADDR (inherited by accepted sockets) so connections left
/// in TIME_WAIT by a previous run do not block a restart.
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<glommio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    // SAFETY: the fd is a bound, listening TCP socket; ownership moves to glommio.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// Checks `addr` is free and returns it with port 0 resolved.
pub fn probe(addr: SocketAddr) -> Result<SocketAddr, PortError> {
    match TcpListener::bind(addr) {
        Ok(l) => l.local_addr().map_err(|e| PortError::Bind {
            addr,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(PortError::InUse { addr }),
        Err(e) => Err(PortError::Bind {
            addr,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_port_is_refused_and_port_zero_resolved() {
        let free = probe("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(free.port(), 0);
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = held.local_addr().unwrap();
        assert!(matches!(probe(busy), Err(PortError::InUse { .. })));
    }
}
