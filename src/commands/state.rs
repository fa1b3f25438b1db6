//! `stepwise state ...`: show, reset, unlock, history, rollback, push, pull; `import-legacy`
//! is done by `legacy`.

use crate::backend;
use crate::cli::{Cli, OutputFormat, StateCommand};
use crate::environment;
use crate::error::{exit, usage};
use crate::project::{current_store, target, Target};
use crate::state::StateStore;
use anyhow::Result;

pub fn run(cli: &Cli, sc: &StateCommand) -> Result<i32> {
    let lock_timeout = cli.global.lock_timeout;
    match sc {
        StateCommand::Show { step } => {
            let target = target(cli)?;
            let store = target.store()?;
            let mut state = store.load()?;
            if let Some(env) = &target.env {
                // Shown even before the environment's first run wrote it.
                state.extra.insert(
                    backend::ENV_KEY.into(),
                    serde_json::Value::String(env.clone()),
                );
            }
            let text = match step {
                None => state.to_json(),
                Some(s) => {
                    let rec = state.steps.get(s).ok_or_else(|| {
                        usage(format!(
                            "no step `{s}` in state {}{} (steps recorded: {})",
                            store.location(),
                            crate::suggest::did_you_mean(s, state.steps.keys().map(String::as_str)),
                            state.steps.keys().cloned().collect::<Vec<_>>().join(", ")
                        ))
                    })?;
                    serde_json::to_string_pretty(rec)? + "\n"
                }
            };
            crate::report::print_text(&text);
            Ok(exit::OK)
        }
        StateCommand::Reset { names: steps } => {
            let target = target(cli)?;
            target.confirm_protected(
                cli,
                if steps.is_empty() {
                    "`state reset` forgets every step"
                } else {
                    "`state reset` forgets steps"
                },
            )?;
            let store = target.store()?;
            let _lock = store.lock(lock_timeout)?;
            let mut state = store.load()?;
            for s in steps {
                if !state.steps.contains_key(s) {
                    return Err(usage(format!(
                        "no step `{s}` in state {}{} (steps recorded: {})",
                        store.location(),
                        crate::suggest::did_you_mean(s, state.steps.keys().map(String::as_str)),
                        state.steps.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            if let Some(b) = store.backup()? {
                println!("state backed up to {b}");
            }
            if steps.is_empty() {
                state.steps.clear();
                println!("state cleared: every step runs on the next deployment");
            } else {
                for s in steps {
                    state.steps.remove(s);
                    println!("forgot {s}: it runs on the next deployment");
                }
            }
            state.last_updated = crate::state::now();
            store.save(&state)?;
            Ok(exit::OK)
        }
        StateCommand::ImportLegacy { file } => crate::legacy::import(cli, file),
        StateCommand::Unlock { force } => {
            let store = current_store(cli)?;
            println!("{}", store.unlock(*force)?);
            Ok(exit::OK)
        }
        StateCommand::History => {
            let store = current_store(cli)?;
            let versions = store.history()?;
            if cli.global.output == OutputFormat::Json {
                crate::report::print_json(&serde_json::to_value(&versions)?);
                return Ok(exit::OK);
            }
            if versions.is_empty() {
                println!("no kept versions of {}", store.location());
            }
            for v in versions {
                println!(
                    "{}  {}  run {}  changed: {}",
                    v.id,
                    v.time,
                    if v.run.is_empty() { "-" } else { &v.run },
                    if v.steps_changed.is_empty() {
                        "-".to_string()
                    } else {
                        v.steps_changed.join(", ")
                    }
                );
            }
            Ok(exit::OK)
        }
        StateCommand::Rollback { version } => {
            let target = target(cli)?;
            target.confirm_protected(cli, "`state rollback` replaces its state")?;
            let store = target.store()?;
            let _lock = store.lock(lock_timeout)?;
            let _current = store.load()?;
            let mut old = store.version(version)?;
            old.extra.insert(
                "run_id".into(),
                serde_json::Value::String(format!("rollback-to-{version}")),
            );
            old.last_updated = crate::state::now();
            store.save(&old)?;
            println!(
                "state {} rolled back to {version}; steps whose recorded hashes differ from the files run again on the next deployment",
                store.location()
            );
            Ok(exit::OK)
        }
        StateCommand::Push { destination, force } => {
            let target = target(cli)?;
            let from = target.store()?;
            let to = backend::open(destination)?;
            copy_state(from.as_ref(), to.as_ref(), *force, lock_timeout, &target)
        }
        StateCommand::Pull { source, force } => {
            let target = target(cli)?;
            if *force {
                target.confirm_protected(cli, "`state pull --force` replaces its state")?;
            }
            let from = backend::open(source)?;
            let to = target.store()?;
            copy_state(from.as_ref(), to.as_ref(), *force, lock_timeout, &target)
        }
    }
}

/// Copies the state between two locations, under both locks; refuses to overwrite a
/// destination that holds state unless forced.
/// The state copied is the selected environment's: a state of another environment is refused.
fn copy_state(
    from: &dyn StateStore,
    to: &dyn StateStore,
    force: bool,
    lock_timeout: std::time::Duration,
    target: &Target,
) -> Result<i32> {
    let _from_lock = from.lock(lock_timeout)?;
    let _to_lock = to.lock(lock_timeout)?;
    let state = from.load()?;
    if state.steps.is_empty() {
        return Err(usage(format!("{} holds no state to copy", from.location())));
    }
    // A default environment's state may be taken into an environment (adopting it); a state
    // of another environment may not.
    let recorded = backend::state_env(&state);
    if recorded.is_some() && recorded != target.env.as_deref() {
        return Err(usage(format!(
            "{} holds the state of environment `{}`, not `{}`: not copied (select that environment with --env)",
            from.location(),
            environment::display(recorded),
            environment::display(target.env.as_deref()),
        )));
    }
    let existing = to.load()?;
    if !existing.steps.is_empty() && !force {
        return Err(usage(format!(
            "{} already holds state ({} steps): not overwritten (pass --force; its current version stays in its history)",
            to.location(),
            existing.steps.len()
        )));
    }
    to.save(&state)?;
    println!(
        "copied state ({} steps) from {} to {}",
        state.steps.len(),
        from.location(),
        to.location()
    );
    Ok(exit::OK)
}
