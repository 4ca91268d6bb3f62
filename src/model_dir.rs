//! A model directory: its weights and the configuration that describes them.
//!
//! Which configuration applies:
//! - `config.json` (transformers) for Hugging Face-named weights;
//! - for OpenAI / open_clip-named weights, `open_clip_config.json` when it is
//!   there (open_clip's hub files), else `config.json`, else the
//!   hyper-parameters are inferred from the tensor shapes as OpenAI's
//!   `build_model` does. With `config.json` or inference, the open_clip
//!   variants a checkpoint shows by its tensors (LayerScale, no `ln_pre`, no
//!   text projection) are read from the tensors.
//!
//! Without `preprocessor_config.json`, images are preprocessed as the model
//! expects: `open_clip_config.json`'s `preprocess_cfg` if present, else
//! transformers' CLIP defaults at the model's own image size.

use crate::config::{CLIPConfig, CLIPTextConfig, CLIPVisionConfig, ModelConfig, TextPooling};
use crate::error::{Error, Result};
use crate::image_processing::{CropSize, ImageProcessorConfig, ResizeTarget};
use crate::open_clip_config::{OpenClipConfig, OPEN_CLIP_CONFIG_FILE};
use crate::weights::{Naming, WeightStore};
use std::path::Path;

/// A model directory's configuration and opened weights.
pub(crate) struct ModelDir {
    pub config: ModelConfig,
    pub store: WeightStore,
}

/// Opens the weights of `dir` and the configuration that describes them
/// (see the module docs).
pub(crate) fn load_model_dir(dir: &Path) -> Result<ModelDir> {
    if !dir.is_dir() {
        return Err(Error::new(
            crate::ErrorKind::Io,
            format!("model directory {} does not exist or is not a directory", dir.display()),
        ));
    }
    let store = WeightStore::open_dir(dir)?;
    let config_path = dir.join("config.json");
    let open_clip_path = dir.join(OPEN_CLIP_CONFIG_FILE);
    let openai = Naming::detect(&store) == Naming::OpenAi;
    let config = if openai && open_clip_path.is_file() {
        ModelConfig::Clip(OpenClipConfig::from_file(&open_clip_path)?.model)
    } else if config_path.is_file() {
        let mut config = ModelConfig::from_file(&config_path)?;
        if openai {
            match &mut config {
                ModelConfig::Clip(c) => {
                    read_text_variants(&store, &mut c.text_config);
                    read_vision_variants(&store, &mut c.vision_config);
                }
                ModelConfig::Text(t) => read_text_variants(&store, t),
                ModelConfig::Vision(v) => read_vision_variants(&store, v),
            }
            config.validate().map_err(|e| e.context(config_path.display()))?;
        }
        config
    } else if openai {
        ModelConfig::Clip(infer_openai_config(&store)?)
    } else {
        return Err(Error::new(
            crate::ErrorKind::Io,
            format!("{}: config.json is missing", dir.display()),
        ));
    };
    Ok(ModelDir { config, store })
}

/// The open_clip text-tower variants an OpenAI-named checkpoint shows by
/// its tensors.
fn read_text_variants(store: &WeightStore, text: &mut CLIPTextConfig) {
    text.layer_scale = store.contains("transformer.resblocks.0.ls_1.gamma");
    text.text_projection = store.contains("text_projection");
}

/// The open_clip vision-tower variants an OpenAI-named checkpoint shows by
/// its tensors.
fn read_vision_variants(store: &WeightStore, vision: &mut CLIPVisionConfig) {
    vision.layer_scale = store.contains("visual.transformer.resblocks.0.ls_1.gamma");
    vision.pre_layer_norm = store.contains("visual.ln_pre.weight");
}

/// Hyper-parameters of an OpenAI-named checkpoint from its shapes (heads =
/// width / 64, the MLP width of the first block, QuickGELU, eps 1e-5, text pooled at the largest token id, as
/// OpenAI's `build_model`), plus the open_clip variants its tensors show.
fn infer_openai_config(store: &WeightStore) -> Result<CLIPConfig> {
    let shape = |name: &str| {
        store.shape(name).map(|s| s.to_vec()).ok_or_else(|| {
            Error::format(format!(
                "no config.json, and tensor \"{name}\" needed to infer one is missing"
            ))
        })
    };
    let count_layers = |prefix: &str| {
        (0..)
            .take_while(|i| store.contains(&format!("{prefix}resblocks.{i}.attn.in_proj_weight")))
            .count()
    };
    let conv = shape("visual.conv1.weight")?;
    let vpos = shape("visual.positional_embedding")?;
    let tok = shape("token_embedding.weight")?;
    let tpos = shape("positional_embedding")?;
    let vproj = shape("visual.proj")?;
    if conv.len() != 4 || vpos.len() != 2 || tok.len() != 2 || tpos.len() != 2 || vproj.len() != 2 {
        return Err(Error::format("OpenAI checkpoint tensors have unexpected ranks"));
    }
    // The MLP width from the first block (4x the width in OpenAI's models).
    let mlp = |prefix: &str, width: usize| {
        store
            .shape(&format!("{prefix}resblocks.0.mlp.c_fc.weight"))
            .and_then(|s| s.first().copied())
            .unwrap_or(4 * width)
    };
    let grid = ((vpos[0].saturating_sub(1)) as f64).sqrt().round() as usize;
    let (vw, tw, embed) = (conv[0], tok[1], vproj[1]);
    let mut config = CLIPConfig {
        text_config: CLIPTextConfig {
            vocab_size: tok[0],
            hidden_size: tw,
            intermediate_size: mlp("transformer.", tw),
            projection_dim: embed,
            num_hidden_layers: count_layers("transformer."),
            num_attention_heads: (tw / 64).max(1),
            max_position_embeddings: tpos[0],
            pooling: TextPooling::Argmax,
            ..CLIPTextConfig::default()
        },
        vision_config: CLIPVisionConfig {
            hidden_size: vw,
            intermediate_size: mlp("visual.transformer.", vw),
            projection_dim: embed,
            num_hidden_layers: count_layers("visual.transformer."),
            num_attention_heads: (vw / 64).max(1),
            num_channels: conv[1],
            image_size: conv[3] * grid,
            patch_size: conv[3],
            ..CLIPVisionConfig::default()
        },
        projection_dim: embed,
        ..CLIPConfig::default()
    };
    read_text_variants(store, &mut config.text_config);
    read_vision_variants(store, &mut config.vision_config);
    ModelConfig::Clip(config.clone()).validate()?;
    Ok(config)
}

/// The preprocessing of a directory without `preprocessor_config.json`:
/// `open_clip_config.json`'s `preprocess_cfg`, else transformers' CLIP
/// defaults at the image size of the model in `dir` (`config.json`, or
/// inferred from OpenAI-named weights), else the plain defaults (224 px)
/// when `dir` holds no model.
pub(crate) fn implied_preprocessing(dir: &Path) -> Result<ImageProcessorConfig> {
    let open_clip_path = dir.join(OPEN_CLIP_CONFIG_FILE);
    let config_path = dir.join("config.json");
    let image_size = if open_clip_path.is_file() {
        let config = OpenClipConfig::from_file(&open_clip_path)?;
        if let Some(p) = config.preprocess {
            return Ok(p);
        }
        Some(config.model.vision_config.image_size)
    } else if config_path.is_file() {
        match ModelConfig::from_file(&config_path)? {
            ModelConfig::Clip(c) => Some(c.vision_config.image_size),
            ModelConfig::Vision(v) => Some(v.image_size),
            ModelConfig::Text(_) => None,
        }
    } else {
        match WeightStore::open_dir(dir) {
            Ok(store) if Naming::detect(&store) == Naming::OpenAi => {
                Some(infer_openai_config(&store)?.vision_config.image_size)
            }
            _ => None,
        }
    };
    let mut config = ImageProcessorConfig::default();
    if let Some(size) = image_size {
        config.size = ResizeTarget::ShortestEdge { shortest_edge: size, longest_edge: None };
        config.crop_size = CropSize { height: size, width: size };
    }
    Ok(config)
}
