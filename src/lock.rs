//! The run lock: one deployment at a time per state. Locally an OS file lock (released by the
//! kernel when the process dies, however it dies) plus a holder record for messages.

use crate::error::{exit, Failure};
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
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() })),
            host: hostname(),
            pid: std::process::id(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            started: crate::state::now(),
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

/// A held lock; released when dropped (or when the process ends).
pub struct LockGuard {
    _file: std::fs::File,
    pub path: PathBuf,
}

/// The lock file of a local state file.
pub fn lock_path(state_path: &Path) -> PathBuf {
    let name = state_path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "state.json".into());
    state_path.with_file_name(format!("{name}.lock"))
}

/// Takes the lock of a local state file, failing at once (exit 3) when another run holds it.
pub fn acquire_local(state_path: &Path) -> Result<LockGuard> {
    acquire_local_within(state_path, std::time::Duration::ZERO)
}

/// Takes the lock of a local state file, waiting up to `timeout` for another run to release
/// it; then fails with exit 3, naming the holder.
pub fn acquire_local_within(state_path: &Path, timeout: std::time::Duration) -> Result<LockGuard> {
    let deadline = std::time::Instant::now() + timeout;
    let mut announced = false;
    loop {
        match try_acquire_local(state_path) {
            Err(e)
                if std::time::Instant::now() < deadline
                    && crate::error::exit_code(&e) == exit::LOCKED =>
            {
                if !announced {
                    eprintln!(
                        "{e}\nwaiting up to {} for it...",
                        humantime::format_duration(timeout)
                    );
                    announced = true;
                }
                if crate::process::interrupted().is_some() {
                    return Err(e);
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

fn try_acquire_local(state_path: &Path) -> Result<LockGuard> {
    use fs4::FileExt;
    use std::os::unix::fs::OpenOptionsExt;
    let path = lock_path(state_path);
    if let Some(dir) = path.parent() {
        crate::state::create_private_dir(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open lock file {}: {e}", path.display()))?;
    match FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let who = serde_json::from_str::<Holder>(&text)
                .map(|h| h.describe())
                .unwrap_or_else(|_| "another process (no holder record)".into());
            return Err(Failure::new(
                exit::LOCKED,
                format!(
                    "state {} is locked by another run: {who}\n(the lock is released when that process ends, however it ends; wait with --lock-timeout DURATION)",
                    state_path.display()
                ),
            )
            .into());
        }
        Err(fs4::TryLockError::Error(e)) => {
            return Err(anyhow::anyhow!("cannot lock {}: {e}", path.display()))
        }
    }
    let record = serde_json::to_string(&Holder::current())?;
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(record.as_bytes())?;
    file.sync_all()?;
    Ok(LockGuard { _file: file, path })
}

/// `state unlock` for a local state: the OS lock cannot outlive its process, so a lock file
/// whose lock is free is only a stale holder record; a held one is another live run.
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
    let holder = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<Holder>(&t).ok())
        .map(|h| h.describe())
        .unwrap_or_else(|| "unknown holder".into());
    match FileExt::try_lock(&file) {
        Ok(()) => {
            drop(file);
            std::fs::remove_file(&path)?;
            Ok(format!("removed a stale lock record ({holder}); no run held it"))
        }
        Err(_) if force => {
            std::fs::remove_file(&path)?;
            Ok(format!(
                "removed the lock held by {holder}; that run keeps running until it ends, but a new run can start now"
            ))
        }
        Err(_) => Err(Failure::new(
            exit::LOCKED,
            format!(
                "state {} is locked by a live run: {holder}\n(use `stepwise state unlock --force` to remove it anyway)",
                state_path.display()
            ),
        )
        .into()),
    }
}
