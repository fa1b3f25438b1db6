//! Secret files: `secret_file(value)` writes a secret into a file that only the user can read
//! (mode 0600, in a private 0700 temporary directory of the step), so that a command can take
//! it from there (`az keyvault secret set --file`, `az rest --body @file`) instead of from its
//! command line. The directory is removed when the step ends, whatever the outcome; every
//! directory still alive is removed before stepwise exits on a signal (`remove_all`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Directories of running steps, for the signal handler.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The secret files of one step.
#[derive(Debug, Default)]
pub struct SecretFiles {
    dir: Option<tempfile::TempDir>,
    count: usize,
}

impl SecretFiles {
    /// Writes `value` to a new 0600 file in the step's private directory; returns its path.
    pub fn create(&mut self, step: &str, value: &[u8]) -> std::io::Result<PathBuf> {
        if self.dir.is_none() {
            use std::os::unix::fs::PermissionsExt;
            // A random name, created 0700 (only the user may list or enter it).
            let dir = tempfile::Builder::new()
                .prefix(&format!("stepwise-{step}-"))
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir()?;
            LIVE.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(dir.path().to_path_buf());
            self.dir = Some(dir);
        }
        let dir = self
            .dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("."));
        self.count += 1;
        let path = dir.join(format!("secret-{}", self.count));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(value)?;
        f.sync_all()?;
        Ok(path)
    }

    /// Removes the directory and every file in it.
    pub fn remove(&mut self) {
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            let _ = dir.close();
            LIVE.lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|p| *p != path);
        }
    }
}

impl Drop for SecretFiles {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Removes every live secret directory (called before exiting on a signal).
pub fn remove_all() {
    // try_lock: a signal that arrives while the list is being changed must not hang the exit.
    if let Ok(mut live) = LIVE.try_lock() {
        for p in live.drain(..) {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_are_private_and_removed() {
        let mut files = SecretFiles::default();
        let a = files.create("s", b"one").unwrap();
        let b = files.create("s", b"two").unwrap();
        assert_ne!(a, b);
        assert_eq!(std::fs::read(&a).unwrap(), b"one");
        let mode = std::fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir = a.parent().unwrap().to_path_buf();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        files.remove();
        assert!(!dir.exists());
    }
}
