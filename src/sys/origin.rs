//! Where a run comes from, for its report and notifications: who ran it (`user_name`), the
//! git commit and branch of the project (`git rev-parse`, argv only, bounded), and the CI run
//! it is part of (GitHub Actions, Azure Pipelines), read from the variables the CI sets.

use crate::sys::process;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The user running stepwise: `$USER`, else `$LOGNAME`, else the name the password database
/// gives the real uid (`getpwuid_r`), else `uid N`. Containers and CI jobs often run without
/// `$USER`: the report then says `root`, not `uid 0`.
pub fn user_name() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.trim().is_empty() {
                return v;
            }
        }
    }
    let uid = unsafe { libc::getuid() };
    passwd_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// The password database's name for `uid`, if it has one.
fn passwd_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: a zeroed passwd is a valid out-parameter; `buf` outlives the call and its
    // result, and `result` points into `pwd` or is null.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
}

/// The project's git commit and branch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Git {
    /// The full commit id of `HEAD`.
    pub commit: String,
    /// The branch checked out (empty on a detached `HEAD`, e.g. a CI checkout of a commit).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub branch: String,
}

impl Git {
    /// The commit's first 12 characters.
    pub fn short(&self) -> &str {
        &self.commit[..self.commit.len().min(12)]
    }
}

/// The git commit and branch of the current directory (the project root), when it is in a
/// repository and `git` can tell (each `git rev-parse` bounded to 5 s); else `None`. A CI's
/// branch variable names the branch of a detached checkout.
pub fn git() -> Option<Git> {
    let commit = git_line(&["rev-parse", "--verify", "-q", "HEAD"])?;
    if commit.len() < 7 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let branch = git_line(&["rev-parse", "--abbrev-ref", "HEAD"])
        .filter(|b| b != "HEAD")
        .or_else(ci_branch)
        .unwrap_or_default();
    Some(Git { commit, branch })
}

fn git_line(args: &[&str]) -> Option<String> {
    let argv: Vec<String> = std::iter::once("git")
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect();
    let out = process::run(
        &argv,
        process::RunOptions {
            timeout: Duration::from_secs(5),
            stdout_keep: 4096,
            stderr_keep: 4096,
            stdout_spill: None,
            stderr_spill: None,
            stdin: None,
        },
    )
    .ok()?;
    let line = out.stdout.last(4096).trim().to_string();
    (out.code == 0 && !line.is_empty()).then_some(line)
}

/// The branch a CI says it checked out (`GITHUB_HEAD_REF` of a pull request, else
/// `GITHUB_REF_NAME`; `BUILD_SOURCEBRANCHNAME` on Azure Pipelines).
fn ci_branch() -> Option<String> {
    [
        "GITHUB_HEAD_REF",
        "GITHUB_REF_NAME",
        "BUILD_SOURCEBRANCHNAME",
    ]
    .iter()
    .filter_map(|v| std::env::var(v).ok())
    .find(|v| !v.trim().is_empty())
}

/// The CI run a deployment is part of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiRun {
    /// `GitHub Actions` or `Azure Pipelines`.
    pub system: String,
    /// The run's page.
    pub url: String,
}

/// The CI run of this process, from the variables GitHub Actions (`GITHUB_SERVER_URL`,
/// `GITHUB_REPOSITORY`, `GITHUB_RUN_ID`, `GITHUB_RUN_ATTEMPT`) or Azure Pipelines
/// (`SYSTEM_COLLECTIONURI`, `SYSTEM_TEAMPROJECT`, `BUILD_BUILDID`) set; `None` outside CI.
pub fn ci_run() -> Option<CiRun> {
    ci_run_from(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
}

fn ci_run_from(var: impl Fn(&str) -> Option<String>) -> Option<CiRun> {
    if let (Some(server), Some(repo), Some(id)) = (
        var("GITHUB_SERVER_URL"),
        var("GITHUB_REPOSITORY"),
        var("GITHUB_RUN_ID"),
    ) {
        let mut url = format!("{}/{repo}/actions/runs/{id}", server.trim_end_matches('/'));
        if let Some(n) = var("GITHUB_RUN_ATTEMPT").filter(|n| n != "1") {
            url.push_str(&format!("/attempts/{n}"));
        }
        return Some(CiRun {
            system: "GitHub Actions".into(),
            url,
        });
    }
    if let (Some(collection), Some(project), Some(id)) = (
        var("SYSTEM_COLLECTIONURI"),
        var("SYSTEM_TEAMPROJECT"),
        var("BUILD_BUILDID"),
    ) {
        return Some(CiRun {
            system: "Azure Pipelines".into(),
            url: format!(
                "{}/{}/_build/results?buildId={id}",
                collection.trim_end_matches('/'),
                encode_path(&project)
            ),
        });
    }
    None
}

/// A URL path segment: spaces and the few characters a project name may hold, encoded.
fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(list: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            list.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn ci_run_links_for_github_actions_and_azure_pipelines() {
        let gh = ci_run_from(vars(&[
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/app"),
            ("GITHUB_RUN_ID", "123"),
            ("GITHUB_RUN_ATTEMPT", "2"),
        ]))
        .unwrap();
        assert_eq!(gh.system, "GitHub Actions");
        assert_eq!(
            gh.url,
            "https://github.com/acme/app/actions/runs/123/attempts/2"
        );
        let az = ci_run_from(vars(&[
            ("SYSTEM_COLLECTIONURI", "https://dev.azure.com/acme/"),
            ("SYSTEM_TEAMPROJECT", "My Project"),
            ("BUILD_BUILDID", "77"),
        ]))
        .unwrap();
        assert_eq!(
            az.url,
            "https://dev.azure.com/acme/My%20Project/_build/results?buildId=77"
        );
        assert_eq!(ci_run_from(vars(&[("GITHUB_RUN_ID", "1")])), None);
    }

    #[test]
    fn the_user_of_uid_0_is_named_by_the_password_database() {
        assert_eq!(passwd_name(0).as_deref(), Some("root"));
    }
}
