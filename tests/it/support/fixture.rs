//! Fixtures built once and shared by the test processes (nextest runs each test in a process
//! of its own, so a `OnceLock` would build them once per test): a folder under
//! `CARGO_TARGET_TMPDIR/fixtures`, named by a hash of its inputs, built by the first process
//! that needs it while the others wait on a file lock (issue #25).

use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// A hash of what a fixture is made from: each path given (a file, or a folder's files with
/// their relative names and contents, in name order; Python's `__pycache__` left out) and each
/// extra string.
pub fn key(paths: &[&Path], extra: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in paths {
        let mut files = if p.is_dir() {
            super::walk(p)
        } else {
            vec![p.to_path_buf()]
        };
        // Python's cache of compiled fakes appears once they have run.
        files.retain(|f| !f.components().any(|c| c.as_os_str() == "__pycache__"));
        files.sort();
        for f in files {
            let rel = f.strip_prefix(p).unwrap_or(&f);
            h.update(rel.to_string_lossy().as_bytes());
            h.update([0]);
            let data = std::fs::read(&f).unwrap_or_default();
            h.update((data.len() as u64).to_le_bytes());
            h.update(&data);
        }
        h.update([1]);
    }
    for e in extra {
        h.update(e.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..12])
}

/// What identifies the stepwise binary under test without reading its 200 MB: its size and
/// modification time.
pub fn binary_identity() -> String {
    let m = std::fs::metadata(super::bin()).expect("the stepwise binary");
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{} {mtime}", m.len())
}

/// The folder `fixtures/NAME-KEY` under the test target's temporary folder, built by
/// `build(folder)` if no process has built it yet. Processes that need it at the same time wait
/// for the one building it (an exclusive `flock`); the folder appears complete or not at all
/// (built under another name, then renamed). A build that panics leaves no finished folder, and
/// the next process tries again. Folders of the same NAME with another key (older inputs), and
/// what a panicked build left, are removed when a new one is built.
pub fn built_once(name: &str, key: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
    std::fs::create_dir_all(&root).unwrap();
    let done = root.join(format!("{name}-{key}"));
    if done.is_dir() {
        return done;
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join(format!("{name}.lock")))
        .unwrap();
    assert_eq!(
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) },
        0,
        "flock {name}.lock"
    );
    // Unlocked when `lock` is closed, also when `build` panics.
    if done.is_dir() {
        return done;
    }
    // Older builds, and what a build that panicked left (under the lock no other is under way).
    for e in std::fs::read_dir(&root).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        let ours = n.starts_with(&format!("{name}-")) || n.starts_with(&format!(".{name}-"));
        if ours && e.path().is_dir() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let tmp = root.join(format!(".{name}-{key}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    build(&tmp);
    std::fs::rename(&tmp, &done).unwrap();
    let _ = writeln!(&lock, "built {name}-{key} (pid {})", std::process::id());
    done
}

/// Copies a folder's tree into `to` (created if needed; files there are overwritten), with
/// the files' and folders' permissions (the state folder is private).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if ft.is_symlink() {
            let target = std::fs::read_link(e.path()).unwrap();
            let _ = std::fs::remove_file(&dest);
            std::os::unix::fs::symlink(target, &dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
    let mode = std::fs::metadata(from).unwrap().permissions().mode();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The files under `dir` whose contents name `needle` (an absolute path that would be wrong
/// in a copy).
pub fn files_naming(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let needle = needle.as_bytes();
    super::walk(dir)
        .into_iter()
        .filter(|f| {
            let data = std::fs::read(f).unwrap_or_default();
            memchr::memmem::find(&data, needle).is_some()
        })
        .collect()
}
