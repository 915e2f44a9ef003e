//! gRPC-over-HTTP/2 wire details that need no I/O.
//!
//! Owns: the 5-byte message prefix (compressed flag + u32 big-endian length),
//! gRPC status codes, `grpc-timeout` parsing and `grpc-message`
//! percent-encoding. Invariant: a decoded frame never exceeds the configured
//! message limit, checked from the prefix before the body is buffered.

use bytes::{BufMut, Bytes, BytesMut};
use std::time::Duration;

/// Length of the gRPC message prefix.
pub(crate) const PREFIX_BYTES: usize = 5;

/// The gRPC status codes this server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Code {
    Ok = 0,
    Cancelled = 1,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
}

/// A non-OK gRPC status with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What a frame check found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The prefix announces more bytes than allowed.
    TooLarge { len: usize, max: usize },
    /// The compressed flag is set; this server negotiates no compression.
    Compressed,
    /// The body ended before the announced length, or held trailing bytes.
    Truncated { have: usize, want: usize },
}

impl From<FrameError> for Status {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { len, max } => Status::new(
                Code::ResourceExhausted,
                format!("request message of {len} bytes exceeds the limit of {max} bytes"),
            ),
            FrameError::Compressed => Status::new(
                Code::Unimplemented,
                "compressed messages are not supported (send grpc-encoding identity)",
            ),
            FrameError::Truncated { have, want } => Status::new(
                Code::InvalidArgument,
                format!("request body holds {have} bytes but its gRPC frame announces {want}"),
            ),
        }
    }
}

/// Reads the prefix: the announced message length, refusing compression and
/// lengths over `max`.
pub(crate) fn parse_prefix(prefix: &[u8; PREFIX_BYTES], max: usize) -> Result<usize, FrameError> {
    if prefix[0] != 0 {
        return Err(FrameError::Compressed);
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Splits a complete unary request body into its one message.
pub(crate) fn decode_unary(body: &[u8], max: usize) -> Result<&[u8], FrameError> {
    if body.len() < PREFIX_BYTES {
        return Err(FrameError::Truncated {
            have: body.len(),
            want: PREFIX_BYTES,
        });
    }
    let mut prefix = [0u8; PREFIX_BYTES];
    prefix.copy_from_slice(&body[..PREFIX_BYTES]);
    let len = parse_prefix(&prefix, max)?;
    let rest = &body[PREFIX_BYTES..];
    if rest.len() != len {
        return Err(FrameError::Truncated {
            have: rest.len(),
            want: len,
        });
    }
    Ok(rest)
}

/// Frames an encoded message: prefix then bytes.
pub(crate) fn encode_frame<M: prost::Message>(msg: &M) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(PREFIX_BYTES + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    // Encoding into a buffer with enough capacity cannot fail.
    let _ = msg.encode(&mut buf);
    buf.freeze()
}

/// A framed response message (prefix included) as chunks sent in order, so
/// large values can be sent from where they are stored instead of copied
/// into one buffer. Most answers are one chunk, held without a `Vec`.
#[derive(Debug, Clone)]
pub enum Frame {
    One(Bytes),
    Chunks { chunks: Vec<Bytes>, len: usize },
}

impl Frame {
    pub fn from_chunks(mut chunks: Vec<Bytes>) -> Self {
        if chunks.len() == 1 {
            return Frame::One(chunks.pop().unwrap_or_default());
        }
        let len = chunks.iter().map(Bytes::len).sum();
        Frame::Chunks { chunks, len }
    }

    /// Frame bytes, prefix included.
    pub fn len(&self) -> usize {
        match self {
            Frame::One(b) => b.len(),
            Frame::Chunks { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_chunks(self) -> Vec<Bytes> {
        match self {
            Frame::One(b) => vec![b],
            Frame::Chunks { chunks, .. } => chunks,
        }
    }
}

impl From<Bytes> for Frame {
    fn from(frame: Bytes) -> Self {
        Frame::One(frame)
    }
}

/// Parses a `grpc-timeout` header value: 1 to 8 ASCII digits and a unit
/// (H, M, S, m, u, n). `None` for anything malformed.
pub(crate) fn parse_timeout(value: &str) -> Option<Duration> {
    // The unit is one byte: a value ending in a multi-byte character is
    // malformed, not a split inside that character.
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Percent-encodes a status message as `grpc-message` requires (bytes
/// outside printable ASCII, and '%', become %XX).
pub(crate) fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_units() {
        assert_eq!(parse_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout("1n"), Some(Duration::from_nanos(1)));
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_timeout("123456789S"), None);
        assert_eq!(parse_timeout("S"), None);
        assert_eq!(parse_timeout(""), None);
        assert_eq!(parse_timeout("5x"), None);
        assert_eq!(parse_timeout("-5S"), None);
        assert_eq!(parse_timeout("5é"), None);
    }

    #[test]
    fn frame_checks() {
        assert_eq!(parse_prefix(&[0, 0, 0, 0, 10], 100), Ok(10));
        assert_eq!(
            parse_prefix(&[1, 0, 0, 0, 10], 100),
            Err(FrameError::Compressed)
        );
        assert_eq!(
            parse_prefix(&[0, 0, 0, 1, 0], 100),
            Err(FrameError::TooLarge { len: 256, max: 100 })
        );
        assert_eq!(decode_unary(&[0, 0, 0, 0, 2, 7, 8], 100), Ok(&[7u8, 8][..]));
        assert_eq!(
            decode_unary(&[0, 0, 0, 0, 3, 7], 100),
            Err(FrameError::Truncated { have: 1, want: 3 })
        );
        assert_eq!(
            decode_unary(&[0, 0], 100),
            Err(FrameError::Truncated { have: 2, want: 5 })
        );
    }

    #[test]
    fn frame_round_trip() {
        let msg = crate::proto::ReadRequest {
            tenant_id: "t".into(),
            key: "k".into(),
        };
        let framed = encode_frame(&msg);
        let body = decode_unary(&framed, 1024).unwrap();
        let back: crate::proto::ReadRequest = prost::Message::decode(body).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("ok message"), "ok message");
        assert_eq!(percent_encode("100% é\n"), "100%25 %C3%A9%0A");
    }
}
