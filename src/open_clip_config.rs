//! open_clip's model configuration: `open_clip_config.json` as open_clip
//! pushes it to the hub (`{"model_cfg": {...}, "preprocess_cfg": {...}}`),
//! or a bare model config as in open_clip's `model_configs/*.json`.
//!
//! It becomes a [`CLIPConfig`] (and, from `preprocess_cfg`, an
//! [`ImageProcessorConfig`]) with open_clip's defaults for absent keys
//! (`CLIPVisionCfg`, `CLIPTextCfg`; GELU unless `quick_gelu`, layer norm eps
//! 1e-5, text pooled by argmax). What open_clip can build but this runtime
//! does not run (timm or ResNet image towers, Hugging Face text towers,
//! attentional pooling, CoCa, custom attention blocks, ...) is an
//! `Unsupported` error naming the key.

use crate::config::{CLIPConfig, CLIPTextConfig, CLIPVisionConfig, TextPooling};
use crate::error::{Error, Result};
use crate::image_processing::{CropSize, Filter, ImageProcessorConfig, ResizeTarget};
use serde_json::{Map, Value};
use std::path::Path;

/// The file name open_clip gives its configuration on the hub.
pub const OPEN_CLIP_CONFIG_FILE: &str = "open_clip_config.json";

/// A parsed `open_clip_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenClipConfig {
    /// The model, as a transformers-style configuration.
    pub model: CLIPConfig,
    /// The preprocessing of `preprocess_cfg` at the model's image size, if
    /// the file has one.
    pub preprocess: Option<ImageProcessorConfig>,
}

impl OpenClipConfig {
    /// Parses the JSON text of an open_clip model configuration.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::format(format!("not valid JSON: {e}")))?;
        let top = value
            .as_object()
            .ok_or_else(|| Error::format("expected a JSON object at the top level"))?;
        let (model_cfg, preprocess_cfg) = match top.get("model_cfg") {
            Some(m) => (object(m, "model_cfg")?, top.get("preprocess_cfg")),
            None => (top, None),
        };
        let model = model_config(model_cfg)?;
        let preprocess = match preprocess_cfg {
            Some(p) if !p.is_null() => Some(preprocess_config(
                object(p, "preprocess_cfg")?,
                model.vision_config.image_size,
            )?),
            _ => None,
        };
        crate::config::ModelConfig::Clip(model.clone()).validate()?;
        Ok(OpenClipConfig { model, preprocess })
    }

    /// Reads and parses a file; errors name it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|e| e.context(path.display()))
    }
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| Error::format(format!("{what}: expected an object, found {v}")))
}

/// Typed reads of one config object, `null` meaning absent, errors naming
/// the section and key.
struct Section<'a> {
    map: &'a Map<String, Value>,
    name: &'static str,
}

impl Section<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, expected: &str) -> Error {
        Error::format(format!("{}.{key}: expected {expected}, found {}", self.name, self.map[key]))
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => self.usize_of(v, key),
        }
    }

    fn usize_of(&self, value: &Value, key: &str) -> Result<usize> {
        value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.wrong(key, "a non-negative integer"))
    }

    fn f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.wrong(key, "a number")),
        }
    }

    fn bool(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => v.as_bool().ok_or_else(|| self.wrong(key, "true or false")),
        }
    }

    fn str(&self, key: &str, default: &'static str) -> Result<String> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some(v) => v.as_str().map(str::to_string).ok_or_else(|| self.wrong(key, "a string")),
        }
    }

    /// Refuses a key whose presence (non-null, not false, not empty)
    /// selects a part this runtime does not implement.
    fn refuse(&self, key: &str, what: &str) -> Result<()> {
        let set = match self.get(key) {
            None | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Object(m)) => !m.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(Error::unsupported(format!(
                "{}.{key} = {}: {what} is not supported",
                self.name, self.map[key]
            )));
        }
        Ok(())
    }

    /// The layer norm epsilon of `norm_kwargs` (only `eps` is understood).
    fn norm_eps(&self) -> Result<f64> {
        let Some(kwargs) = self.get("norm_kwargs") else { return Ok(1e-5) };
        let kwargs = object(kwargs, &format!("{}.norm_kwargs", self.name))?;
        if let Some(k) = kwargs.keys().find(|k| k.as_str() != "eps") {
            return Err(Error::unsupported(format!(
                "{}.norm_kwargs.{k}: only eps is supported",
                self.name
            )));
        }
        Section { map: kwargs, name: "norm_kwargs" }.f64("eps", 1e-5)
    }

    /// `ls_init_value`: present means LayerScale (`ls_1`, `ls_2`).
    fn layer_scale(&self) -> bool {
        self.get("ls_init_value").is_some()
    }

    /// The custom attention block options, none of which is implemented.
    fn refuse_custom_blocks(&self) -> Result<()> {
        self.refuse("act_kwargs", "an activation with arguments")?;
        for (key, what) in [
            ("qk_norm", "query/key normalisation"),
            ("scaled_cosine_attn", "scaled cosine attention"),
            ("scale_heads", "per-head scaling"),
            ("scale_attn_inner", "an inner attention layer norm"),
            ("scale_attn", "a layer norm after attention"),
            ("scale_fc", "an inner MLP layer norm"),
        ] {
            self.refuse(key, what)?;
        }
        match self.str("block_type", "default")?.as_str() {
            "default" => Ok(()),
            other => Err(Error::unsupported(format!(
                "{}.block_type \"{other}\": only the default block is supported",
                self.name
            ))),
        }
    }
}

fn model_config(cfg: &Map<String, Value>) -> Result<CLIPConfig> {
    let top = Section { map: cfg, name: "model_cfg" };
    top.refuse("multimodal_cfg", "a CoCa model (multimodal decoder)")?;
    let embed_dim = top.usize("embed_dim", 512)?;
    let act = if top.bool("quick_gelu")? { "quick_gelu" } else { "gelu" };
    let empty = Map::new();
    let vision = match top.get("vision_cfg") {
        Some(v) => object(v, "vision_cfg")?,
        None => &empty,
    };
    let text = match top.get("text_cfg") {
        Some(v) => object(v, "text_cfg")?,
        None => &empty,
    };
    Ok(CLIPConfig {
        text_config: text_config(&Section { map: text, name: "text_cfg" }, embed_dim, act)?,
        vision_config: vision_config(&Section { map: vision, name: "vision_cfg" }, embed_dim, act)?,
        projection_dim: embed_dim,
        ..CLIPConfig::default()
    })
}

fn vision_config(v: &Section, embed_dim: usize, act: &str) -> Result<CLIPVisionConfig> {
    v.refuse("timm_model_name", "a timm image tower")?;
    v.refuse("attentional_pool", "the attentional pooler")?;
    v.refuse_custom_blocks()?;
    if matches!(v.get("layers"), Some(Value::Array(_))) {
        return Err(Error::unsupported(
            "vision_cfg.layers is a list: a ModifiedResNet image tower is not supported",
        ));
    }
    for (key, default, what) in
        [("pool_type", "tok", "pooling"), ("pos_embed_type", "learnable", "position embedding")]
    {
        let value = v.str(key, default)?;
        if value != default {
            return Err(Error::unsupported(format!(
                "vision_cfg.{key} \"{value}\": only \"{default}\" {what} is supported"
            )));
        }
    }
    let image_size = match v.get("image_size") {
        Some(Value::Array(hw)) => match hw.as_slice() {
            [h, w] if h == w => v.usize_of(h, "image_size")?,
            _ => {
                return Err(Error::unsupported(format!(
                    "vision_cfg.image_size {}: only square images are supported",
                    Value::Array(hw.clone())
                )))
            }
        },
        _ => v.usize("image_size", 224)?,
    };
    let width = v.usize("width", 768)?;
    let head_width = v.usize("head_width", 64)?.max(1);
    Ok(CLIPVisionConfig {
        hidden_size: width,
        intermediate_size: (width as f64 * v.f64("mlp_ratio", 4.0)?) as usize,
        projection_dim: embed_dim,
        num_hidden_layers: v.usize("layers", 12)?,
        num_attention_heads: width / head_width,
        num_channels: 3,
        image_size,
        patch_size: v.usize("patch_size", 16)?,
        hidden_act: act.into(),
        layer_norm_eps: v.norm_eps()?,
        pre_layer_norm: !v.bool("no_ln_pre")?,
        layer_scale: v.layer_scale(),
    })
}

fn text_config(t: &Section, embed_dim: usize, act: &str) -> Result<CLIPTextConfig> {
    t.refuse("hf_model_name", "a Hugging Face text tower")?;
    t.refuse("embed_cls", "a text CLS token")?;
    t.refuse("no_causal_mask", "a text tower without causal mask")?;
    t.refuse("proj_bias", "a text projection with bias")?;
    t.refuse_custom_blocks()?;
    let (pooling, eos) = match t.str("pool_type", "argmax")?.as_str() {
        "argmax" => (TextPooling::Argmax, Some(49407)),
        "first" => (TextPooling::First, Some(49407)),
        "last" => (TextPooling::Last, Some(49407)),
        "eos" => match t.usize("eos_id", 2)? {
            // transformers reads eos_token_id 2 as "pool at the largest id".
            2 => {
                return Err(Error::unsupported(
                    "text_cfg.pool_type \"eos\" with eos_id 2 is not supported",
                ))
            }
            id => (TextPooling::Eos, Some(id as i64)),
        },
        other => {
            return Err(Error::unsupported(format!(
                "text_cfg.pool_type \"{other}\" is not supported (argmax, eos, first, last)"
            )))
        }
    };
    let text_projection = match t.str("proj_type", "linear")?.as_str() {
        "linear" => embed_dim > 0,
        "none" => false,
        other => {
            return Err(Error::unsupported(format!(
                "text_cfg.proj_type \"{other}\" is not supported (linear, none)"
            )))
        }
    };
    let width = t.usize("width", 512)?;
    Ok(CLIPTextConfig {
        vocab_size: t.usize("vocab_size", 49408)?,
        hidden_size: width,
        intermediate_size: (width as f64 * t.f64("mlp_ratio", 4.0)?) as usize,
        projection_dim: embed_dim,
        num_hidden_layers: t.usize("layers", 12)?,
        num_attention_heads: t.usize("heads", 8)?,
        max_position_embeddings: t.usize("context_length", 77)?,
        hidden_act: act.into(),
        layer_norm_eps: t.norm_eps()?,
        pad_token_id: Some(t.usize("pad_id", 0)? as i64),
        eos_token_id: eos,
        pooling,
        layer_scale: t.layer_scale(),
        text_projection,
        ..CLIPTextConfig::default()
    })
}

/// `preprocess_cfg` at `image_size`: open_clip's eval transform (resize the
/// shortest side, center-crop, or squash to the square) as a
/// `CLIPImageProcessor` configuration.
fn preprocess_config(p: &Map<String, Value>, image_size: usize) -> Result<ImageProcessorConfig> {
    let s = Section { map: p, name: "preprocess_cfg" };
    let mut config = ImageProcessorConfig::default();
    for (key, out) in [("mean", &mut config.image_mean), ("std", &mut config.image_std)] {
        match s.get(key) {
            None => {}
            Some(Value::Number(n)) => *out = [n.as_f64().unwrap_or(0.0); 3],
            Some(Value::Array(a)) if a.len() == 3 && a.iter().all(Value::is_number) => {
                for (o, x) in out.iter_mut().zip(a) {
                    *o = x.as_f64().unwrap_or(0.0);
                }
            }
            Some(_) => return Err(s.wrong(key, "a number or three numbers")),
        }
    }
    config.resample = match s.str("interpolation", "bicubic")?.as_str() {
        "bicubic" => Filter::Bicubic,
        "bilinear" => Filter::Bilinear,
        other => {
            return Err(Error::unsupported(format!(
                "preprocess_cfg.interpolation \"{other}\" is not supported (bicubic, bilinear)"
            )))
        }
    };
    let square = CropSize { height: image_size, width: image_size };
    match s.str("resize_mode", "shortest")?.as_str() {
        "shortest" => {
            config.size =
                ResizeTarget::ShortestEdge { shortest_edge: image_size, longest_edge: None };
            config.crop_size = square;
        }
        "squash" => {
            config.size = ResizeTarget::Exact { height: image_size, width: image_size };
            config.do_center_crop = false;
            config.crop_size = square;
        }
        other => {
            return Err(Error::unsupported(format!(
                "preprocess_cfg.resize_mode \"{other}\" is not supported (shortest, squash)"
            )))
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_clip_defaults_apply() {
        // open_clip's ViT-B-16 config: GELU, argmax pooling, 16 px patches.
        let c = OpenClipConfig::from_json(
            r#"{"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12,
                "width": 768, "patch_size": 16},
                "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512,
                "heads": 8, "layers": 12}}"#,
        )
        .unwrap();
        assert_eq!(c.preprocess, None);
        let (t, v) = (&c.model.text_config, &c.model.vision_config);
        assert_eq!((v.num_attention_heads, v.intermediate_size, v.patch_size), (12, 3072, 16));
        assert_eq!((v.hidden_act.as_str(), t.hidden_act.as_str()), ("gelu", "gelu"));
        assert_eq!(t.pooling, TextPooling::Argmax);
        assert!(t.text_projection && v.pre_layer_norm && !v.layer_scale && !t.layer_scale);
        assert_eq!(c.model.projection_dim, 512);
    }

    #[test]
    fn hub_file_with_variants_and_preprocessing() {
        let c = OpenClipConfig::from_json(
            r#"{"model_cfg": {"embed_dim": 64, "quick_gelu": true,
                "vision_cfg": {"image_size": [48, 48], "patch_size": 8, "width": 64,
                  "head_width": 32, "layers": 2, "ls_init_value": 1e-5, "no_ln_pre": true,
                  "norm_kwargs": {"eps": 1e-6}},
                "text_cfg": {"width": 64, "heads": 2, "layers": 2, "pool_type": "last",
                  "proj_type": "none", "eos_id": 49407}},
               "preprocess_cfg": {"mean": 0.5, "std": [0.1, 0.2, 0.3],
                 "interpolation": "bilinear", "resize_mode": "squash"}}"#,
        )
        .unwrap();
        let (t, v) = (&c.model.text_config, &c.model.vision_config);
        assert_eq!((v.image_size, v.num_attention_heads, v.layer_norm_eps), (48, 2, 1e-6));
        assert!(v.layer_scale && !v.pre_layer_norm && !t.layer_scale && !t.text_projection);
        assert_eq!((t.pooling, t.hidden_act.as_str()), (TextPooling::Last, "quick_gelu"));
        let p = c.preprocess.unwrap();
        assert_eq!(p.size, ResizeTarget::Exact { height: 48, width: 48 });
        assert!(!p.do_center_crop);
        assert_eq!(
            (p.resample, p.image_mean, p.image_std),
            (Filter::Bilinear, [0.5; 3], [0.1, 0.2, 0.3])
        );
    }

    #[test]
    fn unsupported_and_malformed() {
        for (json, kind) in [
            (r#"{"vision_cfg": {"attentional_pool": true}}"#, "attentional pooler"),
            (r#"{"vision_cfg": {"pool_type": "avg"}}"#, "pool_type"),
            (r#"{"vision_cfg": {"image_size": [224, 336]}}"#, "square"),
            (r#"{"text_cfg": {"embed_cls": true}}"#, "CLS"),
            (r#"{"text_cfg": {"proj_bias": true}}"#, "bias"),
            (r#"{"text_cfg": {"pool_type": "eos"}}"#, "eos_id 2"),
            (r#"{"text_cfg": {"qk_norm": true}}"#, "qk_norm"),
            (r#"{"text_cfg": {"norm_kwargs": {"elementwise_affine": false}}}"#, "eps"),
            (r#"{"model_cfg": {}, "preprocess_cfg": {"resize_mode": "longest"}}"#, "resize_mode"),
        ] {
            let err = OpenClipConfig::from_json(json).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Unsupported, "{json}: {err}");
            assert!(err.to_string().contains(kind), "{json}: {err}");
        }
        for json in [
            "{",
            "[]",
            r#"{"model_cfg": 3}"#,
            r#"{"vision_cfg": {"width": "wide"}}"#,
            r#"{"text_cfg": {"heads": 3}}"#,
            r#"{"model_cfg": {}, "preprocess_cfg": {"mean": [1, 2]}}"#,
        ] {
            let err = OpenClipConfig::from_json(json).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Format, "{json}: {err}");
        }
    }
}
