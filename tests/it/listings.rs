//! Directory listings kept by the hash cache (issue #30): a directory whose mtime, ctime and
//! inode are unchanged is not read again, only its files are stat'ed. What must never be
//! missed: new, removed and renamed files and folders, a change within the timestamp tick of
//! the listing (the racy-clean rule), and changed `.dockerignore`/`.gitignore` rules.

use crate::support;
use std::time::Duration;
use support::{step, Project};

/// A project whose step depends on `ctx/` (a Docker context: `.dockerignore` applies), with
/// files in a few folders.
fn project() -> Project {
    let p = Project::new();
    p.step("01_image.rhai", &step(r#"files: ["ctx/"]"#, r#"log("x");"#));
    for d in ["a", "b", "b/deep"] {
        for i in 0..3 {
            p.file(&format!("ctx/{d}/f{i}.txt"), &format!("{d} {i}"));
        }
    }
    p.file("ctx/app.log", "log");
    p.file("ctx/.dockerignore", "*.log\n");
    p
}

/// Deploys after the racy window (2 s) has passed since the last change, and once more, so
/// that the cache keeps every listing; the next plan reads no directory.
fn settle(p: &Project) {
    std::thread::sleep(Duration::from_millis(2100));
    p.deploy(&[]).assert_code(0);
    p.run(&["plan"]).assert_code(0);
    p.run(&["plan", "--verbose"])
        .assert_code(0)
        .assert_contains("Plan: 0 to run")
        .assert_contains("dirs_read=0");
}

#[track_caller]
fn assert_changed(p: &Project) {
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("directory ctx/ changed");
    p.deploy(&[]).assert_code(0);
}

#[test]
fn new_removed_and_renamed_entries_of_listed_directories_are_found() {
    let p = project();
    settle(&p);
    // a new file deep down
    p.file("ctx/b/deep/new.txt", "new");
    assert_changed(&p);
    // a removed file
    std::fs::remove_file(p.path().join("ctx/a/f1.txt")).unwrap();
    assert_changed(&p);
    // a renamed file (same content, same inode)
    std::fs::rename(p.path().join("ctx/a/f0.txt"), p.path().join("ctx/a/g0.txt")).unwrap();
    assert_changed(&p);
    // a new, empty folder (Docker sends it)
    std::fs::create_dir(p.path().join("ctx/b/empty")).unwrap();
    assert_changed(&p);
    // a renamed folder
    std::fs::rename(p.path().join("ctx/b/deep"), p.path().join("ctx/b/deeper")).unwrap();
    assert_changed(&p);
    // a removed folder
    std::fs::remove_dir_all(p.path().join("ctx/b/empty")).unwrap();
    assert_changed(&p);
    // and once settled again, nothing is read and nothing runs
    settle(&p);
}

/// `.dockerignore` rewritten in place (its folder's listing unchanged): the cached listing
/// is filtered by the new rules.
#[test]
fn changed_ignore_rules_apply_to_cached_listings() {
    let p = project();
    settle(&p);
    p.file("ctx/.dockerignore", "*.log\nb/deep/\n");
    assert_changed(&p);
    p.file("ctx/.dockerignore", "*.log\n");
    assert_changed(&p);
    // gitignore: the same for a `.gitignore` rewritten in place
    p.step(
        "02_tools.rhai",
        &step(r#"files: ["gitignore:tools/"]"#, r#"log("y");"#),
    );
    p.file("tools/sub/a.txt", "a").file("tools/sub/b.tmp", "b");
    p.file("tools/.gitignore", "*.tmp\n");
    settle(&p);
    p.file("tools/.gitignore", "*.txt\n");
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("directory tools/ (without .gitignore'd files) changed");
}

/// A file created in a directory within the same timestamp tick as the directory was listed
/// leaves the directory's (coarse) mtime as it was: the listing must not be trusted. The
/// file system's 2 s ticks (FAT) are simulated.
#[test]
fn a_file_created_within_the_tick_of_the_listing_is_found() {
    use std::os::unix::fs::MetadataExt;
    const TICK_MS: i64 = 2000;
    let mut p = project();
    p.env("STEPWISE_TEST_TIMESTAMP_TICK_MS", &TICK_MS.to_string());
    let tick_of = |p: &Project| {
        let m = std::fs::metadata(p.path().join("ctx/a")).unwrap();
        (m.mtime() * 1000 + m.mtime_nsec() / 1_000_000) / TICK_MS
    };
    for attempt in 1..=5 {
        // Touch ctx/a right after a tick begins, list it, and add a file in the same tick.
        loop {
            p.file("ctx/a/touch.txt", &format!("{attempt}"));
            std::fs::remove_file(p.path().join("ctx/a/touch.txt")).unwrap();
            let m = std::fs::metadata(p.path().join("ctx/a")).unwrap();
            let ms = m.mtime() * 1000 + m.mtime_nsec() / 1_000_000;
            if ms % TICK_MS < 300 {
                break;
            }
            std::thread::sleep(Duration::from_millis((TICK_MS - ms % TICK_MS) as u64));
        }
        let listed = tick_of(&p);
        p.deploy(&[]).assert_code(0);
        p.file(&format!("ctx/a/new{attempt}.txt"), "new");
        if tick_of(&p) != listed {
            eprintln!("attempt {attempt}: the new file missed the tick; again");
            continue;
        }
        assert_changed(&p);
        return;
    }
    panic!("could not fit a listing and a new file into one 2 s tick in 5 attempts");
}
