//! Fingerprints: the SHA-256 of everything a step depends on (files, directories, globs,
//! config keys, its own script and the prelude), one digest per dependency plus a combined one.

use crate::config::Config;
use crate::decide::hashcache::{HashCache, Stamp};
use crate::decide::step::Step;
use crate::decide::walk::{walk, Kind, WalkOptions, WalkedFile};
use crate::util::digest::sha256_hex;
use crate::util::error::{Kind as ErrorKind, OrFail};
use anyhow::Result;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// The dependency key of the step's own script.
pub const SCRIPT: &str = "script";
/// The dependency key of the prelude.
pub const PRELUDE: &str = "prelude";

/// One step's fingerprint.
#[derive(Debug, Clone, Default)]
pub struct Fingerprint {
    /// Dependency key (`file:PATH`, `dir:PATH`, `glob:PATTERN`, `config:KEY`, `script`,
    /// `prelude`) → hex SHA-256.
    pub dependencies: BTreeMap<String, String>,
    /// SHA-256 over all of them.
    pub combined: String,
    /// Things worth a warning (a glob that matches nothing).
    pub warnings: Vec<String>,
    /// Declared plain paths that do not exist (yet): an error, unless a step that runs before
    /// this one in the same deployment may create them (then decided when the step starts).
    pub missing: Vec<String>,
}

/// Does a `files` entry hold glob characters?
pub fn is_glob(entry: &str) -> bool {
    entry.contains(['*', '?', '[', '{'])
}

/// The longest directory prefix of a glob without glob characters (empty for `*.sql`).
pub fn glob_base(pattern: &str) -> PathBuf {
    pattern
        .split('/')
        .take_while(|part| !is_glob(part))
        .collect()
}

/// The combined digest of a set of dependency digests.
pub fn combine(deps: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in deps {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([b'\n']);
    }
    hex::encode(h.finalize())
}

/// How a dependency key reads in a reason ("file docker/Dockerfile changed").
pub fn describe(key: &str) -> String {
    let git = |p: &str| match p.strip_prefix(GITIGNORE_PREFIX) {
        Some(rest) => format!("{rest} (without .gitignore'd files)"),
        None => p.to_string(),
    };
    match key.split_once(':') {
        Some(("file", p)) => format!("file {p}"),
        Some(("dir", p)) => format!("directory {}", git(p)),
        Some(("glob", p)) => format!("files matching {}", git(p)),
        Some(("config", k)) => crate::state::reads::config_read(k),
        Some(("env", k)) => format!("env {k}"),
        _ if key == SCRIPT => "step script".to_string(),
        _ if key == PRELUDE => "prelude.rhai".to_string(),
        _ => key.to_string(),
    }
}

/// Computes fingerprints of steps relative to a project root.
pub struct Fingerprinter<'a> {
    pub root: &'a Path,
    pub config: &'a Config,
    pub prelude_digest: &'a str,
    /// Directories never walked (the state folder, for example), relative to `root`.
    pub exclude: Vec<PathBuf>,
    /// The local hash cache, if any.
    pub cache: Option<&'a HashCache>,
    /// The salt of secret config values (kept in the state, so that every machine sharing it
    /// computes the same digests). None: secret values are hashed with an empty salt.
    pub secret_salt: Option<&'a str>,
    /// Entries already hashed by this fingerprinter (several steps often share a build
    /// context): expanded entry → (dependency key, digest, warnings).
    pub memo: Memo,
}

/// See [`Fingerprinter::memo`].
pub type Memo = Mutex<std::collections::HashMap<String, Memoized>>;

/// One hashed entry: (dependency key, digest, warnings).
pub type Memoized = (String, String, Vec<String>);

impl Fingerprinter<'_> {
    /// The fingerprint of `step`. A declared path that does not exist is an error naming the
    /// step and the path.
    pub fn step(&self, step: &Step) -> Result<Fingerprint> {
        let mut fp = Fingerprint::default();
        fp.dependencies
            .insert(SCRIPT.to_string(), step.script_digest.clone());
        fp.dependencies
            .insert(PRELUDE.to_string(), self.prelude_digest.to_string());
        for key in &step.config {
            // A value with a secret anywhere in it gets the salted slow digest.
            let digest = crate::state::reads::config_digest(
                self.config,
                key,
                self.secret_salt.unwrap_or(""),
            );
            fp.dependencies.insert(format!("config:{key}"), digest);
        }
        for name in &step.env {
            let value = crate::state::reads::env_value(name);
            let digest =
                crate::state::reads::env_digest(value.as_deref(), self.secret_salt.unwrap_or(""));
            fp.dependencies.insert(format!("env:{name}"), digest);
        }
        // The entries to hash, in order (missing ones are noted and left out).
        let mut entries: Vec<String> = Vec::with_capacity(step.files.len());
        for pattern in &step.files {
            let expanded = self.interpolate(step, pattern)?;
            self.check_inside_root(step, pattern, &expanded)?;
            let bare = expanded.strip_prefix(GITIGNORE_PREFIX).unwrap_or(&expanded);
            if !is_glob(bare) {
                let trimmed = bare.trim_end_matches('/');
                let path = self
                    .root
                    .join(if trimmed.is_empty() { "." } else { trimmed });
                if matches!(std::fs::symlink_metadata(&path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
                {
                    fp.missing.push(expanded);
                    continue;
                }
            }
            entries.push(expanded);
        }
        // Entries not hashed yet in this run are hashed at once (several build contexts keep
        // both cores busy through each walk's serial end: sorting and the list digest).
        let todo: Vec<&String> = {
            let memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
            let mut seen = std::collections::HashSet::new();
            entries
                .iter()
                .filter(|e| !memo.contains_key(*e) && seen.insert(e.as_str()))
                .collect()
        };
        let hashed: Vec<Result<Memoized>> = todo
            .par_iter()
            .map(|expanded| {
                let mut warnings = Vec::new();
                let (key, digest) = self.hash_entry(step, expanded, &mut warnings)?;
                Ok((key, digest, warnings))
            })
            .collect();
        {
            let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
            for (expanded, m) in todo.into_iter().zip(hashed) {
                memo.insert(expanded.clone(), m?);
            }
        }
        for expanded in &entries {
            let (key, digest, warnings) = self
                .memo
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(expanded)
                .cloned()
                .expect("hashed above");
            // The warning names the step: say it for each step that declares the entry.
            fp.warnings.extend(warnings.into_iter().map(|w| {
                w.split_once(": ")
                    .map(|(_, rest)| format!("step `{}`: {rest}", step.name))
                    .unwrap_or(w)
            }));
            fp.dependencies.insert(key, digest);
        }
        fp.combined = combine(&fp.dependencies);
        Ok(fp)
    }

    /// Replaces `${config.key}` / `${key}` in a path with the config value.
    fn interpolate(&self, step: &Step, pattern: &str) -> Result<String> {
        self.config.interpolate(pattern).map_err(|e| {
            ErrorKind::Script.error(format!(
                "{}:{}: step `{}`: files entry {e}",
                step.file, step.decl_line, step.name
            ))
        })
    }

    fn check_inside_root(&self, step: &Step, pattern: &str, path: &str) -> Result<()> {
        let p = Path::new(path);
        let escapes = p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir));
        if escapes && !self.config.settings.advanced.allow_paths_outside_root {
            return Err(ErrorKind::Script.error(format!(
                "{}:{}: step `{}`: files entry {pattern:?} ({path}) is outside the project root (set advanced.allow_paths_outside_root: true to allow it)",
                step.file, step.decl_line, step.name
            )));
        }
        Ok(())
    }

    fn hash_entry(
        &self,
        step: &Step,
        entry: &str,
        warnings: &mut Vec<String>,
    ) -> Result<(String, String)> {
        let located = |what: String| {
            ErrorKind::Script.error(format!(
                "step `{}` ({}:{}): {what}",
                step.name, step.file, step.decl_line
            ))
        };
        // `gitignore:PATH`: what `.gitignore` files exclude is left out (opt-in).
        let (gitignore, entry) = match entry.strip_prefix(GITIGNORE_PREFIX) {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        let tag = if gitignore { GITIGNORE_PREFIX } else { "" };
        if is_glob(entry) {
            let files = self
                .glob(step, entry, gitignore)
                .map_err(|e| located(format!("files entry {entry:?}: {e:#}")))?;
            if files.is_empty() {
                warnings.push(format!(
                    "step `{}`: files entry {entry:?} matches no file",
                    step.name
                ));
            }
            return Ok((format!("glob:{tag}{entry}"), self.hash_list(&files)?));
        }
        let trimmed = entry.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "." } else { trimmed };
        let path = self.root.join(trimmed);
        // A declared symbolic link: its target's content, and its target path (retargeting
        // is a change even to identical content).
        let link = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => Some(
                std::fs::read_link(&path)
                    .map_err(|e| located(format!("declared file {entry} cannot be read: {e}")))?,
            ),
            _ => None,
        };
        let meta = std::fs::metadata(&path).map_err(|e| {
            located(match (&link, e.kind()) {
                (Some(t), std::io::ErrorKind::NotFound) => format!(
                    "declared file {entry} is a symbolic link to {}, which does not exist (a dangling link cannot be hashed)",
                    t.display()
                ),
                (None, std::io::ErrorKind::NotFound) => {
                    format!("declared file {entry} does not exist")
                }
                _ => format!("declared file {entry} cannot be read: {e}"),
            })
        })?;
        if !meta.is_dir() && !meta.is_file() {
            return Err(located(format!(
                "declared file {entry} is not a regular file or directory (a FIFO, socket or device cannot be hashed)"
            )));
        }
        let with_link = |digest: String| match &link {
            Some(t) => sha256_hex(format!("{digest}\0symlink\0{}", t.to_string_lossy()).as_bytes()),
            None => digest,
        };
        if meta.is_dir() {
            let opts = if gitignore {
                WalkOptions::gitignore()
            } else {
                // What `docker build DIR` would send: never less.
                let matcher = crate::util::dockerignore::Matcher::for_context(&path, None)
                    .map_err(|e| located(format!("files entry {entry:?}: {e}")))?;
                WalkOptions::docker(matcher, true)
            };
            let files = self
                .walk(&path, &opts)
                .map_err(|e| located(format!("files entry {entry:?}: {e:#}")))?;
            Ok((
                format!("dir:{tag}{trimmed}/"),
                with_link(self.hash_list(&files)?),
            ))
        } else {
            let digest = self
                .content_digest(Path::new(trimmed), &Stamp::of(&meta))
                .map_err(|e| located(format!("cannot read {entry}: {e}")))?;
            Ok((
                format!("file:{tag}{trimmed}"),
                with_link(hex::encode(digest)),
            ))
        }
    }

    /// The digest of a file (relative to the root), through the cache, as hex. A symbolic
    /// link is followed.
    pub fn file_digest(&self, rel: &Path) -> std::io::Result<String> {
        let meta = std::fs::metadata(self.root.join(rel))?;
        self.content_digest(rel, &Stamp::of(&meta)).map(hex::encode)
    }

    /// What Docker would send of a build context (relative to the root): every file,
    /// symbolic link (not followed, as Docker sends it) and directory, relative to the
    /// context, sorted. `dockerfile` as given to `docker build -f` (None: CONTEXT/Dockerfile).
    pub fn docker_context(&self, context: &Path, dockerfile: Option<&Path>) -> Result<Vec<String>> {
        Ok(self
            .docker_context_entries(context, dockerfile)?
            .1
            .into_iter()
            .map(|f| f.rel.to_string_lossy().into_owned())
            .collect())
    }

    /// The context's walk, with paths relative to the context.
    fn docker_context_entries(
        &self,
        context: &Path,
        dockerfile: Option<&Path>,
    ) -> Result<(PathBuf, Vec<WalkedFile>)> {
        let ctx_root = self.root.join(context);
        let df = dockerfile.map(|d| self.root.join(d));
        let matcher = crate::util::dockerignore::Matcher::for_context(&ctx_root, df.as_deref())
            .map_err(|e| ErrorKind::Script.error(e))?;
        let mut files = self.walk(&ctx_root, &WalkOptions::docker(matcher, false))?;
        let prefix = ctx_root
            .strip_prefix(self.root)
            .unwrap_or(&ctx_root)
            .to_path_buf();
        for f in &mut files {
            if let Ok(r) = f.rel.strip_prefix(&prefix) {
                f.rel = r.to_path_buf();
            }
        }
        Ok((prefix, files))
    }

    /// The digest of the part of a build context that `sources` (context-relative files,
    /// directories or globs, from the Dockerfile's COPY/ADD) name; all of it when `None`. The
    /// context is what Docker would send (see [`Fingerprinter::docker_context`]).
    pub fn context_digest(
        &self,
        context: &Path,
        dockerfile: Option<&Path>,
        sources: Option<&[String]>,
    ) -> Result<String> {
        let (prefix, files) = self.docker_context_entries(context, dockerfile)?;
        let mut globs = Vec::new();
        let mut prefixes = Vec::new();
        let mut remote = Vec::new();
        for s in sources.unwrap_or_default() {
            if s.contains("://") || s.starts_with("git@") {
                remote.push(s.clone());
            } else if s.contains(['*', '?', '[']) {
                let g = globset::GlobBuilder::new(s)
                    .literal_separator(true)
                    .build()
                    .or_fail(ErrorKind::Script, || format!("bad COPY source {s:?}"))?;
                globs.push(g.compile_matcher());
            } else {
                prefixes.push(s.clone());
            }
        }
        let selected: Vec<WalkedFile> = files
            .into_iter()
            .filter(|f| {
                sources.is_none()
                    || crate::util::dockerfile::matches(&globs, &prefixes, &f.rel.to_string_lossy())
            })
            .map(|mut f| {
                // back to root-relative paths, for the hash cache
                f.rel = prefix.join(&f.rel);
                f
            })
            .collect();
        let mut digest = self.hash_list(&selected)?;
        if !remote.is_empty() {
            digest = sha256_hex(format!("{digest}\n{}", remote.join("\n")).as_bytes());
        }
        Ok(digest)
    }

    /// Entries under `dir` (root-relative or absolute), relative to the root, sorted by bytes,
    /// as `opts` says, skipping the excluded folders (`walk::walk`).
    fn walk(&self, dir: &Path, opts: &WalkOptions) -> Result<Vec<WalkedFile>> {
        let exclude: Vec<PathBuf> = self.exclude.iter().map(|e| self.root.join(e)).collect();
        walk(self.root, &exclude, dir, opts, self.cache)
    }

    /// Files matching a glob (relative to the root), sorted. Symbolic links are followed;
    /// ignore files do not apply unless `gitignore`.
    fn glob(&self, step: &Step, pattern: &str, gitignore: bool) -> Result<Vec<WalkedFile>> {
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| {
                ErrorKind::Script.error(format!(
                    "{}:{}: step `{}`: bad glob {pattern:?}: {e}",
                    step.file, step.decl_line, step.name
                ))
            })?
            .compile_matcher();
        // Walk only below the longest directory prefix without glob characters.
        let base = glob_base(pattern);
        let start = self.root.join(&base);
        if !start.is_dir() {
            return Ok(Vec::new());
        }
        let opts = if gitignore {
            WalkOptions::gitignore()
        } else {
            WalkOptions::everything()
        };
        Ok(self
            .walk(&start, &opts)?
            .into_iter()
            .filter(|f| matcher.is_match(&f.rel))
            .collect())
    }

    /// Digest over each entry's piece (which covers its relative path).
    fn hash_list(&self, files: &[WalkedFile]) -> Result<String> {
        let mut h = Sha256::new();
        // In chunks: the pieces of a large tree are never all in memory at once.
        for chunk in files.chunks(4096) {
            let pieces: Vec<Piece> = chunk
                .par_iter()
                .map(|f| {
                    self.piece(f).or_fail(ErrorKind::Script, || {
                        format!("cannot read {}", f.rel.display())
                    })
                })
                .collect::<Result<_>>()?;
            Self::hash_pieces(&mut h, pieces);
        }
        Ok(hex::encode(h.finalize()))
    }

    fn hash_pieces(h: &mut Sha256, pieces: Vec<Piece>) {
        for p in pieces {
            match p {
                Piece::Content(d) => {
                    h.update(b"f");
                    h.update(d);
                }
                Piece::ContentMode(d, mode) => {
                    h.update(b"m");
                    h.update(d);
                    h.update(mode.to_le_bytes());
                }
                Piece::Bytes(tag, b) => {
                    h.update([tag]);
                    h.update((b.len() as u64).to_le_bytes());
                    h.update(b);
                }
            }
        }
    }

    /// What an entry contributes: a file its relative path and content (through the cache),
    /// plus its permission bits in a Docker context; a followed link also its target path; a
    /// link that is not followed its target path; a directory (Docker contexts list them) its
    /// path and permission bits.
    fn piece(&self, f: &WalkedFile) -> std::io::Result<Piece> {
        use std::os::unix::ffi::OsStrExt;
        let rel = f.rel.as_path();
        let mode = f.meta.mode & 0o7777;
        let framed = |parts: &[&[u8]]| {
            let mut v = Vec::new();
            for p in parts {
                v.extend_from_slice(&(p.len() as u64).to_le_bytes());
                v.extend_from_slice(p);
            }
            v
        };
        // kept with the directory's listing, for an unchanged file: no lookup by path
        let content = || match f.cached {
            Some(d) => Ok(d),
            None => self.content_digest(rel, &f.meta.stamp),
        };
        Ok(match f.kind {
            Kind::File => Piece::Content(content()?),
            Kind::DockerFile => Piece::ContentMode(content()?, mode),
            Kind::FollowedLink => {
                let content = self.content_digest(rel, &f.meta.stamp)?;
                let target = std::fs::read_link(self.root.join(rel))?;
                Piece::Bytes(b'l', framed(&[&content, target.as_os_str().as_bytes()]))
            }
            Kind::Link => {
                let target = std::fs::read_link(self.root.join(rel))?;
                Piece::Bytes(
                    b's',
                    framed(&[rel.as_os_str().as_bytes(), target.as_os_str().as_bytes()]),
                )
            }
            Kind::Dir => Piece::Bytes(
                b'd',
                framed(&[rel.as_os_str().as_bytes(), &mode.to_le_bytes()]),
            ),
        })
    }

    /// SHA-256 of a file's relative path and content, through the cache (`stamp`: the stat
    /// of what is read: the target when a link is followed).
    fn content_digest(
        &self,
        rel: &Path,
        stamp: &Stamp,
    ) -> std::io::Result<crate::decide::hashcache::Digest> {
        use std::os::unix::ffi::OsStrExt;
        let stamp = *stamp;
        if let Some(d) = self.cache.and_then(|c| c.get(rel, &stamp)) {
            return Ok(d);
        }
        let hashed_at = self.cache.map(|c| c.hashed_at()).unwrap_or(0);
        let abs = self.root.join(rel);
        let mut h = Sha256::new();
        h.update(rel.as_os_str().as_bytes());
        h.update([0]);
        let mut f = std::fs::File::open(&abs)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let digest: crate::decide::hashcache::Digest = h.finalize().into();
        if let Some(c) = self.cache {
            c.put(rel, stamp, digest, hashed_at);
        }
        Ok(digest)
    }
}

/// What one walked entry adds to a list's digest.
enum Piece {
    Content(crate::decide::hashcache::Digest),
    ContentMode(crate::decide::hashcache::Digest, u32),
    Bytes(u8, Vec<u8>),
}

/// The `files` prefix that makes `.gitignore` files apply to a directory or glob.
pub const GITIGNORE_PREFIX: &str = "gitignore:";

/// The hash cache seen through fingerprints: what it saves and what it must never hide.
#[cfg(test)]
mod cache_tests;
