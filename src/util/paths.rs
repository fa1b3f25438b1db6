//! Where stepwise keeps its local files.

/// The folder for local files (logs, backups, hash cache), beside the project.
pub const LOCAL_DIR: &str = ".stepwise";

/// The default local state file.
pub const DEFAULT_STATE: &str = ".stepwise/state.json";

/// The project root for a command run in `start`: the nearest of `start` and the folders above
/// it that holds the config file `config` or the steps folder `steps` (both relative to the
/// root), as cargo and git find theirs. `None` when no folder up to the file-system root does.
pub fn project_root(
    start: &std::path::Path,
    config: &std::path::Path,
    steps: &std::path::Path,
) -> Option<std::path::PathBuf> {
    start
        .ancestors()
        .find(|d| d.join(config).is_file() || d.join(steps).is_dir())
        .map(std::path::Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::project_root;
    use std::path::Path;

    #[test]
    fn the_root_is_the_nearest_folder_with_the_config_or_the_steps() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("proj");
        std::fs::create_dir_all(root.join("steps/deep/er")).unwrap();
        std::fs::create_dir_all(root.join("other/with-config/sub")).unwrap();
        std::fs::write(root.join("other/with-config/config.yaml"), "").unwrap();
        let (c, s) = (Path::new("config.yaml"), Path::new("steps"));
        for (from, want) in [
            ("proj", Some("proj")),
            ("proj/steps", Some("proj")),
            ("proj/steps/deep/er", Some("proj")),
            ("proj/other", Some("proj")),
            ("proj/other/with-config/sub", Some("proj/other/with-config")),
            ("", None),
        ] {
            let got = project_root(&t.path().join(from), c, s);
            assert_eq!(got, want.map(|w| t.path().join(w)), "from {from:?}");
        }
    }
}
