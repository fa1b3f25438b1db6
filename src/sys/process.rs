//! Running external programs: argv only (never a shell), each under a supervisor
//! (`supervisor`) in its own process group, so that Ctrl+C, SIGTERM, timeouts, a lost lock —
//! and the end of stepwise, however it ends — stop the whole command tree. Output is captured
//! with a bound (`capture`). Also the run's stop state: a signal, or the loss of the state
//! lock; signal handling is installed first thing in `main`.

use crate::sys::supervisor::{self, Request, Status};
use crate::util::capture::{Capture, Captured, Spill};
use std::io::{BufRead, Read, Write};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The signal that asked stepwise to stop (0: none). Set by the signal handler; every
/// running command and script watches it.
pub static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// While steps run (or watch is on), a first SIGINT/SIGTERM is recorded and handled (running
/// commands stopped, steps recorded `interrupted`, state saved); otherwise it ends stepwise at
/// once with the signal's exit code, since nothing is in flight.
pub static DEFER_SIGNALS: AtomicBool = AtomicBool::new(false);

/// Set when the run can no longer prove that it holds the state lock.
static LOCK_LOST: AtomicBool = AtomicBool::new(false);
static LOCK_LOST_WHY: Mutex<String> = Mutex::new(String::new());

/// The longest SIGTERM→SIGKILL grace allowed (ms), set by a lock with a finite lifetime so that
/// a run that lost its lock has stopped every command before another run can take it.
static GRACE_CAP_MS: AtomicU64 = AtomicU64::new(u64::MAX);

/// Installs the SIGINT/SIGTERM handling, before anything else runs (so that no signal meets
/// the default disposition). A second signal ends stepwise at once — after SIGKILLing every
/// command it started (state writes are atomic, so nothing is half-written).
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
                    crate::util::error::exit::SIGTERM
                } else {
                    crate::util::error::exit::SIGINT
                };
                if !DEFER_SIGNALS.load(Ordering::SeqCst) {
                    kill_all_commands();
                    crate::sys::secret_file::remove_all();
                    std::process::exit(code);
                }
                if interrupted().is_some() {
                    eprintln!("second signal: killing every running command and exiting now");
                    kill_all_commands();
                    // Secret files of running steps do not outlive stepwise.
                    crate::sys::secret_file::remove_all();
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

/// Why the run lost its state lock, if it did.
pub fn lock_lost() -> Option<String> {
    LOCK_LOST.load(Ordering::SeqCst).then(|| {
        LOCK_LOST_WHY
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    })
}

/// The run can no longer prove that it holds its state lock: it stops like an interrupted
/// run (no new step, running commands stopped, steps recorded `interrupted`) and exits with
/// its own code. The first reason given is kept.
pub fn stop_for_lost_lock(why: &str) {
    let mut w = LOCK_LOST_WHY.lock().unwrap_or_else(|e| e.into_inner());
    if LOCK_LOST.swap(true, Ordering::SeqCst) {
        return;
    }
    *w = why.to_string();
    drop(w);
    eprintln!("error: {why}\nstopping: no new step starts and running commands are stopped");
}

/// Is the run stopping (a signal, or the lock lost)?
pub fn stopping() -> bool {
    interrupted().is_some() || LOCK_LOST.load(Ordering::SeqCst)
}

/// What stops the run, as a sentence fragment (`interrupted by signal 2`).
pub fn stop_reason() -> Option<String> {
    if let Some(s) = interrupted() {
        return Some(format!("interrupted by signal {s}"));
    }
    lock_lost().map(|_| "stopped: this run lost its state lock".to_string())
}

/// Caps the SIGTERM→SIGKILL grace (a lock's lifetime leaves only so much time to stop).
pub fn cap_kill_grace(cap: Duration) {
    GRACE_CAP_MS.fetch_min(cap.as_millis() as u64, Ordering::SeqCst);
}

/// How long a command gets between SIGTERM and SIGKILL.
pub fn kill_grace() -> Duration {
    let configured = std::env::var("STEPWISE_KILL_GRACE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(5));
    configured.min(Duration::from_millis(GRACE_CAP_MS.load(Ordering::SeqCst)))
}

/// After a command exits, how long processes it left running (holding its output open) may
/// go on before they are stopped and their output dropped.
pub fn output_grace() -> Duration {
    std::env::var("STEPWISE_OUTPUT_GRACE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(2))
}

/// What a finished command left.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: Captured,
    pub stderr: Captured,
    /// Processes the command started in the background were still running after the output
    /// grace: they were stopped and their later output dropped.
    pub leftover: Option<usize>,
}

#[derive(Debug)]
pub enum RunError {
    /// The program could not be started.
    Spawn(String),
    /// Stopped because stepwise was interrupted by this signal.
    Interrupted(i32),
    /// Stopped because the run lost its state lock.
    LockLost,
    /// Killed after the timeout.
    TimedOut(Duration),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Spawn(m) => f.write_str(m),
            RunError::Interrupted(s) => write!(f, "interrupted by signal {s}"),
            RunError::LockLost => f.write_str("stopped: this run lost its state lock"),
            RunError::TimedOut(d) => {
                write!(f, "timed out after {}s and was killed", d.as_secs_f64())
            }
        }
    }
}

/// How to run a command and what to keep of its output.
pub struct RunOptions {
    pub timeout: Duration,
    /// Bytes of stdout kept whole in memory (more: head and tail only, the rest spilled).
    pub stdout_keep: usize,
    pub stderr_keep: usize,
    pub stdout_spill: Option<Box<dyn Spill>>,
    pub stderr_spill: Option<Box<dyn Spill>>,
    /// What the program reads on its standard input (nothing otherwise); it never appears in
    /// argv.
    pub stdin: Option<Vec<u8>>,
}

fn stop_error() -> Option<RunError> {
    if let Some(sig) = interrupted() {
        return Some(RunError::Interrupted(sig));
    }
    LOCK_LOST
        .load(Ordering::SeqCst)
        .then_some(RunError::LockLost)
}

/// A supervisor stepwise started and has not seen end: its pid and control pipe.
struct Live {
    id: u64,
    pid: i32,
    control: Arc<std::fs::File>,
}

static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// SIGKILLs every command stepwise started (through their supervisors) and waits, briefly,
/// until their supervisors report that nothing is left. For the exits that do not wait for
/// steps to end (a second signal). When stepwise dies without this (SIGKILL), the
/// supervisors see their control pipes close and do the same by themselves.
pub fn kill_all_commands() {
    let live: Vec<(i32, Arc<std::fs::File>)> = LIVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|l| (l.pid, l.control.clone()))
        .collect();
    for (_, control) in &live {
        let _ = (&**control).write_all(&[supervisor::KILL]);
    }
    let end = Instant::now() + Duration::from_secs(3);
    for (pid, _) in &live {
        while Instant::now() < end && !has_exited(*pid) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Has the child `pid` exited (it is not reaped here: its owner still waits for it)?
fn has_exited(pid: i32) -> bool {
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // ECHILD: already reaped by its owner.
    r < 0 || unsafe { info.si_pid() } == pid
}

fn pipe_cloexec() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here.
    unsafe {
        Ok((
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        ))
    }
}

/// A copy of `fd` numbered 10 or more (close-on-exec), so that placing the supervisor's pipes
/// on fds 3 and 4 cannot overwrite one with the other.
fn high_copy(fd: &std::os::fd::OwnedFd) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: just created, owned here.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(n) })
}

/// Runs `argv` (no shell) under a supervisor; waits until the command exits (at most
/// `opts.timeout`); returns its exit code and captured output.
pub fn run(argv: &[String], opts: RunOptions) -> Result<Output, RunError> {
    let program = argv
        .first()
        .ok_or_else(|| RunError::Spawn("empty command".into()))?
        .clone();
    if let Some(e) = stop_error() {
        return Err(e);
    }
    let (mut child, control_w, status_r) = spawn_supervisor(&program, opts.stdin.is_some())?;
    let control = Arc::new(std::fs::File::from(control_w));
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(Live {
        id,
        pid: child.id() as i32,
        control: control.clone(),
    });
    struct Unregister(u64);
    impl Drop for Unregister {
        fn drop(&mut self) {
            LIVE.lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|l| l.id != self.0);
        }
    }
    let _unregister = Unregister(id);
    let request = Request {
        argv: argv.iter().map(Into::into).collect(),
        grace: output_grace(),
        kill_grace: kill_grace(),
    };
    let _ = (&*control).write_all(&request.encode());
    if let (Some(bytes), Some(mut pipe)) = (opts.stdin, child.stdin.take()) {
        // Written from a thread (a program may not read it all before writing its output);
        // closed when written, so the program sees the end of its input.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }

    // Output readers and the status reader.
    let out_rx = reader(
        Box::new(child.stdout.take().expect("piped")),
        Capture::new(opts.stdout_keep, opts.stdout_spill),
    );
    let err_rx = reader(
        Box::new(child.stderr.take().expect("piped")),
        Capture::new(opts.stderr_keep, opts.stderr_spill),
    );
    let status_rx = status_reader(status_r);
    let watched = watch(&status_rx, &control, &program, opts.timeout);
    let _ = child.wait();
    // The supervisor ended after every process of the command did, so the output pipes are
    // closed; a process that got hold of them otherwise is not waited for.
    let collect = |rx: mpsc::Receiver<Captured>, name: &str| {
        rx.recv_timeout(Duration::from_secs(2)).unwrap_or_else(|_| {
            eprintln!("warning: the {name} of {program} is still held open by a process outside it: dropped");
            Captured::default()
        })
    };
    let stdout = collect(out_rx, "output");
    let stderr = collect(err_rx, "error output");
    let Watched {
        code,
        leftover,
        failed_spawn,
        stop,
    } = watched;
    if let Some(e) = failed_spawn {
        return Err(e);
    }
    if let Some(e) = stop {
        return Err(e);
    }
    match code {
        Some(code) => Ok(Output {
            code,
            stdout,
            stderr,
            leftover,
        }),
        None => Err(RunError::Spawn(format!(
            "{program}: its supervisor ended without reporting how it exited"
        ))),
    }
}

/// Starts the supervisor of a command (`program` names it in errors), in a process group of
/// its own, with its control pipe on `CONTROL_FD` and its status pipe on `STATUS_FD`; its
/// standard input piped when the command gets one (`stdin`). Returns the supervisor and the
/// ends of the control pipe (to write) and of the status pipe (to read).
fn spawn_supervisor(
    program: &str,
    stdin: bool,
) -> Result<
    (
        std::process::Child,
        std::os::fd::OwnedFd,
        std::os::fd::OwnedFd,
    ),
    RunError,
> {
    use std::os::fd::AsRawFd;
    let spawn_err = |e: std::io::Error| RunError::Spawn(format!("cannot start {program}: {e}"));
    let (control_r, control_w) = pipe_cloexec().map_err(spawn_err)?;
    let (status_r, status_w) = pipe_cloexec().map_err(spawn_err)?;
    let control_child = high_copy(&control_r).map_err(spawn_err)?;
    let status_child = high_copy(&status_w).map_err(spawn_err)?;
    drop((control_r, status_w));
    let (cfd, sfd) = (control_child.as_raw_fd(), status_child.as_raw_fd());
    let mut cmd = std::process::Command::new(supervisor::self_exe());
    cmd.arg0("stepwise")
        .arg(supervisor::MODE_ARG)
        // The command inherits the supervisor's standard input.
        .stdin(if stdin {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(cfd, supervisor::CONTROL_FD) < 0
                || libc::dup2(sfd, supervisor::STATUS_FD) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(spawn_err)?;
    drop((control_child, status_child));
    Ok((child, control_w, status_r))
}

/// Reads an output stream into `cap` on a thread of its own; what it captured arrives on the
/// channel when the stream ends.
fn reader(mut from: Box<dyn Read + Send>, mut cap: Capture) -> mpsc::Receiver<Captured> {
    let (tx, rx) = mpsc::channel::<Captured>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => cap.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(cap.finish());
    });
    rx
}

/// Reads the supervisor's status lines on a thread of its own; the channel closes when the
/// supervisor closes its status pipe (it has ended).
fn status_reader(status_r: std::os::fd::OwnedFd) -> mpsc::Receiver<Status> {
    let (status_tx, status_rx) = mpsc::channel::<Status>();
    std::thread::spawn(move || {
        let r = std::io::BufReader::new(std::fs::File::from(status_r));
        for line in r.lines() {
            let Ok(line) = line else { break };
            if let Some(s) = Status::parse(&line) {
                if status_tx.send(s).is_err() {
                    break;
                }
            }
        }
    });
    status_rx
}

/// What the supervisor reported of a command, and why stepwise stopped it.
struct Watched {
    code: Option<i32>,
    leftover: Option<usize>,
    failed_spawn: Option<RunError>,
    stop: Option<RunError>,
}

/// Watches a command through its supervisor's reports until the supervisor ends: stops it
/// (SIGTERM, then SIGKILL after the grace) when the run stops or `timeout` has passed.
fn watch(
    status_rx: &mpsc::Receiver<Status>,
    control: &std::fs::File,
    program: &str,
    timeout: Duration,
) -> Watched {
    let send = |b: u8| {
        let _ = (&*control).write_all(&[b]);
    };
    let start = Instant::now();
    let mut code: Option<i32> = None;
    let mut leftover = None;
    let mut failed_spawn: Option<RunError> = None;
    let mut stop: Option<RunError> = None;
    let mut term_sent: Option<Instant> = None;
    let mut kill_sent = false;
    loop {
        match status_rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Status::Started(_)) => {}
            Ok(Status::Exited(c)) => code = Some(c),
            Ok(Status::Leftover(n)) => leftover = Some(n),
            Ok(Status::SpawnFailed { not_found, message }) => {
                failed_spawn = Some(RunError::Spawn(if not_found {
                    format!("{program}: command not found on PATH")
                } else {
                    format!("cannot start {program}: {message}")
                }));
            }
            // The supervisor closed its status pipe: it has ended.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if code.is_none() && stop.is_none() && failed_spawn.is_none() {
            stop = stop_error()
                .or_else(|| (start.elapsed() >= timeout).then_some(RunError::TimedOut(timeout)));
            if stop.is_some() {
                send(supervisor::TERMINATE);
                term_sent = Some(Instant::now());
            }
        }
        // Stopping: once the command has exited (what it left is killed at once), or after
        // the grace, everything still running is killed.
        let grace_over = term_sent.is_some_and(|t| t.elapsed() >= kill_grace());
        if !kill_sent && (grace_over || (code.is_some() && stopping())) {
            send(supervisor::KILL);
            kill_sent = true;
        }
    }
    Watched {
        code,
        leftover,
        failed_spawn,
        stop,
    }
}
