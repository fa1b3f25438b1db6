//! The hash cache seen through fingerprints: what it saves and what it must never hide.

use super::Fingerprinter;
use crate::config::Config;
use crate::decide::hashcache::*;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

fn step_with(files: &[&str]) -> crate::decide::step::Step {
    let engine = crate::decide::script::sandbox();
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
    crate::decide::step::load_step(&engine, &path).unwrap()
}

fn fingerprint(root: &Path, cache: &HashCache, step: &crate::decide::step::Step) -> String {
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
