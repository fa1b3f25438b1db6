//! The report's markup helpers: escaping text for XML-safe HTML, and the CSS class of a
//! result or decision.

/// HTML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // control characters are not allowed in XML
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The CSS class of a result or decision.
pub fn status_class(status: &str) -> String {
    let known = [
        "ran",
        "failed",
        "interrupted",
        "blocked",
        "skipped",
        "pending",
        "run",
        "skip",
        "excluded",
    ];
    if known.contains(&status) {
        format!("st-{status}")
    } else {
        "st-other".into()
    }
}
