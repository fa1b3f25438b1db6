//! File watching for `stepwise watch`: what to watch (the selected steps' dependencies plus
//! `steps/`, `prelude.rhai` and the config, minus ignore rules), the OS watcher with a
//! debouncer or stat-based polling, and which changes of a batch concern us. The cycles that
//! plan and run are in `commands::watch`.

use crate::app::options::LoadOptions;
use crate::app::project::Project;
use crate::decide::fingerprint::{describe, Fingerprint};
use crate::sys::process;
use crate::util::error::{Failure, Kind};
use anyhow::Result;
use notify::{EventKind, RecursiveMode};
pub(crate) use notify_debouncer_full::DebounceEventResult;
use notify_debouncer_full::{new_debouncer_opt, RecommendedCache};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Directories whose changes never matter.
const IGNORED_DIRS: &[&str] = &[
    crate::util::paths::LOCAL_DIR,
    ".git",
    "target",
    "node_modules",
];

/// What to watch: directories (recursive) and single files (through their parent directory,
/// so that editors' write-and-rename saves are seen).
#[derive(Debug, Default)]
pub(crate) struct WatchSet {
    dirs: BTreeSet<PathBuf>,
    files: BTreeSet<PathBuf>,
    /// Each watched directory's `.gitignore` and `.dockerignore`: what they exclude is not
    /// watched (it is not hashed either).
    ignores: Vec<(PathBuf, ignore::gitignore::Gitignore)>,
}

impl PartialEq for WatchSet {
    fn eq(&self, other: &Self) -> bool {
        self.dirs == other.dirs && self.files == other.files
    }
}

impl WatchSet {
    pub(crate) fn of(p: &Project, o: &LoadOptions) -> WatchSet {
        let mut set = WatchSet::default();
        let selected =
            |name: &str| o.deploy.only.is_empty() || o.deploy.only.iter().any(|o| o == name);
        for s in p.steps.steps.iter().filter(|s| selected(&s.name)) {
            for entry in &s.files {
                // An entry that does not resolve is reported by the cycle's fingerprinting.
                let Ok(entry) = p.config.interpolate(entry) else {
                    continue;
                };
                let base = crate::decide::fingerprint::glob_base(&entry);
                let is_glob = crate::decide::fingerprint::is_glob(&entry);
                let path = if base.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    base
                };
                if is_glob || path.is_dir() {
                    set.dirs.insert(path);
                } else {
                    set.files.insert(path);
                }
            }
        }
        set.dirs.insert(o.steps.clone());
        set.files.insert(o.prelude.clone());
        set.files.insert(o.config.clone());
        // An environment's overlay (`config.NAME.yaml`).
        set.files.extend(p.config.overlay.clone());
        for d in &set.dirs {
            let mut b = ignore::gitignore::GitignoreBuilder::new(d);
            for name in [".gitignore", ".dockerignore"] {
                let f = d.join(name);
                if f.is_file() {
                    let _ = b.add(f);
                }
            }
            if let Ok(g) = b.build() {
                set.ignores.push((clean(d), g));
            }
        }
        set
    }

    /// Does a changed path concern us?
    fn concerns(&self, root: &Path, path: &Path) -> bool {
        let rel = path.strip_prefix(root).unwrap_or(path);
        if rel
            .components()
            .any(|c| IGNORED_DIRS.iter().any(|d| c.as_os_str() == *d))
        {
            return false;
        }
        let rel = clean(rel);
        let ignored = self.ignores.iter().any(|(d, g)| {
            rel.strip_prefix(d).is_ok_and(|inner| {
                g.matched_path_or_any_parents(inner, path.is_dir())
                    .is_ignore()
            })
        });
        if ignored && !self.files.iter().any(|f| clean(f) == rel) {
            return false;
        }
        self.files.iter().any(|f| clean(f) == rel)
            || self.dirs.iter().any(|d| {
                let d = clean(d);
                d.as_os_str().is_empty() || rel.starts_with(&d)
            })
    }
}

fn clean(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// The OS file watcher, debounced.
type Watcher = notify_debouncer_full::Debouncer<notify::RecommendedWatcher, RecommendedCache>;

fn is_limit(e: &notify::Error) -> bool {
    matches!(e.kind, notify::ErrorKind::MaxFilesWatch)
        || matches!(&e.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::ENOSPC))
}

/// The OS watcher, or `None` when watch must poll (asked with `--poll`, or the OS watch limit
/// is reached).
pub(crate) fn start_watcher(
    set: &WatchSet,
    debounce: Duration,
    poll: Option<Duration>,
    tx: mpsc::Sender<DebounceEventResult>,
) -> Result<Option<Watcher>> {
    let native = || -> notify::Result<Watcher> {
        let tx = tx.clone();
        let d = new_debouncer_opt::<_, notify::RecommendedWatcher, RecommendedCache>(
            debounce,
            None,
            move |r| {
                let _ = tx.send(r);
            },
            RecommendedCache::new(),
            notify::Config::default(),
        )?;
        let mut w = d;
        add_paths(&mut w, set)?;
        Ok(w)
    };
    if poll.is_some() {
        return Ok(None);
    }
    match native() {
        Ok(w) => Ok(Some(w)),
        Err(e) if is_limit(&e) => {
            eprintln!(
                "warning: the system's file watch limit is reached (fs.inotify.max_user_watches): falling back to polling every {} ms (raise the limit, or choose the interval with --poll MS)",
                POLL_FALLBACK.as_millis()
            );
            Ok(None)
        }
        Err(e) => Err(Failure::caused_by(Kind::Usage, "cannot watch files", e).into()),
    }
}

/// The polling interval when the OS watch limit is reached.
pub(crate) const POLL_FALLBACK: Duration = Duration::from_millis(500);

fn add_paths(w: &mut Watcher, set: &WatchSet) -> notify::Result<()> {
    for d in &set.dirs {
        if d.is_dir() {
            w.watch(d, RecursiveMode::Recursive)?;
        }
    }
    let mut parents = BTreeSet::new();
    for f in &set.files {
        let parent = f
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !set
            .dirs
            .iter()
            .any(|d| clean(parent).starts_with(clean(d)) && d.is_dir())
        {
            parents.insert(parent.to_path_buf());
        }
    }
    for p in parents {
        if p.is_dir() {
            w.watch(&p, RecursiveMode::NonRecursive)?;
        }
    }
    Ok(())
}

/// Changed paths in a batch that concern us (creations, modifications, removals, renames;
/// never reads, so hashing a file does not start a new cycle).
pub(crate) fn relevant(
    root: &Path,
    set: &WatchSet,
    batch: &DebounceEventResult,
) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let Ok(events) = batch else {
        return out;
    };
    for e in events {
        let counts = matches!(
            e.kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(notify::event::ModifyKind::Data(_))
                | EventKind::Modify(notify::event::ModifyKind::Name(_))
                | EventKind::Modify(notify::event::ModifyKind::Any)
                // what the polling watcher reports for a write
                | EventKind::Modify(notify::event::ModifyKind::Metadata(
                    notify::event::MetadataKind::WriteTime
                ))
                | EventKind::Access(notify::event::AccessKind::Close(
                    notify::event::AccessMode::Write
                ))
        );
        if !counts {
            continue;
        }
        for p in &e.paths {
            if set.concerns(root, p) {
                out.insert(p.strip_prefix(root).unwrap_or(p).to_path_buf());
            }
        }
    }
    out
}

/// Polling: every `every`, reload the steps and config and re-fingerprint (the hash cache
/// makes that a `stat` per file, compared to the nanosecond, ctime included); returns the
/// dependencies that changed since the last cycle, or `None` when interrupted.
pub(crate) fn poll_changes(
    o: &LoadOptions,
    project: &mut Project,
    last: &HashMap<String, Fingerprint>,
    salt: &str,
    every: Duration,
) -> Result<Option<BTreeSet<String>>> {
    let mut last_error: Option<String> = None;
    loop {
        let wake = Instant::now() + every;
        while Instant::now() < wake {
            if process::stopping() {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let reloaded = Project::load(o, true).and_then(|p| {
            let fps = p.fingerprints(Some(salt))?;
            p.hash_cache.save();
            Ok((p, fps))
        });
        let (p, fps) = match reloaded {
            Ok(x) => x,
            Err(e) => {
                let msg = format!("{e:#}");
                if last_error.as_ref() != Some(&msg) {
                    let tag = match &project.env {
                        Some(env) => format!("[watch {env}]"),
                        None => "[watch]".to_string(),
                    };
                    project.console.error(&format!(
                        "{msg}\n{tag} fix it and save: watch goes on with the last good steps and config"
                    ));
                    last_error = Some(msg);
                }
                continue;
            }
        };
        let mut changed = BTreeSet::new();
        if last_error.is_some() {
            changed.insert("fixed steps or config".to_string());
        }
        for (s, fp) in p.steps.steps.iter().zip(&fps) {
            match last.get(&s.name) {
                None => {
                    changed.insert(format!("step {}", s.name));
                }
                Some(old) => {
                    for (k, v) in &fp.dependencies {
                        if old.dependencies.get(k) != Some(v) {
                            changed.insert(describe(k));
                        }
                    }
                    for k in old.dependencies.keys() {
                        if !fp.dependencies.contains_key(k) {
                            changed.insert(describe(k));
                        }
                    }
                }
            }
        }
        *project = p;
        if !changed.is_empty() {
            return Ok(Some(changed));
        }
    }
}
