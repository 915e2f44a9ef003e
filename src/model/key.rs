//! Key identity, ring tokens and shard ownership.
//!
//! Owns the mapping from a (tenant_id, key) pair to: its storage key (an
//! unambiguous length-prefixed encoding, so ("t:a", "b") and ("t", "a:b")
//! never collide), its ring token (the coordinators' SHA-256 token), and the
//! shard that owns it (each shard owns one contiguous slice of the token ring).
//!
//! Storage key layout: `u16 big-endian tenant length | tenant bytes | key bytes`.
//! Keys of one tenant therefore sort together and in key order. Also owns
//! how a storage key is shown ([`display_storage_key`]): printable ASCII,
//! distinct for distinct keys.

use bytes::{BufMut, Bytes, BytesMut};
use sha2::{Digest, Sha256};

/// Longest tenant id the encoding can carry.
pub const TENANT_ID_BYTES_LIMIT: usize = u16::MAX as usize;

/// A validated (tenant_id, key) pair with its token computed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// Length-prefixed encoding; the identity used by the engine.
    pub storage_key: Bytes,
    /// Ring token: first 8 bytes, big-endian, of SHA-256(`tenant:key`).
    pub token: u64,
}

impl KeyRef {
    /// Encodes the pair. Callers validate lengths first; a tenant id longer
    /// than [`TENANT_ID_BYTES_LIMIT`] is a programming error upstream.
    pub fn new(tenant_id: &str, key: &str) -> Self {
        Self {
            storage_key: encode_storage_key(tenant_id, key),
            token: ring_token(tenant_id, key),
        }
    }

    /// The (tenant_id, key) pair back from the storage key.
    pub fn decode(&self) -> Option<(&str, &str)> {
        decode_storage_key(&self.storage_key)
    }
}

/// `u16 BE len | tenant | key`.
pub fn encode_storage_key(tenant_id: &str, key: &str) -> Bytes {
    debug_assert!(tenant_id.len() <= TENANT_ID_BYTES_LIMIT);
    let mut buf = BytesMut::with_capacity(2 + tenant_id.len() + key.len());
    buf.put_u16(tenant_id.len() as u16);
    buf.put_slice(tenant_id.as_bytes());
    buf.put_slice(key.as_bytes());
    buf.freeze()
}

/// Inverse of [`encode_storage_key`]; `None` for bytes it did not produce.
pub fn decode_storage_key(raw: &[u8]) -> Option<(&str, &str)> {
    let (tenant, key) = split_storage_key(raw)?;
    Some((
        std::str::from_utf8(tenant).ok()?,
        std::str::from_utf8(key).ok()?,
    ))
}

/// The tenant and key bytes of a storage key, UTF-8 or not; `None` when
/// `raw` is too short for its length prefix.
pub fn split_storage_key(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u16::from_be_bytes([*raw.first()?, *raw.get(1)?]) as usize;
    let tenant = raw.get(2..2 + len)?;
    let key = raw.get(2 + len..)?;
    Some((tenant, key))
}

/// A storage key as printable ASCII, for figures and logs:
/// `<tenant length>:<tenant><key>`, the length in bytes and in decimal,
/// every byte that is not a graphic ASCII character (space and non-ASCII
/// UTF-8 included) and the backslash itself written `\xNN` (two lowercase
/// hex digits). Bytes too short for their length prefix render as `?`
/// followed by all of them, escaped the same way.
///
/// Distinct storage keys always render distinctly: the escaping is
/// reversible one byte per unit (`\xNN` or one other character), and the
/// length says how many units are the tenant, so ("ab", "c") renders
/// `2:abc` and ("a", "bc") `1:abc`.
pub fn display_storage_key(raw: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(raw.len() + 8);
    match split_storage_key(raw) {
        Some((tenant, key)) => {
            // Writing to a String cannot fail.
            let _ = write!(out, "{}:", tenant.len());
            push_escaped(&mut out, tenant);
            push_escaped(&mut out, key);
        }
        None => {
            out.push('?');
            push_escaped(&mut out, raw);
        }
    }
    out
}

fn push_escaped(out: &mut String, bytes: &[u8]) {
    use std::fmt::Write;
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

/// The coordinators' ring token: first 8 bytes, big-endian, of
/// SHA-256 of the UTF-8 string `tenant_id + ":" + key`.
pub fn ring_token(tenant_id: &str, key: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(tenant_id.as_bytes());
    h.update(b":");
    h.update(key.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    let [b0, b1, b2, b3, b4, b5, b6, b7, ..] = digest;
    u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7])
}

/// The shard owning `token` among `shards`: shard i owns the tokens in
/// `[i * 2^64 / shards, (i + 1) * 2^64 / shards)`.
pub fn owner_shard(token: u64, shards: usize) -> usize {
    debug_assert!(shards > 0);
    ((token as u128 * shards as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tenant_boundaries_never_collide() {
        assert_ne!(
            encode_storage_key("t:a", "b"),
            encode_storage_key("t", "a:b")
        );
        assert_ne!(encode_storage_key("", "ab"), encode_storage_key("a", "b"));
    }

    #[test]
    fn display_splits_tenant_and_key_by_length() {
        let show = |t: &str, k: &str| display_storage_key(&encode_storage_key(t, k));
        assert_eq!(show("ab", "c"), "2:abc");
        assert_eq!(show("a", "bc"), "1:abc");
        assert_eq!(show("", "abc"), "0:abc");
        assert_eq!(show("t", "user:42"), "1:tuser:42");
    }

    #[test]
    fn display_escapes_backslash_space_control_and_non_ascii() {
        let show = |t: &str, k: &str| display_storage_key(&encode_storage_key(t, k));
        assert_eq!(show("t", "a\\b"), "1:ta\\x5cb");
        // The escape of a backslash is not mistaken for a literal "\x5c".
        assert_ne!(show("t", "\\"), show("t", "\\x5c"));
        assert_eq!(show("t", "\\x5c"), "1:t\\x5cx5c");
        assert_eq!(show("t", "a b\n"), "1:ta\\x20b\\x0a");
        assert_eq!(show("t", "é"), "1:t\\xc3\\xa9");
        // Non-UTF-8 bytes (no client key has them, the function takes any).
        assert_eq!(display_storage_key(&[0, 1, 0xff, 0x80]), "1:\\xff\\x80");
        assert_eq!(display_storage_key(&[0, 2, 0xff, 0x80]), "2:\\xff\\x80");
        assert_eq!(display_storage_key(&[0, 0, b'~']), "0:~");
    }

    #[test]
    fn display_marks_bytes_too_short_for_their_prefix() {
        assert_eq!(display_storage_key(&[]), "?");
        assert_eq!(display_storage_key(&[7]), "?\\x07");
        assert_eq!(display_storage_key(&[0, 3, b'a']), "?\\x00\\x03a");
    }

    #[test]
    fn token_matches_sha256_prefix() {
        // Expected values from `printf '%s' 't:k' | sha256sum` (first 8 bytes).
        assert_eq!(ring_token("t", "k"), 0x21da_4549_2b9a_16b3);
        assert_eq!(ring_token("tenant-1", "user:42"), 0x877e_3c69_6cf4_0903);
    }

    #[test]
    fn owner_shard_splits_ring_evenly() {
        assert_eq!(owner_shard(0, 4), 0);
        assert_eq!(owner_shard(u64::MAX, 4), 3);
        assert_eq!(owner_shard(1 << 62, 4), 1);
        assert_eq!(owner_shard((1 << 62) - 1, 4), 0);
        assert_eq!(owner_shard(u64::MAX, 1), 0);
    }

    proptest! {
        #[test]
        fn storage_key_round_trips(t in ".{0,20}", k in ".{0,20}") {
            let enc = encode_storage_key(&t, &k);
            prop_assert_eq!(decode_storage_key(&enc), Some((t.as_str(), k.as_str())));
        }

        #[test]
        fn distinct_pairs_encode_distinctly(t1 in "[a:]{0,4}", k1 in "[a:]{0,4}", t2 in "[a:]{0,4}", k2 in "[a:]{0,4}") {
            if (t1.as_str(), k1.as_str()) != (t2.as_str(), k2.as_str()) {
                prop_assert_ne!(encode_storage_key(&t1, &k1), encode_storage_key(&t2, &k2));
            }
        }

        #[test]
        fn distinct_storage_keys_display_distinctly(a in proptest::collection::vec(any::<u8>(), 0..8), b in proptest::collection::vec(any::<u8>(), 0..8)) {
            if a != b {
                prop_assert_ne!(display_storage_key(&a), display_storage_key(&b));
            }
            let shown = display_storage_key(&a);
            prop_assert!(shown.bytes().all(|c| c.is_ascii_graphic()), "{shown}");
        }

        #[test]
        fn displayed_pairs_differ_when_pairs_do(t1 in "[a\\\\\\x00é]{0,3}", k1 in "[a\\\\\\x00é]{0,3}", t2 in "[a\\\\\\x00é]{0,3}", k2 in "[a\\\\\\x00é]{0,3}") {
            if (t1.as_str(), k1.as_str()) != (t2.as_str(), k2.as_str()) {
                prop_assert_ne!(
                    display_storage_key(&encode_storage_key(&t1, &k1)),
                    display_storage_key(&encode_storage_key(&t2, &k2))
                );
            }
        }

        #[test]
        fn owner_is_monotonic_in_token(a: u64, b: u64, n in 1usize..64) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(owner_shard(lo, n) <= owner_shard(hi, n));
            prop_assert!(owner_shard(hi, n) < n);
        }
    }
}
