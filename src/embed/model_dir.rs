//! Where the model files live, checked once at start-up so a missing file is reported by name
//! instead of surfacing as an obscure parse error deep in loading.

use std::path::{Path, PathBuf};

use super::EmbedError;

/// Default location of the model, relative to the working directory (what
/// `scripts/fetch-model.sh` writes).
pub const DEFAULT_MODEL_DIR: &str = "models/all-MiniLM-L6-v2";

/// The files the embedder needs from a model directory.
const REQUIRED: [&str; 2] = ["model.safetensors", "tokenizer.json"];

/// A model directory known to hold the files the embedder reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDir {
    dir: PathBuf,
}

impl ModelDir {
    /// Checks that `dir` holds `model.safetensors` and `tokenizer.json`; the error names every
    /// missing file and the script that fetches them.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, EmbedError> {
        let dir = dir.as_ref().to_path_buf();
        let missing: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(EmbedError::MissingModelFiles {
                dir,
                missing: missing.join(", "),
            });
        }
        Ok(Self { dir })
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Path of the safetensors weights.
    pub fn weights(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }

    /// Path of the Hugging Face tokenizer description.
    pub fn tokenizer(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let dir = std::env::temp_dir().join(format!("infergate-modeldir-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("tokenizer.json"), "{}");
        let err = ModelDir::open(&dir).unwrap_err().to_string();
        assert!(err.contains("model.safetensors"), "{err}");
        assert!(!err.contains("tokenizer.json"), "{err}");
        assert!(err.contains("scripts/fetch-model.sh"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
