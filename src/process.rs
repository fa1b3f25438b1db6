//! Running external programs: argv only (never a shell), each in its own process group so
//! that Ctrl+C, SIGTERM and timeouts stop the whole command tree, with output captured.

use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The signal that asked stepwise to stop (0: none). Set by the signal handler; every
/// running command and script watches it.
pub static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// While steps run (or watch is on), a first SIGINT/SIGTERM is recorded and handled (running
/// commands stopped, steps recorded `interrupted`, state saved); otherwise it ends stepwise at
/// once with the signal's exit code, since nothing is in flight.
pub static DEFER_SIGNALS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Installs the SIGINT/SIGTERM handling, before anything else runs (so that no signal meets
/// the default disposition). A second signal ends stepwise at once: state writes are atomic,
/// so nothing is half-written.
pub fn install_signal_handlers() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    // Register now, on this thread, so that the handlers exist before `main` goes on.
    let streams = {
        let _guard = rt.enter();
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    let (Ok(mut int), Ok(mut term)) = streams else {
        return;
    };
    std::thread::spawn(move || {
        rt.block_on(async move {
            loop {
                let sig = tokio::select! {
                    _ = int.recv() => libc::SIGINT,
                    _ = term.recv() => libc::SIGTERM,
                };
                let code = if sig == libc::SIGTERM {
                    crate::error::exit::SIGTERM
                } else {
                    crate::error::exit::SIGINT
                };
                if !DEFER_SIGNALS.load(Ordering::SeqCst) {
                    crate::secret_file::remove_all();
                    std::process::exit(code);
                }
                if interrupted().is_some() {
                    eprintln!("second signal: exiting now");
                    // Secret files of running steps do not outlive stepwise.
                    crate::secret_file::remove_all();
                    std::process::exit(code);
                }
                INTERRUPTED.store(sig, Ordering::SeqCst);
                eprintln!("interrupted: stopping running commands and recording state (signal again to exit at once)");
            }
        });
    });
}

/// The signal that interrupted the run, if any.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// How long a command gets between SIGTERM and SIGKILL.
pub fn kill_grace() -> Duration {
    std::env::var("STEPWISE_KILL_GRACE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(5))
}

/// What a finished command left.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug)]
pub enum RunError {
    /// The program could not be started.
    Spawn(String),
    /// Stopped because stepwise was interrupted by this signal.
    Interrupted(i32),
    /// Killed after the timeout.
    TimedOut(Duration),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Spawn(m) => f.write_str(m),
            RunError::Interrupted(s) => write!(f, "interrupted by signal {s}"),
            RunError::TimedOut(d) => {
                write!(f, "timed out after {}s and was killed", d.as_secs_f64())
            }
        }
    }
}

/// Runs `argv` (no shell), waits at most `timeout`, returns its exit code and output. `stdin`:
/// what the program reads on its standard input (nothing otherwise); it never appears in argv.
pub fn run(argv: &[String], timeout: Duration, stdin: Option<&[u8]>) -> Result<Output, RunError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| RunError::Spawn("empty command".into()))?;
    if let Some(sig) = interrupted() {
        return Err(RunError::Interrupted(sig));
    }
    let expr = duct::cmd(program, args).before_spawn(|c| {
        c.process_group(0);
        Ok(())
    });
    let expr = match stdin {
        Some(bytes) => expr.stdin_bytes(bytes.to_vec()),
        None => expr.stdin_null(),
    };
    let handle = expr
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                RunError::Spawn(format!("{program}: command not found on PATH"))
            } else {
                RunError::Spawn(format!("cannot start {program}: {e}"))
            }
        })?;
    let start = Instant::now();
    let stop_reason = loop {
        match handle.wait_timeout(Duration::from_millis(20)) {
            Ok(Some(out)) => return Ok(to_output(out)),
            Ok(None) => {}
            Err(e) => return Err(RunError::Spawn(format!("waiting for {program}: {e}"))),
        }
        if let Some(sig) = interrupted() {
            break RunError::Interrupted(sig);
        }
        if start.elapsed() >= timeout {
            break RunError::TimedOut(timeout);
        }
    };
    // Stop the whole process group: SIGTERM, then SIGKILL after a grace period.
    let pids = handle.pids();
    signal_groups(&pids, libc::SIGTERM);
    let deadline = Instant::now() + kill_grace();
    loop {
        match handle.wait_deadline(deadline.min(Instant::now() + Duration::from_millis(20))) {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if Instant::now() >= deadline => {
                signal_groups(&pids, libc::SIGKILL);
                let _ = handle.wait();
                break;
            }
            Ok(None) => {}
        }
    }
    // Children that outlived the leader get the same treatment.
    signal_groups(&pids, libc::SIGKILL);
    Err(stop_reason)
}

fn signal_groups(pids: &[u32], sig: i32) {
    for &pid in pids {
        // The child was started as the leader of its own group: -pid reaches the whole group.
        unsafe {
            libc::kill(-(pid as i32), sig);
        }
    }
}

fn to_output(out: &std::process::Output) -> Output {
    use std::os::unix::process::ExitStatusExt;
    let code = out
        .status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    Output {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
