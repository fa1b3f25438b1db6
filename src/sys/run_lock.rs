//! The run lock: one deployment at a time per state. Locally an OS file lock (released by the
//! kernel when the process dies, however it dies) plus a holder record for messages.

use crate::util::error::{exit, Failure, Kind, OrFail};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

/// Who holds a lock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub started: String,
}

impl Holder {
    /// The holder record of this process.
    pub fn current() -> Holder {
        Holder {
            user: crate::sys::origin::user_name(),
            host: hostname(),
            pid: std::process::id(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            started: crate::util::clock::now(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "pid {} on host {} (user {}), started {}: {}",
            self.pid, self.host, self.user, self.started, self.command
        )
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A held lock; released when dropped (or when the process ends). While held, a watcher
/// checks every 200 ms that the lock file is still the file this run locked: if it was
/// removed (`state unlock --force`), the run can no longer prove that it holds the lock and
/// stops (`process::stop_for_lost_lock`).
pub struct RunLock {
    _file: std::fs::File,
    /// Dropped to stop the watcher (it wakes at once: a run does not wait for its next check).
    stop: Option<std::sync::mpsc::Sender<()>>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

/// Device and inode of a file.
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// Is `path` (still) the file open as `file`?
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => identity(&a) == identity(&b),
        _ => false,
    }
}

fn watch_lock_file(
    path: PathBuf,
    id: (u64, u64),
    stop: std::sync::mpsc::Receiver<()>,
) -> std::thread::JoinHandle<()> {
    use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
    std::thread::spawn(move || {
        while let Err(RecvTimeoutError::Timeout) =
            stop.recv_timeout(std::time::Duration::from_millis(200))
        {
            let still = std::fs::metadata(&path).is_ok_and(|m| identity(&m) == id);
            if !still && stop.try_recv() == Err(TryRecvError::Empty) {
                crate::sys::process::stop_for_lost_lock(&format!(
                    "the lock file {} was removed or replaced while this run held it (stepwise state unlock --force?): this run no longer holds the lock",
                    path.display()
                ));
                return;
            }
        }
    })
}

/// The lock file of a local state file.
pub fn lock_path(state_path: &Path) -> PathBuf {
    let name = state_path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "state.json".into());
    state_path.with_file_name(format!("{name}.lock"))
}

/// Takes the lock of a local state file, waiting up to `timeout` for another run to release
/// it; then fails with exit 3, naming the holder.
pub fn acquire_local_within(state_path: &Path, timeout: std::time::Duration) -> Result<RunLock> {
    let deadline = std::time::Instant::now() + timeout;
    let mut announced = false;
    loop {
        match try_acquire_local(state_path) {
            Err(e)
                if std::time::Instant::now() < deadline
                    && crate::util::error::exit_code(&e) == exit::LOCKED =>
            {
                if !announced {
                    eprintln!(
                        "{e}\nwaiting up to {} for it...",
                        humantime::format_duration(timeout)
                    );
                    announced = true;
                }
                if crate::sys::process::interrupted().is_some() {
                    return Err(e);
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

fn try_acquire_local(state_path: &Path) -> Result<RunLock> {
    use fs4::FileExt;
    use std::os::unix::fs::OpenOptionsExt;
    let path = lock_path(state_path);
    if let Some(dir) = path.parent() {
        crate::util::fs::create_private_dir(dir)?;
    }
    let mut file = loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .or_fail(Kind::State, || {
                format!("cannot open lock file {}", path.display())
            })?;
        match FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let who = serde_json::from_str::<Holder>(&text)
                    .map(|h| h.describe())
                    .unwrap_or_else(|_| "another process (no holder record)".into());
                return Err(Failure::new(
                    Kind::Locked,
                    format!(
                        "state {} is locked by another run: {who}\n(the lock is released when that process ends, however it ends; wait with --lock-timeout DURATION)",
                        state_path.display()
                    ),
                )
                .into());
            }
            Err(fs4::TryLockError::Error(e)) => {
                return Err(Failure::caused_by(
                    Kind::State,
                    format!("cannot lock {}", path.display()),
                    e,
                )
                .into())
            }
        }
        // The file locked must still be the one at the path: a lock on a file removed in
        // between (`state unlock --force`) would lock nothing. Then try again.
        if same_file(&file, &path) {
            break file;
        }
    };
    let record = serde_json::to_string(&Holder::current())?;
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(record.as_bytes())?;
    // No fsync: the OS lock is what locks, and it does not outlive a crash; the record only
    // tells a waiting run who holds it (other processes read it through the page cache).
    // The fsync was most of what a no-op deploy cost more than a plan (issue #30).
    let id = identity(&file.metadata()?);
    let (stop, stopped) = std::sync::mpsc::channel();
    let watcher = Some(watch_lock_file(path, id, stopped));
    Ok(RunLock {
        _file: file,
        stop: Some(stop),
        watcher,
    })
}

/// `state unlock` for a local state. The OS lock cannot outlive its process, so a lock file
/// whose lock is free holds only a stale holder record: it is cleared, but the file is never
/// removed (a run may have opened it meanwhile and be about to lock it). A held one is
/// another live run; `--force` removes its file — only if it is still the file inspected —
/// so that a new run can start, and that run notices and stops (exit 4).
pub fn unlock_local(state_path: &Path, force: bool) -> Result<String> {
    use fs4::FileExt;
    let path = lock_path(state_path);
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    else {
        return Ok(format!("state {} is not locked", state_path.display()));
    };
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let holder = serde_json::from_str::<Holder>(&text)
        .ok()
        .map(|h| h.describe())
        .unwrap_or_else(|| "unknown holder".into());
    match FileExt::try_lock(&file) {
        Ok(()) => {
            if text.trim().is_empty() {
                return Ok(format!("state {} is not locked", state_path.display()));
            }
            // Held by us now: clear the stale record; the file stays.
            file.set_len(0)?;
            Ok(format!("removed a stale lock record ({holder}); no run held it"))
        }
        Err(_) if force => {
            if !same_file(&file, &path) {
                return Err(Failure::new(
                    Kind::Locked,
                    format!(
                        "the lock file {} changed while this command looked at it: not removed; look again with `stepwise state unlock`",
                        path.display()
                    ),
                )
                .into());
            }
            std::fs::remove_file(&path)?;
            Ok(format!(
                "removed the lock held by {holder}; that run notices within a second and stops (exit 4), and a new run can start now"
            ))
        }
        Err(_) => Err(Failure::new(
            Kind::Locked,
            format!(
                "state {} is locked by a live run: {holder}\n(use `stepwise state unlock --force` to remove it anyway)",
                state_path.display()
            ),
        )
        .into()),
    }
}
