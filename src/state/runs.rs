//! Runs as the state history knows them: each run's last kept version is what that run left
//! deployed (every step's record and outputs at its end). `stepwise rollback` returns to one.

use crate::state::{State, Version};
use anyhow::Result;

/// One run of the history: its id, when its last version was written, and that version's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub run: String,
    pub time: String,
    pub version: String,
}

/// The runs of a history listing (newest first), each with its last version, newest first.
/// Versions without a run id (a `state rollback`, an import) are not runs.
pub fn runs(history: &[Version]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for v in history {
        if v.run.is_empty() || out.iter().any(|r| r.run == v.run) {
            continue;
        }
        out.push(Run {
            run: v.run.clone(),
            time: v.time.clone(),
            version: v.id.clone(),
        });
    }
    out
}

/// The run a rollback returns to: its id, when it ended, and the state it left.
#[derive(Debug, Clone)]
pub struct Target {
    pub run: String,
    pub time: String,
    pub state: State,
}

/// The target of `stepwise rollback [RUN_ID]`: the run named (its last kept version), or the
/// default one (`default_target`); `None` when there is nothing to roll back to.
pub fn target(
    store: &dyn crate::state::StateStore,
    run: Option<&str>,
    current: &State,
) -> Result<Option<Target>> {
    let history = store.history()?;
    let runs = runs(&history);
    let load = |v: &str| store.version(v);
    let found = match run {
        Some(id) => {
            let Some(r) = runs.iter().find(|r| r.run == id) else {
                let known: Vec<&str> = runs.iter().take(5).map(|r| r.run.as_str()).collect();
                return Err(crate::util::error::usage(format!(
                    "no run {id} in the state history of {} (recent runs: {}; see `stepwise state history`)",
                    store.location(),
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )));
            };
            Some((r.clone(), load(&r.version)?))
        }
        None => default_target(&runs, current, &load)?,
    };
    Ok(found.map(|(r, state)| Target {
        run: r.run,
        time: r.time,
        state,
    }))
}

/// Every step of the state is deployed (completed or rolled back): the run that left it
/// succeeded.
pub fn succeeded(state: &State) -> bool {
    !state.steps.is_empty() && state.steps.values().all(|r| r.status.deployed())
}

/// Whether two states describe different deployments: some step's outputs differ.
pub fn outputs_differ(a: &State, b: &State) -> bool {
    let names = a.steps.keys().chain(b.steps.keys());
    names.into_iter().any(|n| a.outputs(n) != b.outputs(n))
}

/// Why a run is not a rollback target, or `None` when it is one.
fn unfit(state: &State, current: &State) -> Option<&'static str> {
    if state.rollback_target().is_some() {
        Some("a rollback")
    } else if !succeeded(state) {
        Some("did not succeed")
    } else if !outputs_differ(state, current) {
        Some("deployed what is deployed now")
    } else {
        None
    }
}

/// The default target of `stepwise rollback`: the newest run that succeeded, was not itself a
/// rollback, and left outputs that differ from the current state's (so never the run that
/// left the current state). `load` reads a version. Returns the run and its state.
pub fn default_target(
    runs: &[Run],
    current: &State,
    load: &dyn Fn(&str) -> Result<State>,
) -> Result<Option<(Run, State)>> {
    for run in runs {
        let state = load(&run.version)?;
        if unfit(&state, current).is_none() {
            return Ok(Some((run.clone(), state)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn version(id: &str, run: &str) -> Version {
        Version {
            id: id.into(),
            time: format!("t-{id}"),
            run: run.into(),
            steps_changed: vec![],
            rollback_to: None,
        }
    }

    fn state(steps: serde_json::Value, extra: serde_json::Value) -> State {
        let mut doc = json!({ "version": "3.0", "steps": steps });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn each_run_is_its_newest_version_and_versions_without_a_run_are_none() {
        let h = [
            version("5", "r3"),
            version("4", "r2"),
            version("3", ""),
            version("2", "r2"),
            version("1", "r1"),
        ];
        let got: Vec<(String, String)> = runs(&h).into_iter().map(|r| (r.run, r.version)).collect();
        assert_eq!(
            got,
            [
                ("r3".into(), "5".into()),
                ("r2".into(), "4".into()),
                ("r1".into(), "1".into())
            ]
        );
    }

    #[test]
    fn the_default_target_is_the_newest_earlier_successful_deployment_that_differs() {
        let ok = |img: &str| json!({ "a": { "status": "completed", "outputs": { "image": img } } });
        let failed = json!({ "a": { "status": "failed", "outputs": { "image": "F" } } });
        let rollback = json!({ "run_kind": "rollback", "rollback_target": "r1" });
        // (name, the runs' states from newest to oldest, the current state, expected target)
        let table: Vec<(&str, Vec<State>, Option<&str>)> = vec![
            (
                "the run before",
                vec![state(ok("B"), json!({})), state(ok("A"), json!({}))],
                Some("r0"),
            ),
            (
                "a failed run is skipped",
                vec![
                    state(ok("B"), json!({})),
                    state(failed.clone(), json!({})),
                    state(ok("A"), json!({})),
                ],
                Some("r0"),
            ),
            (
                "a run that deployed the same outputs is skipped",
                vec![
                    state(ok("B"), json!({})),
                    state(ok("B"), json!({})),
                    state(ok("A"), json!({})),
                ],
                Some("r0"),
            ),
            (
                "a rollback is not a target",
                vec![
                    state(ok("A"), json!({})),
                    state(ok("B"), rollback.clone()),
                    state(ok("C"), json!({})),
                ],
                Some("r0"),
            ),
            ("only one run", vec![state(ok("A"), json!({}))], None),
            (
                "nothing differs",
                vec![state(ok("A"), json!({})), state(ok("A"), json!({}))],
                None,
            ),
        ];
        for (name, states, want) in table {
            let n = states.len();
            let runs: Vec<Run> = (0..n)
                .map(|i| Run {
                    run: format!("r{}", n - 1 - i),
                    time: String::new(),
                    version: i.to_string(),
                })
                .collect();
            let current = states[0].clone();
            let load = |v: &str| Ok(states[v.parse::<usize>().unwrap()].clone());
            let got = default_target(&runs, &current, &load).unwrap();
            assert_eq!(got.map(|(r, _)| r.run).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn a_rollback_state_names_its_target() {
        let s = state(
            json!({}),
            json!({ "run_kind": "rollback", "rollback_target": "r1" }),
        );
        assert_eq!(s.rollback_target(), Some("r1"));
        assert_eq!(State::default().rollback_target(), None);
    }
}
