//! The local hash cache: per file its size, mtime, ctime (nanoseconds), inode, device and
//! digest, so that a file whose stat is unchanged is not read again. An optimisation only: a
//! missing or corrupt cache changes no decision, only the time.
//!
//! Like git's index, an entry whose mtime is too close to the moment the cache was written
//! ("racily clean": the file may have changed again within the file system's timestamp
//! granularity) is not trusted and the file is hashed again. A change that keeps the size and
//! restores the mtime still changes the ctime, which is compared too.

use std::collections::HashMap;
#[allow(unused_imports)]
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::RwLock;

const MAGIC: &[u8; 16] = b"stepwise-hcache2";
/// Entries modified less than this before the cache was written are re-hashed next time.
const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// What a file's stat says, for comparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
    pub dev: u64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// Cache entries by path bytes, with FNV-1a: the keys are short, local and not adversarial,
/// and SipHash was a visible part of a no-op run.
type Entries = HashMap<Box<[u8]>, Entry, std::hash::BuildHasherDefault<Fnv>>;

/// FNV-1a, 64-bit.
#[derive(Default)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A raw SHA-256.
pub type Digest = [u8; 32];

#[derive(Debug)]
struct Entry {
    stamp: Stamp,
    digest: Digest,
    /// Seen in this run (entries not seen are dropped when saving).
    seen: AtomicBool,
    /// Hashed in this run: trusted for the rest of the run whatever its mtime.
    fresh: bool,
}

pub struct HashCache {
    path: PathBuf,
    /// Keyed by the path's bytes: hashing and comparing bytes is much cheaper than `Path`'s
    /// component-wise equality, and this is the hot path of a no-op run.
    entries: RwLock<Entries>,
    /// When the loaded cache was written (ns since the epoch).
    written_ns: i128,
    /// Files hashed (put) in this run, and their bytes: rewriting a large cache for a handful
    /// of small files costs more than hashing them again next time.
    dirty_count: AtomicUsize,
    dirty_bytes: std::sync::atomic::AtomicU64,
    /// How close to the cache's write time an entry's mtime/ctime may be before it is
    /// re-hashed (ns).
    pub racy_window_ns: i128,
    /// How many lookups missed (files that had to be read), for `--verbose` and benchmarks.
    pub misses: AtomicUsize,
}

impl HashCache {
    /// An empty cache that will be saved to `path`.
    pub fn empty(path: &Path) -> HashCache {
        HashCache {
            path: path.to_path_buf(),
            entries: RwLock::new(Entries::default()),
            written_ns: 0,
            dirty_count: AtomicUsize::new(0),
            dirty_bytes: std::sync::atomic::AtomicU64::new(0),
            racy_window_ns: RACY_WINDOW_NS,
            misses: AtomicUsize::new(0),
        }
    }

    /// Loads the cache; anything unreadable yields an empty cache. The format is binary (a
    /// 50,000-file cache loads in a few milliseconds): magic, write time (i128 ns), then per
    /// entry size, mtime, ctime (i128 ns each as i64 pairs), inode, device, the 32-byte digest,
    /// the path's length (u32) and bytes. All little-endian.
    pub fn load(path: &Path) -> HashCache {
        let mut cache = HashCache::empty(path);
        let Ok(bytes) = std::fs::read(path) else {
            return cache;
        };
        match Self::decode(&bytes) {
            Some((written, map)) => {
                cache.written_ns = written;
                cache.entries = RwLock::new(map);
                cache
            }
            None => cache,
        }
    }

    fn decode(bytes: &[u8]) -> Option<(i128, Entries)> {
        let mut r = Reader { b: bytes, at: 0 };
        if r.take(16)? != MAGIC {
            return None;
        }
        let written = r.i128()?;
        let n = r.u64()? as usize;
        let mut map = Entries::with_capacity_and_hasher(n.min(1 << 20), Default::default());
        for _ in 0..n {
            let stamp = Stamp {
                size: r.u64()?,
                mtime_ns: r.i128()?,
                ctime_ns: r.i128()?,
                ino: r.u64()?,
                dev: r.u64()?,
            };
            let digest: Digest = r.take(32)?.try_into().ok()?;
            let len = r.u32()? as usize;
            let rel: Box<[u8]> = r.take(len)?.into();
            map.insert(
                rel,
                Entry {
                    stamp,
                    digest,
                    seen: AtomicBool::new(false),
                    fresh: false,
                },
            );
        }
        (r.at == bytes.len()).then_some((written, map))
    }

    /// The cached digest of `rel` if its stat still matches and the entry is not racy.
    pub fn get(&self, rel: &Path, stamp: &Stamp) -> Option<Digest> {
        let hit = self.lookup(rel, stamp);
        if hit.is_none() {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    fn lookup(&self, rel: &Path, stamp: &Stamp) -> Option<Digest> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(rel.as_os_str().as_bytes())?;
        let racy = e.stamp.mtime_ns >= self.written_ns - self.racy_window_ns
            || e.stamp.ctime_ns >= self.written_ns - self.racy_window_ns;
        if e.stamp != *stamp || (racy && !e.fresh) {
            return None;
        }
        e.seen.store(true, Ordering::Relaxed);
        Some(e.digest)
    }

    pub fn put(&self, rel: &Path, stamp: Stamp, digest: Digest) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.insert(
            rel.as_os_str().as_bytes().into(),
            Entry {
                stamp,
                digest,
                seen: AtomicBool::new(true),
                fresh: true,
            },
        );
        self.dirty_count.fetch_add(1, Ordering::Relaxed);
        self.dirty_bytes.fetch_add(stamp.size, Ordering::Relaxed);
    }

    /// Writes the cache (only the files seen in this run) when that saves more than it costs:
    /// there was no cache, or more than 2% of the entries changed, were dropped or are racy,
    /// or more than 4 MiB were hashed. A few small changed files are cheaper to hash again
    /// next time than a rewrite of a 50,000-entry cache. Errors are ignored: the cache is only
    /// an optimisation.
    pub fn save(&self) {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let seen = |e: &Entry| e.seen.load(Ordering::Relaxed);
        let dropped = entries.values().filter(|e| !seen(e)).count();
        let racy = entries
            .values()
            .filter(|e| {
                seen(e)
                    && !e.fresh
                    && e.stamp.mtime_ns.max(e.stamp.ctime_ns)
                        >= self.written_ns - self.racy_window_ns
            })
            .count();
        let changed = self.dirty_count.load(Ordering::Relaxed) + dropped + racy;
        let worth = self.written_ns == 0
            || changed * 50 > entries.len()
            || self.dirty_bytes.load(Ordering::Relaxed) > 4 << 20;
        if changed == 0 || !worth {
            return;
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let kept: Vec<(&Box<[u8]>, &Entry)> = entries.iter().filter(|(_, e)| seen(e)).collect();
        let mut out = Vec::with_capacity(48 + kept.len() * 140);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&now.to_le_bytes());
        out.extend_from_slice(&(kept.len() as u64).to_le_bytes());
        for (rel, e) in kept {
            let s = e.stamp;
            out.extend_from_slice(&s.size.to_le_bytes());
            out.extend_from_slice(&s.mtime_ns.to_le_bytes());
            out.extend_from_slice(&s.ctime_ns.to_le_bytes());
            out.extend_from_slice(&s.ino.to_le_bytes());
            out.extend_from_slice(&s.dev.to_le_bytes());
            out.extend_from_slice(&e.digest);
            out.extend_from_slice(&(rel.len() as u32).to_le_bytes());
            out.extend_from_slice(rel);
        }
        // An optimisation only: atomic (never half-read), but not worth an fsync.
        let _ = crate::state::write_replace(&self.path, &out, false);
    }
}

/// Reads little-endian numbers and slices off a byte buffer.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i128(&mut self) -> Option<i128> {
        Some(i128::from_le_bytes(self.take(16)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::fingerprint::Fingerprinter;
    use std::time::{Duration, SystemTime};

    fn step_with(files: &[&str]) -> crate::step::Step {
        let engine = crate::script::engine();
        let dir = tempfile::tempdir().unwrap();
        let list = files
            .iter()
            .map(|f| format!("{f:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let path = dir.path().join("01_s.rhai");
        std::fs::write(
            &path,
            format!("let step = #{{ files: [{list}] }};\nfn run() {{}}\n"),
        )
        .unwrap();
        crate::step::load_step(&engine, &path).unwrap()
    }

    fn fingerprint(root: &Path, cache: &HashCache, step: &crate::step::Step) -> String {
        let config = Config::empty(Path::new("c.yaml"));
        let fp = Fingerprinter {
            root,
            config: &config,
            prelude_digest: "",
            exclude: vec![],
            cache: Some(cache),
            secret_salt: None,
            memo: Default::default(),
        };
        fp.step(step).unwrap().combined
    }

    fn set_mtime(path: &Path, t: SystemTime) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(t).unwrap();
    }

    #[test]
    fn unchanged_files_are_not_read_again_and_restored_mtime_is_still_seen() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("ctx")).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..20 {
            let f = root.join(format!("ctx/f{i}"));
            std::fs::write(&f, format!("content {i:04}")).unwrap();
            set_mtime(&f, old);
        }
        let step = step_with(&["ctx/"]);
        let cache_path = root.join("cache");
        let mut cache = HashCache::load(&cache_path);
        cache.racy_window_ns = 0;
        let first = fingerprint(root, &cache, &step);
        assert_eq!(cache.misses.load(Ordering::Relaxed), 20);
        cache.save();

        let mut cache = HashCache::load(&cache_path);
        cache.racy_window_ns = 0;
        assert_eq!(fingerprint(root, &cache, &step), first);
        assert_eq!(
            cache.misses.load(Ordering::Relaxed),
            0,
            "stat matched: nothing read"
        );

        // Same size, mtime restored: only the ctime tells.
        let f = root.join("ctx/f7");
        std::fs::write(&f, "content XXXX").unwrap();
        set_mtime(&f, old);
        let mut cache = HashCache::load(&cache_path);
        cache.racy_window_ns = 0;
        let changed = fingerprint(root, &cache, &step);
        assert_ne!(changed, first);
        assert_eq!(cache.misses.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn racily_clean_entries_are_rehashed_and_a_corrupt_cache_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a"), "one").unwrap();
        let step = step_with(&["a"]);
        let cache_path = root.join("cache");
        let cache = HashCache::load(&cache_path);
        let first = fingerprint(root, &cache, &step);
        cache.save();
        // Written just now: within the racy window, so it is read again.
        let cache = HashCache::load(&cache_path);
        assert_eq!(fingerprint(root, &cache, &step), first);
        assert_eq!(cache.misses.load(Ordering::Relaxed), 1);

        std::fs::write(&cache_path, "garbage\n1 2 3\tx\n").unwrap();
        let cache = HashCache::load(&cache_path);
        assert_eq!(fingerprint(root, &cache, &step), first);
        std::fs::remove_file(&cache_path).unwrap();
        let cache = HashCache::load(&cache_path);
        assert_eq!(fingerprint(root, &cache, &step), first);
    }
}
