//! Fitting a run into a chat platform's limits: detail is dropped for a whole list at once
//! (each failed step's command, then its error shortened, then its error), never a whole
//! failure: every failed step stays named.

use super::notice::Failed;

/// How much of each failed step a list shows, most first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The error (at most `error` chars) and the command (at most `command` chars).
    Full { error: usize, command: usize },
    /// The error only, at most this many chars.
    Error(usize),
    /// The step's name and result only.
    Name,
}

/// The levels tried, most detail first.
pub const LEVELS: [Detail; 7] = [
    Detail::Full {
        error: 1500,
        command: 1000,
    },
    Detail::Full {
        error: 600,
        command: 300,
    },
    Detail::Full {
        error: 300,
        command: 120,
    },
    Detail::Error(300),
    Detail::Error(160),
    Detail::Error(80),
    Detail::Name,
];

/// `text` cut to at most `max` chars (not bytes), ending with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One failed step as the parts of a chat line at `detail`: the error text (first) and the
/// command (after), each already cut; `None` where the level drops it.
pub fn parts(f: &Failed, detail: Detail) -> (Option<String>, Option<String>) {
    match detail {
        Detail::Full { error, command } => (
            Some(cut(&f.error, error)),
            f.command.as_deref().map(|c| cut(c, command)),
        ),
        Detail::Error(error) => (Some(cut(&f.error, error)), None),
        Detail::Name => (None, None),
    }
}

/// Lines packed into chunks of at most `max` chars each (a line longer than `max` is cut).
pub fn pack(lines: &[String], max: usize) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in lines {
        let line = cut(line, max);
        let len = cur.chars().count();
        if !cur.is_empty() && len + 1 + line.chars().count() > max {
            chunks.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(&line);
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}

/// The first level (most detail) at which `render` gives something `fits`, with what it gave;
/// the last level's rendering when none fits.
pub fn first_fit<T>(render: impl Fn(Detail) -> T, fits: impl Fn(&T) -> bool) -> (Detail, T) {
    for level in LEVELS {
        let out = render(level);
        if fits(&out) {
            return (level, out);
        }
    }
    let last = LEVELS[LEVELS.len() - 1];
    (last, render(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_keeps_every_line_and_each_chunk_under_the_limit() {
        let lines: Vec<String> = (0..40)
            .map(|i| format!("line {i} {}", "x".repeat(90)))
            .collect();
        let chunks = pack(&lines, 300);
        assert!(chunks.iter().all(|c| c.chars().count() <= 300));
        assert_eq!(chunks.join("\n").lines().count(), 40);
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("ab", 4), "ab");
    }
}
