//! Model naming shared by the catalog, the scheduler and the endpoints.

use serde::Serialize;

/// What an instance serves, as LM Studio's model listings classify it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Llm,
    Vlm,
    Embeddings,
}

impl ModelKind {
    /// Reads LM Studio's `type` field (`llm`, `vlm`, `embeddings`, or 0.4's `embedding`).
    pub fn from_lmstudio(value: &str) -> Option<ModelKind> {
        match value {
            "llm" => Some(ModelKind::Llm),
            "vlm" => Some(ModelKind::Vlm),
            "embeddings" | "embedding" => Some(ModelKind::Embeddings),
            _ => None,
        }
    }

    /// Guesses the kind from an id alone, for servers whose listing has no type.
    pub fn guess_from_id(id: &str) -> ModelKind {
        if id.to_ascii_lowercase().contains("embed") {
            ModelKind::Embeddings
        } else {
            ModelKind::Llm
        }
    }

    pub fn class(self) -> KindClass {
        match self {
            ModelKind::Llm | ModelKind::Vlm => KindClass::Generative,
            ModelKind::Embeddings => KindClass::Embedding,
        }
    }
}

/// The two families of endpoints: text generation, and embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KindClass {
    Generative,
    Embedding,
}

/// Returns an instance's model: its id without a trailing `:N` (`qwen:2` belongs to `qwen`).
pub fn model_of(instance_id: &str) -> &str {
    match instance_id.rsplit_once(':') {
        Some((model, copy))
            if !model.is_empty()
                && !copy.is_empty()
                && copy.bytes().all(|b| b.is_ascii_digit()) =>
        {
            model
        }
        _ => instance_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_of_strips_copy_number() {
        assert_eq!(model_of("qwen2.5-7b-instruct:2"), "qwen2.5-7b-instruct");
        assert_eq!(model_of("qwen2.5-7b-instruct"), "qwen2.5-7b-instruct");
        assert_eq!(model_of("org/model:q4"), "org/model:q4");
        assert_eq!(model_of(":3"), ":3");
        assert_eq!(model_of("m:"), "m:");
    }

    #[test]
    fn kind_from_lmstudio_types() {
        assert_eq!(
            ModelKind::from_lmstudio("embedding"),
            Some(ModelKind::Embeddings)
        );
        assert_eq!(ModelKind::from_lmstudio("vlm"), Some(ModelKind::Vlm));
        assert_eq!(ModelKind::from_lmstudio("tts"), None);
        assert_eq!(
            ModelKind::guess_from_id("text-embedding-nomic"),
            ModelKind::Embeddings
        );
    }
}
