//! Bounded capture of a command's output: kept whole in memory up to a limit; past it only
//! the first and last bytes stay in memory and everything is handed to a spill (the step's
//! log, masked) as it arrives. A command that prints gigabytes costs a few megabytes.

/// Bytes kept from the start of an output that went over its limit.
pub const HEAD: usize = 256 * 1024;
/// Bytes kept from the end of an output that went over its limit.
pub const TAIL: usize = 256 * 1024;

/// Where output goes that is not kept whole in memory.
pub trait Spill: Send {
    /// The next bytes of the stream (everything from its start once the limit is passed).
    fn write(&mut self, bytes: &[u8]);
    /// The stream ended.
    fn finish(&mut self) {}
}

/// One stream (stdout or stderr) being captured.
pub struct Capture {
    keep: usize,
    /// The whole output while it fits; after that, its first `HEAD` bytes.
    buf: Vec<u8>,
    /// The last bytes (at most `2 * TAIL` held, `TAIL` reported), once over the limit.
    tail: Vec<u8>,
    total: u64,
    over: bool,
    spill: Option<Box<dyn Spill>>,
}

impl Capture {
    /// Keeps up to `keep` bytes whole; past that, spills to `spill` (if any).
    pub fn new(keep: usize, spill: Option<Box<dyn Spill>>) -> Capture {
        Capture {
            keep,
            buf: Vec::new(),
            tail: Vec::new(),
            total: 0,
            over: false,
            spill,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if !self.over {
            if self.buf.len() + bytes.len() <= self.keep {
                self.buf.extend_from_slice(bytes);
                return;
            }
            self.over = true;
            if let Some(s) = &mut self.spill {
                s.write(&self.buf);
            }
            let from = self.buf.len().saturating_sub(TAIL);
            self.tail.extend_from_slice(&self.buf[from..]);
            self.buf.truncate(HEAD);
            self.buf.shrink_to_fit();
        }
        if let Some(s) = &mut self.spill {
            s.write(bytes);
        }
        // The head fills up to `HEAD` bytes even when the limit was smaller.
        if self.buf.len() < HEAD {
            let take = (HEAD - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
        }
        if bytes.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&bytes[bytes.len() - TAIL..]);
        } else {
            self.tail.extend_from_slice(bytes);
            if self.tail.len() > 2 * TAIL {
                let cut = self.tail.len() - TAIL;
                self.tail.drain(..cut);
            }
        }
    }

    /// The stream ended: what was captured.
    pub fn finish(mut self) -> Captured {
        if let Some(s) = &mut self.spill {
            if self.over {
                s.finish();
            }
        }
        if !self.over {
            return Captured {
                total: self.total,
                whole: Some(self.buf),
                head: Vec::new(),
                tail: Vec::new(),
            };
        }
        let from = self.tail.len().saturating_sub(TAIL);
        Captured {
            total: self.total,
            whole: None,
            head: self.buf,
            tail: self.tail[from..].to_vec(),
        }
    }
}

/// A captured stream.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// Bytes the command wrote in all.
    pub total: u64,
    /// All of it, when it stayed within the limit.
    pub whole: Option<Vec<u8>>,
    /// Otherwise its first and last bytes.
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
}

impl Captured {
    pub fn of(text: &str) -> Captured {
        Captured {
            total: text.len() as u64,
            whole: Some(text.as_bytes().to_vec()),
            ..Default::default()
        }
    }

    /// Was the whole output kept (no part left out)?
    pub fn is_whole(&self) -> bool {
        self.whole.is_some()
    }

    /// The whole output as text, if it was kept.
    pub fn whole_text(&self) -> Option<String> {
        self.whole
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The output as text of at most about `limit` bytes: whole when it fits, otherwise its
    /// start and end around a marker that says how much was left out and `where_whole` is.
    pub fn text(&self, limit: usize, where_whole: &str) -> String {
        if let Some(b) = &self.whole {
            if b.len() <= limit {
                return String::from_utf8_lossy(b).into_owned();
            }
        }
        let (head, tail): (&[u8], &[u8]) = match &self.whole {
            Some(b) => (&b[..], &b[..]),
            None => (&self.head, &self.tail),
        };
        let half = limit.saturating_sub(400) / 2;
        let head = &head[..head.len().min(half)];
        let tail = &tail[tail.len().saturating_sub(half)..];
        let left_out = self.total.saturating_sub((head.len() + tail.len()) as u64);
        format!(
            "{}\n[... stepwise: output truncated: {} bytes in all, {left_out} left out here; the whole output is in {where_whole} ...]\n{}",
            String::from_utf8_lossy(head),
            self.total,
            String::from_utf8_lossy(tail)
        )
    }

    /// The last `n` bytes (for error messages).
    pub fn last(&self, n: usize) -> String {
        let b: &[u8] = match &self.whole {
            Some(b) => b,
            None => &self.tail,
        };
        String::from_utf8_lossy(&b[b.len().saturating_sub(n)..]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Collect(Arc<Mutex<Vec<u8>>>);
    impl Spill for Collect {
        fn write(&mut self, bytes: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(bytes);
        }
    }

    #[test]
    fn small_output_is_kept_whole_and_large_output_is_head_tail_and_spilled_in_order() {
        let mut c = Capture::new(10, None);
        c.push(b"hello");
        let got = c.finish();
        assert_eq!(got.whole_text().as_deref(), Some("hello"));

        let spilled = Arc::new(Mutex::new(Vec::new()));
        let mut c = Capture::new(1000, Some(Box::new(Collect(spilled.clone()))));
        let mut all = Vec::new();
        for i in 0..200_000u32 {
            let line = format!("line {i}\n");
            all.extend_from_slice(line.as_bytes());
            c.push(line.as_bytes());
        }
        let got = c.finish();
        assert!(!got.is_whole());
        assert_eq!(got.total, all.len() as u64);
        assert_eq!(*spilled.lock().unwrap(), all);
        assert_eq!(got.head, all[..HEAD]);
        assert_eq!(got.tail, all[all.len() - TAIL..]);
        let text = got.text(100_000, "the log");
        assert!(text.len() < 100_000);
        assert!(text.starts_with("line 0\n"));
        assert!(text.contains("output truncated"));
        assert!(text.trim_end().ends_with("line 199999"));
    }
}
