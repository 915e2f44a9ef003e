//! Splits a request body that carries several gRPC messages (a client
//! stream) into its messages, as its bytes arrive in chunks of any size.
//!
//! Owns the buffering of a partly received message. Pure: no I/O.
//! Invariants: a message announcing more than `max` bytes is refused from
//! its prefix, before its body is buffered; the caller takes every complete
//! message before pushing more, so at most one partial message plus one
//! chunk is ever buffered; a body that ends inside a message is an error.

use super::grpc::{parse_prefix, FrameError, PREFIX_BYTES};
use bytes::{Buf, Bytes, BytesMut};

#[derive(Debug)]
pub(crate) struct FrameReader {
    buf: BytesMut,
    max: usize,
}

impl FrameReader {
    /// A reader of messages of at most `max` bytes each.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max,
        }
    }

    /// Appends a received chunk.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete message (without its prefix), `None` while it is
    /// still incomplete.
    pub(crate) fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buf.len() < PREFIX_BYTES {
            return Ok(None);
        }
        let mut prefix = [0u8; PREFIX_BYTES];
        prefix.copy_from_slice(&self.buf[..PREFIX_BYTES]);
        let len = parse_prefix(&prefix, self.max)?;
        if self.buf.len() < PREFIX_BYTES + len {
            return Ok(None);
        }
        self.buf.advance(PREFIX_BYTES);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// At the end of the body: an error if part of a message is left.
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let want = if self.buf.len() < PREFIX_BYTES {
            PREFIX_BYTES
        } else {
            let mut prefix = [0u8; PREFIX_BYTES];
            prefix.copy_from_slice(&self.buf[..PREFIX_BYTES]);
            PREFIX_BYTES + parse_prefix(&prefix, self.max)?
        };
        Err(FrameError::Truncated {
            have: self.buf.len(),
            want,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn messages_split_across_and_within_chunks() {
        let mut all = framed(b"abc");
        all.extend(framed(b""));
        all.extend(framed(b"defgh"));
        // Every way of cutting the bytes in two yields the same messages.
        for cut in 0..=all.len() {
            let mut r = FrameReader::new(16);
            let mut got = Vec::new();
            for part in [&all[..cut], &all[cut..]] {
                r.push(part);
                while let Some(m) = r.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, [&b"abc"[..], b"", b"defgh"], "cut at {cut}");
            assert_eq!(r.finish(), Ok(()));
        }
    }

    #[test]
    fn oversized_compressed_and_truncated_messages_are_refused() {
        let mut r = FrameReader::new(4);
        r.push(&framed(b"12345")[..5]);
        assert_eq!(
            r.next_message(),
            Err(FrameError::TooLarge { len: 5, max: 4 })
        );
        let mut r = FrameReader::new(4);
        r.push(&[1, 0, 0, 0, 1, 9]);
        assert_eq!(r.next_message(), Err(FrameError::Compressed));
        let mut r = FrameReader::new(4);
        r.push(&framed(b"123")[..6]);
        assert_eq!(r.next_message(), Ok(None));
        assert_eq!(r.finish(), Err(FrameError::Truncated { have: 6, want: 8 }));
        let mut r = FrameReader::new(4);
        r.push(&[0, 0]);
        assert_eq!(r.finish(), Err(FrameError::Truncated { have: 2, want: 5 }));
    }
}
