//! `docker_build`: one image or several at once (bounded), each skipped when its
//! fingerprint (Dockerfile, the context files it copies, build args, tag, platform, push)
//! matches its last successful build.

use super::command::{failure, run_command, Expect};
use super::context::{current, display, err, HostResult, StepContext};
use rhai::{Array, Dynamic, Map as RMap};
use std::sync::Mutex;

fn map_str(m: &RMap, key: &str, required: bool) -> HostResult<Option<String>> {
    match m.get(key) {
        None => {
            if required {
                Err(err(format!("docker_build(): missing `{key}`")))
            } else {
                Ok(None)
            }
        }
        Some(v) if v.is_unit() && !required => Ok(None),
        Some(v) if v.is_string() => Ok(Some(v.clone().into_string().unwrap_or_default())),
        Some(v) => Err(err(format!(
            "docker_build(): `{key}` must be a string, found {}",
            v.type_name()
        ))),
    }
}

/// One image build, as a script describes it.
#[derive(Debug, Clone)]
struct BuildSpec {
    dockerfile: String,
    context: String,
    tag: String,
    platform: Option<String>,
    build_args: Vec<(String, String)>,
    push: bool,
}

impl BuildSpec {
    fn parse(spec: &RMap) -> HostResult<BuildSpec> {
        const KEYS: &[&str] = &[
            "dockerfile",
            "context",
            "tag",
            "platform",
            "build_args",
            "push",
        ];
        if let Some(k) = spec.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(err(format!(
                "docker_build(): unknown key `{k}` (keys: {})",
                KEYS.join(", ")
            )));
        }
        let push = match spec.get("push") {
            None => false,
            Some(v) => v
                .as_bool()
                .map_err(|t| err(format!("docker_build(): `push` must be a bool, found {t}")))?,
        };
        let mut build_args = Vec::new();
        if let Some(args) = spec.get("build_args") {
            if !args.is_unit() {
                let m = args.clone().try_cast::<RMap>().ok_or_else(|| {
                    err("docker_build(): `build_args` must be a map of names to values")
                })?;
                build_args = m
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), display(&v)))
                    .collect();
                build_args.sort();
            }
        }
        Ok(BuildSpec {
            dockerfile: map_str(spec, "dockerfile", true)?.unwrap_or_default(),
            context: map_str(spec, "context", true)?.unwrap_or_default(),
            tag: map_str(spec, "tag", true)?.unwrap_or_default(),
            platform: map_str(spec, "platform", false)?,
            build_args,
            push,
        })
    }

    fn argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = vec![
            "docker".into(),
            "build".into(),
            "-f".into(),
            self.dockerfile.clone(),
            "-t".into(),
            self.tag.clone(),
        ];
        if let Some(p) = &self.platform {
            argv.extend(["--platform".to_string(), p.clone()]);
        }
        for (k, v) in &self.build_args {
            argv.extend(["--build-arg".to_string(), format!("{k}={v}")]);
        }
        argv.push(self.context.clone());
        argv
    }

    /// What the image is made of: the Dockerfile, the build context exactly as Docker sends it
    /// (its `.dockerignore` or `<Dockerfile>.dockerignore`, with Docker's rules), build
    /// arguments, tag, platform and whether it is pushed.
    fn fingerprint(&self, ctx: &StepContext) -> Result<(String, String), String> {
        use sha2::{Digest, Sha256};
        let fp = crate::decide::fingerprint::Fingerprinter {
            root: std::path::Path::new("."),
            config: &ctx.config,
            prelude_digest: "",
            exclude: vec![std::path::PathBuf::from(crate::util::paths::LOCAL_DIR)],
            cache: ctx.hash_cache.as_deref(),
            secret_salt: None,
            memo: Default::default(),
        };
        let (dockerfile, context) =
            crate::decide::images::parts(&fp, &self.dockerfile, &self.context)
                .map_err(|e| format!("docker_build(): {e}"))?;
        let files = crate::decide::images::files_digest(&dockerfile, &context);
        let mut h = Sha256::new();
        for part in [
            dockerfile.as_str(),
            context.as_str(),
            self.tag.as_str(),
            self.platform.as_deref().unwrap_or(""),
            if self.push { "push" } else { "no-push" },
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for (k, v) in &self.build_args {
            h.update(format!("{k}={v}").as_bytes());
            h.update([0]);
        }
        let digest = hex::encode(h.finalize());
        // The fingerprint is kept in the state: with a secret among the build args, a plain
        // SHA-256 would let anyone who reads the state test guesses for it.
        if self
            .build_args
            .iter()
            .any(|(k, v)| ctx.masker.is_secret_value(v) || ctx.masker.is_secret_value(k))
        {
            return Ok((
                crate::util::digest::secret_digest(&ctx.secret_salt, &digest),
                files,
            ));
        }
        Ok((digest, files))
    }
}

/// Builds (and pushes) one image unless the last successful build had the same fingerprint.
fn build_one(ctx: &StepContext, spec: &BuildSpec) -> HostResult<String> {
    let (fingerprint, files) = spec.fingerprint(ctx).map_err(err)?;
    let source = crate::decide::images::source(&spec.dockerfile, &spec.context, &files);
    let previous = ctx
        .previous_images
        .get(&spec.tag)
        .and_then(|v| v.as_str())
        .map(str::to_string);
    if !ctx.forced && previous.as_deref() == Some(fingerprint.as_str()) {
        ctx.say(&format!(
            "image {} is up to date (Dockerfile, context, build args, tag and platform unchanged): not rebuilt",
            spec.tag
        ));
        ctx.built(&spec.tag, fingerprint, source);
        return Ok(spec.tag.clone());
    }
    let argv = spec.argv();
    if let Some(out) = run_command(ctx, &argv, 1, None, Expect::Text)? {
        if out.code != 0 {
            return Err(failure(ctx, &argv, &out));
        }
    }
    if spec.push {
        let push_argv = vec!["docker".to_string(), "push".to_string(), spec.tag.clone()];
        if let Some(out) = run_command(
            ctx,
            &push_argv,
            ctx.settings.retry_attempts,
            None,
            Expect::Text,
        )? {
            if out.code != 0 {
                return Err(failure(ctx, &push_argv, &out));
            }
        }
    }
    if !ctx.dry_run {
        ctx.built(&spec.tag, fingerprint, source);
    }
    Ok(spec.tag.clone())
}

/// How many image builds `docker_build([...])` runs at once (`docker.parallel_builds`).
fn parallel_builds(ctx: &StepContext) -> usize {
    ctx.config
        .get("docker.parallel_builds")
        .and_then(|v| v.as_u64())
        .map(|n| n.clamp(1, 16) as usize)
        .unwrap_or(2)
}

pub(super) fn docker_build(spec: RMap) -> HostResult<String> {
    let ctx = current("docker_build")?;
    ctx.refuse_in_verify("docker_build()")?;
    build_one(&ctx, &BuildSpec::parse(&spec)?)
}

/// `docker_build([spec, spec, ...])`: builds concurrently (bounded), returns the references in
/// order; the first failure fails the call after the running builds end.
pub(super) fn docker_build_many(specs: Array) -> HostResult<Array> {
    let ctx = current("docker_build")?;
    ctx.refuse_in_verify("docker_build()")?;
    let specs: Vec<BuildSpec> = specs
        .iter()
        .map(|d| {
            d.clone()
                .try_cast::<RMap>()
                .ok_or_else(|| err("docker_build([...]): each element must be a map"))
                .and_then(|m| BuildSpec::parse(&m))
        })
        .collect::<HostResult<_>>()?;
    let limit = if ctx.dry_run {
        1
    } else {
        parallel_builds(&ctx)
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Mutex<Vec<Option<HostResult<String>>>> =
        Mutex::new((0..specs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..limit.min(specs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= specs.len() {
                    break;
                }
                let r = build_one(&ctx, &specs[i]);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    let mut out = Array::new();
    for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        out.push(Dynamic::from(
            r.unwrap_or_else(|| Err(err("build not run")))?,
        ));
    }
    Ok(out)
}
