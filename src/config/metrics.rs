//! The `[metrics]` section: where the Prometheus endpoint listens.
//!
//! Owns the meaning of `metrics.listen`: `"auto"` (the default) is the gRPC
//! listen host with its port + 1000, so several nodes on one host need no
//! setting; `"off"` serves no metrics; anything else is an IP `HOST:PORT`
//! (port 0 picks a free port). Pure: the address is derived here and bound
//! by the runtime.

use serde::Deserialize;
use std::net::SocketAddr;

/// The derived port's distance from the gRPC port.
pub const METRICS_PORT_OFFSET: u16 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `"auto"`, `"off"` or `HOST:PORT`.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: "auto".into(),
        }
    }
}

impl MetricsConfig {
    /// Where `/metrics` is served for a node whose gRPC address is `grpc`
    /// (`None`: off), or why the setting cannot be used.
    pub fn addr(&self, grpc: SocketAddr) -> Result<Option<SocketAddr>, String> {
        match self.listen.as_str() {
            "off" => Ok(None),
            "auto" => {
                if grpc.port() == 0 {
                    return Ok(Some(SocketAddr::new(grpc.ip(), 0)));
                }
                match grpc.port().checked_add(METRICS_PORT_OFFSET) {
                    Some(port) => Ok(Some(SocketAddr::new(grpc.ip(), port))),
                    None => Err(format!(
                        "\"auto\" is the gRPC port {} + {METRICS_PORT_OFFSET}, past 65535: \
                         set metrics.listen (or --metrics-listen) to HOST:PORT or \"off\"",
                        grpc.port()
                    )),
                }
            }
            other => other.parse().map(Some).map_err(|_| {
                format!("{other:?} is not \"auto\", \"off\" or HOST:PORT with an IP address")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(listen: &str, grpc: &str) -> Result<Option<SocketAddr>, String> {
        MetricsConfig {
            listen: listen.into(),
        }
        .addr(grpc.parse().expect("address"))
    }

    #[test]
    fn auto_is_the_grpc_host_with_port_plus_1000() {
        assert_eq!(
            addr("auto", "127.0.0.1:50051"),
            Ok(Some("127.0.0.1:51051".parse().expect("address")))
        );
        assert_eq!(
            addr("auto", "[::1]:7000"),
            Ok(Some("[::1]:8000".parse().expect("address")))
        );
        assert_eq!(
            addr("auto", "0.0.0.0:0"),
            Ok(Some("0.0.0.0:0".parse().expect("address")))
        );
        let past = addr("auto", "127.0.0.1:65000").expect_err("past 65535");
        assert!(past.contains("metrics.listen"), "{past}");
    }

    #[test]
    fn off_and_explicit_addresses() {
        assert_eq!(addr("off", "127.0.0.1:50051"), Ok(None));
        assert_eq!(
            addr("10.0.0.1:9100", "127.0.0.1:50051"),
            Ok(Some("10.0.0.1:9100".parse().expect("address")))
        );
        for bad in ["", "localhost:9100", "9100", "Off"] {
            assert!(addr(bad, "127.0.0.1:50051").is_err(), "{bad:?}");
        }
    }
}
