//! Fingerprints: the SHA-256 of everything a step depends on (files, directories, globs,
//! config keys, its own script and the prelude), one digest per dependency plus a combined one.

use crate::config::Config;
use crate::error::usage;
use crate::hashcache::{HashCache, Stamp};
use crate::step::{sha256_hex, Step};
use anyhow::Result;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    match key.split_once(':') {
        Some(("file", p)) => format!("file {p}"),
        Some(("dir", p)) => format!("directory {p}"),
        Some(("glob", p)) => format!("files matching {p}"),
        Some(("config", k)) => format!("config {k}"),
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
pub type Memo = Mutex<std::collections::HashMap<String, (String, String, Vec<String>)>>;

/// The digest of a config value that holds a secret: Argon2id with the state's salt, slow on
/// purpose, so that a low-entropy secret cannot be guessed from a shared state by hashing
/// candidates.
pub fn secret_digest(salt: &str, canonical: &str) -> String {
    use argon2::{Algorithm, Argon2, Params, Version};
    // OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, Some(32)).expect("valid argon2 parameters");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut salt_bytes = format!("stepwise-secret-salt:{salt}").into_bytes();
    salt_bytes.resize(salt_bytes.len().max(16), 0);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(canonical.as_bytes(), &salt_bytes, &mut out)
        .expect("argon2 hashes");
    format!("argon2id:{}", hex::encode(out))
}

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
            let canonical = self.config.canonical(key);
            let digest = if self.config.has_secret(key) {
                secret_digest(self.secret_salt.unwrap_or(""), &canonical)
            } else {
                sha256_hex(canonical.as_bytes())
            };
            fp.dependencies.insert(format!("config:{key}"), digest);
        }
        for name in &step.env {
            let value = crate::reads::env_value(name);
            let digest = crate::reads::env_digest(value.as_deref(), self.secret_salt.unwrap_or(""));
            fp.dependencies.insert(format!("env:{name}"), digest);
        }
        for pattern in &step.files {
            let expanded = self.interpolate(step, pattern)?;
            self.check_inside_root(step, pattern, &expanded)?;
            if !is_glob(&expanded) {
                let trimmed = expanded.trim_end_matches('/');
                let path = self
                    .root
                    .join(if trimmed.is_empty() { "." } else { trimmed });
                if matches!(std::fs::symlink_metadata(&path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
                {
                    fp.missing.push(expanded);
                    continue;
                }
            }
            let memoized = self
                .memo
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&expanded)
                .cloned();
            let (key, digest, warnings) = match memoized {
                Some(m) => m,
                None => {
                    let mut warnings = Vec::new();
                    let (key, digest) = self.hash_entry(step, &expanded, &mut warnings)?;
                    let m = (key, digest, warnings);
                    self.memo
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(expanded.clone(), m.clone());
                    m
                }
            };
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
            usage(format!(
                "{}:{}: step `{}`: files entry {e}",
                step.file, step.decl_line, step.name
            ))
        })
    }

    fn check_inside_root(&self, step: &Step, pattern: &str, path: &str) -> Result<()> {
        let p = Path::new(path);
        let escapes = p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir));
        if escapes && !self.config.settings.advanced.allow_paths_outside_root {
            return Err(usage(format!(
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
        let is_glob = is_glob(entry);
        if is_glob {
            let files = self.glob(step, entry)?;
            if files.is_empty() {
                warnings.push(format!(
                    "step `{}`: files entry {entry:?} matches no file",
                    step.name
                ));
            }
            return Ok((format!("glob:{entry}"), self.hash_list(&files)?));
        }
        let trimmed = entry.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "." } else { trimmed };
        let path = self.root.join(trimmed);
        let meta = std::fs::metadata(&path).map_err(|e| {
            let what = if e.kind() == std::io::ErrorKind::NotFound {
                "does not exist".to_string()
            } else {
                format!("cannot be read: {e}")
            };
            usage(format!(
                "step `{}` ({}:{}): declared file {entry} {what}",
                step.name, step.file, step.decl_line
            ))
        })?;
        if !meta.is_dir() && !meta.is_file() {
            return Err(usage(format!(
                "step `{}` ({}:{}): declared file {entry} is not a regular file or directory (a FIFO, socket or device cannot be hashed)",
                step.name, step.file, step.decl_line
            )));
        }
        if meta.is_dir() {
            let files = self.walk(&path)?;
            Ok((format!("dir:{trimmed}/"), self.hash_list(&files)?))
        } else {
            let digest = self.file_digest(Path::new(trimmed)).map_err(|e| {
                usage(format!(
                    "step `{}` ({}:{}): cannot read {entry}: {e}",
                    step.name, step.file, step.decl_line
                ))
            })?;
            Ok((format!("file:{trimmed}"), digest))
        }
    }

    /// The digest of a file (relative to the root), through the cache, as hex.
    pub fn file_digest(&self, rel: &Path) -> std::io::Result<String> {
        self.hash_file(rel).map(hex::encode)
    }

    /// The digest of the part of a build context that `sources` (context-relative files,
    /// directories or globs, from the Dockerfile's COPY/ADD) name; all of it when `None`.
    /// The context's `.dockerignore` applies either way.
    pub fn context_digest(&self, context: &Path, sources: Option<&[String]>) -> Result<String> {
        let files = self.walk(&self.root.join(context))?;
        let Some(sources) = sources else {
            return self.hash_list(&files);
        };
        let mut globs = Vec::new();
        let mut prefixes = Vec::new();
        let mut remote = Vec::new();
        for s in sources {
            if s.contains("://") || s.starts_with("git@") {
                remote.push(s.clone());
            } else if s.contains(['*', '?', '[']) {
                let g = globset::GlobBuilder::new(s)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| usage(format!("bad COPY source {s:?}: {e}")))?;
                globs.push(g.compile_matcher());
            } else {
                prefixes.push(s.clone());
            }
        }
        let ctx_root = self.root.join(context);
        let selected: Vec<WalkedFile> = files
            .into_iter()
            .filter(|f| {
                let abs = self.root.join(&f.rel);
                let rel = abs.strip_prefix(&ctx_root).unwrap_or(&abs);
                crate::dockerfile::matches(&globs, &prefixes, &rel.to_string_lossy())
            })
            .collect();
        let mut digest = self.hash_list(&selected)?;
        if !remote.is_empty() {
            digest = sha256_hex(format!("{digest}\n{}", remote.join("\n")).as_bytes());
        }
        Ok(digest)
    }

    /// Files under `dir` (root-relative or absolute), relative to the root, sorted by bytes,
    /// with their `lstat`; honours `.gitignore` and `.dockerignore` in `dir` and below (the
    /// deepest match decides, `!` re-includes), skips `.git` and the excluded folders. Walks
    /// directories in parallel; each entry is stat'ed relative to its open directory (no path
    /// lookup from the root), which is most of the cost of a no-op run.
    fn walk(&self, dir: &Path) -> Result<Vec<WalkedFile>> {
        let exclude: Vec<PathBuf> = self.exclude.iter().map(|e| self.root.join(e)).collect();
        let out: Mutex<Vec<WalkedFile>> = Mutex::new(Vec::new());
        let error: Mutex<Option<String>> = Mutex::new(None);
        let ctx = WalkCtx {
            root: self.root,
            exclude: &exclude,
            out: &out,
            error: &error,
        };
        rayon::scope(|s| walk_dir(s, &ctx, dir.to_path_buf(), Arc::new(Vec::new())));
        if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(usage(format!("cannot walk {}: {e}", dir.display())));
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

    /// Files matching a glob (relative to the root), sorted.
    fn glob(&self, step: &Step, pattern: &str) -> Result<Vec<WalkedFile>> {
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| {
                usage(format!(
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
        Ok(self
            .walk(&start)?
            .into_iter()
            .filter(|f| matcher.is_match(&f.rel))
            .collect())
    }

    /// Digest over (relative path, file digest) of each file.
    fn hash_list(&self, files: &[WalkedFile]) -> Result<String> {
        let digests: Vec<crate::hashcache::Digest> = files
            .par_iter()
            .map(|f| {
                self.hash_file_with(&f.rel, Some(&f.meta))
                    .map_err(|e| usage(format!("cannot read {}: {e}", f.rel.display())))
            })
            .collect::<Result<_>>()?;
        let mut h = Sha256::new();
        for d in digests {
            h.update(d);
        }
        Ok(hex::encode(h.finalize()))
    }

    /// SHA-256 of a file's relative path and content (a symlink: of its target path).
    fn hash_file(&self, rel: &Path) -> std::io::Result<crate::hashcache::Digest> {
        self.hash_file_with(rel, None)
    }

    /// Like `hash_file`, with the file's `lstat` when the walk already has it.
    fn hash_file_with(
        &self,
        rel: &Path,
        meta: Option<&std::fs::Metadata>,
    ) -> std::io::Result<crate::hashcache::Digest> {
        use std::os::unix::ffi::OsStrExt;
        let owned;
        let meta = match meta {
            Some(m) => m,
            None => {
                owned = std::fs::symlink_metadata(self.root.join(rel))?;
                &owned
            }
        };
        let stamp = Stamp::of(meta);
        if let Some(d) = self.cache.and_then(|c| c.get(rel, &stamp)) {
            return Ok(d);
        }
        let abs = self.root.join(rel);
        let mut h = Sha256::new();
        h.update(rel.as_os_str().as_bytes());
        h.update([0]);
        if meta.file_type().is_symlink() {
            h.update(b"symlink\0");
            h.update(std::fs::read_link(&abs)?.as_os_str().as_bytes());
        } else {
            let mut f = std::fs::File::open(&abs)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        let digest: crate::hashcache::Digest = h.finalize().into();
        if let Some(c) = self.cache {
            c.put(rel, stamp, digest);
        }
        Ok(digest)
    }
}

/// A file found by a walk: its root-relative path and its `lstat`.
pub struct WalkedFile {
    pub rel: PathBuf,
    pub meta: std::fs::Metadata,
}

struct WalkCtx<'a> {
    root: &'a Path,
    exclude: &'a [PathBuf],
    out: &'a Mutex<Vec<WalkedFile>>,
    error: &'a Mutex<Option<String>>,
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

fn walk_dir<'s>(
    scope: &rayon::Scope<'s>,
    ctx: &'s WalkCtx<'s>,
    dir: PathBuf,
    parents: Arc<Vec<ignore::gitignore::Gitignore>>,
) {
    let fail = |e: String| {
        let mut slot = ctx.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    };
    let entries: Vec<std::fs::DirEntry> = match std::fs::read_dir(&dir) {
        Ok(rd) => match rd.collect::<std::io::Result<_>>() {
            Ok(v) => v,
            Err(e) => return fail(format!("{}: {e}", dir.display())),
        },
        Err(e) => return fail(format!("{}: {e}", dir.display())),
    };
    let mut matchers = parents;
    let ignore_files: Vec<PathBuf> = entries
        .iter()
        .filter(|e| e.file_name() == ".gitignore" || e.file_name() == ".dockerignore")
        .map(|e| e.path())
        .collect();
    if !ignore_files.is_empty() {
        let mut b = ignore::gitignore::GitignoreBuilder::new(&dir);
        for f in ignore_files {
            if let Some(e) = b.add(&f) {
                return fail(format!("{}: {e}", f.display()));
            }
        }
        match b.build() {
            Ok(g) => {
                let mut v = (*matchers).clone();
                v.push(g);
                matchers = Arc::new(v);
            }
            Err(e) => return fail(format!("{}: {e}", dir.display())),
        }
    }
    let mut found = Vec::new();
    for e in entries {
        if e.file_name() == ".git" {
            continue;
        }
        let path = e.path();
        if ctx.exclude.iter().any(|x| x == &path) {
            continue;
        }
        let ft = match e.file_type() {
            Ok(ft) => ft,
            Err(err) => return fail(format!("{}: {err}", path.display())),
        };
        if ignored(&matchers, &path, ft.is_dir()) {
            continue;
        }
        if ft.is_dir() {
            let m = matchers.clone();
            scope.spawn(move |s| walk_dir(s, ctx, path, m));
        } else if ft.is_file() || ft.is_symlink() {
            // relative to the open directory: no lookup of the whole path
            let meta = match e.metadata() {
                Ok(m) => m,
                Err(err) => return fail(format!("{}: {err}", path.display())),
            };
            let rel = path.strip_prefix(ctx.root).unwrap_or(&path).to_path_buf();
            found.push(WalkedFile { rel, meta });
        }
    }
    ctx.out
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(found);
}
