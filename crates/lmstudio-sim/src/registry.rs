//! The downloaded models and their loaded instances: naming, routing a request's `model`
//! to an instance, loading and unloading.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::{ModelKind, ModelSpec, split_instance_suffix};
use crate::instance::Instance;
use crate::stats::{Changes, Stats};

/// Context length of a newly loaded instance, in tokens.
pub(crate) fn default_context_length(kind: ModelKind) -> u32 {
    match kind {
        ModelKind::Embeddings => 2048,
        ModelKind::Llm | ModelKind::Vlm => 4096,
    }
}

pub(crate) struct Registry {
    models: Mutex<Vec<Model>>,
    changes: Arc<Changes>,
}

pub(crate) struct Model {
    pub key: Arc<str>,
    pub kind: ModelKind,
    pub parallel: u32,
    /// Loaded instances, oldest first.
    pub instances: Vec<Arc<Instance>>,
}

/// Where a request's `model` leads.
pub(crate) enum Resolved {
    Instance(Arc<Instance>),
    /// A downloaded model with no loaded instance.
    NotLoaded {
        key: Arc<str>,
        kind: ModelKind,
    },
    Unknown,
}

/// Optional settings of a load.
#[derive(Default)]
pub(crate) struct LoadOptions {
    pub context_length: Option<u32>,
    pub parallel: Option<u32>,
}

impl Registry {
    pub fn new(specs: &[ModelSpec], changes: Arc<Changes>) -> Self {
        let models = specs
            .iter()
            .map(|spec| Model {
                key: spec.id.as_str().into(),
                kind: spec.kind,
                parallel: spec.parallel,
                instances: Vec::new(),
            })
            .collect();
        let registry = Self {
            models: Mutex::new(models),
            changes,
        };
        for spec in specs {
            for _ in 0..spec.initial_instances() {
                registry
                    .load(&spec.id, LoadOptions::default())
                    .expect("configured model exists");
            }
        }
        registry
    }

    /// Resolves a request's `model`: an exact instance id first, then a model key, which
    /// goes to the model's oldest loaded instance.
    ///
    /// The first instance's id is the bare key, so the two rules agree until that instance
    /// is unloaded and the key is given to a newer one.
    pub fn resolve(&self, name: &str) -> Resolved {
        let models = self.lock();
        let mut by_key = None;
        for model in models.iter() {
            if let Some(instance) = model.instances.iter().find(|i| &*i.id == name) {
                return Resolved::Instance(Arc::clone(instance));
            }
            if &*model.key == name {
                by_key = Some(model);
            }
        }
        let Some(model) = by_key else {
            return Resolved::Unknown;
        };
        match model.instances.first() {
            Some(oldest) => Resolved::Instance(Arc::clone(oldest)),
            None => Resolved::NotLoaded {
                key: Arc::clone(&model.key),
                kind: model.kind,
            },
        }
    }

    pub fn any_loaded(&self) -> bool {
        self.lock().iter().any(|model| !model.instances.is_empty())
    }

    /// Loads a new instance of the model with this key and returns it. The instance gets the
    /// lowest free id of `key`, `key:2`, `key:3`, ...
    pub fn load(&self, key: &str, options: LoadOptions) -> Result<Arc<Instance>, String> {
        let mut models = self.lock();
        let Some(model) = models.iter_mut().find(|model| &*model.key == key) else {
            return Err(format!("model {key:?} not found"));
        };
        let id = free_instance_id(model);
        let parallel = options.parallel.unwrap_or(model.parallel);
        let context_length = options
            .context_length
            .unwrap_or_else(|| default_context_length(model.kind));
        let instance = Arc::new(Instance::new(
            id.into(),
            Arc::clone(&model.key),
            model.kind,
            parallel,
            context_length,
            Arc::clone(&self.changes),
        ));
        model.instances.push(Arc::clone(&instance));
        drop(models);
        self.changes.changed();
        Ok(instance)
    }

    /// Unloads the instance with this id. Its queued requests fail; running ones finish.
    pub fn unload(&self, instance_id: &str) -> bool {
        let mut models = self.lock();
        for model in models.iter_mut() {
            if let Some(index) = model.instances.iter().position(|i| &*i.id == instance_id) {
                let instance = model.instances.remove(index);
                drop(models);
                instance.unload();
                self.changes.changed();
                return true;
            }
        }
        false
    }

    pub fn instance(&self, instance_id: &str) -> Option<Arc<Instance>> {
        self.lock()
            .iter()
            .flat_map(|model| model.instances.iter())
            .find(|instance| &*instance.id == instance_id)
            .cloned()
    }

    pub fn stats(&self) -> Stats {
        let instances = self
            .lock()
            .iter()
            .flat_map(|model| model.instances.iter())
            .map(|instance| instance.stats())
            .collect();
        Stats { instances }
    }

    pub fn reset(&self) {
        for model in self.lock().iter() {
            for instance in &model.instances {
                instance.reset();
            }
        }
        self.changes.changed();
    }

    /// Runs `read` over the models, for listings.
    pub fn with_models<T>(&self, read: impl FnOnce(&[Model]) -> T) -> T {
        read(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Model>> {
        self.models
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn free_instance_id(model: &Model) -> String {
    let taken = |number: u32| {
        model.instances.iter().any(|instance| {
            let suffix = split_instance_suffix(&instance.id).map_or(1, |(_, n)| n);
            suffix == number
        })
    };
    let number = (1..).find(|&number| !taken(number)).unwrap_or(1);
    if number == 1 {
        model.key.to_string()
    } else {
        format!("{}:{number}", model.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(specs: &[&str]) -> Registry {
        let specs: Vec<ModelSpec> = specs.iter().map(|spec| spec.parse().unwrap()).collect();
        Registry::new(&specs, Arc::default())
    }

    fn resolved_id(registry: &Registry, name: &str) -> Option<String> {
        match registry.resolve(name) {
            Resolved::Instance(instance) => Some(instance.id.to_string()),
            _ => None,
        }
    }

    #[test]
    fn instances_are_numbered() {
        let registry = registry(&["m,instances=3"]);
        let ids: Vec<String> = registry
            .stats()
            .instances
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["m", "m:2", "m:3"]);
    }

    #[test]
    fn bare_key_goes_to_oldest() {
        let registry = registry(&["m,instances=2"]);
        assert_eq!(resolved_id(&registry, "m").as_deref(), Some("m"));
        assert_eq!(resolved_id(&registry, "m:2").as_deref(), Some("m:2"));
        assert!(registry.unload("m"));
        assert_eq!(resolved_id(&registry, "m").as_deref(), Some("m:2"));
    }

    #[test]
    fn freed_ids_are_reused() {
        let registry = registry(&["m,instances=3"]);
        assert!(registry.unload("m:2"));
        let instance = registry.load("m", LoadOptions::default()).unwrap();
        assert_eq!(&*instance.id, "m:2");
    }

    #[test]
    fn unknown_and_not_loaded() {
        let registry = registry(&["m", "n,state=not-loaded"]);
        assert!(matches!(registry.resolve("x"), Resolved::Unknown));
        assert!(matches!(registry.resolve("m:2"), Resolved::Unknown));
        assert!(matches!(registry.resolve("n"), Resolved::NotLoaded { .. }));
        assert!(registry.load("x", LoadOptions::default()).is_err());
    }
}
