//! Which images of a `docker_build` step a deployment would rebuild, told before it runs:
//! each image a step built is recorded with its Dockerfile, its build context and the digest
//! of the files Docker would be sent (`image_sources` in the step's record); the plan hashes
//! them again. Build arguments, tag and platform come from the script and are only known when
//! it runs: an image whose files are unchanged is named as such, not as up to date.

use super::fingerprint::Fingerprinter;
use serde_json::{json, Map, Value};
use std::path::Path;

/// The record key of the images' sources.
pub const SOURCES_KEY: &str = "image_sources";

/// The digests of what an image is made of: its Dockerfile, and the files of the context the
/// Dockerfile copies, as Docker sends them.
pub fn parts(
    fp: &Fingerprinter,
    dockerfile: &str,
    context: &str,
) -> Result<(String, String), String> {
    let digest = fp
        .file_digest(Path::new(dockerfile))
        .map_err(|e| format!("cannot read Dockerfile {dockerfile}: {e}"))?;
    let text = std::fs::read_to_string(fp.root.join(dockerfile)).unwrap_or_default();
    let sources = crate::util::dockerfile::context_sources(&text);
    let context_digest = fp
        .context_digest(
            Path::new(context),
            Some(Path::new(dockerfile)),
            sources.as_deref(),
        )
        .map_err(|e| format!("build context {context}: {e}"))?;
    Ok((digest, context_digest))
}

/// The files digest kept in the record: Dockerfile and context together.
pub fn files_digest(dockerfile_digest: &str, context_digest: &str) -> String {
    crate::util::digest::sha256_hex(format!("{dockerfile_digest}\0{context_digest}").as_bytes())
}

/// The record entry of one image.
pub fn source(dockerfile: &str, context: &str, files: &str) -> Value {
    json!({ "dockerfile": dockerfile, "context": context, "files": files })
}

/// One image in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePlan {
    pub tag: String,
    /// Its Dockerfile or context files changed (or the step is forced): it would be rebuilt.
    pub rebuild: bool,
    /// Why, in the plan's words.
    pub why: String,
}

impl ImagePlan {
    /// The plan line: `image T would be rebuilt: …` / `image T: …`.
    pub fn line(&self) -> String {
        if self.rebuild {
            format!("image {} would be rebuilt: {}", self.tag, self.why)
        } else {
            format!("image {}: {}", self.tag, self.why)
        }
    }
}

/// The images of a step's record (`sources`: tag → {dockerfile, context, files}) compared with
/// the files as they are now; `forced` rebuilds every image.
pub fn check(fp: &Fingerprinter, sources: &Map<String, Value>, forced: bool) -> Vec<ImagePlan> {
    sources
        .iter()
        .map(|(tag, s)| {
            let field = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or_default();
            let (rebuild, why) = if forced {
                (true, "the step is forced".to_string())
            } else {
                match parts(fp, field("dockerfile"), field("context")) {
                    Err(e) => (true, e),
                    Ok((d, c)) if files_digest(&d, &c) != field("files") => (
                        true,
                        format!(
                            "its Dockerfile {} or the files it copies from {} changed",
                            field("dockerfile"),
                            field("context")
                        ),
                    ),
                    Ok(_) => (
                        false,
                        "Dockerfile and copied files unchanged (rebuilt only if its build args, tag or platform changed)".to_string(),
                    ),
                }
            };
            ImagePlan { tag: tag.clone(), rebuild, why }
        })
        .collect()
}
