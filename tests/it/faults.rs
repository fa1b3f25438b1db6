//! Crashes, cancelled pipelines and concurrent runs: state always parses, every step it marks
//! completed really completed, the next run finishes the deployment, and of two runs on one
//! state exactly one runs. Counts are printed for the reliability report.

use crate::support;
use std::process::Child;
use std::time::{Duration, Instant};
use support::{step, wait_for, Azurite, Project};

/// A small deterministic random source (the seed is printed, so a failure can be replayed
/// with `STEPWISE_FAULT_SEED`).
struct Rng(u64);
impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("STEPWISE_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("fault seed: {seed}");
        Rng(seed | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
    /// A source of its own for one of several threads (derived from this one: a printed seed
    /// still replays every thread's draws).
    fn split(&mut self) -> Rng {
        self.below(u64::MAX);
        Rng(self.0.rotate_left(29) | 1)
    }
}

/// Runs `work(i, rng)` for each worker `i` in `0..workers` at the same time, each on a thread
/// with a random source of its own, for trials that share nothing (each in its own folder or
/// state location): they mostly wait on processes and timers, so they overlap well. A panic
/// of any worker is the test's panic, with its message.
fn in_parallel(workers: usize, rng: &mut Rng, work: impl Fn(usize, &mut Rng) + Sync) {
    let rngs: Vec<Rng> = (0..workers).map(|_| rng.split()).collect();
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = rngs
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| scope.spawn(move || work(i, &mut r)))
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        for r in results {
            if let Err(panic) = r {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

/// How many trials of `n` worker `i` of `workers` runs (all of them together: `n`).
fn share(n: usize, workers: usize, i: usize) -> usize {
    n / workers + usize::from(i < n % workers)
}

const STEPS: &[(&str, &str)] = &[
    ("01_a.rhai", ""),
    ("02_b.rhai", r#"needs: ["a"]"#),
    ("03_c.rhai", r#"needs: ["a"]"#),
    ("04_d.rhai", r#"needs: ["b", "c"]"#),
    ("05_e.rhai", r#"needs: ["d"]"#),
];

/// A project whose fake az (a shell script, fast) records each finished call in done.log.
fn project(sleep: &str) -> Project {
    let mut p = Project::new();
    support::shell_az(
        &p,
        "sleep \"$FAKE_SLEEP\"\nprintf '%s\\n' \"$1\" >> \"$FAKE_DONE_LOG\"\necho '{}'\n",
    );
    let done = p.path().join("done.log").display().to_string();
    p.env("FAKE_DONE_LOG", &done).env("FAKE_SLEEP", sleep);
    for (file, decl) in STEPS {
        let name = &file[3..file.len() - 5];
        p.step(file, &step(decl, &format!("az([\"{name}\"]);")));
    }
    p
}

fn done(p: &Project) -> Vec<String> {
    p.read("done.log").lines().map(str::to_string).collect()
}

/// The state as the file (or blob) holds it now: it must parse.
fn state_now(p: &Project, blob: bool) -> serde_json::Value {
    if blob {
        let r = p.run(&["state", "show"]);
        assert_eq!(r.code, 0, "state does not load: {}", r.stderr);
        serde_json::from_str(&r.stdout).expect("state parses")
    } else {
        let text = p.read(".stepwise/state.json");
        if text.is_empty() {
            return serde_json::json!({"steps": {}});
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("state does not parse: {e}\n{text}"))
    }
}

fn completed(state: &serde_json::Value) -> Vec<String> {
    state["steps"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, r)| r["status"] == "completed")
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn kill(child: &mut Child, sig: i32) -> Option<i32> {
    unsafe { libc::kill(child.id() as i32, sig) };
    child.wait().unwrap().code()
}

/// One crash: start a deployment, SIGKILL it after `delay`, check the state, finish the
/// deployment with another run, check that nothing completed before was run again.
fn crash_once(p: &Project, delay: Duration, blob: bool, lock_wait: &str) {
    let _ = std::fs::remove_file(p.path().join("done.log"));
    let mut child = p.spawn(&["--auto-approve"]);
    std::thread::sleep(delay);
    kill(&mut child, libc::SIGKILL);
    let state = state_now(p, blob);
    let done_before = done(p);
    let completed_before = completed(&state);
    for s in &completed_before {
        assert!(
            done_before.contains(s),
            "state says {s} completed, but its az call never finished"
        );
    }
    let r = p.deploy(&["--lock-timeout", lock_wait]);
    r.assert_code(0);
    let state = state_now(p, blob);
    assert_eq!(completed(&state).len(), STEPS.len(), "{}", r.stdout);
    let done_after = done(p);
    for s in &completed_before {
        let n = done_after.iter().filter(|d| *d == s).count();
        assert_eq!(n, 1, "{s} was completed before the crash but ran again");
    }
}

/// Trials of the SIGKILL tests that run at the same time (each worker with a project and a
/// state of its own; the trial counts are the same). On blob state one at a time: its runs
/// hold a lock of 1 s lifetime that must be renewed within 0.5 s, which runs alongside each
/// other (2 or 4 workers) missed on the loaded 2 cores, losing their lock (exit 4).
const CRASH_WORKERS: usize = 4;
const BLOB_CRASH_WORKERS: usize = 1;

#[test]
fn sigkill_at_random_points_of_200_local_deployments_loses_nothing() {
    let mut rng = Rng::new();
    let n = 200;
    let crashed = std::sync::atomic::AtomicUsize::new(0);
    in_parallel(CRASH_WORKERS, &mut rng, |w, rng| {
        let mut p = project("0.02");
        p.local_state();
        // How long a whole deployment takes (with the other workers running), to spread the
        // kills over it.
        let t0 = Instant::now();
        p.deploy(&[]).assert_code(0);
        let full = t0.elapsed().as_millis() as u64 + 20;
        for _ in 0..share(n, CRASH_WORKERS, w) {
            let _ = std::fs::remove_file(p.path().join(".stepwise/state.json"));
            crash_once(&p, Duration::from_millis(rng.below(full)), false, "0s");
            crashed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        eprintln!("crash test (local), worker {w}: kills at random points over {full} ms");
    });
    let crashed = crashed.into_inner();
    assert_eq!(crashed, n);
    eprintln!("crash test (local): {crashed} deployments killed with SIGKILL at random points ({CRASH_WORKERS} at a time); all recovered");
}

#[test]
fn sigkill_at_random_points_of_50_blob_deployments_loses_nothing() {
    let az = Azurite::start();
    let mut rng = Rng::new();
    let n = 50;
    let crashed = std::sync::atomic::AtomicUsize::new(0);
    in_parallel(BLOB_CRASH_WORKERS, &mut rng, |w, rng| {
        let mut full = 0;
        for i in 0..share(n, BLOB_CRASH_WORKERS, w) {
            let mut p = project("0.02");
            p.on_blob(&az, &az.new_location());
            p.env("STEPWISE_LOCK_LIFETIME", "1");
            if i == 0 {
                let t0 = Instant::now();
                p.deploy(&[]).assert_code(0);
                full = t0.elapsed().as_millis() as u64 + 50;
                p.run(&["state", "reset"]).assert_code(0);
            }
            // a killed run's lock expires within its 1 s lifetime: the next run waits for it
            crash_once(&p, Duration::from_millis(rng.below(full)), true, "15s");
            crashed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        eprintln!("crash test (blob), worker {w}: kills at random points over {full} ms");
    });
    let crashed = crashed.into_inner();
    assert_eq!(crashed, n);
    eprintln!("crash test (blob): {crashed} deployments killed with SIGKILL at random points ({BLOB_CRASH_WORKERS} at a time); all recovered");
}

/// SIGTERM or SIGINT at random points of a run with many quick steps (so that many land
/// during a state write): the run stops with the documented code, state parses, no temporary
/// file is left, everything marked completed completed.
fn cancel_many(sig: i32, expected: i32, rng: &mut Rng) {
    let mut p = Project::new();
    p.local_state();
    support::shell_az(
        &p,
        "printf '%s\\n' \"$1\" >> \"$FAKE_DONE_LOG\"\necho '{}'\n",
    );
    let done_log = p.path().join("done.log").display().to_string();
    p.env("FAKE_DONE_LOG", &done_log);
    for i in 0..30 {
        p.step(
            &format!("{i:02}_s{i}.rhai"),
            &step("", &format!("az([\"s{i}\"]);")),
        );
    }
    let t0 = Instant::now();
    p.deploy(&[]).assert_code(0);
    let full = t0.elapsed().as_millis() as u64;
    let (mut stopped, mut finished) = (0, 0);
    for _ in 0..30 {
        let _ = std::fs::remove_file(p.path().join(".stepwise/state.json"));
        let _ = std::fs::remove_file(p.path().join("done.log"));
        let _ = std::fs::remove_dir_all(p.path().join(".stepwise/logs"));
        let mut child = p.spawn(&["--auto-approve"]);
        // Once steps have started (before that, no step runs and no state is written), then
        // anywhere in the run.
        let logs = p.path().join(".stepwise/logs");
        wait_for(Duration::from_secs(10), || logs.exists());
        std::thread::sleep(Duration::from_millis(rng.below(full)));
        let code = kill(&mut child, sig);
        match code {
            Some(0) => finished += 1,
            Some(c) if c == expected => stopped += 1,
            other => panic!("exit {other:?}, expected 0 or {expected}"),
        }
        let state = state_now(&p, false);
        let d = done(&p);
        for s in completed(&state) {
            assert!(d.contains(&s), "{s} marked completed but never finished");
        }
        let leftovers: Vec<_> = support::walk(&p.path().join(".stepwise"))
            .into_iter()
            .filter(|f| f.to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        p.deploy(&[]).assert_code(0);
    }
    eprintln!("cancel test (signal {sig}): 30 runs, {stopped} stopped with {expected}, {finished} had finished");
    assert!(stopped > 0, "no run was caught by the signal");
}

#[test]
fn sigterm_and_sigint_during_steps_and_state_writes_keep_state_whole() {
    // The two signals' 30 runs each at the same time, each in a project of its own.
    let mut rng = Rng::new();
    in_parallel(2, &mut rng, |w, rng| match w {
        0 => cancel_many(libc::SIGTERM, 143, rng),
        _ => cancel_many(libc::SIGINT, 130, rng),
    });
}

/// 20 pairs of simultaneous runs on one state: exactly one of each pair runs its step.
fn pairs(p: &Project, blob: bool) {
    let mut outcomes = Vec::new();
    for i in 0..20 {
        let name = format!("p{i:02}");
        let mut a = p.spawn(&["--auto-approve", "--only", &name]);
        let mut b = p.spawn(&["--auto-approve", "--only", &name]);
        let ca = a.wait().unwrap().code();
        let cb = b.wait().unwrap().code();
        let runs = done(p).iter().filter(|d| **d == name).count();
        assert_eq!(
            runs, 1,
            "pair {i}: {runs} runs of {name} (exits {ca:?} {cb:?})"
        );
        let codes = [ca, cb];
        assert!(codes.contains(&Some(0)), "pair {i}: exits {codes:?}");
        assert!(
            codes.contains(&Some(3)) || codes == [Some(0), Some(0)],
            "pair {i}: exits {codes:?}"
        );
        outcomes.push(codes);
    }
    // no update lost: every pair's step is in the one state
    let state = state_now(p, blob);
    assert_eq!(completed(&state).len(), 20, "{state}");
    let refused = outcomes.iter().filter(|c| c.contains(&Some(3))).count();
    eprintln!(
        "concurrency ({}): 20 pairs, exactly one run each; {refused} refused with exit 3, {} found it done",
        if blob { "blob" } else { "local" },
        20 - refused
    );
}

fn pair_project() -> Project {
    let mut p = Project::new();
    support::shell_az(
        &p,
        "sleep 0.3\nprintf '%s\\n' \"$1\" >> \"$FAKE_DONE_LOG\"\necho '{}'\n",
    );
    let done_log = p.path().join("done.log").display().to_string();
    p.env("FAKE_DONE_LOG", &done_log);
    for i in 0..20 {
        p.step(
            &format!("{i:02}_p{i:02}.rhai"),
            &step("", &format!("az([\"p{i:02}\"]);")),
        );
    }
    p
}

#[test]
fn twenty_pairs_of_simultaneous_runs_on_local_state() {
    let mut p = pair_project();
    p.local_state();
    pairs(&p, false);
}

#[test]
fn twenty_pairs_of_simultaneous_runs_on_blob_state() {
    let az = Azurite::start();
    let mut p = pair_project();
    p.on_blob(&az, &az.new_location());
    // create the container first, so that both runs of the first pair race on the lock only
    p.run(&["state", "show"]).assert_code(0);
    assert!(wait_for(Duration::from_secs(1), || true));
    pairs(&p, true);
}

// ---- no command outlives stepwise (#20, #19) ----

/// A step whose command ignores SIGTERM and starts two long-lived processes: one in its own
/// process group, one in a new session (out of reach of a process-group kill). Each records
/// its pid in `pids`.
fn stubborn_project() -> Project {
    let mut p = Project::new();
    p.local_state();
    let pids = p.path().join("pids").display().to_string();
    p.env("PIDS", &pids);
    // sh -c: the test's own command; stepwise passes it as argv.
    let script = r#"trap '' TERM
echo $$ >> "$PIDS"
sh -c 'echo $$ >> "$PIDS"; exec sleep 301' &
setsid sh -c 'echo $$ >> "$PIDS"; exec sleep 302' &
sleep "$1"
"#;
    p.file("stubborn.sh", script);
    p.step(
        "01_stubborn.rhai",
        &step("", r#"exec(["sh", "stubborn.sh", "300"]);"#),
    );
    p
}

/// Waits up to `limit` for every recorded process to be gone; the survivors otherwise.
fn survivors(p: &Project, limit: Duration) -> Vec<i32> {
    let pids = support::pids_in(&p.path().join("pids"));
    wait_for(limit, || pids.iter().all(|&pid| !support::alive(pid)));
    let left: Vec<i32> = pids
        .into_iter()
        .filter(|&pid| support::alive(pid))
        .collect();
    for &pid in &left {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    left
}

#[test]
fn sigkill_of_stepwise_leaves_no_command_running_not_even_one_that_ignores_sigterm_and_forks() {
    let mut rng = Rng::new();
    let p = stubborn_project();
    let n = 10;
    for _ in 0..n {
        let _ = std::fs::remove_file(p.path().join("pids"));
        let mut child = p.spawn(&["--auto-approve"]);
        assert!(wait_for(Duration::from_secs(20), || support::pids_in(
            &p.path().join("pids")
        )
        .len()
            == 3));
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        kill(&mut child, libc::SIGKILL);
        let left = survivors(&p, Duration::from_secs(3));
        assert!(
            left.is_empty(),
            "processes of the killed run still running: {left:?}"
        );
    }
    eprintln!("orphan test: {n} runs killed with SIGKILL while their command ran; no survivor");
}

#[test]
fn a_second_ctrl_c_kills_every_command_before_stepwise_exits() {
    let mut p = stubborn_project();
    // a long grace: the first Ctrl+C's SIGTERM (ignored) would keep it waiting
    p.env("STEPWISE_KILL_GRACE_MS", "60000");
    let mut child = p.spawn(&["--auto-approve"]);
    assert!(wait_for(Duration::from_secs(20), || support::pids_in(
        &p.path().join("pids")
    )
    .len()
        == 3));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(300));
    let code = kill(&mut child, libc::SIGINT);
    assert_eq!(code, Some(130));
    // No waiting: nothing may outlive stepwise's exit.
    let pids = support::pids_in(&p.path().join("pids"));
    let left: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|&pid| support::alive(pid))
        .collect();
    for &pid in &left {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(
        left.is_empty(),
        "still running after stepwise exited: {left:?}"
    );
}

// ---- a run that loses its lock never overlaps the next one (#20) ----

#[test]
fn runs_cut_off_from_storage_at_random_points_stop_before_the_next_run_starts() {
    let az = Azurite::start();
    let mut rng = Rng::new();
    let n = 5;
    // The five trials at the same time: each has its project, state location and proxy.
    in_parallel(n, &mut rng, |_, rng| {
        let cut = Duration::from_millis(100 + rng.below(1400));
        support::cut_off_run_stops_before_the_next_run_starts(&az, cut);
    });
    eprintln!("lost-lock test (blob): {n} runs cut off from storage at random points (at the same time); each stopped its command before the next run started");
}
