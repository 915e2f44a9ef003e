//! Cutting a response body into gRPC messages, whatever its chunking.
//!
//! Owns the reassembly of length-prefixed messages (5-byte prefix, see
//! `server::grpc`) from the DATA chunks h2 hands over: a message may span
//! chunks and a chunk may hold several messages. Invariants: a message's
//! announced length is checked against the limit as soon as its prefix is
//! complete, before its bytes are buffered, so at most one partial message
//! plus the chunk that completed it is ever held; a message lying inside
//! one chunk is handed out as a slice of it (no copy), one spanning chunks
//! is copied once.

use crate::proto::grpc::{parse_prefix, FrameError, PREFIX_BYTES};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;

/// Reassembles messages from body chunks fed in order.
#[derive(Debug)]
pub(crate) struct MessageSplitter {
    chunks: VecDeque<Bytes>,
    /// Bytes held in `chunks`.
    buffered: usize,
    /// Length announced by the prefix already taken, while its message is
    /// incomplete.
    announced: Option<usize>,
    max: usize,
}

impl MessageSplitter {
    /// A splitter refusing messages longer than `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            chunks: VecDeque::new(),
            buffered: 0,
            announced: None,
            max,
        }
    }

    /// Appends the next body chunk.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.buffered += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or
    /// why the body cannot be split (compressed, or over the limit).
    pub(crate) fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        let len = match self.announced {
            Some(len) => len,
            None => {
                if self.buffered < PREFIX_BYTES {
                    return Ok(None);
                }
                let mut prefix = [0u8; PREFIX_BYTES];
                self.take_into(&mut prefix);
                let len = parse_prefix(&prefix, self.max)?;
                self.announced = Some(len);
                len
            }
        };
        if self.buffered < len {
            return Ok(None);
        }
        self.announced = None;
        Ok(Some(self.take(len)))
    }

    /// The body ended: `Ok` if it ended between messages, else how much of
    /// an incomplete message was left.
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        match self.announced {
            Some(want) => Err(FrameError::Truncated {
                have: self.buffered,
                want,
            }),
            None if self.buffered > 0 => Err(FrameError::Truncated {
                have: self.buffered,
                want: PREFIX_BYTES,
            }),
            None => Ok(()),
        }
    }

    /// Takes `n <= buffered` bytes: a slice of the front chunk when it holds
    /// them all, else one copy.
    fn take(&mut self, n: usize) -> Bytes {
        if let Some(front) = self.chunks.front_mut() {
            if front.len() >= n {
                let out = front.split_to(n);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                self.buffered -= n;
                return out;
            }
        }
        let mut out = BytesMut::zeroed(n);
        self.take_into(&mut out);
        out.freeze()
    }

    /// Fills `out` (at most `buffered` bytes long) from the front chunks.
    fn take_into(&mut self, out: &mut [u8]) {
        let mut filled = 0;
        while filled < out.len() {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let n = front.len().min(out.len() - filled);
            if let (Some(dst), Some(src)) = (out.get_mut(filled..filled + n), front.get(..n)) {
                dst.copy_from_slice(src);
            }
            front.advance(n);
            if front.is_empty() {
                self.chunks.pop_front();
            }
            filled += n;
        }
        self.buffered -= filled;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(messages: &[Vec<u8>]) -> Vec<u8> {
        let mut body = Vec::new();
        for m in messages {
            body.push(0);
            body.extend_from_slice(&(m.len() as u32).to_be_bytes());
            body.extend_from_slice(m);
        }
        body
    }

    /// Feeds `body` cut at `cuts`, draining complete messages after each chunk.
    fn split(body: &[u8], cuts: &[usize], max: usize) -> Result<Vec<Bytes>, FrameError> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.push(0);
        cuts.push(body.len());
        cuts.sort_unstable();
        let mut s = MessageSplitter::new(max);
        let mut out = Vec::new();
        for w in cuts.windows(2) {
            s.push(Bytes::copy_from_slice(&body[w[0]..w[1]]));
            while let Some(m) = s.next_message()? {
                out.push(m);
            }
        }
        s.finish()?;
        Ok(out)
    }

    proptest! {
        #[test]
        fn any_chunking_yields_the_messages_in_order(
            messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12),
            cuts in prop::collection::vec(any::<usize>(), 0..40),
        ) {
            let body = framed(&messages);
            let out = split(&body, &cuts, 300).unwrap();
            let out: Vec<Vec<u8>> = out.iter().map(|b| b.to_vec()).collect();
            prop_assert_eq!(out, messages);
        }

        #[test]
        fn a_cut_short_body_is_truncated_never_a_message(
            messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..100), 1..6),
            drop_tail in 1usize..100,
            cuts in prop::collection::vec(any::<usize>(), 0..20),
        ) {
            let body = framed(&messages);
            let keep = body.len() - drop_tail.min(body.len() - 1);
            let body = &body[..keep];
            // Ends exactly between messages only if the cut hits a boundary.
            let mut boundary = 0;
            let mut boundaries = vec![0];
            for m in &messages {
                boundary += PREFIX_BYTES + m.len();
                boundaries.push(boundary);
            }
            let r = split(body, &cuts, 100);
            if boundaries.contains(&keep) {
                prop_assert!(r.is_ok());
            } else {
                let truncated = matches!(r, Err(FrameError::Truncated { .. }));
                prop_assert!(truncated);
            }
        }
    }

    #[test]
    fn an_oversize_prefix_is_refused_before_its_body_arrives() {
        let mut s = MessageSplitter::new(10);
        s.push(Bytes::from_static(&[0, 0, 0, 0, 11]));
        assert_eq!(
            s.next_message(),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        );
        let mut s = MessageSplitter::new(10);
        s.push(Bytes::from_static(&[1, 0, 0, 0, 1, 9]));
        assert_eq!(s.next_message(), Err(FrameError::Compressed));
    }

    #[test]
    fn a_message_inside_one_chunk_is_not_copied() {
        let body = Bytes::from(framed(&[b"abc".to_vec(), b"de".to_vec()]));
        let mut s = MessageSplitter::new(100);
        s.push(body.clone());
        let first = s.next_message().unwrap().unwrap();
        assert_eq!(&first[..], b"abc");
        assert_eq!(first.as_ptr(), body[5..].as_ptr());
        assert_eq!(&s.next_message().unwrap().unwrap()[..], b"de");
        assert_eq!(s.next_message(), Ok(None));
        assert_eq!(s.finish(), Ok(()));
    }
}
