//! The zlib-stream transport decompressor.
//!
//! With `compress=zlib-stream` Discord runs ONE deflate stream for the whole connection
//! and ends every logical message with a sync flush, so a message is complete when the
//! bytes received so far end with `00 00 ff ff`. A message may span several binary
//! frames. Each frame is inflated as it arrives, so a message above the size limit can be
//! counted and discarded without ever being held in memory, while the shared stream state
//! stays in sync for the messages that follow.

use flate2::{Decompress, FlushDecompress, Status};

const SUFFIX: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
const SCRATCH: usize = 32 * 1024;

/// Result of feeding one frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inflated {
    /// The message continues in a later frame.
    Partial,
    /// A complete message.
    Message(Vec<u8>),
    /// A complete message that exceeded the limit and was dropped.
    Oversized { size: usize },
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum InflateError {
    #[error("corrupt zlib stream: {0}")]
    Corrupt(#[from] flate2::DecompressError),
    #[error("zlib stream ended; the connection cannot carry more messages")]
    Ended,
}

pub(crate) struct ZlibStream {
    inflate: Decompress,
    message: Vec<u8>,
    size: usize,
    /// Last bytes of compressed input, to spot a suffix split across frames.
    tail: [u8; 4],
    max_message: usize,
    scratch: Box<[u8]>,
}

impl ZlibStream {
    /// A fresh context; create one per connection.
    pub(crate) fn new(max_message: usize) -> Self {
        Self {
            inflate: Decompress::new(true),
            message: Vec::new(),
            size: 0,
            tail: [0xAA; 4],
            max_message,
            scratch: vec![0; SCRATCH].into_boxed_slice(),
        }
    }

    /// Feeds one binary frame.
    pub(crate) fn push(&mut self, frame: &[u8]) -> Result<Inflated, InflateError> {
        self.inflate_all(frame)?;
        self.remember_tail(frame);
        if self.tail != SUFFIX {
            return Ok(Inflated::Partial);
        }
        let size = std::mem::take(&mut self.size);
        let message = std::mem::take(&mut self.message);
        if size > self.max_message {
            Ok(Inflated::Oversized { size })
        } else {
            Ok(Inflated::Message(message))
        }
    }

    fn inflate_all(&mut self, mut input: &[u8]) -> Result<(), InflateError> {
        loop {
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let status =
                self.inflate
                    .decompress(input, &mut self.scratch, FlushDecompress::Sync)?;
            let consumed = (self.inflate.total_in() - in_before) as usize;
            let produced = (self.inflate.total_out() - out_before) as usize;
            input = &input[consumed.min(input.len())..];
            self.keep(produced);
            if status == Status::StreamEnd {
                return Err(InflateError::Ended);
            }
            // Done once all input is consumed and the output buffer was not filled (a full
            // buffer may mean more output is pending); no progress means "needs input".
            let drained = input.is_empty() && produced < self.scratch.len();
            if drained || (consumed == 0 && produced == 0) {
                return Ok(());
            }
        }
    }

    fn keep(&mut self, produced: usize) {
        self.size = self.size.saturating_add(produced);
        if self.size <= self.max_message {
            self.message.extend_from_slice(&self.scratch[..produced]);
        } else if !self.message.is_empty() {
            // Over the limit: release what was buffered and only count from now on.
            self.message = Vec::new();
        }
    }

    fn remember_tail(&mut self, frame: &[u8]) {
        if frame.len() >= 4 {
            self.tail.copy_from_slice(&frame[frame.len() - 4..]);
        } else {
            let keep = 4 - frame.len();
            self.tail.copy_within(frame.len().., 0);
            self.tail[keep..].copy_from_slice(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Inflated, ZlibStream};
    use flate2::{Compress, Compression, FlushCompress};

    /// Compresses `input` as one zlib-stream message (ends with a sync flush).
    fn deflate(compressor: &mut Compress, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut consumed = 0;
        loop {
            let before = compressor.total_in();
            compressor
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .expect("compress");
            consumed += (compressor.total_in() - before) as usize;
            if consumed == input.len() && out.len() < out.capacity() {
                return out;
            }
            out.reserve(out.capacity().max(64));
        }
    }

    #[test]
    fn inflates_messages_across_frames_with_one_context() {
        let mut compressor = Compress::new(Compression::default(), true);
        let mut stream = ZlibStream::new(1 << 20);
        for text in [
            "first message",
            "second, sharing the dictionary: first message",
        ] {
            let bytes = deflate(&mut compressor, text.as_bytes());
            let (a, b) = bytes.split_at(bytes.len() / 2);
            assert_eq!(stream.push(a).expect("first half"), Inflated::Partial);
            let whole = stream.push(b).expect("second half");
            assert_eq!(whole, Inflated::Message(text.as_bytes().to_vec()));
        }
    }

    #[test]
    fn suffix_split_across_frames_is_recognised() {
        let mut compressor = Compress::new(Compression::default(), true);
        let mut stream = ZlibStream::new(1 << 20);
        let bytes = deflate(&mut compressor, b"payload");
        let (a, b) = bytes.split_at(bytes.len() - 2);
        assert_eq!(stream.push(a).expect("head"), Inflated::Partial);
        assert_eq!(
            stream.push(b).expect("tail"),
            Inflated::Message(b"payload".to_vec())
        );
    }

    #[test]
    fn oversized_message_is_dropped_and_the_stream_survives() {
        let mut compressor = Compress::new(Compression::default(), true);
        let mut stream = ZlibStream::new(1000);
        let big = vec![b'x'; 200_000];
        let result = stream.push(&deflate(&mut compressor, &big)).expect("big");
        assert_eq!(result, Inflated::Oversized { size: 200_000 });
        let small = stream
            .push(&deflate(&mut compressor, b"ok"))
            .expect("small");
        assert_eq!(small, Inflated::Message(b"ok".to_vec()));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut stream = ZlibStream::new(1000);
        assert!(stream.push(b"definitely not zlib\x00\x00\xff\xff").is_err());
    }
}
