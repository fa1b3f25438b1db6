//! The walk of a directory for fingerprints: in parallel, each walk with its rules (a Docker
//! context, a directory dependency, a glob, `gitignore:`), symbolic links followed with loop
//! protection or listed as links; entries stat'ed relative to their open directory.

use crate::util::error::Kind as ErrorKind;
use anyhow::Result;
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
    pub meta: std::fs::Metadata,
    pub kind: Kind,
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
    exclude: &'a [PathBuf],
    opts: &'a WalkOptions,
    out: &'a Mutex<Vec<WalkedFile>>,
    error: &'a Mutex<Option<String>>,
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
}

/// One entry of a walked directory that the walk's rules keep.
struct Entry {
    e: std::fs::DirEntry,
    path: PathBuf,
    ft: std::fs::FileType,
    /// Its path relative to the walk's start (for Docker's rules, directories and links).
    rel_str: String,
    /// Excluded, but walked because an exception could re-include something below it.
    walk_only: bool,
}

impl Entry {
    /// Its path relative to the root.
    fn rel(&self, root: &Path) -> PathBuf {
        self.path
            .strip_prefix(root)
            .unwrap_or(&self.path)
            .to_path_buf()
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
) -> Result<Vec<WalkedFile>> {
    let out: Mutex<Vec<WalkedFile>> = Mutex::new(Vec::new());
    let error: Mutex<Option<String>> = Mutex::new(None);
    let ctx = WalkCtx {
        root,
        exclude,
        opts,
        out: &out,
        error: &error,
    };
    let start = Dir {
        path: dir.to_path_buf(),
        rel: String::new(),
        gitignores: Arc::new(Vec::new()),
        links: Arc::new(Vec::new()),
    };
    rayon::scope(|s| walk_dir(s, &ctx, start));
    if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(ErrorKind::Script.error(e));
    }
    let mut files = out.into_inner().unwrap_or_else(|p| p.into_inner());
    // By bytes: deterministic, and much cheaper than `Path`'s component-wise order.
    {
        use std::os::unix::ffi::OsStrExt;
        files.sort_unstable_by(|a, b| {
            a.rel
                .as_os_str()
                .as_bytes()
                .cmp(b.rel.as_os_str().as_bytes())
        });
    }
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
    match dir_entries(scope, ctx, dir) {
        Ok(found) => ctx
            .out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(found),
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
) -> Result<Vec<WalkedFile>, String> {
    let entries: Vec<std::fs::DirEntry> = match std::fs::read_dir(&dir.path) {
        Ok(rd) => match rd.collect::<std::io::Result<_>>() {
            Ok(v) => v,
            Err(e) => return Err(format!("cannot walk {}: {e}", dir.path.display())),
        },
        Err(e) => return Err(format!("cannot walk {}: {e}", dir.path.display())),
    };
    let dir = Dir {
        gitignores: gitignores(ctx.opts, &dir, &entries)?,
        ..dir
    };
    let mut found = Vec::new();
    for e in entries {
        let Some(entry) = kept(ctx, &dir, e)? else {
            continue;
        };
        let ft = entry.ft;
        if ft.is_dir() {
            if ctx.opts.dirs && !entry.walk_only {
                match entry.e.metadata() {
                    Ok(meta) => found.push(WalkedFile {
                        rel: entry.rel(ctx.root),
                        meta,
                        kind: Kind::Dir,
                    }),
                    Err(err) => return Err(format!("{}: {err}", entry.path.display())),
                }
            }
            let sub = Dir {
                path: entry.path,
                rel: entry.rel_str,
                gitignores: dir.gitignores.clone(),
                links: dir.links.clone(),
            };
            scope.spawn(move |s| walk_dir(s, ctx, sub));
        } else if ft.is_symlink() && ctx.opts.follow_links {
            follow_link(scope, ctx, &dir, entry, &mut found)?;
        } else if (ft.is_file() || ft.is_symlink()) && !entry.walk_only {
            // relative to the open directory: no lookup of the whole path
            let meta = match entry.e.metadata() {
                Ok(m) => m,
                Err(err) => return Err(format!("{}: {err}", entry.path.display())),
            };
            let kind = if ft.is_symlink() {
                Kind::Link
            } else if ctx.opts.docker.is_some() {
                Kind::DockerFile
            } else {
                Kind::File
            };
            found.push(WalkedFile {
                rel: entry.rel(ctx.root),
                meta,
                kind,
            });
        }
    }
    Ok(found)
}

/// The `.gitignore` matchers that apply in `dir`: those of the folders above, and its own
/// `.gitignore` among its `entries` (gitignore walks).
fn gitignores(
    opts: &WalkOptions,
    dir: &Dir,
    entries: &[std::fs::DirEntry],
) -> Result<Arc<Vec<ignore::gitignore::Gitignore>>, String> {
    let mut gitignores = dir.gitignores.clone();
    if opts.gitignore {
        if let Some(e) = entries.iter().find(|e| e.file_name() == ".gitignore") {
            let mut b = ignore::gitignore::GitignoreBuilder::new(&dir.path);
            if let Some(err) = b.add(e.path()) {
                return Err(format!("{}: {err}", e.path().display()));
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
    }
    Ok(gitignores)
}

/// Entry `e` of `dir`, unless the walk's rules leave it out (`.git`, an excluded folder,
/// Docker's rules, `.gitignore`).
fn kept(ctx: &WalkCtx, dir: &Dir, e: std::fs::DirEntry) -> Result<Option<Entry>, String> {
    let opts = ctx.opts;
    // Docker's rules need each entry's context-relative path, but only when something can be
    // excluded at all.
    let docker = opts.docker.as_ref().filter(|m| m.excludes_anything());
    let child_rel = |name: &std::ffi::OsStr| -> String {
        let name = name.to_string_lossy();
        if dir.rel.is_empty() {
            name.into_owned()
        } else {
            format!("{}/{name}", dir.rel)
        }
    };
    let name = e.file_name();
    if opts.skip_git && name == ".git" {
        return Ok(None);
    }
    let path = e.path();
    if ctx.exclude.iter().any(|x| x == &path) {
        return Ok(None);
    }
    let ft = match e.file_type() {
        Ok(ft) => ft,
        Err(err) => return Err(format!("{}: {err}", path.display())),
    };
    let rel_str = if docker.is_some() || ft.is_dir() || ft.is_symlink() {
        child_rel(&name)
    } else {
        String::new()
    };
    let mut walk_only = false;
    if let Some(m) = docker {
        if m.excluded(&rel_str) {
            // An excluded folder is still walked when an exception could re-include
            // something below it (Docker does the same).
            if (ft.is_dir() || (ft.is_symlink() && opts.follow_links))
                && m.walk_excluded_dir(&rel_str)
            {
                walk_only = true;
            } else {
                return Ok(None);
            }
        }
    }
    if opts.gitignore && ignored(&dir.gitignores, &path, ft.is_dir()) {
        return Ok(None);
    }
    Ok(Some(Entry {
        e,
        path,
        ft,
        rel_str,
        walk_only,
    }))
}

/// A symbolic link in `dir`, followed: a file by its content, a directory walked (once: a
/// link that leads back into a folder on the way here, or above one, is listed as a link).
fn follow_link<'s>(
    scope: &rayon::Scope<'s>,
    ctx: &'s WalkCtx<'s>,
    dir: &Dir,
    entry: Entry,
    found: &mut Vec<WalkedFile>,
) -> Result<(), String> {
    let path = &entry.path;
    let target = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(err) => {
            let to = std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            return Err(if err.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{} is a symbolic link to {to}, which does not exist (a dangling link cannot be hashed)",
                    entry.rel(ctx.root).display()
                )
            } else {
                format!(
                    "{} (a symbolic link to {to}): {err}",
                    entry.rel(ctx.root).display()
                )
            });
        }
    };
    if target.is_dir() {
        // Walked once: a link that leads back into a folder on the way here (or above
        // one) is hashed by its target path instead.
        let real_target = std::fs::canonicalize(path).ok();
        let here = std::fs::canonicalize(&dir.path).ok();
        let is_loop = match (&real_target, &here) {
            (Some(t), Some(h)) => h.starts_with(t) || dir.links.iter().any(|l| l.starts_with(t)),
            _ => true,
        };
        if is_loop {
            if !entry.walk_only {
                match entry.e.metadata() {
                    Ok(meta) => found.push(WalkedFile {
                        rel: entry.rel(ctx.root),
                        meta,
                        kind: Kind::Link,
                    }),
                    Err(err) => return Err(format!("{}: {err}", path.display())),
                }
            }
            return Ok(());
        }
        if ctx.opts.dirs && !entry.walk_only {
            found.push(WalkedFile {
                rel: entry.rel(ctx.root),
                meta: target,
                kind: Kind::Dir,
            });
        }
        let mut links = (*dir.links).clone();
        links.extend(here);
        let sub = Dir {
            path: entry.path,
            rel: entry.rel_str,
            gitignores: dir.gitignores.clone(),
            links: Arc::new(links),
        };
        scope.spawn(move |s| walk_dir(s, ctx, sub));
    } else if target.is_file() && !entry.walk_only {
        found.push(WalkedFile {
            rel: entry.rel(ctx.root),
            meta: target,
            kind: Kind::FollowedLink,
        });
    }
    Ok(())
}
