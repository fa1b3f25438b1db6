//! stepwise: idempotent, stateful deployments. See ARCHITECTURE.md for the module map.

pub mod app;
pub mod backend;
pub mod blob;
pub mod capture;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dockerfile;
pub mod dockerignore;
pub mod error;
pub mod executor;
pub mod fingerprint;
pub mod hashcache;
pub mod host;
pub mod html_report;
pub mod legacy;
pub mod lock;
pub mod markdown;
pub mod notify;
pub mod paths;
pub mod plan;
pub mod process;
pub mod project;
pub mod reads;
pub mod refresh;
pub mod report;
pub mod reports;
pub mod script;
pub mod secret_file;
pub mod secrets;
pub mod state;
pub mod step;
pub mod suggest;
pub mod summary;
pub mod supervisor;
pub mod util;
pub mod watch;

/// The program: parses the command line, runs it, prints errors, returns the exit code.
pub fn main() -> i32 {
    // Started as a command's supervisor (see `supervisor`): nothing else of stepwise runs.
    if let Some(code) = supervisor::maybe_run() {
        return code;
    }
    // A file size limit (`ulimit -f`) must fail a write with EFBIG (the state stays intact),
    // not kill the process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    process::install_signal_handlers();
    // A completion request from the shell (`STEPWISE_COMPLETE=bash stepwise -- ...`) is
    // answered here, before anything else prints.
    cli::completion::complete_env();
    let cli = match cli::Cli::parse_args() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                error::exit::USAGE
            } else {
                0
            };
        }
    };
    let output = cli.global.output;
    match commands::run(cli) {
        // A run that lost its lock ends with its own code, whatever else happened.
        Ok(_) if process::lock_lost().is_some() => error::exit::LOCK_LOST,
        Ok(code) => code,
        Err(e) => {
            let code = if process::lock_lost().is_some() {
                error::exit::LOCK_LOST
            } else {
                error::exit_code(&e)
            };
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                msg.push_str(&format!("\n  caused by: {cause}"));
            }
            // The error may quote a command or an answer: masked like every other sink.
            let msg = secrets::global().mask(&msg);
            report::Console::new(false).error(&msg);
            match output {
                cli::OutputFormat::Json => {
                    let doc = serde_json::json!({ "error": msg, "exit_code": code });
                    report::print_json(&doc);
                }
                cli::OutputFormat::Markdown => print!("{}", markdown::error(&msg, code)),
                cli::OutputFormat::Human => {}
            }
            code
        }
    }
}
