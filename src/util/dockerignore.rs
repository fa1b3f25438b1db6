//! Docker's `.dockerignore` rules, as Docker applies them to a build context: which ignore file
//! counts (`<Dockerfile>.dockerignore` next to the Dockerfile, else `.dockerignore` at the
//! context root; never `.gitignore`, never an ignore file in a subfolder), how it is read, and
//! how a context-relative path is matched (moby's pattern matcher: patterns anchored at the
//! context root, `*` and `?` within one path segment, `**` across segments, `!` exceptions,
//! the last matching pattern decides, a pattern also excludes everything below a directory it
//! matches). The Dockerfile and the ignore file itself are always sent.

use regex::Regex;
use std::path::{Path, PathBuf};

/// One pattern of an ignore file.
#[derive(Debug, Clone)]
struct Pattern {
    /// `!pattern`: an exception (re-includes).
    exclusion: bool,
    /// The cleaned pattern text (segments joined by `/`).
    cleaned: String,
    /// How many path segments the pattern has.
    dirs: usize,
    regex: Regex,
}

/// The patterns of a build context, ready to match context-relative paths.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    /// Is there any pattern that excludes? (Without one nothing is ever excluded.)
    excludes: bool,
    /// The ignore file the patterns came from (None: there is none).
    pub source: Option<PathBuf>,
}

/// An error in an ignore file, located by line.
#[derive(Debug)]
pub struct PatternError {
    pub line: usize,
    pub message: String,
}

/// The lines of an ignore file that are patterns, with their line numbers, read as Docker
/// reads them: a UTF-8 BOM dropped, lines starting with `#` are comments, surrounding white
/// space trimmed, empty lines skipped; `!` then optional white space marks an exception; each
/// pattern is cleaned like a path (`./a//b/` → `a/b`) and a leading `/` dropped.
pub fn read_patterns(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.starts_with('#') {
            continue;
        }
        let mut p = raw.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut cleaned = if p.is_empty() {
            String::new()
        } else {
            clean(p)
        };
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
        out.push((
            i + 1,
            if invert {
                format!("!{cleaned}")
            } else {
                cleaned
            },
        ));
    }
    out
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// moby's translation of a pattern into a regular expression.
fn compile(pattern: &str) -> Result<Regex, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => match chars.get(i) {
                Some(n) => {
                    re.push_str(&regex::escape(&n.to_string()));
                    i += 1;
                }
                None => re.push_str(r"\\"),
            },
            '[' => {
                // A character class as filepath.Match reads it: `[abc]`, `[a-z]`, `[^a]`.
                let mut class = String::from("[");
                if chars.get(i) == Some(&'^') {
                    class.push('^');
                    i += 1;
                }
                let start = i;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("{pattern:?}: unclosed `[`")),
                        Some(']') if i > start => {
                            i += 1;
                            break;
                        }
                        Some('\\') if i + 1 < chars.len() => {
                            class.push_str(&regex::escape(&chars[i + 1].to_string()));
                            i += 2;
                        }
                        Some('-') if i > start && chars.get(i + 1).is_some_and(|n| *n != ']') => {
                            class.push('-');
                            i += 1;
                        }
                        Some(ch) => {
                            class.push_str(&regex::escape(&ch.to_string()));
                            i += 1;
                        }
                    }
                }
                class.push(']');
                re.push_str(&class);
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("{pattern:?}: {e}"))
}

impl Matcher {
    /// A matcher from cleaned patterns (see [`read_patterns`]) plus Docker's own additions: the
    /// Dockerfile (context-relative; `Dockerfile` when none is given) and `.dockerignore` are
    /// always sent.
    pub fn new(
        patterns: &[(usize, String)],
        dockerfile: Option<&str>,
    ) -> Result<Matcher, PatternError> {
        let mut all: Vec<(usize, String)> = patterns.to_vec();
        all.push((0, format!("!{}", dockerfile.unwrap_or("Dockerfile"))));
        all.push((0, "!.dockerignore".to_string()));
        let mut m = Matcher::default();
        for (line, text) in all {
            let (exclusion, body) = match text.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, text.as_str()),
            };
            if exclusion && body.is_empty() {
                return Err(PatternError {
                    line,
                    message: "illegal exclusion pattern \"!\"".into(),
                });
            }
            let dirs: Vec<&str> = body
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .collect();
            if dirs.is_empty() {
                continue; // `.` or `/`: matches nothing ("for historical reasons, . is ignored")
            }
            let cleaned = dirs.join("/");
            let regex = compile(&cleaned).map_err(|message| PatternError { line, message })?;
            m.excludes |= !exclusion;
            m.patterns.push(Pattern {
                exclusion,
                dirs: dirs.len(),
                cleaned,
                regex,
            });
        }
        Ok(m)
    }

    /// The matcher of a build context: `<Dockerfile>.dockerignore` next to the Dockerfile when
    /// it exists (BuildKit's rule), else the context's `.dockerignore`, else none. `dockerfile`
    /// is the path as given to `docker build -f` (relative to the current directory, like
    /// `context`); None: `CONTEXT/Dockerfile`. Errors name the ignore file and line.
    pub fn for_context(context: &Path, dockerfile: Option<&Path>) -> Result<Matcher, String> {
        let default_dockerfile = context.join("Dockerfile");
        let dockerfile_path = dockerfile.unwrap_or(&default_dockerfile);
        let specific = {
            let mut name = dockerfile_path.as_os_str().to_owned();
            name.push(".dockerignore");
            PathBuf::from(name)
        };
        let source = [specific, context.join(".dockerignore")]
            .into_iter()
            .find(|p| p.is_file());
        let patterns = match &source {
            Some(p) => {
                let bytes =
                    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                read_patterns(&String::from_utf8_lossy(&bytes))
            }
            None => Vec::new(),
        };
        // The Dockerfile as a context-relative path, when it is inside the context.
        let relative = {
            let strip = |p: &Path| -> PathBuf {
                p.components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .collect()
            };
            let (d, c) = (strip(dockerfile_path), strip(context));
            d.strip_prefix(&c)
                .ok()
                .map(|r| r.to_string_lossy().replace('\\', "/"))
        };
        let mut m = Matcher::new(&patterns, Some(relative.as_deref().unwrap_or("Dockerfile")))
            .map_err(|e| {
                format!(
                    "{}:{}: {}",
                    source
                        .as_deref()
                        .unwrap_or(Path::new(".dockerignore"))
                        .display(),
                    e.line,
                    e.message
                )
            })?;
        m.source = source;
        Ok(m)
    }

    /// Can anything be excluded at all? (Without an excluding pattern, every path is sent.)
    pub fn excludes_anything(&self) -> bool {
        self.excludes
    }

    /// Is the context-relative path `rel` (segments joined by `/`) excluded? The last pattern
    /// that matches the path, or one of its parent directories, decides.
    pub fn excluded(&self, rel: &str) -> bool {
        if !self.excludes {
            return false;
        }
        let parent = rel.rfind('/').map(|i| &rel[..i]);
        let parent_dirs: Vec<usize> = match parent {
            // end offsets of each parent prefix: "a/b/c" -> [1, 3] for "a", "a/b"
            Some(p) => p
                .match_indices('/')
                .map(|(i, _)| i)
                .chain(std::iter::once(p.len()))
                .collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            // Only a pattern that could change the verdict is evaluated.
            if p.exclusion != matched {
                continue;
            }
            let mut hit = p.regex.is_match(rel);
            if !hit && p.dirs <= parent_dirs.len() {
                hit = p.regex.is_match(&rel[..parent_dirs[p.dirs - 1]]);
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Must an excluded directory still be walked, because an exception could re-include
    /// something below it? (An exception pattern that starts with the directory's path.)
    pub fn walk_excluded_dir(&self, rel: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| p.exclusion && p.cleaned.starts_with(rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Matcher {
        Matcher::new(&read_patterns(text), None).unwrap()
    }

    #[test]
    fn patterns_are_anchored_at_the_root_and_double_star_crosses_folders() {
        let g = m("*.md\n!README.md\n**/*.log\ndist\n# comment\n/tmp/\n");
        assert!(g.excluded("notes.md"));
        assert!(!g.excluded("docs/notes.md"), "`*.md` is top-level only");
        assert!(!g.excluded("README.md"));
        assert!(g.excluded("a/b/c.log") && g.excluded("c.log"));
        assert!(
            g.excluded("dist") && g.excluded("dist/app.js"),
            "below a matched dir"
        );
        assert!(!g.excluded("src/dist"));
        assert!(g.excluded("tmp/x"));
        assert!(!g.excluded("Dockerfile") && !g.excluded(".dockerignore"));
    }

    #[test]
    fn reading_cleans_like_docker() {
        assert_eq!(
            read_patterns("\u{feff}a\n  # not a comment\n#c\n! ./b//c/\n\n/d\n"),
            [
                (1, "a".to_string()),
                (2, "# not a comment".to_string()),
                (4, "!b/c".to_string()),
                (6, "d".to_string())
            ]
        );
        let err = Matcher::new(&read_patterns("ok\n[ab\n"), None).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(Matcher::new(&read_patterns("!\n"), None).is_err());
    }
}
