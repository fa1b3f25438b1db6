//! The local hash cache: per file its size, mtime, ctime (nanoseconds), inode, device and
//! digest, so that a file whose stat is unchanged is not read again. An optimisation only: a
//! missing or corrupt cache changes no decision, only the time.
//!
//! Git's racy-clean rule, per entry: a digest is trusted in a later run only if the file's
//! mtime and ctime were older than the moment the digest was taken, by more than the coarsest
//! timestamp tick a file system may have (2 s, FAT). A file rewritten within the same tick as
//! it was hashed keeps its stamp; such an entry is "smudged" when the cache is saved (written
//! so that it never matches) and the file is read again next time. The cache is written once
//! per run, after everything was hashed, each entry with the stamp it was computed with. A
//! change that keeps the size and restores the mtime still changes the ctime, compared too.

use std::collections::HashMap;
#[allow(unused_imports)]
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::RwLock;

const MAGIC: &[u8; 16] = b"stepwise-hcache5";
/// An entry whose file was modified less than this before its digest was taken is not trusted
/// in a later run (the coarsest file system timestamp tick: FAT's 2 s).
const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// Now, in nanoseconds since the epoch, by this machine's clock.
pub fn now_ns() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

/// `STEPWISE_TEST_TIMESTAMP_TICK_MS`: file timestamps read as if the file system kept them in
/// ticks of that many milliseconds (a FAT or network share), for tests of the racy-clean rule.
fn simulated_tick_ns() -> i128 {
    static TICK: std::sync::OnceLock<i128> = std::sync::OnceLock::new();
    *TICK.get_or_init(|| {
        std::env::var("STEPWISE_TEST_TIMESTAMP_TICK_MS")
            .ok()
            .and_then(|v| v.parse::<i128>().ok())
            .filter(|ms| *ms > 0)
            .map(|ms| ms * 1_000_000)
            .unwrap_or(0)
    })
}

/// What a file's stat says, for comparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    /// Nanoseconds since the epoch (years 1678 to 2262; saturated beyond).
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp::new(
            meta.size(),
            (meta.mtime(), meta.mtime_nsec()),
            (meta.ctime(), meta.ctime_nsec()),
            meta.ino(),
            meta.dev(),
        )
    }

    /// From a stat's fields (times as seconds and nanoseconds).
    pub fn new(size: u64, mtime: (i64, i64), ctime: (i64, i64), ino: u64, dev: u64) -> Stamp {
        let ns = |(s, n): (i64, i64)| s.saturating_mul(1_000_000_000).saturating_add(n);
        let mut s = Stamp {
            size,
            mtime_ns: ns(mtime),
            ctime_ns: ns(ctime),
            ino,
            dev,
        };
        let tick = simulated_tick_ns();
        if tick > 0 {
            let tick = tick as i64;
            s.mtime_ns -= s.mtime_ns.rem_euclid(tick);
            s.ctime_ns -= s.ctime_ns.rem_euclid(tick);
        }
        s
    }

    /// Could the file have changed after `hashed_ns` without changing this stamp?
    fn racy(&self, hashed_ns: i128, window_ns: i128) -> bool {
        hashed_ns == i128::MIN
            || i128::from(self.mtime_ns.max(self.ctime_ns)) >= hashed_ns - window_ns
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
    /// Hashed in this run, at this moment (ns): trusted for the rest of the run whatever its
    /// stamps; smudged when saved if the file was modified too close to it.
    hashed_ns: Option<i128>,
}

/// The stamp a smudged entry is saved with: no file has it, so it never matches.
const SMUDGED: Stamp = Stamp {
    size: u64::MAX,
    mtime_ns: i64::MIN,
    ctime_ns: i64::MIN,
    ino: 0,
    dev: 0,
};

pub struct HashCache {
    path: PathBuf,
    /// Keyed by the path's bytes: hashing and comparing bytes is much cheaper than `Path`'s
    /// component-wise equality, and this is the hot path of a no-op run.
    entries: RwLock<Entries>,
    /// Was there a cache to load?
    loaded: bool,
    /// Files hashed (put) in this run, and their bytes: rewriting a large cache for a handful
    /// of small files costs more than hashing them again next time.
    dirty_count: AtomicUsize,
    dirty_bytes: std::sync::atomic::AtomicU64,
    /// How close to the moment its digest was taken a file's mtime/ctime may be before the
    /// entry is smudged when saved (ns).
    pub racy_window_ns: i128,
    /// How many lookups missed (files that had to be read), for `--verbose` and benchmarks.
    pub misses: AtomicUsize,
    /// How far the file system's clock is ahead of this machine's, at least (ns; None: not
    /// measured yet; `i128::MIN`: could not be measured, so no digest of this run is trusted
    /// later).
    skew_ns: std::sync::OnceLock<i128>,
    /// Directory listings by the directory's path as walked (see [`Listing`]).
    dirs: RwLock<Dirs>,
    /// Listings taken in this run that were not in the cache (or no longer matched).
    dirs_listed: AtomicUsize,
}

/// Listings by directory path bytes.
type Dirs = HashMap<Box<[u8]>, DirRecord, std::hash::BuildHasherDefault<Fnv>>;

/// What a directory held when it was listed: its entries' names and types, in the order the
/// directory returned them. Git's untracked cache: a directory whose mtime, ctime, inode and
/// device are unchanged (and were older than the listing by more than the racy window) holds
/// the same names, so it need not be read again; its files are still stat'ed one by one.
#[derive(Debug, Default)]
pub struct Listing {
    /// The names, each followed by a NUL (ready for a `*at` system call).
    names: Vec<u8>,
    /// Each entry's offset in `names` and type.
    entries: Vec<(u32, EntryType)>,
    /// Per entry, the stamp and digest its file had when last hashed (a regular file's
    /// content digest taken with the directory's root-relative path joined with its name;
    /// [`SMUDGED`] otherwise), so that an unchanged file is found by its index, not its path.
    /// Empty for a listing taken in this run (filled when the cache is saved).
    slots: Vec<Slot>,
}

/// A file's stamp and digest, kept with its directory's listing.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub stamp: Stamp,
    pub digest: Digest,
}

const EMPTY_SLOT: Slot = Slot {
    stamp: SMUDGED,
    digest: [0; 32],
};

/// An entry's type as the directory listed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    File = 1,
    Dir = 2,
    Symlink = 3,
    /// A FIFO, socket or device.
    Other = 4,
}

impl EntryType {
    fn from_u8(b: u8) -> Option<EntryType> {
        Some(match b {
            1 => EntryType::File,
            2 => EntryType::Dir,
            3 => EntryType::Symlink,
            4 => EntryType::Other,
            _ => return None,
        })
    }
}

impl Listing {
    /// Adds an entry (a name without NUL bytes, as a directory returns).
    pub fn push(&mut self, name: &OsStr, kind: EntryType) {
        self.entries.push((self.names.len() as u32, kind));
        self.names.extend_from_slice(name.as_bytes());
        self.names.push(0);
    }
    /// The entries: name (with its NUL) and type.
    pub fn iter(&self) -> impl Iterator<Item = (&std::ffi::CStr, EntryType)> + '_ {
        self.entries.iter().map(|&(at, kind)| {
            let rest = &self.names[at as usize..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len() - 1);
            // a name and its NUL, checked when built or loaded
            let name = std::ffi::CStr::from_bytes_with_nul(&rest[..=end]).unwrap_or_default();
            (name, kind)
        })
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// The kept stamp and digest of entry `i`, if any.
    pub fn slot(&self, i: usize) -> Option<&Slot> {
        self.slots.get(i).filter(|s| s.stamp != SMUDGED)
    }
    /// Sorts the entries by name, a directory's as if followed by `/`: the order in which
    /// the walk lists them.
    pub fn sort(&mut self) {
        let names = &self.names;
        let key = |&(at, kind): &(u32, EntryType)| {
            let rest = &names[at as usize..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            (&rest[..end], kind == EntryType::Dir)
        };
        self.entries.sort_by(|a, b| {
            let ((a, a_dir), (b, b_dir)) = (key(a), key(b));
            let slash: &[u8] = b"/";
            a.iter()
                .chain(if a_dir { slash } else { &[] })
                .cmp(b.iter().chain(if b_dir { slash } else { &[] }))
        });
        self.slots.clear();
    }
    fn valid(&self) -> bool {
        (self.slots.is_empty() || self.slots.len() == self.entries.len())
            && self.names.last().is_none_or(|&b| b == 0)
            && self
                .entries
                .iter()
                .all(|&(at, _)| (at as usize) < self.names.len())
    }
}

#[derive(Debug)]
struct DirRecord {
    stamp: Stamp,
    /// The directory's path relative to the root (the slots' digests cover it).
    base: Box<[u8]>,
    listing: std::sync::Arc<Listing>,
    seen: AtomicBool,
    /// Listed in this run, at this moment (ns): not kept if the directory changed too close
    /// to it.
    listed_ns: Option<i128>,
}

impl HashCache {
    /// An empty cache that will be saved to `path`.
    pub fn empty(path: &Path) -> HashCache {
        HashCache {
            path: path.to_path_buf(),
            entries: RwLock::new(Entries::default()),
            loaded: false,
            dirty_count: AtomicUsize::new(0),
            dirty_bytes: std::sync::atomic::AtomicU64::new(0),
            racy_window_ns: RACY_WINDOW_NS,
            misses: AtomicUsize::new(0),
            skew_ns: std::sync::OnceLock::new(),
            dirs: RwLock::new(Dirs::default()),
            dirs_listed: AtomicUsize::new(0),
        }
    }

    /// How many directories were read in this run (their listing not kept or changed).
    pub fn dirs_read(&self) -> usize {
        self.dirs_listed.load(Ordering::Relaxed)
    }

    /// The listing of directory `dir` (as walked) if its stamp still matches one kept in the
    /// cache (or one taken earlier in this run, outside the racy window).
    pub fn listing(
        &self,
        dir: &Path,
        base: &Path,
        stamp: &Stamp,
    ) -> Option<std::sync::Arc<Listing>> {
        let dirs = self.dirs.read().unwrap_or_else(|e| e.into_inner());
        let d = dirs.get(dir.as_os_str().as_bytes())?;
        if d.stamp != *stamp
            || *d.base != *base.as_os_str().as_bytes()
            || d.listed_ns
                .is_some_and(|at| d.stamp.racy(at, self.racy_window_ns))
        {
            return None;
        }
        d.seen.store(true, Ordering::Relaxed);
        Some(d.listing.clone())
    }

    /// Records the listing of `dir`, read after its `stamp` was taken, which was after
    /// `listed_ns` (by the file system's clock: [`HashCache::hashed_at`]).
    pub fn put_listing(
        &self,
        dir: &Path,
        base: &Path,
        stamp: Stamp,
        listing: std::sync::Arc<Listing>,
        listed_ns: i128,
    ) {
        let mut dirs = self.dirs.write().unwrap_or_else(|e| e.into_inner());
        dirs.insert(
            dir.as_os_str().as_bytes().into(),
            DirRecord {
                stamp,
                base: base.as_os_str().as_bytes().into(),
                listing,
                seen: AtomicBool::new(true),
                listed_ns: Some(listed_ns),
            },
        );
        self.dirs_listed.fetch_add(1, Ordering::Relaxed);
    }

    /// Now by the file system's clock, or a moment before (ns): what a digest taken now is
    /// stamped with. File timestamps come from the file system's clock, which may differ from
    /// this machine's (a network share, a VM's host): the difference is measured once per run
    /// by writing a probe file beside the cache and reading its mtime, as a lower bound (a
    /// probe's coarse timestamp only makes it lower, which only makes more entries racy).
    pub fn hashed_at(&self) -> i128 {
        let skew = *self.skew_ns.get_or_init(|| {
            let probe = {
                let mut name = self.path.as_os_str().to_owned();
                name.push(".clock");
                PathBuf::from(name)
            };
            let written = self
                .path
                .parent()
                .map(crate::util::fs::create_private_dir)
                .unwrap_or(Ok(()))
                .and_then(|_| {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new()
                        .create(true)
                        .write(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&probe)?
                        .write_all(b"stepwise clock probe\n")
                })
                .and_then(|_| std::fs::metadata(&probe));
            let after = now_ns();
            match written {
                Ok(m) => i128::from(Stamp::of(&m).mtime_ns) - after,
                Err(_) => i128::MIN,
            }
        });
        if skew == i128::MIN {
            i128::MIN
        } else {
            now_ns() + skew
        }
    }

    /// Loads the cache; anything unreadable yields an empty cache. The format is binary (a
    /// 50,000-file cache loads in a few milliseconds): magic; the number of files kept by
    /// path, then per file its stamp (size, mtime and ctime as i64 ns, inode, device), the
    /// 32-byte digest, the path's length (u32) and bytes; the number of listings, then per
    /// directory its stamp, its path, its root-relative path and its names (each a u32 length
    /// and bytes), the number of entries and per entry the offset of its name (u32), its type
    /// (u8), and its file's stamp and digest (smudged if none). All little-endian. Every
    /// entry was clean when saved (racy ones are smudged; racy listings are not saved).
    pub fn load(path: &Path) -> HashCache {
        let mut cache = HashCache::empty(path);
        let Ok(bytes) = std::fs::read(path) else {
            return cache;
        };
        if let Some((map, dirs)) = Self::decode(&bytes) {
            cache.loaded = true;
            cache.entries = RwLock::new(map);
            cache.dirs = RwLock::new(dirs);
        }
        cache
    }

    fn decode(bytes: &[u8]) -> Option<(Entries, Dirs)> {
        let mut r = Reader { b: bytes, at: 0 };
        if r.take(16)? != MAGIC {
            return None;
        }
        let n = r.u64()? as usize;
        let mut map = Entries::with_capacity_and_hasher(n.min(1 << 20), Default::default());
        for _ in 0..n {
            let stamp = r.stamp()?;
            let digest: Digest = r.take(32)?.try_into().ok()?;
            let len = r.u32()? as usize;
            let rel: Box<[u8]> = r.take(len)?.into();
            map.insert(
                rel,
                Entry {
                    stamp,
                    digest,
                    seen: AtomicBool::new(false),
                    hashed_ns: None,
                },
            );
        }
        let dirs = Self::decode_dirs(&mut r)?;
        (r.at == bytes.len()).then_some((map, dirs))
    }

    /// The listings: per directory its stamp, path, names (NUL-terminated) and entries.
    fn decode_dirs(r: &mut Reader) -> Option<Dirs> {
        let n = r.u64()? as usize;
        let mut dirs = Dirs::with_capacity_and_hasher(n.min(1 << 20), Default::default());
        for _ in 0..n {
            let stamp = r.stamp()?;
            let len = r.u32()? as usize;
            let path: Box<[u8]> = r.take(len)?.into();
            let len = r.u32()? as usize;
            let base: Box<[u8]> = r.take(len)?.into();
            let len = r.u32()? as usize;
            let names = r.take(len)?.to_vec();
            let count = r.u32()? as usize;
            let mut entries = Vec::with_capacity(count.min(1 << 20));
            let mut slots = Vec::with_capacity(count.min(1 << 20));
            for _ in 0..count {
                let at = r.u32()?;
                entries.push((at, EntryType::from_u8(r.take(1)?[0])?));
                let stamp = r.stamp()?;
                let digest: Digest = r.take(32)?.try_into().ok()?;
                slots.push(Slot { stamp, digest });
            }
            let listing = Listing {
                names,
                entries,
                slots,
            };
            if !listing.valid() {
                return None;
            }
            dirs.insert(
                path,
                DirRecord {
                    stamp,
                    base,
                    listing: std::sync::Arc::new(listing),
                    seen: AtomicBool::new(false),
                    listed_ns: None,
                },
            );
        }
        Some(dirs)
    }

    /// The cached digest of `rel` if its stat still matches.
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
        // A digest taken in this run from a file modified too close to that moment is not
        // trusted either: the file may have changed since within the same timestamp tick.
        if e.stamp != *stamp
            || e.hashed_ns
                .is_some_and(|at| e.stamp.racy(at, self.racy_window_ns))
        {
            return None;
        }
        e.seen.store(true, Ordering::Relaxed);
        Some(e.digest)
    }

    /// Records the digest of `rel`, taken at `hashed_ns` (just before the file was opened)
    /// from a file with `stamp` (its stat before it was read).
    pub fn put(&self, rel: &Path, stamp: Stamp, digest: Digest, hashed_ns: i128) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.insert(
            rel.as_os_str().as_bytes().into(),
            Entry {
                stamp,
                digest,
                seen: AtomicBool::new(true),
                hashed_ns: Some(hashed_ns),
            },
        );
        self.dirty_count.fetch_add(1, Ordering::Relaxed);
        self.dirty_bytes.fetch_add(stamp.size, Ordering::Relaxed);
    }

    /// Writes the cache (only the files seen in this run) when that saves more than it costs:
    /// there was no cache, or more than 2% of the entries changed or were dropped, or more
    /// than 4 MiB were hashed. A few small changed files are cheaper to hash again next time
    /// than a rewrite of a 50,000-entry cache. Entries hashed in this run from a file modified
    /// within the racy window of that moment are smudged. Called once per run, at its end.
    /// Errors are ignored: the cache is only an optimisation.
    pub fn save(&self) {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let dirs = self.dirs.read().unwrap_or_else(|e| e.into_inner());
        let seen = |e: &Entry| e.seen.load(Ordering::Relaxed);
        let dropped = entries.values().filter(|e| !seen(e)).count();
        let changed = self.dirty_count.load(Ordering::Relaxed) + dropped;
        let dirs_dropped = dirs
            .values()
            .filter(|d| !d.seen.load(Ordering::Relaxed))
            .count();
        let dirs_changed = self.dirs_listed.load(Ordering::Relaxed) + dirs_dropped;
        let files = entries.len() + dirs.values().map(|d| d.listing.len()).sum::<usize>();
        let worth = !self.loaded
            || changed * 50 > files
            || dirs_changed * 50 > dirs.len()
            || self.dirty_bytes.load(Ordering::Relaxed) > 4 << 20;
        if changed + dirs_changed == 0 || !worth {
            return;
        }
        // The listings first: they take their files' digests, which are then not kept by path.
        let mut listings = Vec::new();
        let mut absorbed = std::collections::HashSet::new();
        self.encode_dirs(&dirs, &entries, &mut listings, &mut absorbed);
        let kept: Vec<(&Box<[u8]>, &Entry)> = entries
            .iter()
            .filter(|(rel, e)| seen(e) && !absorbed.contains(&rel[..]))
            .collect();
        let mut out = Vec::with_capacity(64 + kept.len() * 140 + listings.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(kept.len() as u64).to_le_bytes());
        for (rel, e) in kept {
            put_stamp(&mut out, &self.saved_stamp(e));
            out.extend_from_slice(&e.digest);
            out.extend_from_slice(&(rel.len() as u32).to_le_bytes());
            out.extend_from_slice(rel);
        }
        out.extend_from_slice(&listings);
        // An optimisation only: atomic (never half-read), but not worth an fsync.
        let _ = crate::util::fs::write_replace(&self.path, &out, false);
    }

    /// The stamp an entry is saved with: smudged if hashed in this run from a file modified
    /// within the racy window of that moment.
    fn saved_stamp(&self, e: &Entry) -> Stamp {
        match e.hashed_ns {
            Some(at) if e.stamp.racy(at, self.racy_window_ns) => SMUDGED,
            _ => e.stamp,
        }
    }

    /// The listings worth keeping: seen in this run, taken outside the racy window, of a
    /// directory on a file system that updates a directory's mtime when an entry is added
    /// (checked on the cache's own file system; others are not kept). Each file's slot is
    /// its digest of this run (by path: then `absorbed`), else the one it was loaded with.
    fn encode_dirs<'e>(
        &self,
        dirs: &Dirs,
        entries: &'e Entries,
        out: &mut Vec<u8>,
        absorbed: &mut std::collections::HashSet<&'e [u8]>,
    ) {
        let mut probed_dev = None;
        let kept: Vec<(&Box<[u8]>, &DirRecord)> = dirs
            .iter()
            .filter(|(_, d)| {
                d.seen.load(Ordering::Relaxed)
                    && !d
                        .listed_ns
                        .is_some_and(|at| d.stamp.racy(at, self.racy_window_ns))
                    && *probed_dev.get_or_insert_with(|| self.dir_mtime_probe())
                        == Some(d.stamp.dev)
            })
            .collect();
        out.extend_from_slice(&(kept.len() as u64).to_le_bytes());
        for (path, d) in kept {
            put_stamp(out, &d.stamp);
            for bytes in [&path[..], &d.base[..], &d.listing.names[..]] {
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            let base = Path::new(OsStr::from_bytes(&d.base));
            out.extend_from_slice(&(d.listing.entries.len() as u32).to_le_bytes());
            for (i, (name, kind)) in d.listing.iter().enumerate() {
                let mut slot = d.listing.slots.get(i).copied().unwrap_or(EMPTY_SLOT);
                if kind == EntryType::File {
                    let rel = base.join(OsStr::from_bytes(name.to_bytes()));
                    let found = entries.get_key_value(rel.as_os_str().as_bytes());
                    if let Some((key, e)) = found.filter(|(_, e)| e.seen.load(Ordering::Relaxed)) {
                        slot = Slot {
                            stamp: self.saved_stamp(e),
                            digest: e.digest,
                        };
                        absorbed.insert(&key[..]);
                    }
                }
                out.extend_from_slice(&d.listing.entries[i].0.to_le_bytes());
                out.push(kind as u8);
                put_stamp(out, &slot.stamp);
                out.extend_from_slice(&slot.digest);
            }
        }
    }

    /// The device of the cache's folder if adding an entry to a directory there changes the
    /// directory's mtime (not every file system does: git's untracked cache checks the
    /// same), else None. A probe folder beside the cache is set to an old mtime, a file is
    /// created in it, and its mtime must have moved.
    fn dir_mtime_probe(&self) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        let mut name = self.path.as_os_str().to_owned();
        name.push(".dirprobe");
        let probe = PathBuf::from(name);
        let _ = std::fs::remove_dir_all(&probe);
        crate::util::fs::create_private_dir(&probe).ok()?;
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        std::fs::File::open(&probe).ok()?.set_modified(old).ok()?;
        let before = std::fs::metadata(&probe).ok()?;
        std::fs::write(probe.join("entry"), b"").ok()?;
        let after = std::fs::metadata(&probe).ok()?;
        let _ = std::fs::remove_dir_all(&probe);
        let moved = before.mtime() == 86_400 && after.mtime() != before.mtime();
        moved.then_some(after.dev())
    }
}

fn put_stamp(out: &mut Vec<u8>, s: &Stamp) {
    out.extend_from_slice(&s.size.to_le_bytes());
    out.extend_from_slice(&s.mtime_ns.to_le_bytes());
    out.extend_from_slice(&s.ctime_ns.to_le_bytes());
    out.extend_from_slice(&s.ino.to_le_bytes());
    out.extend_from_slice(&s.dev.to_le_bytes());
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
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn stamp(&mut self) -> Option<Stamp> {
        Some(Stamp {
            size: self.u64()?,
            mtime_ns: self.i64()?,
            ctime_ns: self.i64()?,
            ino: self.u64()?,
            dev: self.u64()?,
        })
    }
}
