//! Fuzz targets of the small checksummed files: the manifest, META and
//! STREAMS.
//!
//! Property: each encoding is canonical, so whatever decodes re-encodes to
//! exactly the input bytes.

use super::checksums::with_trailing_crc;
use crate::storage::datadir::{decode_meta, encode_meta};
use crate::storage::manifest::Manifest;
use crate::storage::streams_file;

/// `Manifest::decode`, as given and with its checksum recomputed.
pub fn manifest(data: &[u8]) {
    for raw in [data.to_vec(), with_trailing_crc(data)] {
        if let Ok(m) = Manifest::decode(&raw) {
            assert_eq!(m.encode(), raw, "manifest round trip");
        }
    }
}

/// `decode_meta` (the data directory's META), as given and with its
/// checksum recomputed.
pub fn meta(data: &[u8]) {
    for raw in [data.to_vec(), with_trailing_crc(data)] {
        if let Ok(m) = decode_meta(&raw) {
            assert_eq!(encode_meta(&m), raw, "META round trip");
        }
    }
}

/// `streams_file::decode`, as given and with its checksum recomputed.
pub fn streams_file(data: &[u8]) {
    for raw in [data.to_vec(), with_trailing_crc(data)] {
        if let Ok(s) = streams_file::decode(&raw) {
            assert_eq!(streams_file::encode(&s), raw, "STREAMS round trip");
        }
    }
}
