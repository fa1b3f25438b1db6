//! Examples of each command, shown after its `--help` and in its man page (EXAMPLES), and the
//! exit codes (`--help` of the bare command, EXIT STATUS of every man page): one table each,
//! so that help and man pages cannot disagree.

use crate::util::error::exit;

/// A command path (`""` for the bare command, `state reset`) and its examples: the command
/// line, and what it does.
pub const EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    (
        "",
        &[
            ("stepwise plan", "what a deployment would run, and why"),
            ("stepwise", "deploy: run every step that is not up to date"),
            (
                "stepwise --env prod --auto-approve",
                "deploy prod without asking (CI)",
            ),
        ],
    ),
    (
        "deploy",
        &[
            (
                "stepwise deploy --dry-run",
                "the plan and every command that would run; runs nothing",
            ),
            (
                "stepwise deploy --env dev --auto-approve",
                "deploy dev without asking (CI)",
            ),
            (
                "stepwise deploy --force-step build_and_push_images --with-dependents",
                "rebuild the images and redeploy what uses them",
            ),
        ],
    ),
    (
        "plan",
        &[
            ("stepwise plan", "each step's decision and its reason"),
            (
                "stepwise plan --detailed-exitcode",
                "exit 0 nothing to do, 2 changes, 1 blocked (for pipelines)",
            ),
            (
                "stepwise plan --env prod --output markdown >> \"$GITHUB_STEP_SUMMARY\"",
                "the plan as a Markdown table",
            ),
        ],
    ),
    (
        "output",
        &[
            (
                "stepwise output",
                "every step's outputs of the last deployment",
            ),
            (
                "stepwise output -r verify_deployment.gateway_url",
                "one value alone, for scripts",
            ),
            ("stepwise output --output json", "all outputs as JSON"),
        ],
    ),
    (
        "cost",
        &[
            (
                "stepwise cost",
                "the monthly estimate per step, the total and its change",
            ),
            (
                "stepwise cost --env prod --output markdown",
                "the estimate as Markdown (a PR comment)",
            ),
        ],
    ),
    (
        "steps",
        &[
            ("stepwise steps", "steps with description and dependencies"),
            (
                "stepwise steps --secrets",
                "which config keys are secret, and why",
            ),
        ],
    ),
    (
        "check",
        &[(
            "stepwise check",
            "reads a step made that its declaration does not cover (exit 1 if any)",
        )],
    ),
    (
        "watch",
        &[
            (
                "stepwise watch",
                "deploy, then re-run what changes as files are saved",
            ),
            (
                "stepwise watch --only build_and_push_images",
                "rebuild images while editing Dockerfiles",
            ),
        ],
    ),
    (
        "graph",
        &[
            (
                "stepwise graph",
                "the step graph as Mermaid, marking what would run",
            ),
            (
                "stepwise graph --format dot | dot -Tsvg > steps.svg",
                "the graph as an SVG picture",
            ),
        ],
    ),
    (
        "report",
        &[
            ("stepwise report --open", "open the last run's HTML report"),
            (
                "stepwise report --plan",
                "the current plan as an HTML report; runs nothing",
            ),
        ],
    ),
    (
        "rollback",
        &[
            (
                "stepwise rollback --dry-run",
                "what a rollback to the previous good run would do",
            ),
            (
                "stepwise rollback 20261201T101500Z-1a2b --auto-approve",
                "back to what that run deployed",
            ),
        ],
    ),
    (
        "state",
        &[
            ("stepwise state history", "the kept versions of the state"),
            (
                "stepwise state reset run_migrations",
                "forget a step so that it runs again",
            ),
        ],
    ),
    (
        "state show",
        &[
            ("stepwise state show", "the whole state as JSON"),
            ("stepwise state show deploy_redis", "one step's record"),
        ],
    ),
    (
        "state reset",
        &[
            (
                "stepwise state reset run_migrations",
                "forget one step (a backup is kept)",
            ),
            (
                "stepwise state reset --env prod --confirm-env prod",
                "forget every step of prod, without a terminal",
            ),
        ],
    ),
    (
        "state import-legacy",
        &[(
            "stepwise state import-legacy .deploy-state.json",
            "convert the original tool's state",
        )],
    ),
    (
        "state unlock",
        &[
            ("stepwise state unlock", "remove an expired or stale lock"),
            (
                "stepwise state unlock --force",
                "take a live lock away (its run stops with exit 4)",
            ),
        ],
    ),
    (
        "state history",
        &[
            (
                "stepwise state history",
                "time, run and steps changed of each kept version",
            ),
            ("stepwise state history --output json", "the same as JSON"),
        ],
    ),
    (
        "state rollback",
        &[(
            "stepwise state rollback 3",
            "restore kept version 3 of the state (not the deployment: see `stepwise rollback`)",
        )],
    ),
    (
        "state push",
        &[(
            "stepwise state push az://myaccount/state/prod.json",
            "copy the local state to blob storage",
        )],
    ),
    (
        "state pull",
        &[(
            "stepwise state pull az://myaccount/state/prod.json",
            "copy blob state into the local state file",
        )],
    ),
    (
        "env",
        &[
            (
                "stepwise env list",
                "each environment, its state and what a deploy would do",
            ),
            (
                "stepwise env new staging",
                "write config.staging.yaml to fill in",
            ),
        ],
    ),
    (
        "env list",
        &[
            (
                "stepwise env list",
                "each environment, its state and what a deploy would do",
            ),
            ("stepwise env list --output json", "the same as JSON"),
        ],
    ),
    (
        "env new",
        &[
            (
                "stepwise env new staging",
                "write config.staging.yaml from the keys the example overlays differ in",
            ),
            (
                "stepwise --env staging plan",
                "then: the new environment's plan",
            ),
        ],
    ),
    (
        "diff",
        &[
            (
                "stepwise diff staging prod",
                "config keys and steps promoting staging to prod would change",
            ),
            (
                "stepwise diff dev prod --output markdown",
                "the same as Markdown",
            ),
        ],
    ),
    (
        "init",
        &[
            (
                "stepwise init my-project",
                "a new project that runs without Azure",
            ),
            (
                "stepwise init",
                "a project in the current folder (never overwrites a file)",
            ),
        ],
    ),
    (
        "completions",
        &[
            (
                "stepwise completions bash > ~/.local/share/bash-completion/completions/stepwise",
                "bash completion, with step and environment names",
            ),
            (
                "stepwise completions zsh --static > _stepwise",
                "a script that never calls stepwise back",
            ),
        ],
    ),
    (
        "man",
        &[(
            "stepwise man /usr/local/share/man/man1",
            "write the man pages (then: man stepwise-plan)",
        )],
    ),
    (
        "definitions",
        &[(
            "stepwise definitions",
            "Rhai definitions for the language server in .stepwise/definitions",
        )],
    ),
    (
        "schema",
        &[(
            "stepwise schema > .stepwise/config.schema.json",
            "the config's JSON Schema for yaml-language-server",
        )],
    ),
];

/// The examples of the command at `path` (`""`, `plan`, `state reset`).
pub fn of(path: &str) -> &'static [(&'static str, &'static str)] {
    EXAMPLES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, e)| *e)
        .unwrap_or(&[])
}

/// The examples as help text.
fn text(examples: &[(&str, &str)]) -> String {
    let mut s = String::from("Examples:\n");
    for (line, what) in examples {
        s.push_str(&format!("  {line}\n      {what}\n"));
    }
    s
}

/// The exit codes as help text.
pub fn exit_codes() -> String {
    let mut s = String::from("Exit codes:\n");
    for (code, what) in exit::TABLE {
        s.push_str(&format!("  {code:>3}  {what}\n"));
    }
    s.push_str(&format!("  {}\n", exit::DETAILED_PLAN));
    s
}

/// `cmd` with its examples after the help of it and of each subcommand (the bare command's
/// also lists the exit codes).
pub fn add_to(cmd: clap::Command) -> clap::Command {
    fn walk(cmd: clap::Command, path: &str) -> clap::Command {
        let mut help = text(of(path));
        if path.is_empty() {
            help.push('\n');
            help.push_str(&exit_codes());
        } else if path == "plan" {
            help.push_str(&format!("\n{}\n", exit::DETAILED_PLAN));
        }
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        let mut cmd = cmd.after_help(help.trim_end().to_string());
        for name in names {
            let sub = if path.is_empty() {
                name.clone()
            } else {
                format!("{path} {name}")
            };
            cmd = cmd.mut_subcommand(&name, |c| walk(c, &sub));
        }
        cmd
    }
    walk(cmd, "")
}

#[cfg(test)]
mod tests {
    /// Every command has examples, and every example names a command that exists.
    #[test]
    fn every_command_has_examples_and_every_example_path_is_a_command() {
        fn paths(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
            out.push(path.to_string());
            for s in cmd.get_subcommands() {
                let p = format!("{path} {}", s.get_name()).trim().to_string();
                paths(s, &p, out);
            }
        }
        let mut all = Vec::new();
        paths(&super::super::args::command(), "", &mut all);
        for p in all
            .iter()
            .filter(|p| p.as_str() != "help" && !p.starts_with("help "))
        {
            assert!(!super::of(p).is_empty(), "`stepwise {p}` has no examples");
        }
        for (p, _) in super::EXAMPLES {
            assert!(
                all.iter().any(|a| a == p),
                "examples for `{p}`, which is no command"
            );
        }
    }
}
