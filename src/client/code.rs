//! The gRPC status codes as a client sees them.
//!
//! Owns the complete code table (0 to 16) and its mapping from the wire: a
//! client must understand every code a server may answer, not only those
//! this node's server sends (`server::grpc::Code` lists just those).
//! Invariant: [`Code::from_wire`] never fails; a number outside the table is
//! `Unknown`, as the gRPC spec requires.

use std::fmt;

/// A gRPC status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// The code for a `grpc-status` number; `Unknown` outside the table.
    pub fn from_wire(n: u32) -> Code {
        match n {
            0 => Code::Ok,
            1 => Code::Cancelled,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            6 => Code::AlreadyExists,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            10 => Code::Aborted,
            11 => Code::OutOfRange,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            15 => Code::DataLoss,
            16 => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    /// The number sent as `grpc-status`.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The code's canonical name (`UNAVAILABLE`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u32())
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn every_wire_number_round_trips_and_strangers_are_unknown() {
        for n in 0..=16 {
            assert_eq!(Code::from_wire(n).as_u32(), n);
        }
        assert_eq!(Code::from_wire(17), Code::Unknown);
        assert_eq!(Code::from_wire(u32::MAX), Code::Unknown);
        assert_eq!(Code::Unavailable.to_string(), "UNAVAILABLE (14)");
    }

    #[test]
    fn agrees_with_the_server_codes() {
        use crate::proto::grpc::Code as Server;
        for s in [
            Server::Ok,
            Server::Cancelled,
            Server::InvalidArgument,
            Server::DeadlineExceeded,
            Server::ResourceExhausted,
            Server::Unimplemented,
            Server::Unavailable,
        ] {
            let n = u32::from(s as u8);
            assert_eq!(Code::from_wire(n).as_u32(), n, "{s:?}");
            assert_eq!(
                Code::from_wire(n).name().replace('_', "").to_lowercase(),
                format!("{s:?}").to_lowercase()
            );
        }
    }
}
