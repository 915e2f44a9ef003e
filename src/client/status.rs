//! Reading a call's outcome from what the server sent, without I/O.
//!
//! Owns: `grpc-status` / `grpc-message` from trailers (or the headers of a
//! trailers-only answer), percent-decoding of `grpc-message`, the gRPC
//! spec's mapping of a non-200 HTTP status and of an HTTP/2 stream reset to
//! a gRPC code. Invariant: every input maps to some outcome; nothing here
//! panics on what a peer sends.

use super::code::Code;
use http::{HeaderMap, StatusCode};

/// The status a server reported: code and (decoded) message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireStatus {
    pub(crate) code: Code,
    pub(crate) message: String,
}

/// `grpc-status` and `grpc-message` from `headers`, or `None` if there is
/// no `grpc-status`. A status that is not a decimal number is `Unknown`
/// (and says so), as the gRPC spec asks of clients.
pub(crate) fn from_headers(headers: &HeaderMap) -> Option<WireStatus> {
    let raw = headers.get("grpc-status")?;
    let message = headers
        .get("grpc-message")
        .map(|v| percent_decode(v.as_bytes()))
        .unwrap_or_default();
    let parsed = raw
        .to_str()
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u32>().ok());
    Some(match parsed {
        Some(n) => WireStatus {
            code: Code::from_wire(n),
            message,
        },
        None => WireStatus {
            code: Code::Unknown,
            message: format!(
                "malformed grpc-status {:?}: {message}",
                String::from_utf8_lossy(raw.as_bytes())
            ),
        },
    })
}

/// Decodes `%XX` escapes (the gRPC spec's percent-encoding of
/// `grpc-message`); a `%` not followed by two hex digits is kept as is, and
/// bytes that are not UTF-8 become U+FFFD.
pub(crate) fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'%' {
            let hi = raw.get(i + 1).and_then(|&h| hex_value(h));
            let lo = raw.get(i + 2).and_then(|&l| hex_value(l));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The gRPC code for an answer whose HTTP status is not 200 (the gRPC
/// over HTTP/2 spec's table; anything else is `Unknown`).
pub(crate) fn code_for_http(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// The gRPC code for a stream the server reset with `reason` (the spec's
/// table: a refused stream never reached the application, so it is
/// UNAVAILABLE and safe to retry).
pub(crate) fn code_for_reset(reason: h2::Reason) -> Code {
    match reason {
        h2::Reason::REFUSED_STREAM => Code::Unavailable,
        h2::Reason::CANCEL => Code::Cancelled,
        h2::Reason::ENHANCE_YOUR_CALM => Code::ResourceExhausted,
        h2::Reason::INADEQUATE_SECURITY => Code::PermissionDenied,
        _ => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static [u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn status_and_message_from_trailers() {
        let h = headers(&[("grpc-status", b"14"), ("grpc-message", b"busy%2C retry")]);
        assert_eq!(
            from_headers(&h),
            Some(WireStatus {
                code: Code::Unavailable,
                message: "busy, retry".into()
            })
        );
        let ok = headers(&[("grpc-status", b"0")]);
        assert_eq!(from_headers(&ok).map(|s| s.code), Some(Code::Ok));
        assert_eq!(from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn malformed_or_unknown_status_is_unknown() {
        for raw in [&b"abc"[..], b"", b"-1", b"+3", b"99999999999"] {
            let h = headers(&[("grpc-status", raw)]);
            let s = from_headers(&h).unwrap();
            assert_eq!(s.code, Code::Unknown, "{raw:?}");
            assert!(s.message.contains("malformed"), "{raw:?}: {}", s.message);
        }
        let h = headers(&[("grpc-status", b"42")]);
        assert_eq!(from_headers(&h).unwrap().code, Code::Unknown);
    }

    #[test]
    fn percent_decoding_inverts_the_server_encoding() {
        for msg in ["plain", "100% é\n", "%%", "tab\there", ""] {
            let encoded = crate::proto::grpc::percent_encode(msg);
            assert_eq!(percent_decode(encoded.as_bytes()), msg);
        }
        // Broken escapes are kept; bad UTF-8 is replaced, not a panic.
        assert_eq!(percent_decode(b"50%"), "50%");
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
        assert_eq!(percent_decode(b"%FF"), "\u{FFFD}");
    }

    #[test]
    fn http_and_reset_mappings_follow_the_spec() {
        assert_eq!(code_for_http(StatusCode::NOT_FOUND), Code::Unimplemented);
        assert_eq!(
            code_for_http(StatusCode::SERVICE_UNAVAILABLE),
            Code::Unavailable
        );
        assert_eq!(
            code_for_http(StatusCode::TOO_MANY_REQUESTS),
            Code::Unavailable
        );
        assert_eq!(code_for_http(StatusCode::BAD_REQUEST), Code::Internal);
        assert_eq!(code_for_http(StatusCode::METHOD_NOT_ALLOWED), Code::Unknown);
        assert_eq!(
            code_for_reset(h2::Reason::REFUSED_STREAM),
            Code::Unavailable
        );
        assert_eq!(code_for_reset(h2::Reason::CANCEL), Code::Cancelled);
        assert_eq!(code_for_reset(h2::Reason::PROTOCOL_ERROR), Code::Internal);
    }
}
