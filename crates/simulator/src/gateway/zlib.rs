//! The zlib-stream transport compressor: one deflate stream per connection, each message
//! ended by a sync flush so its bytes end with `00 00 FF FF`.

use flate2::{Compress, Compression, FlushCompress};

pub(crate) struct ZlibStream {
    compress: Compress,
}

impl ZlibStream {
    pub(crate) fn new() -> Self {
        Self {
            compress: Compress::new(Compression::fast(), true),
        }
    }

    /// Compresses one whole message; `None` if the stream is broken (never expected).
    pub(crate) fn message(&mut self, input: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        let mut consumed = 0;
        loop {
            let before = self.compress.total_in();
            self.compress
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .ok()?;
            consumed += (self.compress.total_in() - before) as usize;
            // Done once all input is in and the flush fitted in the spare capacity.
            if consumed >= input.len() && out.len() < out.capacity() {
                return Some(out);
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ZlibStream;
    use flate2::{Decompress, FlushDecompress};

    #[test]
    fn messages_end_with_the_sync_suffix_and_share_one_stream() {
        let mut stream = ZlibStream::new();
        let mut inflate = Decompress::new(true);
        let big = "x".repeat(300_000);
        for text in ["hello", big.as_str(), "hello again, hello"] {
            let bytes = stream.message(text.as_bytes()).expect("compress");
            assert!(bytes.ends_with(&[0, 0, 0xff, 0xff]));
            let mut out = Vec::with_capacity(text.len() + 64);
            inflate
                .decompress_vec(&bytes, &mut out, FlushDecompress::Sync)
                .expect("inflate");
            assert_eq!(out, text.as_bytes());
        }
    }
}
