//! The semantic cache's model files and, for the GPU embedder, the CUDA libraries.

use std::path::Path;

use super::Finding;
use crate::config::Config;
use crate::embed::{BackendKind, EmbedderConfig, ModelDir};

/// The embedder settings when the gateway would start the embedder (an alias uses the
/// semantic cache, or `[embedder]` is there), as `serve` decides.
pub fn embedder_in_use(cfg: &Config) -> Option<EmbedderConfig> {
    let semantic = cfg
        .models
        .values()
        .any(|m| m.cache.as_ref().is_some_and(|c| c.semantic));
    if !semantic && cfg.embedder.is_none() {
        return None;
    }
    Some(cfg.embedder.clone().unwrap_or_default())
}

/// The model line: the files must be there, and `load` (tokenizer and weights, one
/// embedding) must work on them.
pub fn check_model(dir: &Path, load: impl FnOnce(&ModelDir) -> Result<String, String>) -> Finding {
    const CHECK: &str = "model files";
    let fetch = format!(
        "run scripts/fetch-model.sh {} (it checks each file's SHA-256), or point [embedder] model_dir at the model; without it the semantic cache is off",
        dir.display()
    );
    let model = match ModelDir::open(dir) {
        Ok(m) => m,
        Err(e) => return Finding::fail(CHECK, e.to_string(), fetch),
    };
    match load(&model) {
        Ok(what) => Finding::ok(CHECK, format!("{}: {what}", dir.display())),
        Err(e) => Finding::fail(
            CHECK,
            format!("{}: the files do not load together: {e}", dir.display()),
            fetch,
        ),
    }
}

/// Loads the tokenizer and the weights on the CPU backend and embeds one line, as the
/// embedder thread would.
pub fn load_and_embed(model: &ModelDir) -> Result<String, String> {
    let tokenizer =
        crate::embed::TextTokenizer::from_file(&model.tokenizer()).map_err(|e| e.to_string())?;
    let mut backend =
        crate::embed::open_backend(BackendKind::Cpu, model, 1).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    crate::embed::embed_lines(
        &tokenizer,
        backend.as_mut(),
        1,
        &b"{\"text\":\"infergate doctor\"}\n"[..],
        &mut out,
    )
    .map_err(|e| e.to_string())?;
    let line: serde_json::Value = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
    let dims = line
        .get("embedding")
        .and_then(|e| e.as_array())
        .map_or(0, Vec::len);
    if dims != crate::embed::EMBED_DIM {
        return Err(format!(
            "an embedding has {dims} dimensions, not {}",
            crate::embed::EMBED_DIM
        ));
    }
    Ok(format!(
        "tokenizer and weights load and embed ({dims} dimensions)"
    ))
}

/// The CUDA line for the embedder's backend: `probe` says which device runs, or why none.
pub fn check_cuda(backend: BackendKind, probe: impl FnOnce() -> Result<String, String>) -> Finding {
    const CHECK: &str = "cuda";
    match backend {
        BackendKind::Cpu => Finding::ok(CHECK, "[embedder] backend = \"cpu\": CUDA is not used"),
        BackendKind::Auto => match probe() {
            Ok(device) => Finding::ok(CHECK, format!("the embedder runs on {device}")),
            Err(why) => Finding::ok(
                CHECK,
                format!("the embedder runs on the CPU ({why}); backend = \"auto\" allows that"),
            ),
        },
        BackendKind::Cuda => match probe() {
            Ok(device) => Finding::ok(CHECK, format!("the embedder runs on {device}")),
            Err(why) => Finding::fail(
                CHECK,
                format!("[embedder] backend = \"cuda\" but {why}"),
                "install the NVIDIA driver and the CUDA 13 libraries (libcuda, libnvrtc, libcublas) where the loader finds them (ldconfig or LD_LIBRARY_PATH), or set backend = \"auto\" or \"cpu\"",
            ),
        },
    }
}

/// The real CUDA probe: loads the libraries and opens device 0.
pub fn probe_cuda() -> Result<String, String> {
    crate::embed::cuda::probe()
        .map(|d| format!("{} ({}, {} device(s))", d.name, d.arch(), d.device_count))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    #[test]
    fn a_missing_model_dir_fails_with_the_fetch_script() {
        let f = check_model(Path::new("/nonexistent/model"), |_| Ok(String::new()));
        assert_eq!(f.level, Level::Fail);
        assert!(f.detail.contains("model.safetensors"), "{f:?}");
        assert!(f
            .fix
            .unwrap()
            .contains("scripts/fetch-model.sh /nonexistent/model"));
    }

    #[test]
    fn files_that_do_not_load_fail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.safetensors"), b"not weights").unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), b"{}").unwrap();
        let f = check_model(dir.path(), load_and_embed);
        assert_eq!(f.level, Level::Fail);
        assert!(f.detail.contains("do not load together"), "{f:?}");
        let f = check_model(dir.path(), |_| Ok("fine".into()));
        assert_eq!(f.level, Level::Ok);
    }

    #[test]
    fn cuda_is_required_only_when_asked_for() {
        let none = || Err("no CUDA: cannot load libcuda (NVIDIA driver)".to_string());
        let f = check_cuda(BackendKind::Cuda, none);
        assert_eq!(f.level, Level::Fail);
        assert!(f.detail.contains("cannot load libcuda"), "{f:?}");
        assert!(f.fix.unwrap().contains("LD_LIBRARY_PATH"));
        assert_eq!(check_cuda(BackendKind::Auto, none).level, Level::Ok);
        assert_eq!(check_cuda(BackendKind::Cpu, none).level, Level::Ok);
        let f = check_cuda(BackendKind::Cuda, || Ok("NVIDIA H100".into()));
        assert_eq!(f.level, Level::Ok);
    }

    #[test]
    fn the_embedder_is_in_use_with_a_semantic_alias_or_a_section() {
        let cfg = Config::parse("").unwrap();
        assert!(embedder_in_use(&cfg).is_none());
        let cfg = Config::parse("[embedder]\nmodel_dir = \"/m\"\n").unwrap();
        assert_eq!(embedder_in_use(&cfg).unwrap().model_dir, Path::new("/m"));
        let cfg = Config::parse(
            "[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n[models.m]\ntargets = [{ provider = \"p\", model = \"x\" }]\ncache = { semantic = true }\n",
        )
        .unwrap();
        assert!(embedder_in_use(&cfg).is_some());
    }
}
