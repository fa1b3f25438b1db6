//! The reports folder (`.stepwise/reports/`, beside the logs): one `RUN_ID.html` per
//! deployment and its `RUN_ID.json` summary (the `--output json` document, read back for
//! medians and trends); the last [`KEEP`] runs are kept. `plan.html` is the latest
//! `stepwise report --plan`.

use crate::present::summary::RunSummary;
use crate::util::secrets::Masker;
use anyhow::{Context, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// How many runs' reports are kept (like the state history).
pub const KEEP: usize = 50;

/// The file name of the plan report.
pub const PLAN: &str = "plan.html";

/// The reports folder inside a local folder (`.stepwise`).
pub fn dir(local: &Path) -> PathBuf {
    local.join("reports")
}

/// A kept run: its id, its HTML report, its summary (when readable).
#[derive(Debug, Clone)]
pub struct Kept {
    pub id: String,
    pub html: PathBuf,
    pub summary: Option<RunSummary>,
}

/// Writes a run's report and summary (both masked once more as a whole), then drops the oldest
/// runs beyond [`KEEP`]. Returns the report's path.
pub fn write_run(dir: &Path, summary: &RunSummary, html: &str, masker: &Masker) -> Result<PathBuf> {
    let id = &summary.run_id;
    anyhow::ensure!(valid_id(id), "bad run id {id:?}");
    let json = serde_json::to_string_pretty(summary)? + "\n";
    let html_path = dir.join(format!("{id}.html"));
    write(&dir.join(format!("{id}.json")), &masker.mask(&json))?;
    write(&html_path, &masker.mask(html))?;
    prune(dir, KEEP)?;
    Ok(html_path)
}

/// Writes the plan report (`plan.html`, replaced each time).
pub fn write_plan(dir: &Path, html: &str, masker: &Masker) -> Result<PathBuf> {
    let path = dir.join(PLAN);
    write(&path, &masker.mask(html))?;
    Ok(path)
}

fn write(path: &Path, text: &str) -> Result<()> {
    crate::util::fs::write_replace(path, text.as_bytes(), false)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A run id as stepwise makes them (`20261127T134520Z-4711`): letters, digits, `-`, `.`, `_`,
/// never a path.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Kept runs, oldest first (by the time they started, then by id).
pub fn kept(dir: &Path) -> Vec<Kept> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Kept> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let id = name.strip_suffix(".html")?.to_string();
            if !valid_id(&id) || name == PLAN {
                return None;
            }
            let summary = std::fs::read_to_string(dir.join(format!("{id}.json")))
                .ok()
                .and_then(|t| serde_json::from_str::<RunSummary>(&t).ok());
            Some(Kept {
                id,
                html: e.path(),
                summary,
            })
        })
        .collect();
    out.sort_by_key(sort_key);
    out
}

fn sort_key(k: &Kept) -> (i128, String) {
    let t = k
        .summary
        .as_ref()
        .and_then(|s| {
            time::OffsetDateTime::parse(
                &s.started_at,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
        })
        .map(|t| t.unix_timestamp_nanos())
        .unwrap_or(i128::MIN);
    (t, k.id.clone())
}

/// Removes the oldest runs (report and summary) beyond `keep`.
pub fn prune(dir: &Path, keep: usize) -> Result<()> {
    let all = kept(dir);
    for k in all.iter().take(all.len().saturating_sub(keep)) {
        for ext in ["html", "json"] {
            let p = dir.join(format!("{}.{ext}", k.id));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot remove {}", p.display())),
            }
        }
    }
    Ok(())
}

/// The summaries of the kept runs other than `except` that stay kept once one more is
/// written (the newest [`KEEP`]` - 1`), oldest first (deployments only).
pub fn history(dir: &Path, except: &str) -> Vec<RunSummary> {
    let mut all: Vec<RunSummary> = kept(dir)
        .into_iter()
        .filter(|k| k.id != except)
        .filter_map(|k| k.summary)
        .filter(|s| s.command == "deploy" && !s.dry_run)
        .collect();
    all.drain(..all.len().saturating_sub(KEEP - 1));
    all
}

/// The kept report of run `which` (`latest` or none: the newest).
pub fn find(dir: &Path, which: Option<&str>) -> Result<PathBuf> {
    let all = kept(dir);
    let found = match which {
        None | Some("latest") => all.last(),
        Some(id) => all.iter().find(|k| k.id == id),
    };
    if let Some(k) = found {
        return Ok(k.html.clone());
    }
    let msg = match (which, all.is_empty()) {
        (_, true) => format!(
            "no run report in {}: reports are written by every deployment (not --dry-run)",
            dir.display()
        ),
        (Some(id), false) => {
            let ids: Vec<&str> = all.iter().rev().take(10).map(|k| k.id.as_str()).collect();
            format!(
                "no report of run {id:?} in {}; the latest runs: {}",
                dir.display(),
                ids.join(", ")
            )
        }
        (None, false) => unreachable!("a kept run exists"),
    };
    Err(crate::util::error::usage(msg))
}

/// The last `n` lines of a log file, each at most 500 characters; reads at most the last
/// 64 KiB, so a huge log costs nothing.
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    const WINDOW: u64 = 64 * 1024;
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(WINDOW);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    let _ = f.take(WINDOW).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // a partial line
    }
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| {
            if l.chars().count() > 500 {
                let cut: String = l.chars().take(500).collect();
                format!("{cut}…")
            } else {
                l.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, started: &str) -> RunSummary {
        RunSummary {
            command: "deploy".into(),
            run_id: id.into(),
            started_at: started.into(),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_the_newest_runs_by_start_time_and_finds_them() {
        let d = tempfile::tempdir().unwrap();
        let m = Masker::new();
        // started in this order; ids sort differently on purpose
        for (i, id) in ["b-9", "a-10", "c-1", "a-2"].iter().enumerate() {
            let s = summary(id, &format!("2026-11-27T10:00:0{i}.5Z"));
            write_run(d.path(), &s, "<html/>", &m).unwrap();
        }
        prune(d.path(), 3).unwrap();
        let ids: Vec<String> = kept(d.path()).into_iter().map(|k| k.id).collect();
        assert_eq!(ids, ["a-10", "c-1", "a-2"]);
        assert!(!d.path().join("b-9.json").exists());
        assert_eq!(find(d.path(), None).unwrap(), d.path().join("a-2.html"));
        assert_eq!(
            find(d.path(), Some("c-1")).unwrap(),
            d.path().join("c-1.html")
        );
        let e = find(d.path(), Some("b-9")).unwrap_err().to_string();
        assert!(e.contains("a-2, c-1, a-10"), "{e}");
        assert!(find(d.path(), Some("../x")).is_err());
        assert_eq!(history(d.path(), "a-2").len(), 2);
    }

    #[test]
    fn writes_masked_and_refuses_path_like_ids() {
        let d = tempfile::tempdir().unwrap();
        let m = Masker::new();
        m.add("hunter2-secret");
        let mut s = summary("r-1", "2026-11-27T10:00:00Z");
        s.steps.push(crate::present::summary::StepSummary {
            name: "a".into(),
            commands: vec!["az x --p hunter2-secret".into()],
            ..Default::default()
        });
        let p = write_run(d.path(), &s, "<p>hunter2-secret</p>", &m).unwrap();
        assert!(!std::fs::read_to_string(&p).unwrap().contains("hunter2"));
        let json = std::fs::read_to_string(d.path().join("r-1.json")).unwrap();
        assert!(!json.contains("hunter2") && json.contains("***"), "{json}");
        s.run_id = "../x".into();
        assert!(write_run(d.path(), &s, "", &m).is_err());
    }

    #[test]
    fn log_tail_reads_only_the_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let mut text = "x".repeat(200_000);
        text.push('\n');
        for i in 0..30 {
            text.push_str(&format!("line {i}\n"));
        }
        std::fs::write(&p, text).unwrap();
        let t = log_tail(&p, 20);
        assert_eq!(t.len(), 20);
        assert_eq!(t[0], "line 10");
        assert_eq!(t[19], "line 29");
        assert!(log_tail(&d.path().join("none"), 5).is_empty());
    }
}
