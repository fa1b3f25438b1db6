//! Environments (`--env NAME` / `STEPWISE_ENV`): the name rule, the overlay file of an
//! environment and the environments known from overlay files, where an environment's state
//! and local files live, and the confirmation a protected environment asks for.
//!
//! Without an environment (the default environment) nothing here changes a path: the config
//! is read alone and the state stays where it always was.

use crate::util::error::{Failure, Kind};
use crate::util::paths::DEFAULT_STATE;
use crate::util::paths::LOCAL_DIR;
use anyhow::Result;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Component, Path, PathBuf};

/// The environment variable that selects an environment when `--env` is not given.
pub const ENV_VAR: &str = "STEPWISE_ENV";

/// The placeholder a state location may contain.
pub const PLACEHOLDER: &str = "{env}";

/// The name rule, as said in messages.
pub const NAME_RULE: &str =
    "an environment name is 1 to 31 characters: lowercase letters, digits and `-`, starting with a letter or digit ([a-z0-9][a-z0-9-]{0,30})";

/// What the default environment is called in messages and `--confirm-env`.
pub const DEFAULT_NAME: &str = "default";

/// Is `name` a valid environment name (`[a-z0-9][a-z0-9-]{0,30}`)?
pub fn is_valid(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 31
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Checks a name given by `source` (`--env`, `STEPWISE_ENV`, a command argument).
pub fn check(source: &str, name: &str) -> Result<()> {
    if is_valid(name) {
        Ok(())
    } else {
        Err(Kind::Config.error(format!("{source} {name:?}: {NAME_RULE}")))
    }
}

/// The selected environment: `--env`, else `STEPWISE_ENV` (set but empty is an error too);
/// `None` is the default environment.
pub fn selected(flag: Option<&str>) -> Result<Option<String>> {
    if let Some(name) = flag {
        check("--env", name)?;
        return Ok(Some(name.to_string()));
    }
    match std::env::var_os(ENV_VAR) {
        None => Ok(None),
        Some(v) => {
            let name = v.to_string_lossy().into_owned();
            check(ENV_VAR, &name)?;
            Ok(Some(name))
        }
    }
}

/// How an environment is named in messages.
pub fn display(env: Option<&str>) -> &str {
    env.unwrap_or(DEFAULT_NAME)
}

/// A config file name split into folder, stem and extension; an `.example` before the
/// extension stays last (`config.example.yaml` → `config`, `.example.yaml`).
fn split(config: &Path) -> (PathBuf, String, String) {
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = config
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
        _ => (name.clone(), String::new()),
    };
    match stem.strip_suffix(".example") {
        Some(s) if !s.is_empty() => (dir, s.to_string(), format!(".example{ext}")),
        _ => (dir, stem, ext),
    }
}

/// The overlay of environment `env` for `config`: same folder, same stem
/// (`config.yaml` → `config.staging.yaml`; `config.example.yaml` →
/// `config.staging.example.yaml`).
pub fn overlay_path(config: &Path, env: &str) -> PathBuf {
    let (dir, stem, ext) = split(config);
    dir.join(format!("{stem}.{env}{ext}"))
}

/// The environments that have an overlay next to `config`, sorted, with their overlay file.
/// `example` is not an environment (`config.example.yaml` is the commented example).
pub fn overlays(config: &Path) -> Vec<(String, PathBuf)> {
    let (dir, stem, ext) = split(config);
    let read_dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir.as_path()
    };
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(read_dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(env) = name
            .strip_prefix(&format!("{stem}."))
            .and_then(|r| r.strip_suffix(ext.as_str()))
        else {
            continue;
        };
        if is_valid(env) && env != "example" && e.path().is_file() {
            out.push((env.to_string(), dir.join(&name)));
        }
    }
    out.sort();
    out
}

/// The example overlays next to `config` (`config.dev.example.yaml`, ...), sorted, with the
/// environment each is an example of: what `env new` takes its keys from.
pub fn example_overlays(config: &Path) -> Vec<(String, PathBuf)> {
    let (dir, stem, ext) = split(config);
    let ext = ext.strip_prefix(".example").unwrap_or(&ext).to_string();
    let read_dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir.as_path()
    };
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(read_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let env = name
                .strip_prefix(&format!("{stem}."))?
                .strip_suffix(&format!(".example{ext}"))?;
            (is_valid(env) && e.path().is_file()).then(|| (env.to_string(), dir.join(&name)))
        })
        .collect();
    out.sort();
    out
}

/// The folder of an environment's local files (logs): `.stepwise/` for the default
/// environment, `.stepwise/envs/NAME/` otherwise. The hash cache stays in `.stepwise/`.
pub fn local_dir(env: Option<&str>) -> PathBuf {
    match env {
        None => PathBuf::from(LOCAL_DIR),
        Some(e) => Path::new(LOCAL_DIR).join("envs").join(e),
    }
}

/// The state location of environment `env`, given the location resolved as without
/// environments (`base`).
///
/// - default environment: `base` as it is (a `{env}` in it is an error: there is no name);
/// - the default local file: `.stepwise/envs/NAME/state.json`;
/// - a location with `{env}`: the name in its place;
/// - any other: the name as a last path segment before the file name.
pub fn state_location(base: &str, env: Option<&str>) -> Result<String> {
    let Some(env) = env else {
        if base.contains(PLACEHOLDER) {
            return Err(Kind::Config.error(format!(
                "state location {base} contains {PLACEHOLDER}: select an environment with --env NAME (or {ENV_VAR})"
            )));
        }
        return Ok(base.to_string());
    };
    Ok(template(base).replace(PLACEHOLDER, env))
}

/// The state location of any environment, with `{env}` where the name goes (see
/// [`state_location`]).
pub fn template(base: &str) -> String {
    if base.contains(PLACEHOLDER) {
        return base.to_string();
    }
    if same_local_path(base, DEFAULT_STATE) {
        return format!("{LOCAL_DIR}/envs/{PLACEHOLDER}/state.json");
    }
    match base.rfind('/') {
        // `az://ACCOUNT/CONTAINER/NAME`: the segment goes inside the container.
        Some(i) => format!("{}/{PLACEHOLDER}{}", &base[..i], &base[i..]),
        None => format!("{PLACEHOLDER}/{base}"),
    }
}

/// Two local paths that name the same file lexically (`./a/../b` = `b`); blob URLs compare
/// as written.
pub fn same_local_path(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

/// A location in a form two locations can be compared in: blob URLs as written, local
/// paths made absolute against the working folder and cleaned of `.` and `..`.
pub fn normalize(location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let p = Path::new(location);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out.display().to_string()
}

/// The environment names whose state exists at `template`'s places, given the paths that
/// exist under `template`'s folder (`listed`, in the same form as the template).
pub fn names_in(template: &str, listed: &[String]) -> Vec<String> {
    let Some(i) = template.find(PLACEHOLDER) else {
        return Vec::new();
    };
    let prefix = &template[..i];
    let mut out = Vec::new();
    for path in listed {
        let Some(rest) = path.strip_prefix(prefix) else {
            continue;
        };
        for len in 1..=rest.len().min(31) {
            let Some(name) = rest.get(..len) else {
                continue;
            };
            if is_valid(name) && template.replace(PLACEHOLDER, name) == *path {
                out.push(name.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The folder part of a template before `{env}` (what to list to find environments' state).
pub fn listing_root(template: &str) -> Option<&str> {
    let i = template.find(PLACEHOLDER)?;
    Some(match template[..i].rfind('/') {
        Some(j) => &template[..j],
        None => "",
    })
}

/// Local state files matching `template` (a local path with `{env}`): the environment names.
pub fn local_names(template: &str) -> Vec<String> {
    let Some(root) = listing_root(template) else {
        return Vec::new();
    };
    let dir = if root.is_empty() { "." } else { root };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    // Every candidate a name could make: `root/ENTRY...` completed by the template.
    let mut listed = Vec::new();
    for e in rd.flatten() {
        let entry = e.file_name().to_string_lossy().into_owned();
        let start = if root.is_empty() {
            entry.clone()
        } else {
            format!("{root}/{entry}")
        };
        let Some(rest) = start.strip_prefix(&template[..template.find(PLACEHOLDER).unwrap_or(0)])
        else {
            continue;
        };
        for len in 1..=rest.len().min(31) {
            let Some(name) = rest.get(..len) else {
                continue;
            };
            if is_valid(name) {
                let candidate = template.replace(PLACEHOLDER, name);
                if Path::new(&candidate).is_file() {
                    listed.push(candidate);
                }
            }
        }
    }
    names_in(template, &listed)
}

/// A protected environment asks before `what` (`--force-all`, `state reset`, ...): the
/// environment's name typed on a terminal, or `--confirm-env NAME`. Without either, it
/// refuses (exit 1).
pub fn confirm_protected(
    env: Option<&str>,
    protected: bool,
    what: &str,
    confirm: Option<&str>,
) -> Result<()> {
    if !protected {
        return Ok(());
    }
    let name = display(env);
    if let Some(given) = confirm {
        if given == name {
            return Ok(());
        }
        return Err(Failure::new(
            Kind::Refused,
            format!(
                "environment `{name}` is protected (deployment.protected): {what}; --confirm-env {given} does not name it (pass --confirm-env {name}). Nothing was done."
            ),
        )
        .into());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            Kind::Refused,
            format!(
                "environment `{name}` is protected (deployment.protected): {what}; type its name on a terminal to confirm, or pass --confirm-env {name}. Nothing was done."
            ),
        )
        .into());
    }
    eprint!("Environment `{name}` is protected: {what}. Type the environment's name to go on: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == name {
        Ok(())
    } else {
        Err(Failure::new(
            Kind::Refused,
            format!(
                "`{}` is not `{name}`: cancelled. Nothing was done.",
                answer.trim()
            ),
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["dev", "prod-eu-1", "0", "a-", &"a".repeat(31)] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "Prod",
            "../x",
            "-a",
            "a_b",
            "a.b",
            "a/b",
            &"a".repeat(32),
            "é",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn overlay_paths() {
        assert_eq!(
            overlay_path(Path::new("config.yaml"), "dev"),
            Path::new("config.dev.yaml")
        );
        assert_eq!(
            overlay_path(Path::new("deploy/app.yml"), "prod"),
            Path::new("deploy/app.prod.yml")
        );
        assert_eq!(
            overlay_path(Path::new("config.example.yaml"), "dev"),
            Path::new("config.dev.example.yaml")
        );
    }

    #[test]
    fn templates() {
        assert_eq!(
            template(".stepwise/state.json"),
            ".stepwise/envs/{env}/state.json"
        );
        assert_eq!(
            template("./.stepwise/state.json"),
            ".stepwise/envs/{env}/state.json"
        );
        assert_eq!(template("state/app.json"), "state/{env}/app.json");
        assert_eq!(template("app.json"), "{env}/app.json");
        assert_eq!(
            template("az://acct/cont/dir/state.json"),
            "az://acct/cont/dir/{env}/state.json"
        );
        assert_eq!(
            template("az://acct/cont/state.json"),
            "az://acct/cont/{env}/state.json"
        );
        assert_eq!(template("az://a/c/{env}.json"), "az://a/c/{env}.json");
        assert_eq!(
            state_location("az://a/c/s-{env}.json", Some("qa")).unwrap(),
            "az://a/c/s-qa.json"
        );
        assert!(state_location("az://a/c/{env}.json", None).is_err());
        assert_eq!(
            state_location(".stepwise/state.json", None).unwrap(),
            ".stepwise/state.json"
        );
    }

    #[test]
    fn names_found_in_listings() {
        let listed: Vec<String> = [
            "az://a/c/dir/prod/state.json",
            "az://a/c/dir/prod/state.json.lock",
            "az://a/c/dir/Bad/state.json",
            "az://a/c/dir/staging/state.json",
            "az://a/c/dir/state.json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            names_in("az://a/c/dir/{env}/state.json", &listed),
            ["prod", "staging"]
        );
        let listed = vec!["s/state-qa-1.json".to_string(), "s/state-.json".to_string()];
        assert_eq!(names_in("s/state-{env}.json", &listed), ["qa-1"]);
        assert_eq!(
            listing_root("az://a/c/dir/{env}/state.json"),
            Some("az://a/c/dir")
        );
        assert_eq!(listing_root("{env}/s.json"), Some(""));
    }
}
