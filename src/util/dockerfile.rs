//! Reading which parts of a build context a Dockerfile uses (`COPY`/`ADD` sources), so that
//! an image's fingerprint covers those files only: with one shared context, editing one
//! service does not rebuild the others.

/// The context-relative sources of every `COPY`/`ADD` that reads the build context, or `None`
/// when the whole context may matter (a `.` source, or something this reader does not
/// understand): then the fingerprint covers the whole context, which is always safe.
pub fn context_sources(text: &str) -> Option<Vec<String>> {
    let mut sources = Vec::new();
    for instruction in logical_lines(text) {
        let mut words = instruction.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        let keyword = keyword.to_ascii_uppercase();
        if keyword != "COPY" && keyword != "ADD" {
            continue;
        }
        let rest = instruction[instruction.find(char::is_whitespace)?..].trim();
        let mut args: Vec<String> = if rest.starts_with('[') {
            serde_json::from_str::<Vec<String>>(rest).ok()?
        } else {
            rest.split_whitespace().map(str::to_string).collect()
        };
        // Flags: --from=stage reads another stage or image, not the context.
        let mut from_other = false;
        args.retain(|a| {
            if a.starts_with("--from") {
                from_other = true;
            }
            !a.starts_with("--")
        });
        if from_other {
            continue;
        }
        if args.iter().any(|a| a.starts_with("<<")) {
            return None; // heredoc
        }
        if args.len() < 2 {
            return None;
        }
        args.pop(); // destination
        for src in args {
            if src.contains("://") || src.starts_with("git@") {
                sources.push(src); // a remote source: its address is part of the fingerprint
                continue;
            }
            let clean = src
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_string();
            if clean.is_empty() || clean == "." || clean.contains("..") || clean.contains('$') {
                return None;
            }
            sources.push(clean);
        }
    }
    sources.sort();
    sources.dedup();
    Some(sources)
}

/// Instructions with `\` continuations joined, comments dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.starts_with('#') || t.is_empty()) {
            continue;
        }
        if let Some(stripped) = t.strip_suffix('\\') {
            cur.push_str(stripped);
            cur.push(' ');
        } else {
            cur.push_str(t);
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Does the context-relative `path` fall under one of `sources` (a file, a directory or a glob)?
pub fn matches(sources: &[globset::GlobMatcher], prefixes: &[String], path: &str) -> bool {
    prefixes
        .iter()
        .any(|p| path == p || path.starts_with(&format!("{p}/")))
        || sources.iter().any(|g| g.is_match(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_copy_and_add_sources() {
        let text = "FROM node:20\n# COPY ignored\nCOPY services/api/package.json ./\nRUN x\nCOPY --chown=1:1 services/api/src \\\n  ./src\nADD [\"lib/a.txt\", \"lib/*.json\", \"/dst/\"]\nCOPY --from=build /out /app\n";
        assert_eq!(
            context_sources(text).unwrap(),
            [
                "lib/*.json",
                "lib/a.txt",
                "services/api/package.json",
                "services/api/src"
            ]
        );
    }

    #[test]
    fn whole_context_when_unsure() {
        assert_eq!(context_sources("FROM x\nCOPY . /app\n"), None);
        assert_eq!(context_sources("FROM x\nCOPY ./ /app\n"), None);
        assert_eq!(context_sources("FROM x\nCOPY $SRC /app\n"), None);
        assert_eq!(context_sources("FROM x\nCOPY <<EOF /a\nhi\nEOF\n"), None);
    }
}
