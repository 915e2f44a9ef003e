//! Fuzz target of the entry codec shared by WAL records and SSTable entries.
//!
//! Property: an entry that decodes re-encodes to as many bytes as it took,
//! and the re-encoding decodes back equal (clock entries may come back
//! sorted, so equality is of values, not bytes).

use crate::storage::codec::{decode_entry, encode_entry, entry_len};
use bytes::Bytes;

/// Decodes one entry from the front of `data`.
pub fn codec_entry(data: &[u8]) {
    let mut buf = Bytes::copy_from_slice(data);
    let Ok((key, versions)) = decode_entry(&mut buf) else {
        return;
    };
    let consumed = data.len() - buf.len();
    let mut out = Vec::new();
    encode_entry(&mut out, &key, &versions);
    assert_eq!(out.len(), entry_len(&key, &versions), "entry_len disagrees");
    assert_eq!(
        out.len(),
        consumed,
        "re-encoding changed the entry's length"
    );
    let mut again = Bytes::from(out);
    match decode_entry(&mut again) {
        Ok(back) => assert_eq!(back, (key, versions), "entry round trip"),
        Err(e) => panic!("a re-encoded entry does not decode: {e}"),
    }
    assert!(again.is_empty(), "re-encoded entry has trailing bytes");
}
