//! What the user sees: step lines, warnings, the plan and the final summary. Plain lines,
//! colour only on a terminal and never with NO_COLOR.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

pub struct Console {
    color: bool,
    verbose: bool,
    /// `--output json`: the human lines are not printed (errors still go to stderr).
    quiet: bool,
    /// `--output markdown`: the human lines go to stderr (stdout carries the document).
    to_stderr: bool,
    lock: Mutex<()>,
    /// The live view (a terminal): one spinner line per running step.
    live: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// The environment (`--env`), shown in the live view.
    env: Option<String>,
}

pub const GREEN: &str = "32";
pub const RED: &str = "31";
pub const YELLOW: &str = "33";
pub const DIM: &str = "2";
pub const BOLD: &str = "1";

impl Console {
    pub fn new(verbose: bool) -> Console {
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Console {
            color,
            verbose,
            quiet: false,
            to_stderr: false,
            lock: Mutex::new(()),
            live: None,
            bars: Mutex::new(HashMap::new()),
            env: None,
        }
    }

    /// A console for `--output json`: human lines are dropped.
    pub fn quiet(verbose: bool) -> Console {
        Console {
            quiet: true,
            ..Console::new(verbose)
        }
    }

    /// A console for `--output markdown`: human lines on stderr, no live view.
    pub fn on_stderr(verbose: bool) -> Console {
        Console {
            color: std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            to_stderr: true,
            ..Console::new(verbose)
        }
    }

    /// Turns on the live view when stdout is a terminal (and the output is for humans).
    pub fn enable_live(&mut self) {
        if !self.quiet && !self.to_stderr && std::io::stdout().is_terminal() {
            self.live = Some(MultiProgress::new());
        }
    }

    /// The environment shown in the live view (`None`: the default one, not shown).
    pub fn set_env(&mut self, env: Option<&str>) {
        self.env = env.map(str::to_string);
    }

    pub fn env(&self) -> Option<&str> {
        self.env.as_deref()
    }

    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// A spinner line for a step that starts (live view only).
    pub fn start_step(&self, step: &str) {
        if let Some(multi) = &self.live {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(match &self.env {
                Some(env) => format!("[{env}] {step}"),
                None => step.to_string(),
            });
            bar.enable_steady_tick(Duration::from_millis(120));
            self.bars
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(step.to_string(), bar);
        }
    }

    /// What a running step does now (live view only).
    pub fn update_step(&self, step: &str, message: &str) {
        if let Some(bar) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(step)
        {
            bar.set_message(message.to_string());
        }
    }

    pub fn finish_step(&self, step: &str) {
        if let Some(bar) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(step)
        {
            bar.finish_and_clear();
            if let Some(multi) = &self.live {
                multi.remove(&bar);
            }
        }
    }

    pub fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A line on stdout (masked).
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let masked = crate::util::secrets::global().mask(text);
        let text = masked.as_str();
        if self.to_stderr {
            self.error_line(text);
            return;
        }
        if let Some(multi) = &self.live {
            let _ = multi.println(text);
            return;
        }
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// A line on stderr (masked).
    pub fn error_line(&self, text: &str) {
        let masked = crate::util::secrets::global().mask(text);
        let text = masked.as_str();
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(multi) = &self.live {
            multi.suspend(|| {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            });
            return;
        }
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    /// A message a step printed (`log`, dry-run commands), prefixed with the step's name.
    pub fn step_line(&self, step: &str, text: &str) {
        for l in text.lines() {
            self.line(&format!("  {} {l}", self.paint(DIM, &format!("{step} |"))));
        }
    }

    /// A command a step starts (shown with --verbose; always written to the log).
    pub fn step_command(&self, step: &str, shown: &str) {
        if self.verbose {
            self.step_line(step, &format!("$ {shown}"));
        }
    }

    pub fn step_warn(&self, step: &str, text: &str) {
        self.line(&format!(
            "  {} {}",
            self.paint(DIM, &format!("{step} |")),
            self.paint(YELLOW, &format!("warning: {text}"))
        ));
    }

    pub fn warn(&self, text: &str) {
        self.error_line(&format!("{} {text}", self.paint(YELLOW, "warning:")));
    }

    pub fn error(&self, text: &str) {
        self.error_line(&format!("{} {text}", self.paint(RED, "error:")));
    }
}

/// Prints text on stdout as is, masked (documents such as `state show`, graphs).
pub fn print_text(text: &str) {
    let masked = crate::util::secrets::global().mask(text);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(masked.as_bytes());
    let _ = out.flush();
}

/// Prints a JSON document on stdout (pretty, one line break at the end), every string masked
/// before it is written and the text masked again after.
pub fn print_json(doc: &serde_json::Value) {
    let masker = crate::util::secrets::global();
    let text = serde_json::to_string_pretty(&masker.mask_json(doc)).unwrap_or_default();
    print_text(&format!("{text}\n"));
}

/// Where the debug logs (`--verbose`, tracing) go: stderr, masked.
pub struct MaskedStderr;

impl Write for MaskedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let masked = crate::util::secrets::global().mask(&text);
        std::io::stderr().lock().write_all(masked.as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `1.2s`, `3m04s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let m = (s / 60.0).floor();
        format!("{}m{:02}s", m as u64, (s - m * 60.0).floor() as u64)
    }
}

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error.
pub(crate) fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
