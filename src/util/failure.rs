//! The message of a command that failed, written once and read back: the error text first,
//! the command after (`ERROR: (AuthorizationFailed) … (from: az acr build --registry x, exit
//! 1)`), so that whoever reads only the start of a line (a report's banner, a chat message
//! cut at a platform's limit) reads what went wrong, not a command line. [`message`] writes
//! it (`run::host` when `az`/`exec` fail), [`Parts::of`] reads a step's failure reason back
//! into its error text, location and command (the run report, notifications).

/// The message of a command (`shown`, masked by the caller) that exited `code` having printed
/// `detail` (its stderr, else its stdout). The first line holds the error line of the detail
/// (az's first `ERROR:` line, else the first non-empty line) then `(from: COMMAND, exit N)`;
/// a detail of more than one line follows whole on the next lines.
pub fn message(shown: &str, code: i32, detail: &str) -> String {
    let detail = detail.trim();
    let lines: Vec<&str> = detail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let error = lines
        .iter()
        .find(|l| l.starts_with("ERROR:"))
        .or(lines.first())
        .copied()
        .unwrap_or("no output");
    let mut out = format!("{error}{FROM}{shown}, exit {code})");
    if lines.len() > 1 {
        out.push('\n');
        out.push_str(detail);
    }
    out
}

const FROM: &str = " (from: ";

/// A step's failure reason (the first line of its error) taken apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    /// What went wrong (the whole reason when it is not a command's failure).
    pub error: String,
    /// `steps/09_build.rhai:12:5` when the reason starts with a script location.
    pub location: Option<String>,
    /// The command that failed, with its exit code (`az acr build …, exit 1`).
    pub command: Option<String>,
}

impl Parts {
    /// Reads `reason` (one line) back: `LOCATION: ERROR (from: COMMAND, exit N)`, each part
    /// optional.
    pub fn of(reason: &str) -> Parts {
        let mut rest = reason.trim();
        let mut location = None;
        if let Some(end) = location_end(rest) {
            location = Some(rest[..end].to_string());
            rest = rest[end + 1..].trim_start();
        }
        let mut command = None;
        if let Some(i) = rest.find(FROM) {
            if rest.ends_with(')') {
                command = Some(rest[i + FROM.len()..rest.len() - 1].to_string());
                rest = &rest[..i];
            }
        }
        Parts {
            error: rest.trim().to_string(),
            location,
            command,
        }
    }
}

/// Where a script location (`FILE.rhai`, `FILE.rhai:L` or `FILE.rhai:L:C`) ending in `:`
/// opens `reason`: the index of that `:`.
fn location_end(reason: &str) -> Option<usize> {
    let after = reason.find(".rhai")? + ".rhai".len();
    if reason[..after].contains(' ') {
        return None;
    }
    let tail = &reason[after..];
    let mut k = 0;
    for _ in 0..2 {
        let digits = tail[k..]
            .strip_prefix(':')
            .map(|t| t.bytes().take_while(u8::is_ascii_digit).count())
            .unwrap_or(0);
        if digits == 0 {
            break;
        }
        k += 1 + digits;
    }
    tail[k..].starts_with(": ").then_some(after + k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_line_comes_first_and_reads_back() {
        let m = message(
            "az acr build --registry r .",
            1,
            "WARNING: slow\nERROR: (Denied) no access\nmore",
        );
        let first = m.lines().next().unwrap();
        assert_eq!(
            first,
            "ERROR: (Denied) no access (from: az acr build --registry r ., exit 1)"
        );
        assert!(m.ends_with("WARNING: slow\nERROR: (Denied) no access\nmore"));
        let p = Parts::of(&format!("steps/09_build.rhai:12:5: {first}"));
        assert_eq!(p.error, "ERROR: (Denied) no access");
        assert_eq!(p.location.as_deref(), Some("steps/09_build.rhai:12:5"));
        assert_eq!(
            p.command.as_deref(),
            Some("az acr build --registry r ., exit 1")
        );
        assert_eq!(
            message("docker push x", 2, ""),
            "no output (from: docker push x, exit 2)"
        );
        // not a command's failure: the whole reason is the error
        let p = Parts::of("steps/01_a.rhai: boom: it broke");
        assert_eq!(p.error, "boom: it broke");
        assert_eq!(p.location.as_deref(), Some("steps/01_a.rhai"));
        assert_eq!(p.command, None);
        assert_eq!(
            Parts::of("verify after run: x").error,
            "verify after run: x"
        );
    }
}
