//! The heads: `CLIPModel` (both towers, projections, logits) and
//! `CLIPForImageClassification`.

use crate::config::{CLIPConfig, CLIPVisionConfig, ModelConfig};
use crate::encoder::ForwardOptions;
use crate::error::{Error, Result};
use crate::kernels::l2_normalize_rows;
use crate::layers::Linear;
use crate::loaded::{model_class_accessors, Loaded};
use crate::model_dir::{load_model_dir, ModelDir};
use crate::tensor::{first_non_finite, Tensor};
use crate::text_model::{TextModelOutput, TextTransformer};
use crate::tower::{project, Projected, Tower};
use crate::vision_model::{vision_config_of, VisionModelOutput, VisionTransformer};
use crate::weights::{Naming, WeightStore};
use std::collections::BTreeMap;
use std::path::Path;

/// Outputs of [`CLIPModel::forward`] (transformers' `CLIPOutput`).
#[derive(Debug, Clone)]
pub struct CLIPOutput {
    /// `[images, texts]`: scaled cosine similarities.
    pub logits_per_image: Tensor,
    /// `[texts, images]`: the transpose.
    pub logits_per_text: Tensor,
    /// `[texts, projection_dim]`, L2-normalised.
    pub text_embeds: Tensor,
    /// `[images, projection_dim]`, L2-normalised.
    pub image_embeds: Tensor,
    /// The text tower's outputs.
    pub text_model_output: TextModelOutput,
    /// The vision tower's outputs.
    pub vision_model_output: VisionModelOutput,
}

/// transformers' `CLIPModel`: both towers, their projections and the logit scale.
pub struct CLIPModel(Loaded<ClipModules>);

/// What a [`CLIPModel`] holds.
struct ClipModules {
    config: CLIPConfig,
    text: Projected<TextTransformer>,
    vision: Projected<VisionTransformer>,
    logit_scale: f32,
    naming: Naming,
}

impl CLIPModel {
    /// Loads a Hugging Face model directory (`config.json` + safetensors;
    /// HF or OpenAI naming, F32/F16/BF16, single file or sharded).
    pub fn from_pretrained(dir: impl AsRef<Path>) -> Result<Self> {
        let ModelDir { config, store } = load_model_dir(dir.as_ref())?;
        match config {
            ModelConfig::Clip(c) => Self::from_store(&c, &store),
            _ => Err(Error::invalid(format!(
                "{}: config.json describes a single tower, not a CLIPModel",
                dir.as_ref().display()
            ))),
        }
    }

    /// Builds the model from a config and opened weights.
    pub fn from_store(config: &CLIPConfig, store: &WeightStore) -> Result<Self> {
        ModelConfig::Clip(config.clone()).validate()?;
        let p = Some(config.projection_dim);
        Ok(CLIPModel(Loaded::load(store, |nn| {
            Ok(ClipModules {
                config: config.clone(),
                text: Projected::load(
                    nn,
                    &config.text_config,
                    p.filter(|_| config.text_config.text_projection),
                )?,
                vision: Projected::load(nn, &config.vision_config, p)?,
                logit_scale: nn
                    .loader()
                    .owned_f32("logit_scale", &[])?
                    .first()
                    .copied()
                    .unwrap_or(0.0),
                naming: nn.loader().naming().clone(),
            })
        })?))
    }

    /// The configuration.
    pub fn config(&self) -> &CLIPConfig {
        &self.0.modules.config
    }

    /// The weight naming the checkpoint used.
    pub fn naming(&self) -> &Naming {
        &self.0.modules.naming
    }

    /// The learned temperature, in log space (`logit_scale` in the weights).
    pub fn logit_scale(&self) -> f32 {
        self.0.modules.logit_scale
    }

    /// Runs the text tower alone (transformers' `model.text_model(...)`).
    pub fn text_model(
        &self,
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<u32>]>,
        opts: &ForwardOptions,
    ) -> Result<TextModelOutput> {
        self.0.modules.text.tower.forward(input_ids, attention_mask, opts)
    }

    /// Runs the vision tower alone (transformers' `model.vision_model(...)`).
    pub fn vision_model(
        &self,
        pixel_values: &Tensor,
        opts: &ForwardOptions,
    ) -> Result<VisionModelOutput> {
        self.0.modules.vision.tower.forward(pixel_values, opts)
    }

    /// `[batch, projection_dim]` text embeddings, projected and not
    /// normalised (transformers' `get_text_features`).
    pub fn get_text_features(
        &self,
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<u32>]>,
    ) -> Result<Tensor> {
        let text = &self.0.modules.text;
        if input_ids.is_empty() {
            return Tensor::zeros(vec![0, self.config().projection_dim]);
        }
        let pooled = text.tower.pooled_output(input_ids, attention_mask)?;
        Ok(text.project(&pooled))
    }

    /// `[batch, projection_dim]` image embeddings, projected and not
    /// normalised (transformers' `get_image_features`).
    pub fn get_image_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        self.get_image_features_with(pixel_values, &ForwardOptions::default())
    }

    /// [`CLIPModel::get_image_features`] with options (e.g. `interpolate_pos_encoding`).
    pub fn get_image_features_with(
        &self,
        pixel_values: &Tensor,
        opts: &ForwardOptions,
    ) -> Result<Tensor> {
        let vision = &self.0.modules.vision;
        if pixel_values.shape().first() == Some(&0) {
            return Tensor::zeros(vec![0, self.config().projection_dim]);
        }
        let pooled = vision.tower.pooled_output(pixel_values, opts.interpolate_pos_encoding)?;
        Ok(vision.project(&pooled))
    }

    /// The full forward pass: both towers, normalised embeddings, and
    /// `logits_per_text = text_embeds · image_embeds^T * exp(logit_scale)`.
    pub fn forward(
        &self,
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<u32>]>,
        pixel_values: &Tensor,
        opts: &ForwardOptions,
    ) -> Result<CLIPOutput> {
        let ClipModules { text, vision, logit_scale, .. } = &self.0.modules;
        let text_model_output = text.tower.forward(input_ids, attention_mask, opts)?;
        let vision_model_output = vision.tower.forward(pixel_values, opts)?;
        let mut text_embeds = text.project(&text_model_output.pooler_output);
        let mut image_embeds = vision.project(&vision_model_output.pooler_output);
        let p = self.config().projection_dim;
        l2_normalize_rows(text_embeds.data_mut(), p);
        l2_normalize_rows(image_embeds.data_mut(), p);
        let logits_per_text = scaled_similarity(&text_embeds, &image_embeds, logit_scale.exp());
        let logits_per_image = transpose(&logits_per_text);
        Ok(CLIPOutput {
            logits_per_image,
            logits_per_text,
            text_embeds,
            image_embeds,
            text_model_output,
            vision_model_output,
        })
    }

    /// `logits_per_image` `[images, texts]` from unnormalised features, as
    /// `forward` computes them (normalise, dot, times `exp(logit_scale)`).
    pub fn logits_from_features(
        &self,
        image_features: &Tensor,
        text_features: &Tensor,
    ) -> Result<Tensor> {
        let p = self.config().projection_dim;
        for t in [image_features, text_features] {
            if t.shape().len() != 2 || t.shape()[1] != p {
                return Err(Error::invalid(format!(
                    "features must be [n, {p}], got shape {:?}",
                    t.shape()
                )));
            }
            // NaN weights (not checked at load) or NaN inputs would otherwise
            // come out as NaN probabilities that sort arbitrarily.
            if let Some(i) = first_non_finite(t.data()) {
                return Err(Error::invalid(format!(
                    "features hold a non-finite value at row {}, column {} (non-finite weights or inputs?)",
                    i / p,
                    i % p
                )));
            }
        }
        let (mut i, mut t) = (image_features.clone(), text_features.clone());
        l2_normalize_rows(i.data_mut(), p);
        l2_normalize_rows(t.data_mut(), p);
        Ok(transpose(&scaled_similarity(&t, &i, self.logit_scale().exp())))
    }
}

/// `a · b^T * scale` for `[n, d]` and `[m, d]`: matmul first, then scale.
fn scaled_similarity(a: &Tensor, b: &Tensor, scale: f32) -> Tensor {
    let (n, m) = (a.shape()[0], b.shape()[0]);
    let mut out = Vec::with_capacity(n * m);
    for ra in a.rows() {
        for rb in b.rows() {
            out.push(ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>() * scale);
        }
    }
    Tensor::from_parts(vec![n, m], out)
}

fn transpose(t: &Tensor) -> Tensor {
    let (n, m) = (t.shape()[0], t.shape()[1]);
    let mut out = vec![0.0f32; n * m];
    for i in 0..n {
        for j in 0..m {
            out[j * n + i] = t.data()[i * m + j];
        }
    }
    Tensor::from_parts(vec![m, n], out)
}

/// Outputs of [`CLIPForImageClassification::forward`].
#[derive(Debug, Clone)]
pub struct ImageClassifierOutput {
    /// `[batch, num_labels]`.
    pub logits: Tensor,
    /// As [`VisionModelOutput::hidden_states`].
    pub hidden_states: Option<Vec<Tensor>>,
    /// As [`VisionModelOutput::attentions`].
    pub attentions: Option<Vec<Tensor>>,
}

/// transformers' `CLIPForImageClassification`: the vision tower, the mean of
/// the patch tokens (class token excluded, no `post_layernorm`) and a linear
/// classifier.
pub struct CLIPForImageClassification(Loaded<ClassifierModules>);

/// What a [`CLIPForImageClassification`] holds.
struct ClassifierModules {
    vision: VisionTransformer,
    classifier: Linear,
    id2label: BTreeMap<usize, String>,
}

impl CLIPForImageClassification {
    /// Loads a model directory with a `classifier` head.
    pub fn from_pretrained(dir: impl AsRef<Path>) -> Result<Self> {
        let ModelDir { config, store } = load_model_dir(dir.as_ref())?;
        let id2label = match &config {
            ModelConfig::Clip(c) => c.id2label.clone(),
            _ => BTreeMap::new(),
        };
        Self::from_store(&vision_config_of(config)?, id2label, &store)
    }

    /// Builds the model. The number of labels is the size of `id2label`, or
    /// 2 when it is empty (transformers' default).
    pub fn from_store(
        config: &CLIPVisionConfig,
        id2label: BTreeMap<usize, String>,
        store: &WeightStore,
    ) -> Result<Self> {
        let num_labels = if id2label.is_empty() { 2 } else { id2label.len() };
        Ok(CLIPForImageClassification(Loaded::load(store, |nn| {
            Ok(ClassifierModules {
                vision: VisionTransformer::load(nn, config)?,
                classifier: nn.linear("classifier", num_labels, config.hidden_size, true)?,
                id2label,
            })
        })?))
    }

    /// Class names by index (from `config.json`'s `id2label`).
    pub fn id2label(&self) -> &BTreeMap<usize, String> {
        &self.0.modules.id2label
    }

    /// The configuration of the vision tower.
    pub fn config(&self) -> &CLIPVisionConfig {
        self.0.modules.vision.config()
    }

    /// `logits` `[batch, num_labels]` for `pixel_values` `[batch, 3, H, W]`.
    pub fn forward(
        &self,
        pixel_values: &Tensor,
        opts: &ForwardOptions,
    ) -> Result<ImageClassifierOutput> {
        let out = self.0.modules.vision.forward(pixel_values, opts)?;
        let &[batch, seq, d] = out.last_hidden_state.shape() else {
            return Err(Error::internal("vision output has an unexpected rank"));
        };
        let mut mean = vec![0.0f32; batch * d];
        for b in 0..batch {
            let acc = &mut mean[b * d..(b + 1) * d];
            for t in 1..seq {
                for (a, v) in acc
                    .iter_mut()
                    .zip(out.last_hidden_state.data()[(b * seq + t) * d..][..d].iter())
                {
                    *a += v;
                }
            }
            let n = (seq - 1).max(1) as f32;
            acc.iter_mut().for_each(|a| *a /= n);
        }
        let mean = Tensor::from_parts(vec![batch, d], mean);
        let logits = project(&mean, &self.0.modules.classifier);
        Ok(ImageClassifierOutput {
            logits,
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }
}

model_class_accessors!(CLIPModel, CLIPForImageClassification);
