//! Checksum repair for the fuzz targets: recomputes the crc32 fields of
//! bytes laid out as a format expects, so mutated inputs get past the
//! checksum to the parsing behind it. Never panics; fields that do not fit
//! the input are left alone.

/// Writes `crc32(data[from..to])` big-endian at `data[at..at + 4]` when
/// every range is inside `data`.
pub(super) fn put_crc(data: &mut [u8], at: usize, from: usize, to: usize) {
    let Some(crc) = data.get(from..to).map(crc32fast::hash) else {
        return;
    };
    if let Some(field) = data.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<4>) {
        *field = crc.to_be_bytes();
    }
}

/// The big-endian u32 at `at`, if inside `data`.
pub(super) fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..)?
        .first_chunk::<4>()
        .map(|b| u32::from_be_bytes(*b))
}

/// The big-endian u64 at `at`, if inside `data`.
pub(super) fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    data.get(at..)?
        .first_chunk::<8>()
        .map(|b| u64::from_be_bytes(*b))
}

/// `data` with its last four bytes replaced by the crc32 of the rest (the
/// small files' trailer); unchanged when shorter than four bytes.
pub(super) fn with_trailing_crc(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if let Some(body) = out.len().checked_sub(4) {
        put_crc(&mut out, body, 0, body);
    }
    out
}
