//! The command supervisor: a small process between stepwise and every command it runs, so
//! that no command outlives stepwise, however stepwise ends (SIGKILL included).
//!
//! stepwise starts its own executable again in supervisor mode (`stepwise
//! __stepwise-supervise`, in a process group of its own) with two pipes: a control pipe it
//! reads (fd 3) and a status pipe it writes (fd 4). The command's argv and timings come over
//! the control pipe (never on a command line). The supervisor:
//! - makes itself a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`), so every process the
//!   command starts stays its descendant even when the process between them exits or calls
//!   `setsid` — none can slip away to init;
//! - starts the command in a new process group, with `PR_SET_PDEATHSIG(SIGKILL)` (the command
//!   dies if the supervisor does);
//! - reports the command's pid and, as soon as the command itself exits, its exit status
//!   (completion is the process's exit, not the end of its output);
//! - gives processes the command left running in the background `grace` to finish, then
//!   stops them (SIGTERM, then SIGKILL);
//! - obeys the control pipe: `T` sends SIGTERM to every descendant; `K`, or the pipe's end
//!   (stepwise exited or was killed: the kernel closes its end), SIGKILLs every descendant
//!   until none is left, then exits.
//!
//! On other Unix systems (no subreaper, no `/proc`) the supervisor still stops the command's
//! process group when stepwise ends; processes that leave that group are not tracked.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::time::{Duration, Instant};

/// The first argument that selects supervisor mode.
pub const MODE_ARG: &str = "__stepwise-supervise";
/// The supervisor's control pipe (read end).
pub const CONTROL_FD: RawFd = 3;
/// The supervisor's status pipe (write end).
pub const STATUS_FD: RawFd = 4;

/// Control byte: send SIGTERM to every descendant.
pub const TERMINATE: u8 = b'T';
/// Control byte: SIGKILL every descendant and exit.
pub const KILL: u8 = b'K';

/// What the command and its supervisor are asked to do (sent over the control pipe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub argv: Vec<OsString>,
    /// After the command exits: how long processes it left behind may run on.
    pub grace: Duration,
    /// Between SIGTERM and SIGKILL for those processes.
    pub kill_grace: Duration,
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        let mut out = Vec::new();
        out.extend_from_slice(&(self.grace.as_millis() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kill_grace.as_millis() as u64).to_le_bytes());
        out.extend_from_slice(&(self.argv.len() as u64).to_le_bytes());
        for a in &self.argv {
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            out.extend_from_slice(a.as_bytes());
        }
        out
    }

    pub fn decode(r: &mut impl Read) -> std::io::Result<Request> {
        use std::os::unix::ffi::OsStringExt;
        let u64_of = |r: &mut dyn Read| -> std::io::Result<u64> {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            Ok(u64::from_le_bytes(b))
        };
        let grace = Duration::from_millis(u64_of(r)?);
        let kill_grace = Duration::from_millis(u64_of(r)?);
        let n = u64_of(r)?;
        if n == 0 || n > 1 << 20 {
            return Err(std::io::Error::other("bad argv count"));
        }
        let mut argv = Vec::new();
        for _ in 0..n {
            let len = u64_of(r)?;
            if len > 1 << 30 {
                return Err(std::io::Error::other("bad argument length"));
            }
            let mut b = vec![0u8; len as usize];
            r.read_exact(&mut b)?;
            argv.push(OsString::from_vec(b));
        }
        Ok(Request {
            argv,
            grace,
            kill_grace,
        })
    }
}

/// A line the supervisor reports on the status pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The command started with this pid.
    Started(i32),
    /// The command could not be started; `not_found`: no such program.
    SpawnFailed { not_found: bool, message: String },
    /// The command exited with this code (128 + signal when killed by a signal).
    Exited(i32),
    /// Processes the command started were still running `grace` after it exited: stopped.
    Leftover(usize),
}

impl Status {
    pub fn line(&self) -> String {
        match self {
            Status::Started(pid) => format!("started {pid}\n"),
            Status::SpawnFailed { not_found, message } => format!(
                "spawn-failed {} {}\n",
                u8::from(*not_found),
                message.replace('\n', " ")
            ),
            Status::Exited(code) => format!("exited {code}\n"),
            Status::Leftover(n) => format!("leftover {n}\n"),
        }
    }

    pub fn parse(line: &str) -> Option<Status> {
        let (word, rest) = line.trim_end().split_once(' ')?;
        match word {
            "started" => rest.parse().ok().map(Status::Started),
            "exited" => rest.parse().ok().map(Status::Exited),
            "leftover" => rest.parse().ok().map(Status::Leftover),
            "spawn-failed" => {
                let (nf, message) = rest.split_once(' ').unwrap_or((rest, ""));
                Some(Status::SpawnFailed {
                    not_found: nf == "1",
                    message: message.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// The program to start in supervisor mode: this executable.
pub fn self_exe() -> std::path::PathBuf {
    if cfg!(target_os = "linux") {
        // Works even when the file was replaced or deleted since stepwise started.
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().unwrap_or_else(|_| "stepwise".into())
    }
}

/// Runs supervisor mode when this process was started for it; returns its exit code.
pub fn maybe_run() -> Option<i32> {
    let mut args = std::env::args_os();
    let _ = args.next();
    if args.next().as_deref() != Some(std::ffi::OsStr::new(MODE_ARG)) {
        return None;
    }
    Some(supervise())
}

fn status_out() -> std::fs::File {
    // SAFETY: fd 4 was set up by the parent for this purpose and is owned by this process.
    unsafe { std::fs::File::from_raw_fd(STATUS_FD) }
}

fn report(out: &mut std::fs::File, s: &Status) {
    let _ = out.write_all(s.line().as_bytes());
}

fn supervise() -> i32 {
    // Only the control pipe tells the supervisor what to do; signals meant for stepwise's
    // commands go through it. (Reset to the default in the command before it starts.)
    unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(sig, libc::SIG_IGN);
        }
        // Neither pipe is for the command.
        for fd in [CONTROL_FD, STATUS_FD] {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    // SAFETY: fd 3 was set up by the parent for this purpose and is owned by this process.
    let mut control = unsafe { std::fs::File::from_raw_fd(CONTROL_FD) };
    let mut status = status_out();
    let Ok(req) = Request::decode(&mut control) else {
        return 125;
    };
    let me = std::process::id() as i32;
    let mut cmd = command(&req.argv, me);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            report(
                &mut status,
                &Status::SpawnFailed {
                    not_found: e.kind() == std::io::ErrorKind::NotFound,
                    message: e.to_string(),
                },
            );
            return 127;
        }
    };
    let pid = child.id() as i32;
    COMMAND.store(pid, std::sync::atomic::Ordering::SeqCst);
    report(&mut status, &Status::Started(pid));
    // The command holds the output pipes now; the supervisor lets go of them so that they
    // close when the command's processes are gone.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if null >= 0 {
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            libc::close(null);
        }
    }
    std::thread::spawn(move || obey(control, me, pid));
    drop(child); // waited for below, by pid
    let code = wait_pid(pid);
    report(&mut status, &Status::Exited(code));
    stop_leftovers(&mut status, me, pid, &req);
    0
}

/// The command `argv`, started in its own process group with the default signal handlers,
/// killed when its supervisor (`me`) dies.
fn command(argv: &[OsString], me: i32) -> std::process::Command {
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    {
        use std::os::unix::process::CommandExt;
        unsafe {
            cmd.pre_exec(move || {
                for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                libc::setpgid(0, 0);
                #[cfg(target_os = "linux")]
                {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                    // The supervisor may have died before the line above: then go now.
                    if libc::getppid() != me {
                        libc::_exit(137);
                    }
                }
                Ok(())
            });
        }
    }
    cmd
}

/// The control pipe: `T` terminates, `K` or its end kills everything and exits.
fn obey(mut control: std::fs::File, me: i32, pid: i32) {
    let mut b = [0u8; 1];
    loop {
        match control.read(&mut b) {
            Ok(1) if b[0] == TERMINATE => signal_descendants(me, pid, libc::SIGTERM),
            Ok(1) if b[0] != KILL => {}
            _ => {
                kill_everything(me, pid);
                unsafe { libc::_exit(0) };
            }
        }
    }
}

/// Processes the command left running: `grace` to end by themselves, then stopped.
fn stop_leftovers(status: &mut std::fs::File, me: i32, pid: i32, req: &Request) {
    let end = Instant::now() + req.grace;
    while has_children() {
        reap_any();
        if Instant::now() >= end {
            let n = descendants(me).len().max(1);
            report(status, &Status::Leftover(n));
            signal_descendants(me, pid, libc::SIGTERM);
            let end = Instant::now() + req.kill_grace;
            while has_children() && Instant::now() < end {
                reap_any();
                std::thread::sleep(Duration::from_millis(10));
            }
            kill_everything(me, pid);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `pid`; its exit code, or 128 + the signal that killed it.
fn wait_pid(pid: i32) -> i32 {
    loop {
        let mut st = 0;
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            COMMAND_REAPED.store(true, std::sync::atomic::Ordering::SeqCst);
            if libc::WIFEXITED(st) {
                return libc::WEXITSTATUS(st);
            }
            if libc::WIFSIGNALED(st) {
                return 128 + libc::WTERMSIG(st);
            }
            continue;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 128 + libc::SIGKILL;
        }
    }
}

/// Does the supervisor still have a child (running or not yet reaped)?
fn has_children() -> bool {
    let r = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    !(r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
}

/// Reaps every child that has ended.
fn reap_any() {
    loop {
        let mut st = 0;
        let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if r <= 0 {
            return;
        }
        if r == COMMAND.load(std::sync::atomic::Ordering::SeqCst) {
            COMMAND_REAPED.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Set once the command itself has been reaped: from then on its process group id may be
/// reused by an unrelated group, so only descendants are signalled.
static COMMAND_REAPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The command's pid.
static COMMAND: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Sends `sig` to every descendant and, while the command has not been reaped, to its
/// process group.
fn signal_descendants(me: i32, command: i32, sig: i32) {
    if !COMMAND_REAPED.load(std::sync::atomic::Ordering::SeqCst) {
        unsafe {
            libc::kill(-command, sig);
        }
    }
    for pid in descendants(me) {
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// SIGKILLs every descendant until none is left (processes whose parent dies are adopted
/// by the supervisor, a subreaper, and found on the next round).
fn kill_everything(me: i32, command: i32) {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        signal_descendants(me, command, libc::SIGKILL);
        reap_any();
        if !has_children() || Instant::now() >= end {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every live descendant of `root`, from `/proc` (empty where there is no `/proc`).
pub fn descendants(root: i32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(ppid) = parent_pid(pid) {
            parent_of.push((pid, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &parent_of {
            if ppid == p && !out.contains(&pid) {
                out.push(pid);
                frontier.push(pid);
            }
        }
    }
    out
}

/// The parent of `pid` (from `/proc/PID/stat`; the name may hold spaces and parentheses).
pub fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_status_lines_round_trip() {
        let req = Request {
            argv: vec!["az".into(), "a b".into(), "".into()],
            grace: Duration::from_millis(1500),
            kill_grace: Duration::from_secs(2),
        };
        let bytes = req.encode();
        assert_eq!(Request::decode(&mut bytes.as_slice()).unwrap(), req);
        for s in [
            Status::Started(42),
            Status::Exited(130),
            Status::Leftover(3),
            Status::SpawnFailed {
                not_found: true,
                message: "No such file or directory (os error 2)".into(),
            },
        ] {
            assert_eq!(Status::parse(&s.line()), Some(s));
        }
    }
}
