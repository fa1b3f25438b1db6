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
                    "state {} is locked by another run: {who}\n(wait for it to finish; the lock is released when that process ends)",
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
