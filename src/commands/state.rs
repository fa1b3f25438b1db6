//! `stepwise state ...`: show, reset, unlock, history, rollback, push, pull; `import-legacy`
//! is done by `legacy`.

use crate::app::project::{self, current_store, target, StateTarget, Target};
use crate::cli::{Cli, OutputFormat, StateCommand};
use crate::config::environment;
use crate::state::backend;
use crate::state::StateStore;
use crate::util::error::{exit, usage};
use anyhow::Result;
use std::time::Duration;

pub fn run(cli: &Cli, sc: &StateCommand) -> Result<i32> {
    let lock_timeout = cli.global.lock_timeout;
    match sc {
        StateCommand::Show { step, .. } => show(cli, step.as_deref()),
        StateCommand::Reset { names: steps, .. } => reset(cli, steps, lock_timeout),
        StateCommand::ImportLegacy { file, .. } => import_legacy(cli, file),
        StateCommand::Unlock { force, .. } => unlock(cli, *force),
        StateCommand::History(_) => history(cli),
        StateCommand::Rollback { version, .. } => rollback(cli, version, lock_timeout),
        StateCommand::Push {
            destination, force, ..
        } => push(cli, destination, *force),
        StateCommand::Pull { source, force, .. } => pull(cli, source, *force),
    }
}

/// `state show`.
fn show(cli: &Cli, step: Option<&str>) -> Result<i32> {
    let target = target(&cli.load_options())?;
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
                    crate::util::suggest::did_you_mean(s, state.steps.keys().map(String::as_str)),
                    state.steps.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            serde_json::to_string_pretty(rec)? + "\n"
        }
    };
    crate::util::console::print_text(&text);
    Ok(exit::OK)
}

/// `state reset`.
fn reset(cli: &Cli, steps: &[String], lock_timeout: Duration) -> Result<i32> {
    let target = target(&cli.load_options())?;
    target.confirm_protected(
        &cli.load_options(),
        if steps.is_empty() {
            "`state reset` forgets every step"
        } else {
            "`state reset` forgets steps"
        },
    )?;
    let store = target.store()?;
    let _lock = store.lock(lock_timeout)?;
    let mut state = match store.load() {
        Ok(state) => state,
        // Forgetting everything needs nothing from a state that cannot be used (not
        // valid state, another environment's): its bytes are kept as the backup.
        Err(e) if steps.is_empty() => {
            eprintln!(
                "warning: the current state {} cannot be used ({}): it is replaced, its bytes kept as a backup",
                store.location(),
                reason(&e)
            );
            crate::state::State::default()
        }
        Err(e) => return Err(e),
    };
    for s in steps {
        if !state.steps.contains_key(s) {
            return Err(usage(format!(
                "no step `{s}` in state {}{} (steps recorded: {})",
                store.location(),
                crate::util::suggest::did_you_mean(s, state.steps.keys().map(String::as_str)),
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
    state.last_updated = crate::util::clock::now();
    store.save(&state)?;
    Ok(exit::OK)
}

/// `state import-legacy`.
fn import_legacy(cli: &Cli, file: &std::path::Path) -> Result<i32> {
    crate::app::legacy::import(&cli.load_options(), file)
}

/// `state unlock`.
fn unlock(cli: &Cli, force: bool) -> Result<i32> {
    let store = current_store(&cli.load_options())?;
    println!("{}", store.unlock(force)?);
    Ok(exit::OK)
}

/// `state history`.
fn history(cli: &Cli) -> Result<i32> {
    let store = current_store(&cli.load_options())?;
    let versions = store.history()?;
    if cli.global.output == OutputFormat::Json {
        crate::util::console::print_json(&serde_json::to_value(&versions)?);
        return Ok(exit::OK);
    }
    if versions.is_empty() {
        println!("no kept versions of {}", store.location());
    }
    for v in versions {
        let rollback = match &v.rollback_to {
            Some(t) => format!(" (rollback to {t})"),
            None => String::new(),
        };
        println!(
            "{}  {}  run {}{rollback}  changed: {}",
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

/// `state rollback`.
fn rollback(cli: &Cli, version: &str, lock_timeout: Duration) -> Result<i32> {
    let target = target(&cli.load_options())?;
    target.confirm_protected(&cli.load_options(), "`state rollback` replaces its state")?;
    let store = target.store()?;
    let _lock = store.lock(lock_timeout)?;
    // The version first: a wrong one changes nothing.
    let mut old = store.version(version)?;
    // Rollback is the way back from a state that cannot be used (not valid state, a
    // newer format, another environment's): its bytes are kept, then replaced.
    if let Err(e) = store.load() {
        let Some(backup) = store.backup()? else {
            return Err(e);
        };
        eprintln!(
            "warning: the current state {} cannot be used ({}): it is replaced, its bytes kept as a backup",
            store.location(),
            reason(&e)
        );
        println!("state backed up to {backup}");
    }
    old.extra.insert(
        "run_id".into(),
        serde_json::Value::String(format!("rollback-to-{version}")),
    );
    old.last_updated = crate::util::clock::now();
    store.save(&old)?;
    println!(
        "state {} rolled back to {version}; steps whose recorded hashes differ from the files run again on the next deployment",
        store.location()
    );
    Ok(exit::OK)
}

/// `state push`.
fn push(cli: &Cli, destination: &str, force: bool) -> Result<i32> {
    let target = target(&cli.load_options())?;
    // Never into another environment's place, even empty: that environment would no
    // longer load its state.
    if let Some(owner) = project::owner_of(&cli.load_options(), destination, target.env.as_deref())
    {
        return Err(usage(format!(
            "{destination} is where environment `{}` keeps its state: not copied, nothing written (`state push` copies environment `{}`'s state elsewhere; to work on `{}`'s state, {})",
            environment::display(owner.as_deref()),
            environment::display(target.env.as_deref()),
            environment::display(owner.as_deref()),
            selecting(owner.as_deref()),
        )));
    }
    if environment::normalize(destination) == environment::normalize(&target.location) {
        return Err(usage(format!(
            "{destination} is environment `{}`'s own state location: nothing to copy",
            environment::display(target.env.as_deref()),
        )));
    }
    let from = target.store()?;
    let to = backend::open(destination)?;
    copy_state(cli, from.as_ref(), to.as_ref(), force, &target, "push")
}

/// `state pull`.
fn pull(cli: &Cli, source: &str, force: bool) -> Result<i32> {
    let target = target(&cli.load_options())?;
    if environment::normalize(source) == environment::normalize(&target.location) {
        return Err(usage(format!(
            "{source} is environment `{}`'s own state location: nothing to copy",
            environment::display(target.env.as_deref()),
        )));
    }
    let from = backend::open(source)?;
    let to = target.store()?;
    copy_state(cli, from.as_ref(), to.as_ref(), force, &target, "pull")
}

/// How to select environment `env` on the command line, for messages.
fn selecting(env: Option<&str>) -> String {
    match env {
        Some(e) => format!("select it with --env {e}"),
        None => "run without --env (the default environment)".to_string(),
    }
}

/// The first line of an error, without the advice meant for the command that failed.
fn reason(e: &anyhow::Error) -> String {
    let text = e.to_string();
    let text = text.lines().next().unwrap_or_default();
    let cut = [" (the file is left untouched", ": it is left untouched"]
        .iter()
        .filter_map(|advice| text.find(advice))
        .min()
        .unwrap_or(text.len());
    text[..cut].to_string()
}

/// Copies the state between two locations (`how`: push or pull), under both locks. The state
/// copied is the selected environment's (a default environment's may be adopted); a
/// destination that holds state is replaced only with `force`, only if that state is the
/// selected environment's own (never another environment's, even with `force`), and on a
/// protected environment only once confirmed.
fn copy_state(
    cli: &Cli,
    from: &dyn StateStore,
    to: &dyn StateStore,
    force: bool,
    target: &Target,
    how: &str,
) -> Result<i32> {
    let lock_timeout = cli.global.lock_timeout;
    let _from_lock = from.lock(lock_timeout)?;
    let _to_lock = to.lock(lock_timeout)?;
    let state = from.load()?;
    if state.steps.is_empty() {
        return Err(usage(format!("{} holds no state to copy", from.location())));
    }
    let mine = target.env.as_deref();
    // A default environment's state may be taken into an environment (adopting it); a state
    // of another environment may not.
    let recorded = backend::state_env(&state);
    if recorded.is_some() && recorded != mine {
        return Err(usage(format!(
            "{} holds the state of environment `{}`, not `{}`: not copied (select that environment with --env)",
            from.location(),
            environment::display(recorded),
            environment::display(mine),
        )));
    }
    let existing = to.load()?;
    // Nothing written there yet: no one's state.
    let fresh = existing.steps.is_empty() && existing.last_updated.is_empty();
    let theirs = backend::state_env(&existing);
    if !fresh && theirs != mine {
        return Err(usage(format!(
            "{} holds the state of environment `{}`, not `{}`: not overwritten, even with --force; nothing written (to work on it, {})",
            to.location(),
            environment::display(theirs),
            environment::display(mine),
            selecting(theirs),
        )));
    }
    if !existing.steps.is_empty() {
        if !force {
            return Err(usage(format!(
                "{} already holds state ({} steps): not overwritten (pass --force; its current version stays in its history)",
                to.location(),
                existing.steps.len()
            )));
        }
        target.confirm_protected(
            &cli.load_options(),
            &format!("`state {how} --force` replaces its state"),
        )?;
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
