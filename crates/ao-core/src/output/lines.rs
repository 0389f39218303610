//! Cutting a worker's raw output into the lines the store keeps.
//!
//! Every runtime reads bytes (a file, a log stream); the same bytes must always give the same
//! lines, however they were chunked, because resuming after a restart counts lines.

/// Longest line stored as one; longer output is cut into pieces of this size.
pub const MAX_LINE: usize = 64 * 1024;

/// Turns chunks of bytes into complete lines, keeping an incomplete last line until more
/// bytes (or the end of the output) arrive.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// The complete lines that `bytes` finishes, in order.
    pub(crate) fn push(&mut self, mut bytes: &[u8], out: &mut Vec<String>) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.partial.len();
            let window = &bytes[..bytes.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.partial.extend_from_slice(&window[..i]);
                    out.push(line(&self.partial));
                    self.partial.clear();
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.partial.extend_from_slice(window);
                    bytes = &bytes[window.len()..];
                    if self.partial.len() >= MAX_LINE {
                        out.push(line(&self.partial));
                        self.partial.clear();
                    }
                }
            }
        }
    }

    /// The output ended: the incomplete last line, if any.
    pub(crate) fn finish(&mut self) -> Option<String> {
        if self.partial.is_empty() {
            return None;
        }
        let l = line(&self.partial);
        self.partial.clear();
        Some(l)
    }

    /// Forget an incomplete line (its stream broke; it will be read again).
    pub(crate) fn reset(&mut self) {
        self.partial.clear();
    }
}

fn line(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> (Vec<String>, Option<String>) {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        (out, s.finish())
    }

    #[test]
    fn splits_complete_lines_and_keeps_the_rest() {
        let (lines, rest) = split(&[b"a\nbb\r\nccc"]);
        assert_eq!(lines, vec!["a", "bb"]);
        assert_eq!(rest.as_deref(), Some("ccc"));
    }

    #[test]
    fn chunk_boundaries_do_not_change_the_lines() {
        let whole = split(&[b"one\ntwo\r\nthree\n\nfour"]);
        let bytewise: Vec<&[u8]> = b"one\ntwo\r\nthree\n\nfour".chunks(1).collect();
        assert_eq!(split(&bytewise), whole);
        assert_eq!(whole.0, vec!["one", "two", "three", ""]);
    }

    #[test]
    fn cuts_overlong_lines() {
        let big = vec![b'x'; MAX_LINE * 2 + 5];
        let (lines, rest) = split(&[&big]);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() == MAX_LINE));
        assert_eq!(rest.map(|r| r.len()), Some(5));
    }

    #[test]
    fn reset_drops_the_incomplete_line() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(b"half", &mut out);
        s.reset();
        assert_eq!(s.finish(), None);
        assert!(out.is_empty());
    }
}
