//! The walk of a directory for fingerprints: in parallel, each walk with its rules (a Docker
//! context, a directory dependency, a glob, `gitignore:`), symbolic links followed with loop
//! protection or listed as links; entries stat'ed relative to their open directory (`statx`
//! asking only for the fields compared). A directory whose stamp is unchanged since the hash
//! cache kept its listing is not read again (`hashcache::Listing`).

use crate::decide::hashcache::{EntryType, HashCache, Listing, Stamp};
use crate::util::error::Kind as ErrorKind;
use anyhow::Result;
use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What a walk lists and leaves out.
pub(crate) struct WalkOptions {
    /// Docker's rules for the walk's root (`.dockerignore`), or None.
    docker: Option<crate::util::dockerignore::Matcher>,
    /// Honour `.gitignore` files in the walked folders.
    gitignore: bool,
    /// Follow symbolic links (their targets' content; directories walked, loops refused).
    follow_links: bool,
    /// List directories too (Docker sends them; an empty one changes an image).
    dirs: bool,
    /// Skip `.git` folders.
    skip_git: bool,
}

impl WalkOptions {
    /// A Docker build context (`follow_links: false`: links as Docker sends them), or a
    /// directory dependency (links followed: never less than Docker would send).
    pub(crate) fn docker(
        matcher: crate::util::dockerignore::Matcher,
        follow_links: bool,
    ) -> WalkOptions {
        WalkOptions {
            docker: Some(matcher),
            gitignore: false,
            follow_links,
            dirs: true,
            skip_git: false,
        }
    }
    /// Every file below (globs).
    pub(crate) fn everything() -> WalkOptions {
        WalkOptions {
            docker: None,
            gitignore: false,
            follow_links: true,
            dirs: false,
            skip_git: true,
        }
    }
    /// `gitignore:` entries.
    pub(crate) fn gitignore() -> WalkOptions {
        WalkOptions {
            gitignore: true,
            ..WalkOptions::everything()
        }
    }
}

/// An entry found by a walk: its root-relative path, its metadata (`lstat`, or the target's
/// `stat` for a followed link) and what it is.
pub struct WalkedFile {
    pub rel: PathBuf,
    pub meta: Meta,
    pub kind: Kind,
    /// Its content digest as the hash cache kept it with the directory's listing, when the
    /// file's stamp still matches (a regular file only).
    pub cached: Option<crate::decide::hashcache::Digest>,
}

/// What a walk keeps of an entry's stat: its stamp (for the hash cache) and its mode.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub stamp: Stamp,
    /// `st_mode`: type and permission bits.
    pub mode: u32,
}

impl Meta {
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// `statx` of `name` in the open directory `dir` (`c""`: the directory itself), asking only
/// for the fields a stamp compares; a symbolic link is followed only if `follow`.
fn stat_at(dir: &std::fs::File, name: &CStr, follow: bool) -> std::io::Result<Meta> {
    use std::os::fd::AsRawFd;
    let mut flags = libc::AT_STATX_SYNC_AS_STAT;
    if !follow {
        flags |= libc::AT_SYMLINK_NOFOLLOW;
    }
    if name.is_empty() {
        flags |= libc::AT_EMPTY_PATH;
    }
    let mask = libc::STATX_TYPE
        | libc::STATX_MODE
        | libc::STATX_INO
        | libc::STATX_SIZE
        | libc::STATX_MTIME
        | libc::STATX_CTIME;
    // SAFETY: a zeroed statx is a valid value, which the kernel fills; `name` is
    // NUL-terminated and `dir` open for the duration of the call.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statx(dir.as_raw_fd(), name.as_ptr(), flags, mask, &mut st) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let t = |t: libc::statx_timestamp| (t.tv_sec, i64::from(t.tv_nsec));
    Ok(Meta {
        stamp: Stamp::new(
            st.stx_size,
            t(st.stx_mtime),
            t(st.stx_ctime),
            st.stx_ino,
            libc::makedev(st.stx_dev_major, st.stx_dev_minor),
        ),
        mode: u32::from(st.stx_mode),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A regular file of a Docker build context (its permission bits count).
    DockerFile,
    /// A symbolic link hashed by its target path (as Docker sends it, or one that leads back
    /// into a directory above it).
    Link,
    /// A symbolic link to a file, followed.
    FollowedLink,
    /// A directory (Docker contexts only).
    Dir,
}

struct WalkCtx<'a> {
    root: &'a Path,
    /// Where directory listings are kept between runs.
    cache: Option<&'a HashCache>,
    exclude: &'a [PathBuf],
    opts: &'a WalkOptions,
    /// What each walked directory holds, in walk order ([`Dir::node`]).
    nodes: &'a Mutex<Vec<Option<Vec<Part>>>>,
    /// Every entry found, each directory's together, sorted; put in order at the end.
    out: &'a Mutex<Vec<WalkedFile>>,
    error: &'a Mutex<Option<String>>,
}

/// One item of a walked directory: an entry, or the place of a subdirectory's entries.
enum Item {
    Entry(WalkedFile),
    /// The node of a subdirectory and its name: its entries come where `NAME/` sorts.
    Sub(usize, Box<[u8]>),
}

impl Item {
    /// Its name in its directory, and whether `/` follows it (a subdirectory's entries).
    fn key(&self) -> (&[u8], bool) {
        match self {
            Item::Entry(f) => {
                let b = f.rel.as_os_str().as_bytes();
                let at = b.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
                (&b[at..], false)
            }
            Item::Sub(_, name) => (name, true),
        }
    }
}

/// The order of two items of one directory such that the walk's list, each directory's
/// items in turn with a subdirectory's in its place, is sorted by path bytes: an entry sorts
/// by its name, a subdirectory's entries by the name followed by `/`.
fn item_order(a: &Item, b: &Item) -> std::cmp::Ordering {
    let ((a, a_dir), (b, b_dir)) = (a.key(), b.key());
    let n = a.len().min(b.len());
    a[..n].cmp(&b[..n]).then_with(|| {
        let slash: &[u8] = b"/";
        let rest =
            |s: &[u8], dir: bool| -> Vec<u8> { [&s[n..], if dir { slash } else { &[] }].concat() };
        rest(a, a_dir).cmp(&rest(b, b_dir))
    })
}

/// A run of a walked directory's items in [`WalkCtx::out`], or the place of a subdirectory's.
enum Part {
    Entries(u32, u32),
    Sub(usize),
}

/// The positions in `out` of node `at`'s entries and the nodes' below it, in order.
fn order(nodes: &[Option<Vec<Part>>], at: usize, into: &mut Vec<u32>) {
    for part in nodes[at].iter().flatten() {
        match *part {
            Part::Entries(start, len) => into.extend(start..start + len),
            Part::Sub(sub) => order(nodes, sub, into),
        }
    }
}

/// Puts `files` in `order` (`files[i]` becomes the file that was at `order[i]`), in place:
/// each cycle of the permutation followed once, with swaps.
fn permute(files: &mut [WalkedFile], mut order: Vec<u32>) {
    for start in 0..order.len() {
        let mut cur = start;
        loop {
            let src = order[cur] as usize;
            order[cur] = cur as u32;
            if src == start || src == cur {
                break;
            }
            files.swap(cur, src);
            cur = src;
        }
    }
}

/// A directory to walk.
struct Dir {
    /// Where it is (through any followed links).
    path: PathBuf,
    /// Its path relative to the walk's start, `/`-separated ("" for the start).
    rel: String,
    /// The `.gitignore` matchers of it and the folders above (gitignore walks).
    gitignores: Arc<Vec<ignore::gitignore::Gitignore>>,
    /// The real paths of the folders in which the followed directory links on the way here
    /// were found: a link whose target is one of them, or above one, is a loop.
    links: Arc<Vec<PathBuf>>,
    /// Where its items go in [`WalkCtx::nodes`].
    node: usize,
}

/// One entry of a walked directory that the walk's rules keep.
struct Entry<'n> {
    /// Its name, NUL-terminated (for `*at` calls relative to the open directory).
    name: &'n CStr,
    /// Its path relative to the walk's start (for Docker's rules, directories and links).
    rel_str: String,
    /// Excluded, but walked because an exception could re-include something below it.
    walk_only: bool,
}

impl Entry<'_> {
    fn os_name(&self) -> &OsStr {
        OsStr::from_bytes(self.name.to_bytes())
    }
}

/// Entries under `dir` (root-relative or absolute), relative to `root`, sorted by bytes, with
/// their metadata, as `opts` says (ignore rules, links followed or not, directories listed or
/// not). Skips the `exclude`d folders. Walks directories in parallel; each entry is stat'ed
/// relative to its open directory (no path lookup from the root), which is most of the cost
/// of a no-op run.
pub(crate) fn walk(
    root: &Path,
    exclude: &[PathBuf],
    dir: &Path,
    opts: &WalkOptions,
    cache: Option<&HashCache>,
) -> Result<Vec<WalkedFile>> {
    let nodes: Mutex<Vec<Option<Vec<Part>>>> = Mutex::new(vec![None]);
    let out: Mutex<Vec<WalkedFile>> = Mutex::new(Vec::new());
    let error: Mutex<Option<String>> = Mutex::new(None);
    let ctx = WalkCtx {
        root,
        cache,
        exclude,
        opts,
        nodes: &nodes,
        out: &out,
        error: &error,
    };
    let start = Dir {
        path: dir.to_path_buf(),
        rel: String::new(),
        gitignores: Arc::new(Vec::new()),
        links: Arc::new(Vec::new()),
        node: 0,
    };
    rayon::scope(|s| walk_dir(s, &ctx, start));
    if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(ErrorKind::Script.error(e));
    }
    // Sorted by path bytes (deterministic, and much cheaper than `Path`'s component-wise
    // order): each directory's items were sorted, subdirectories in their place.
    let nodes = nodes.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut files = out.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut positions = Vec::with_capacity(files.len());
    order(&nodes, 0, &mut positions);
    if positions.len() != files.len() {
        return Err(ErrorKind::Internal.error("the walk lost track of its entries"));
    }
    permute(&mut files, positions);
    Ok(files)
}

/// Is `path` excluded by the ignore files of its folder or a folder above (deepest first)?
fn ignored(matchers: &[ignore::gitignore::Gitignore], path: &Path, is_dir: bool) -> bool {
    for g in matchers.iter().rev() {
        match g.matched(path, is_dir) {
            ignore::Match::Ignore(_) => return true,
            ignore::Match::Whitelist(_) => return false,
            ignore::Match::None => {}
        }
    }
    false
}

/// Walks `dir`: what it holds goes to the walk's list, its subdirectories are walked as tasks
/// of their own; the first error stops the walk of this directory and is the walk's error.
fn walk_dir<'s>(scope: &rayon::Scope<'s>, ctx: &'s WalkCtx<'s>, dir: Dir) {
    let node = dir.node;
    match dir_entries(scope, ctx, dir) {
        Ok(mut found) => {
            // Listings are kept sorted: this is one pass over them.
            found.sort_by(item_order);
            let mut parts = Vec::new();
            {
                let mut out = ctx.out.lock().unwrap_or_else(|p| p.into_inner());
                for item in found {
                    match item {
                        Item::Entry(f) => {
                            let at = out.len() as u32;
                            match parts.last_mut() {
                                Some(Part::Entries(start, len)) if *start + *len == at => *len += 1,
                                _ => parts.push(Part::Entries(at, 1)),
                            }
                            out.push(f);
                        }
                        Item::Sub(sub, _) => parts.push(Part::Sub(sub)),
                    }
                }
            }
            ctx.nodes.lock().unwrap_or_else(|p| p.into_inner())[node] = Some(parts);
        }
        Err(e) => {
            let mut slot = ctx.error.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(e);
        }
    }
}

/// What `dir` holds that the walk lists (its subdirectories spawned as walks of their own).
fn dir_entries<'s>(
    scope: &rayon::Scope<'s>,
    ctx: &'s WalkCtx<'s>,
    dir: Dir,
) -> Result<Vec<Item>, String> {
    let cannot = |e: std::io::Error| format!("cannot walk {}: {e}", dir.path.display());
    let fd = std::fs::File::open(&dir.path).map_err(cannot)?;
    // Entries' paths relative to the root: this directory's, joined with each name.
    let base_rel = dir
        .path
        .strip_prefix(ctx.root)
        .unwrap_or(&dir.path)
        .to_path_buf();
    let listing = list(ctx.cache, &dir.path, &base_rel, &fd).map_err(cannot)?;
    let dir = Dir {
        gitignores: gitignores(ctx.opts, &dir, &listing)?,
        ..dir
    };
    let mut found = Vec::with_capacity(listing.len());
    for (i, (name, kind)) in listing.iter().enumerate() {
        let Some(entry) = kept(ctx, &dir, name, kind)? else {
            continue;
        };
        let stat = |follow: bool| {
            stat_at(&fd, entry.name, follow)
                .map_err(|err| format!("{}: {err}", dir.path.join(entry.os_name()).display()))
        };
        match kind {
            EntryType::Dir => {
                if ctx.opts.dirs && !entry.walk_only {
                    found.push(Item::Entry(WalkedFile {
                        rel: child(&base_rel, entry.os_name()),
                        meta: stat(false)?,
                        kind: Kind::Dir,
                        cached: None,
                    }));
                }
                let sub = Dir {
                    path: dir.path.join(entry.os_name()),
                    rel: entry.rel_str,
                    gitignores: dir.gitignores.clone(),
                    links: dir.links.clone(),
                    node: new_node(ctx),
                };
                found.push(Item::Sub(sub.node, name.to_bytes().into()));
                scope.spawn(move |s| walk_dir(s, ctx, sub));
            }
            EntryType::Symlink if ctx.opts.follow_links => {
                follow_link(scope, ctx, &dir, &fd, entry, &mut found)?;
            }
            EntryType::File | EntryType::Symlink if !entry.walk_only => {
                let kind = if kind == EntryType::Symlink {
                    Kind::Link
                } else if ctx.opts.docker.is_some() {
                    Kind::DockerFile
                } else {
                    Kind::File
                };
                // relative to the open directory: no lookup of the whole path
                let meta = stat(false)?;
                // the digest kept with the listing, if the file's stamp still matches
                let cached = listing
                    .slot(i)
                    .filter(|s| kind != Kind::Link && s.stamp == meta.stamp)
                    .map(|s| s.digest);
                found.push(Item::Entry(WalkedFile {
                    rel: child(&base_rel, entry.os_name()),
                    meta,
                    kind,
                    cached,
                }));
            }
            _ => {}
        }
    }
    Ok(found)
}

/// `base.join(name)`, allocated to size (one per file of a walk).
fn child(base: &Path, name: &OsStr) -> PathBuf {
    let base = base.as_os_str().as_bytes();
    if base.is_empty() {
        return PathBuf::from(name);
    }
    let mut v = Vec::with_capacity(base.len() + 1 + name.len());
    v.extend_from_slice(base);
    if !base.ends_with(b"/") {
        v.push(b'/');
    }
    v.extend_from_slice(name.as_bytes());
    PathBuf::from(std::ffi::OsString::from_vec(v))
}

/// A new node for a directory's items.
fn new_node(ctx: &WalkCtx) -> usize {
    let mut nodes = ctx.nodes.lock().unwrap_or_else(|p| p.into_inner());
    nodes.push(None);
    nodes.len() - 1
}

/// The names and types in the directory at `path` (open as `fd`; `base_rel`: its path
/// relative to the root): kept by the hash cache while the directory's stamp is unchanged,
/// else read (and given to the cache).
fn list(
    cache: Option<&HashCache>,
    path: &Path,
    base_rel: &Path,
    fd: &std::fs::File,
) -> std::io::Result<Arc<Listing>> {
    let Some(cache) = cache else {
        return read_listing(path).map(Arc::new);
    };
    let stamp = stat_at(fd, c"", false)?.stamp;
    if let Some(listing) = cache.listing(path, base_rel, &stamp) {
        return Ok(listing);
    }
    // The moment first, then the stamp, then the names: an entry added after the stamp was
    // taken changes the directory's mtime (or falls in the racy window of `listed_at`).
    let listed_at = cache.hashed_at();
    let stamp = stat_at(fd, c"", false)?.stamp;
    let listing = Arc::new(read_listing(path)?);
    cache.put_listing(path, base_rel, stamp, listing.clone(), listed_at);
    Ok(listing)
}

/// Reads a directory's names and types.
fn read_listing(path: &Path) -> std::io::Result<Listing> {
    let mut listing = Listing::default();
    for e in std::fs::read_dir(path)? {
        let e = e?;
        let ft = e.file_type()?;
        let kind = if ft.is_dir() {
            EntryType::Dir
        } else if ft.is_symlink() {
            EntryType::Symlink
        } else if ft.is_file() {
            EntryType::File
        } else {
            EntryType::Other
        };
        listing.push(&e.file_name(), kind);
    }
    listing.sort();
    Ok(listing)
}

/// The `.gitignore` matchers that apply in `dir`: those of the folders above, and its own
/// `.gitignore` among its entries (gitignore walks).
fn gitignores(
    opts: &WalkOptions,
    dir: &Dir,
    listing: &Listing,
) -> Result<Arc<Vec<ignore::gitignore::Gitignore>>, String> {
    let mut gitignores = dir.gitignores.clone();
    if opts.gitignore && listing.iter().any(|(name, _)| name == c".gitignore") {
        let path = dir.path.join(".gitignore");
        let mut b = ignore::gitignore::GitignoreBuilder::new(&dir.path);
        if let Some(err) = b.add(&path) {
            return Err(format!("{}: {err}", path.display()));
        }
        match b.build() {
            Ok(g) => {
                let mut v = (*gitignores).clone();
                v.push(g);
                gitignores = Arc::new(v);
            }
            Err(err) => return Err(format!("{}: {err}", dir.path.display())),
        }
    }
    Ok(gitignores)
}

/// Entry `name` of `dir`, unless the walk's rules leave it out (`.git`, an excluded folder,
/// Docker's rules, `.gitignore`).
fn kept<'n>(
    ctx: &WalkCtx,
    dir: &Dir,
    name: &'n CStr,
    kind: EntryType,
) -> Result<Option<Entry<'n>>, String> {
    let opts = ctx.opts;
    // Docker's rules need each entry's context-relative path, but only when something can be
    // excluded at all.
    let docker = opts.docker.as_ref().filter(|m| m.excludes_anything());
    let os_name = OsStr::from_bytes(name.to_bytes());
    if opts.skip_git && os_name == ".git" {
        return Ok(None);
    }
    let is_dir = kind == EntryType::Dir;
    let is_link = kind == EntryType::Symlink;
    // Excluded folders (the state folder): only a directory or a link can be one.
    if (is_dir || is_link) && {
        let path = dir.path.join(os_name);
        ctx.exclude.iter().any(|x| x == &path)
    } {
        return Ok(None);
    }
    let rel_str = if docker.is_some() || is_dir || is_link {
        let name = os_name.to_string_lossy();
        if dir.rel.is_empty() {
            name.into_owned()
        } else {
            format!("{}/{name}", dir.rel)
        }
    } else {
        String::new()
    };
    let mut walk_only = false;
    if let Some(m) = docker {
        if m.excluded(&rel_str) {
            // An excluded folder is still walked when an exception could re-include
            // something below it (Docker does the same).
            if (is_dir || (is_link && opts.follow_links)) && m.walk_excluded_dir(&rel_str) {
                walk_only = true;
            } else {
                return Ok(None);
            }
        }
    }
    if opts.gitignore && ignored(&dir.gitignores, &dir.path.join(os_name), is_dir) {
        return Ok(None);
    }
    Ok(Some(Entry {
        name,
        rel_str,
        walk_only,
    }))
}

/// A symbolic link in `dir` (open as `fd`), followed: a file by its content, a directory
/// walked (once: a link that leads back into a folder on the way here, or above one, is
/// listed as a link).
fn follow_link<'s>(
    scope: &rayon::Scope<'s>,
    ctx: &'s WalkCtx<'s>,
    dir: &Dir,
    fd: &std::fs::File,
    entry: Entry,
    found: &mut Vec<Item>,
) -> Result<(), String> {
    let path = dir.path.join(entry.os_name());
    let rel = || path.strip_prefix(ctx.root).unwrap_or(&path).to_path_buf();
    let target = match stat_at(fd, entry.name, true) {
        Ok(m) => m,
        Err(err) => {
            let to = std::fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            return Err(if err.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{} is a symbolic link to {to}, which does not exist (a dangling link cannot be hashed)",
                    rel().display()
                )
            } else {
                format!("{} (a symbolic link to {to}): {err}", rel().display())
            });
        }
    };
    if target.is_dir() {
        // Walked once: a link that leads back into a folder on the way here (or above
        // one) is hashed by its target path instead.
        let real_target = std::fs::canonicalize(&path).ok();
        let here = std::fs::canonicalize(&dir.path).ok();
        let is_loop = match (&real_target, &here) {
            (Some(t), Some(h)) => h.starts_with(t) || dir.links.iter().any(|l| l.starts_with(t)),
            _ => true,
        };
        if is_loop {
            if !entry.walk_only {
                match stat_at(fd, entry.name, false) {
                    Ok(meta) => found.push(Item::Entry(WalkedFile {
                        rel: rel(),
                        meta,
                        kind: Kind::Link,
                        cached: None,
                    })),
                    Err(err) => return Err(format!("{}: {err}", path.display())),
                }
            }
            return Ok(());
        }
        if ctx.opts.dirs && !entry.walk_only {
            found.push(Item::Entry(WalkedFile {
                rel: rel(),
                meta: target,
                kind: Kind::Dir,
                cached: None,
            }));
        }
        let mut links = (*dir.links).clone();
        links.extend(here);
        let sub = Dir {
            path,
            rel: entry.rel_str,
            gitignores: dir.gitignores.clone(),
            links: Arc::new(links),
            node: new_node(ctx),
        };
        found.push(Item::Sub(sub.node, entry.name.to_bytes().into()));
        scope.spawn(move |s| walk_dir(s, ctx, sub));
    } else if target.is_file() && !entry.walk_only {
        found.push(Item::Entry(WalkedFile {
            rel: rel(),
            meta: target,
            kind: Kind::FollowedLink,
            cached: None,
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The walk's list is sorted by path bytes, with or without listings from the cache,
    /// whatever names sort around a folder's `/` (`a-b` and `a.b` before `a/x`, `a0` after).
    #[test]
    fn the_list_is_sorted_by_path_bytes_with_cached_listings_too() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "a/x", "a/y/z", "a-b", "a.b", "a0", "ab/c", "b", "a/y-", "a/y.q/r",
        ] {
            let p = root.join("ctx").join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        std::fs::create_dir_all(root.join("ctx/a/empty")).unwrap();
        let cache_path = root.join("cache");
        let mut names = Vec::new();
        for round in 0..3 {
            let mut cache = HashCache::load(&cache_path);
            cache.racy_window_ns = -1_000_000_000_000;
            let opts = WalkOptions::docker(
                crate::util::dockerignore::Matcher::for_context(&root.join("ctx"), None).unwrap(),
                true,
            );
            let files = walk(root, &[], &root.join("ctx"), &opts, Some(&cache)).unwrap();
            let got: Vec<Vec<u8>> = files
                .iter()
                .map(|f| f.rel.as_os_str().as_bytes().to_vec())
                .collect();
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(got, sorted, "round {round}");
            assert!(got.contains(&b"ctx/a/empty".to_vec()));
            if round > 0 {
                assert_eq!(
                    cache.dirs_read(),
                    0,
                    "round {round}: listings from the cache"
                );
                assert_eq!(got, names);
            }
            names = got;
            cache.save();
        }
    }
}
