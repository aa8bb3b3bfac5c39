//! The instances a request can run on, resolved from its `model` field.

use std::sync::Arc;

use crate::model::KindClass;

/// The set of instances a request may run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Any instance of this model, on any upstream.
    Model(Arc<str>),
    /// Only instances with exactly this id (`qwen:2`), on any upstream.
    Instance(Arc<str>),
    /// Any instance of this class: the `--unknown-model any` fallback.
    AnyOf(KindClass),
}

impl Target {
    /// Returns the name used for this target in errors, logs and queue metrics.
    pub fn label(&self) -> String {
        match self {
            Target::Model(model) => model.to_string(),
            Target::Instance(id) => id.to_string(),
            Target::AnyOf(KindClass::Generative) => "any generative model".to_string(),
            Target::AnyOf(KindClass::Embedding) => "any embedding model".to_string(),
        }
    }
}

/// Identifies one FIFO queue: a model's, or a class's for `AnyOf` targets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum QueueKey {
    Model(Arc<str>),
    Class(KindClass),
}
