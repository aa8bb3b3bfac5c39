//! Simulator configuration and the `--model` SPEC syntax.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::faults::Faults;

/// Everything a simulator is started with.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address to listen on. Default 127.0.0.1.
    pub bind: IpAddr,
    /// Port to listen on; 0 picks a free port. Default 0 (the binary defaults to 1234).
    pub port: u16,
    /// Models on disk and how many instances of each start loaded. Default: see [`SimConfig::default`].
    pub models: Vec<ModelSpec>,
    /// Generation speed of each request after its first token. 0 generates every token at once.
    /// Default 50.
    pub tokens_per_second: f64,
    /// Time from a request getting a slot to its first token, before prompt processing. Default 50 ms.
    pub ttft: Duration,
    /// Prompt processing speed: when above 0, prompt tokens not cached on the slot add
    /// `tokens / rate` seconds to the time to first token. Default 0 (off).
    pub prefill_tokens_per_second: f64,
    /// When set, every request outside `/sim/` needs `Authorization: Bearer TOKEN`. Default none.
    pub api_token: Option<String>,
    /// Just-in-time loading: a request for a downloaded model with no loaded instance loads one
    /// after `load_time`. Default off.
    pub jit: bool,
    /// Time a load takes over HTTP or by just-in-time loading. Default 500 ms.
    pub load_time: Duration,
    /// Faults active at start.
    pub faults: Faults,
    /// Keep the last 64 inference exchanges for [`crate::Simulator::recorded`]. Default false.
    pub record: bool,
    /// Whether each streamed token's event starts with the SSE comment `: sent_us=MICROS`, the
    /// time the simulator wrote it in microseconds since the Unix epoch. Clients ignore comments,
    /// and the benchmark uses them to time each token's way to the client. Default false.
    pub stamp_tokens: bool,
}

impl Default for SimConfig {
    /// Returns 127.0.0.1 on port 0; `qwen2.5-7b-instruct` with 3 loaded instances of 1 slot,
    /// `text-embedding-nomic-embed-text-v1.5` with 1 loaded instance, and `llama-3.2-1b-instruct`
    /// downloaded but not loaded; 50 tokens per second after a 50 ms time to first token; no
    /// prompt processing delay, no token, no just-in-time loading, 500 ms loads, no faults and
    /// no recording.
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            models: default_models(),
            tokens_per_second: 50.0,
            ttft: Duration::from_millis(50),
            prefill_tokens_per_second: 0.0,
            api_token: None,
            jit: false,
            load_time: Duration::from_millis(500),
            faults: Faults::default(),
            record: false,
            stamp_tokens: false,
        }
    }
}

impl SimConfig {
    /// Returns the default configuration with `models` parsed from SPEC strings.
    ///
    /// # Panics
    /// Panics with the parse error when a SPEC is invalid.
    pub fn with_models(specs: &[&str]) -> Self {
        let models = specs
            .iter()
            .map(|spec| match spec.parse() {
                Ok(model) => model,
                Err(error) => panic!("invalid model spec {spec:?}: {error}"),
            })
            .collect();
        Self {
            models,
            ..Self::default()
        }
    }

    /// Checks what the type system cannot: unique model ids and finite, non-negative rates.
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (index, model) in self.models.iter().enumerate() {
            if self.models[..index]
                .iter()
                .any(|other| other.id == model.id)
            {
                return Err(format!("model {:?} is configured twice", model.id));
            }
            model.validate()?;
        }
        for (name, rate) in [
            ("tokens_per_second", self.tokens_per_second),
            ("prefill_tokens_per_second", self.prefill_tokens_per_second),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(format!("{name} must be 0 or a positive number, got {rate}"));
            }
        }
        Ok(())
    }

    /// True when requests need no timer at all, so they can run inline.
    pub(crate) fn is_instant(&self) -> bool {
        self.tokens_per_second == 0.0
            && self.ttft.is_zero()
            && self.prefill_tokens_per_second == 0.0
    }
}

fn default_models() -> Vec<ModelSpec> {
    vec![
        ModelSpec {
            id: "qwen2.5-7b-instruct".into(),
            instances: 3,
            parallel: 1,
            kind: ModelKind::Llm,
            loaded: true,
        },
        ModelSpec {
            id: "text-embedding-nomic-embed-text-v1.5".into(),
            instances: 1,
            parallel: 1,
            kind: ModelKind::Embeddings,
            loaded: true,
        },
        ModelSpec {
            id: "llama-3.2-1b-instruct".into(),
            instances: 0,
            parallel: 1,
            kind: ModelKind::Llm,
            loaded: false,
        },
    ]
}

/// One downloaded model: its id (LM Studio's model key), how many instances start loaded and
/// how many requests each instance serves at once.
///
/// The model starts with `instances` loaded instances when `loaded` is true and with none
/// otherwise. Instances loaded later get `parallel` slots too.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub id: String,
    pub instances: u32,
    pub parallel: u32,
    pub kind: ModelKind,
    pub loaded: bool,
}

impl ModelSpec {
    /// Number of instances loaded at start.
    pub(crate) fn initial_instances(&self) -> u32 {
        if self.loaded { self.instances } else { 0 }
    }

    fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() {
            return Err("model id is empty".into());
        }
        if split_instance_suffix(&self.id).is_some() {
            return Err(format!(
                "model id {:?} ends in an instance suffix `:N`; give the bare id and instances=N",
                self.id
            ));
        }
        if self.parallel == 0 {
            return Err(format!("model {:?}: parallel must be at least 1", self.id));
        }
        Ok(())
    }
}

impl FromStr for ModelSpec {
    type Err = String;

    /// Parses `ID[,instances=N][,parallel=K][,type=llm|vlm|embeddings][,state=loaded|not-loaded]`.
    ///
    /// Defaults: 1 instance, 1 slot, loaded; the type is `embeddings` when the id contains
    /// "embed" and `llm` otherwise. `instances=0` means not loaded, and `state=not-loaded`
    /// cannot be combined with a positive `instances`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parts = spec.split(',').map(str::trim);
        let id = parts.next().unwrap_or_default().to_string();
        let mut instances = None;
        let mut parallel = 1;
        let mut kind = None;
        let mut state = None;

        for part in parts {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("invalid option {part:?}: expected KEY=VALUE"));
            };
            match key.trim() {
                "instances" => instances = Some(parse_count(key, value)?),
                "parallel" => parallel = parse_count(key, value)?,
                "type" => kind = Some(value.trim().parse::<ModelKind>()?),
                "state" => state = Some(parse_state(value)?),
                other => {
                    return Err(format!(
                        "unknown option {other:?}: expected instances, parallel, type or state"
                    ));
                }
            }
        }

        let kind = kind.unwrap_or_else(|| guess_kind(&id));
        let (instances, loaded) = match (instances, state) {
            (Some(n), Some(false)) if n > 0 => {
                return Err(format!("instances={n} conflicts with state=not-loaded"));
            }
            (_, Some(false)) => (0, false),
            (Some(n), _) => (n, n > 0),
            (None, _) => (1, true),
        };
        let spec = ModelSpec {
            id,
            instances,
            parallel,
            kind,
            loaded,
        };
        spec.validate()?;
        Ok(spec)
    }
}

fn parse_count(key: &str, value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("invalid {key} {value:?}: expected a whole number"))
}

fn parse_state(value: &str) -> Result<bool, String> {
    match value.trim() {
        "loaded" => Ok(true),
        "not-loaded" => Ok(false),
        other => Err(format!(
            "invalid state {other:?}: expected loaded or not-loaded"
        )),
    }
}

fn guess_kind(id: &str) -> ModelKind {
    if id.contains("embed") {
        ModelKind::Embeddings
    } else {
        ModelKind::Llm
    }
}

/// Splits `id:N` (N a positive whole number) into `id` and N.
pub(crate) fn split_instance_suffix(name: &str) -> Option<(&str, u32)> {
    let (base, suffix) = name.rsplit_once(':')?;
    let number: u32 = suffix.parse().ok()?;
    let plain_digits = suffix.bytes().all(|byte| byte.is_ascii_digit());
    (plain_digits && number > 0 && !base.is_empty()).then_some((base, number))
}

/// What a model does, as `/api/v0/models` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Llm,
    Vlm,
    Embeddings,
}

impl ModelKind {
    /// The name used by `/api/v0` and `--model type=`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Llm => "llm",
            ModelKind::Vlm => "vlm",
            ModelKind::Embeddings => "embeddings",
        }
    }

    /// True for models that generate text (chat, completions, responses, messages).
    pub(crate) fn generates_text(self) -> bool {
        matches!(self, ModelKind::Llm | ModelKind::Vlm)
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "llm" => Ok(ModelKind::Llm),
            "vlm" => Ok(ModelKind::Vlm),
            "embeddings" | "embedding" => Ok(ModelKind::Embeddings),
            other => Err(format!(
                "invalid type {other:?}: expected llm, vlm or embeddings"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_defaults() {
        let spec: ModelSpec = "qwen2.5-7b-instruct".parse().unwrap();
        assert_eq!(spec.instances, 1);
        assert_eq!(spec.parallel, 1);
        assert_eq!(spec.kind, ModelKind::Llm);
        assert!(spec.loaded);
    }

    #[test]
    fn spec_all_options() {
        let spec: ModelSpec = "m,instances=3,parallel=4,type=vlm".parse().unwrap();
        assert_eq!(
            spec,
            ModelSpec {
                id: "m".into(),
                instances: 3,
                parallel: 4,
                kind: ModelKind::Vlm,
                loaded: true
            }
        );
    }

    #[test]
    fn spec_not_loaded() {
        let spec: ModelSpec = "m,state=not-loaded".parse().unwrap();
        assert_eq!(spec.instances, 0);
        assert!(!spec.loaded);
        let zero: ModelSpec = "m,instances=0".parse().unwrap();
        assert!(!zero.loaded);
    }

    #[test]
    fn spec_guesses_embeddings() {
        let spec: ModelSpec = "text-embedding-nomic-embed-text-v1.5".parse().unwrap();
        assert_eq!(spec.kind, ModelKind::Embeddings);
    }

    #[test]
    fn spec_errors_name_the_problem() {
        let cases = [
            ("", "empty"),
            ("m,instances=x", "invalid instances"),
            ("m,parallel=0", "parallel must be at least 1"),
            ("m,type=gpu", "invalid type"),
            ("m,color=red", "unknown option"),
            ("m,instances", "expected KEY=VALUE"),
            ("m,state=gone", "invalid state"),
            ("m,instances=2,state=not-loaded", "conflicts"),
            ("m:2", "instance suffix"),
        ];
        for (spec, expected) in cases {
            let error = spec.parse::<ModelSpec>().unwrap_err();
            assert!(error.contains(expected), "{spec:?} gave {error:?}");
        }
    }

    #[test]
    fn instance_suffix() {
        assert_eq!(split_instance_suffix("m:2"), Some(("m", 2)));
        assert_eq!(split_instance_suffix("org/m:12"), Some(("org/m", 12)));
        assert_eq!(split_instance_suffix("m"), None);
        assert_eq!(split_instance_suffix("m:0"), None);
        assert_eq!(split_instance_suffix("m:+2"), None);
        assert_eq!(split_instance_suffix(":2"), None);
    }

    #[test]
    fn config_rejects_duplicates() {
        let config = SimConfig::with_models(&["a", "a,instances=2"]);
        assert!(config.validate().unwrap_err().contains("twice"));
    }

    #[test]
    #[should_panic(expected = "invalid model spec")]
    fn with_models_panics_on_bad_spec() {
        SimConfig::with_models(&["m,parallel=none"]);
    }
}
