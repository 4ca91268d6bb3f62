//! Model configuration: `CLIPConfig`, `CLIPTextConfig`, `CLIPVisionConfig`.
//!
//! Read from a Hugging Face `config.json`. Every field missing from the file
//! takes transformers' default (`configuration_clip.py`), so the terse configs
//! saved by recent versions load the same as the verbose legacy ones. Unknown
//! fields are ignored; fields of the wrong type are a [`ErrorKind::Format`]
//! error naming the field.
//!
//! [`ErrorKind::Format`]: crate::ErrorKind::Format

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The activation function of the MLP blocks (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)` (OpenAI's checkpoints).
    QuickGelu,
    /// Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`.
    Gelu,
    /// The tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// `max(x, 0)`.
    Relu,
}

impl Activation {
    /// Parses a transformers `hidden_act` name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "quick_gelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => Err(Error::unsupported(format!(
                "hidden_act \"{other}\" is not supported (supported: quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu)"
            ))),
        }
    }
}

/// Configuration of the text tower (`CLIPTextConfig`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct CLIPTextConfig {
    /// Vocabulary size (rows of the token embedding).
    pub vocab_size: usize,
    /// Width of the transformer.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Output width of `text_projection` (standalone `CLIPTextModelWithProjection`).
    pub projection_dim: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads.
    pub num_attention_heads: usize,
    /// Maximum sequence length (77 for CLIP).
    pub max_position_embeddings: usize,
    /// MLP activation name (see [`Activation::from_name`]).
    pub hidden_act: String,
    /// Layer norm epsilon.
    pub layer_norm_eps: f64,
    /// Padding token id (unused by the model itself).
    pub pad_token_id: Option<i64>,
    /// Beginning-of-text token id.
    pub bos_token_id: Option<i64>,
    /// End-of-text token id. The legacy value `2` selects transformers'
    /// argmax pooling rule (see [`crate::text_model`]).
    pub eos_token_id: Option<i64>,
    /// Which position the pooled output is taken from (not a transformers
    /// key: transformers always uses [`TextPooling::Eos`]).
    pub pooling: TextPooling,
    /// Whether every layer scales its two residual branches by learned
    /// per-channel factors (open_clip's LayerScale, `ls_1` / `ls_2`; not a
    /// transformers key).
    pub layer_scale: bool,
    /// Whether the checkpoint has a text projection. open_clip models with
    /// `proj_type: "none"` have none: their text features are the pooled
    /// output (not a transformers key).
    pub text_projection: bool,
}

/// The text position whose final hidden state is the pooled output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextPooling {
    /// transformers' rule: the first `eos_token_id` of the text; with the
    /// legacy `eos_token_id` 2, the highest token id.
    #[default]
    Eos,
    /// The highest token id, the first one on ties (OpenAI and open_clip
    /// `argmax`: CLIP's end-of-text token has the highest id).
    Argmax,
    /// The first position (open_clip `first`).
    First,
    /// The last position of the sequence as given, padding included
    /// (open_clip `last`).
    Last,
}

impl TextPooling {
    /// The lowercase name, as in configs (`eos`, `argmax`, `first`, `last`).
    pub fn name(self) -> &'static str {
        match self {
            TextPooling::Eos => "eos",
            TextPooling::Argmax => "argmax",
            TextPooling::First => "first",
            TextPooling::Last => "last",
        }
    }
}

impl Default for CLIPTextConfig {
    fn default() -> Self {
        CLIPTextConfig {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            projection_dim: 512,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            pad_token_id: Some(1),
            bos_token_id: Some(49406),
            eos_token_id: Some(49407),
            pooling: TextPooling::Eos,
            layer_scale: false,
            text_projection: true,
        }
    }
}

/// Configuration of the vision tower (`CLIPVisionConfig`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct CLIPVisionConfig {
    /// Width of the transformer.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Output width of `visual_projection` (standalone `CLIPVisionModelWithProjection`).
    pub projection_dim: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads.
    pub num_attention_heads: usize,
    /// Input channels (3).
    pub num_channels: usize,
    /// Input resolution the position embeddings were trained for.
    pub image_size: usize,
    /// Side of the square patches.
    pub patch_size: usize,
    /// MLP activation name (see [`Activation::from_name`]).
    pub hidden_act: String,
    /// Layer norm epsilon.
    pub layer_norm_eps: f64,
    /// Whether the embeddings go through a layer norm before the encoder
    /// (`pre_layrnorm`; open_clip's `no_ln_pre` models have none; not a
    /// transformers key).
    pub pre_layer_norm: bool,
    /// Whether every layer scales its two residual branches by learned
    /// per-channel factors (open_clip's LayerScale; not a transformers key).
    pub layer_scale: bool,
}

impl Default for CLIPVisionConfig {
    fn default() -> Self {
        CLIPVisionConfig {
            hidden_size: 768,
            intermediate_size: 3072,
            projection_dim: 512,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            pre_layer_norm: true,
            layer_scale: false,
        }
    }
}

/// Configuration of the full model (`CLIPConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct CLIPConfig {
    /// The text tower.
    pub text_config: CLIPTextConfig,
    /// The vision tower.
    pub vision_config: CLIPVisionConfig,
    /// Width of the shared embedding space.
    pub projection_dim: usize,
    /// Initial value of `logit_scale` (the trained value is in the weights).
    pub logit_scale_init_value: f64,
    /// Class names of `CLIPForImageClassification`, by class index.
    pub id2label: BTreeMap<usize, String>,
}

impl Default for CLIPConfig {
    fn default() -> Self {
        CLIPConfig {
            text_config: CLIPTextConfig::default(),
            vision_config: CLIPVisionConfig::default(),
            projection_dim: 512,
            logit_scale_init_value: 2.6592,
            id2label: BTreeMap::new(),
        }
    }
}

/// What a `config.json` describes.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// A two-tower `CLIPModel` (`model_type: "clip"`).
    Clip(CLIPConfig),
    /// A standalone text model (`model_type: "clip_text_model"`).
    Text(CLIPTextConfig),
    /// A standalone vision model (`model_type: "clip_vision_model"`).
    Vision(CLIPVisionConfig),
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawClipConfig {
    model_type: Option<String>,
    text_config: Option<serde_json::Value>,
    vision_config: Option<serde_json::Value>,
    text_config_dict: Option<serde_json::Value>,
    vision_config_dict: Option<serde_json::Value>,
    projection_dim: Option<usize>,
    logit_scale_init_value: Option<f64>,
    id2label: Option<BTreeMap<String, String>>,
}

/// Parses an object whose `null` values mean "not set", as transformers
/// reads them: the key's default applies. Token ids keep their `null`
/// (no such token).
fn parse_json<T: for<'de> Deserialize<'de>>(mut value: serde_json::Value, what: &str) -> Result<T> {
    if let Some(obj) = value.as_object_mut() {
        obj.retain(|k, v| !v.is_null() || k.ends_with("_token_id"));
    }
    serde_json::from_value(value).map_err(|e| Error::format(format!("{what}: {e}")))
}

fn object_or_default<T: for<'de> Deserialize<'de> + Default>(
    primary: Option<serde_json::Value>,
    legacy: Option<serde_json::Value>,
    what: &str,
) -> Result<T> {
    // transformers: a non-null legacy `*_config_dict` overrides `*_config`.
    match (legacy, primary) {
        (Some(v), _) if !v.is_null() => parse_json(v, &format!("{what}_dict")),
        (_, Some(v)) if !v.is_null() => parse_json(v, what),
        _ => Ok(T::default()),
    }
}

impl ModelConfig {
    /// Parses `config.json` text. `model_type` decides the kind; without it,
    /// a file with `text_config`/`vision_config` is a `CLIPModel`, one with
    /// `patch_size` or `image_size` a vision model, anything else a text model.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::format(format!("not valid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| Error::format("expected a JSON object at the top level"))?;
        let model_type = match obj.get("model_type") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(Error::format(format!("model_type: expected a string, found {other}")))
            }
        };
        let kind = match model_type.as_deref() {
            Some("clip") => "clip",
            Some("clip_text_model") => "text",
            Some("clip_vision_model") => "vision",
            Some(other) => {
                return Err(Error::unsupported(format!(
                    "model_type \"{other}\" is not a CLIP model (expected clip, clip_text_model or clip_vision_model)"
                )))
            }
            None if obj.contains_key("text_config")
                || obj.contains_key("vision_config")
                || obj.contains_key("text_config_dict")
                || obj.contains_key("vision_config_dict") =>
            {
                "clip"
            }
            None if obj.contains_key("patch_size") || obj.contains_key("image_size") => "vision",
            None => "text",
        };
        let config = match kind {
            "clip" => {
                let raw: RawClipConfig = parse_json(value, "config")?;
                let text_config =
                    object_or_default(raw.text_config, raw.text_config_dict, "text_config")?;
                let vision_config =
                    object_or_default(raw.vision_config, raw.vision_config_dict, "vision_config")?;
                let mut id2label = BTreeMap::new();
                for (k, v) in raw.id2label.unwrap_or_default() {
                    let id = k.parse::<usize>().map_err(|_| {
                        Error::format(format!("id2label: key \"{k}\" is not a class index"))
                    })?;
                    id2label.insert(id, v);
                }
                ModelConfig::Clip(CLIPConfig {
                    text_config,
                    vision_config,
                    projection_dim: raw.projection_dim.unwrap_or(512),
                    logit_scale_init_value: raw.logit_scale_init_value.unwrap_or(2.6592),
                    id2label,
                })
            }
            "vision" => ModelConfig::Vision(parse_json(value, "config")?),
            _ => ModelConfig::Text(parse_json(value, "config")?),
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a `config.json` file; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|e| e.context(path.display()))
    }

    /// Checks the values for consistency (positive sizes, heads dividing the width, ...).
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Clip(c) => {
                c.text_config.validate()?;
                c.vision_config.validate()?;
                if c.projection_dim == 0 {
                    return Err(Error::format("projection_dim must be positive"));
                }
                if !c.text_config.text_projection && c.text_config.hidden_size != c.projection_dim {
                    return Err(Error::format(format!(
                        "a text tower without projection must be projection_dim ({}) wide, not {}",
                        c.projection_dim, c.text_config.hidden_size
                    )));
                }
                check_elements(
                    "config",
                    "text projection",
                    &[c.projection_dim, c.text_config.hidden_size],
                )?;
                check_elements(
                    "config",
                    "visual projection",
                    &[c.projection_dim, c.vision_config.hidden_size],
                )?;
                Ok(())
            }
            ModelConfig::Text(t) => t.validate(),
            ModelConfig::Vision(v) => v.validate(),
        }
    }
}

fn validate_tower(
    what: &str,
    hidden: usize,
    heads: usize,
    layers: usize,
    inter: usize,
    act: &str,
    eps: f64,
) -> Result<()> {
    let bad = |msg: String| Err(Error::format(format!("{what}: {msg}")));
    if hidden == 0 || inter == 0 {
        return bad(format!(
            "hidden_size ({hidden}) and intermediate_size ({inter}) must be positive"
        ));
    }
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return bad(format!(
            "num_attention_heads ({heads}) must be positive and divide hidden_size ({hidden})"
        ));
    }
    if layers > 1024 {
        return bad(format!("num_hidden_layers ({layers}) is implausibly large"));
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return bad(format!("layer_norm_eps ({eps}) must be a finite non-negative number"));
    }
    Activation::from_name(act).map_err(|e| e.context(what))?;
    Ok(())
}

/// The most elements any one weight tensor may have (2^40, 4 TiB of F32:
/// far above any real checkpoint). Checking every tensor shape a config
/// implies against it, with overflow-checked arithmetic, means no later
/// size computation can overflow, and absurd configs fail before anything
/// is allocated or compared.
const MAX_TENSOR_ELEMENTS: usize = 1 << 40;

/// Checks that `dims` multiply to at most [`MAX_TENSOR_ELEMENTS`].
fn check_elements(what: &str, tensor: &str, dims: &[usize]) -> Result<()> {
    let n = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    match n {
        Some(n) if n <= MAX_TENSOR_ELEMENTS => Ok(()),
        _ => Err(Error::format(format!(
            "{what}: the sizes imply a {tensor} of shape {dims:?}, more than {MAX_TENSOR_ELEMENTS} elements"
        ))),
    }
}

impl CLIPTextConfig {
    /// The parsed activation.
    pub fn activation(&self) -> Result<Activation> {
        Activation::from_name(&self.hidden_act)
    }

    /// Checks the values for consistency.
    pub fn validate(&self) -> Result<()> {
        validate_tower(
            "text_config",
            self.hidden_size,
            self.num_attention_heads,
            self.num_hidden_layers,
            self.intermediate_size,
            &self.hidden_act,
            self.layer_norm_eps,
        )?;
        if self.vocab_size == 0 || self.max_position_embeddings == 0 {
            return Err(Error::format(
                "text_config: vocab_size and max_position_embeddings must be positive",
            ));
        }
        let (w, t) = (self.hidden_size, "text_config");
        check_elements(t, "token embedding", &[self.vocab_size, w])?;
        check_elements(t, "position embedding", &[self.max_position_embeddings, w])?;
        check_elements(t, "MLP weight", &[self.intermediate_size, w])?;
        check_elements(t, "fused attention projection", &[3, w, w])?;
        check_elements(t, "projection", &[self.projection_dim, w])?;
        Ok(())
    }
}

impl CLIPVisionConfig {
    /// The parsed activation.
    pub fn activation(&self) -> Result<Activation> {
        Activation::from_name(&self.hidden_act)
    }

    /// Patches per side at the configured resolution.
    pub fn grid_size(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }

    /// Number of positions: patches plus the class token (saturating, for
    /// configs that [`CLIPVisionConfig::validate`] would refuse).
    pub fn num_positions(&self) -> usize {
        self.grid_size().saturating_mul(self.grid_size()).saturating_add(1)
    }

    /// Checks the values for consistency.
    pub fn validate(&self) -> Result<()> {
        validate_tower(
            "vision_config",
            self.hidden_size,
            self.num_attention_heads,
            self.num_hidden_layers,
            self.intermediate_size,
            &self.hidden_act,
            self.layer_norm_eps,
        )?;
        if self.patch_size == 0 || self.patch_size > self.image_size {
            return Err(Error::format(format!(
                "vision_config: patch_size ({}) must be positive and at most image_size ({})",
                self.patch_size, self.image_size
            )));
        }
        if self.num_channels == 0 {
            return Err(Error::format("vision_config: num_channels must be positive"));
        }
        let (w, v) = (self.hidden_size, "vision_config");
        let g = self.grid_size();
        check_elements(
            v,
            "patch embedding",
            &[w, self.num_channels, self.patch_size, self.patch_size],
        )?;
        check_elements(v, "position embedding", &[g, g, w])?;
        check_elements(v, "MLP weight", &[self.intermediate_size, w])?;
        check_elements(v, "fused attention projection", &[3, w, w])?;
        check_elements(v, "projection", &[self.projection_dim, w])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_gives_transformers_defaults() {
        let ModelConfig::Clip(c) = ModelConfig::from_json(r#"{"model_type": "clip"}"#).unwrap()
        else {
            panic!("expected a CLIP config")
        };
        assert_eq!(c, CLIPConfig::default());
    }

    #[test]
    fn legacy_dict_keys_override() {
        let json = r#"{"text_config": {"hidden_size": 64, "num_attention_heads": 2},
                       "text_config_dict": {"hidden_size": 32, "num_attention_heads": 4},
                       "vision_config_dict": null}"#;
        let ModelConfig::Clip(c) = ModelConfig::from_json(json).unwrap() else { panic!() };
        assert_eq!(c.text_config.hidden_size, 32);
        assert_eq!(c.text_config.num_attention_heads, 4);
        assert_eq!(c.vision_config, CLIPVisionConfig::default());
    }

    #[test]
    fn standalone_kinds_are_detected() {
        let v = ModelConfig::from_json(r#"{"model_type":"clip_vision_model","patch_size":16}"#);
        assert!(matches!(v, Ok(ModelConfig::Vision(c)) if c.patch_size == 16));
        let t = ModelConfig::from_json(r#"{"vocab_size": 100}"#);
        assert!(matches!(t, Ok(ModelConfig::Text(c)) if c.vocab_size == 100));
    }

    #[test]
    fn nulls_and_unknown_keys_are_tolerated() {
        let json = r#"{"model_type": "clip", "architectures": null, "some_future_key": [1, 2],
                       "projection_dim": null,
                       "text_config": {"hidden_act": null, "layer_norm_eps": null,
                                       "eos_token_id": null, "unknown": {"a": 1}},
                       "vision_config": null}"#;
        let ModelConfig::Clip(c) = ModelConfig::from_json(json).unwrap() else { panic!() };
        assert_eq!(c.projection_dim, 512);
        assert_eq!(c.text_config.hidden_act, "quick_gelu");
        assert_eq!(c.text_config.layer_norm_eps, 1e-5);
        // A null token id means "no such token", not the default.
        assert_eq!(c.text_config.eos_token_id, None);
        assert_eq!(c.vision_config, CLIPVisionConfig::default());
    }

    #[test]
    fn text_tower_without_projection_must_match_projection_dim() {
        let mut c = CLIPConfig::default();
        c.text_config.text_projection = false;
        c.text_config.hidden_size = 256;
        let err = ModelConfig::Clip(c.clone()).validate().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Format, "{err}");
        c.text_config.hidden_size = c.projection_dim;
        ModelConfig::Clip(c).validate().unwrap();
    }

    #[test]
    fn bad_values_are_format_errors() {
        for json in [
            "{not json",
            "[1,2]",
            r#"{"model_type":"clip","text_config":{"hidden_size":"wide"}}"#,
            r#"{"model_type":"clip","text_config":{"num_attention_heads":0}}"#,
            r#"{"model_type":"clip","text_config":{"num_attention_heads":7}}"#,
            r#"{"model_type":"clip","vision_config":{"patch_size":500}}"#,
            r#"{"model_type":"clip","vision_config":{"hidden_size":-3}}"#,
            r#"{"model_type":"clip","id2label":{"cat":"dog"}}"#,
        ] {
            let err = ModelConfig::from_json(json).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Format, "{json}: {err}");
        }
        let err =
            ModelConfig::from_json(r#"{"model_type":"clip","text_config":{"hidden_act":"swish"}}"#)
                .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unsupported);
        assert!(err.to_string().contains("swish"));
    }
}
