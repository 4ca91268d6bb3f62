//! The vision tower: `CLIPVisionModel` and `CLIPVisionModelWithProjection`.
//!
//! Patch embedding (a strided convolution, computed as one matrix product
//! over the patches), a class token, position embeddings, `pre_layrnorm`, the
//! transformer, and `pooler_output = post_layernorm(last_hidden_state[:, 0])`.

use crate::config::{CLIPVisionConfig, ModelConfig};
use crate::encoder::{Encoder, EncoderShape, ForwardOptions};
use crate::error::{Error, Result};
use crate::kernels::{layer_norm, AttentionMask, LayerNorm, Mat};
use crate::layers::{LayerBuilder, Linear};
use crate::loaded::{model_class_accessors, Loaded};
use crate::model_dir::{load_model_dir, ModelDir};
use crate::tensor::{first_non_finite, Tensor};
use crate::tower::{Projected, Tower};
use crate::weights::WeightStore;
use std::path::Path;

/// Outputs of [`CLIPVisionModel::forward`] (transformers' `BaseModelOutputWithPooling`).
#[derive(Debug, Clone)]
pub struct VisionModelOutput {
    /// `[batch, patches + 1, hidden]`: the encoder output (not post-normalised).
    pub last_hidden_state: Tensor,
    /// `[batch, hidden]`: `post_layernorm` of the class token.
    pub pooler_output: Tensor,
    /// `num_layers + 1` tensors (the pre-layer-normed embeddings, then each
    /// layer's output), on request.
    pub hidden_states: Option<Vec<Tensor>>,
    /// One `[batch, heads, seq, seq]` tensor per layer, on request.
    pub attentions: Option<Vec<Tensor>>,
}

/// The vision transformer shared by every vision-side model.
pub(crate) struct VisionTransformer {
    pub config: CLIPVisionConfig,
    patch_embedding: Linear,
    class_embedding: Vec<f32>,
    position_embedding: Vec<f32>,
    /// `None` for open_clip's `no_ln_pre` models.
    pre_layrnorm: Option<LayerNorm>,
    encoder: Encoder,
    post_layernorm: LayerNorm,
}

impl Tower for VisionTransformer {
    type Config = CLIPVisionConfig;
    const PROJECTION: &'static str = "visual_projection.weight";

    fn load(nn: &LayerBuilder<'_>, config: &CLIPVisionConfig) -> Result<Self> {
        // Configs built in code skip `from_json`'s validation: sizes must be
        // sane before any shape arithmetic.
        config.validate()?;
        let loader = nn.loader();
        let (d, c, p) = (config.hidden_size, config.num_channels, config.patch_size);
        let weight =
            loader.tensor("vision_model.embeddings.patch_embedding.weight", &[d, c, p, p])?;
        let patch_mat = Mat { weight, out_features: d, in_features: c * p * p };
        let patch_embedding = nn.full_precision(patch_mat, None);
        let eps = config.layer_norm_eps;
        let shape = EncoderShape {
            hidden: d,
            intermediate: config.intermediate_size,
            layers: config.num_hidden_layers,
            heads: config.num_attention_heads,
            eps,
            act: config.activation()?,
            layer_scale: config.layer_scale,
        };
        Ok(VisionTransformer {
            config: config.clone(),
            patch_embedding,
            class_embedding: loader.vector("vision_model.embeddings.class_embedding", d)?,
            position_embedding: loader
                .tensor(
                    "vision_model.embeddings.position_embedding.weight",
                    &[config.num_positions(), d],
                )?
                .to_f32_vec(),
            pre_layrnorm: match config.pre_layer_norm {
                true => Some(nn.layer_norm("vision_model.pre_layrnorm", d, eps)?),
                false => None,
            },
            encoder: Encoder::load(nn, "vision_model.encoder", &shape)?,
            post_layernorm: nn.layer_norm("vision_model.post_layernorm", d, eps)?,
        })
    }

    fn config(&self) -> &CLIPVisionConfig {
        &self.config
    }

    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }
}

impl VisionTransformer {
    /// The position embeddings for an `h x w` patch grid: the trained ones,
    /// or bicubically interpolated ones.
    fn positions(&self, gh: usize, gw: usize, interpolate: bool) -> Vec<f32> {
        let g = self.config.grid_size();
        if !interpolate || (gh == g && gw == g) {
            return self.position_embedding.clone();
        }
        let d = self.config.hidden_size;
        let mut out = Vec::with_capacity((gh * gw + 1) * d);
        out.extend_from_slice(&self.position_embedding[..d]);
        out.extend(interpolate_bicubic(&self.position_embedding[d..], g, g, d, gh, gw));
        out
    }

    pub fn forward(
        &self,
        pixel_values: &Tensor,
        opts: &ForwardOptions,
    ) -> Result<VisionModelOutput> {
        let (mut h, batch, seq) = self.embed(pixel_values, opts.interpolate_pos_encoding)?;
        let d = self.config.hidden_size;
        let collected = self.encoder.forward(&mut h, batch, seq, AttentionMask::None, opts);
        let cls: Vec<f32> =
            (0..batch).flat_map(|b| h[b * seq * d..b * seq * d + d].to_vec()).collect();
        Ok(VisionModelOutput {
            last_hidden_state: Tensor::from_parts(vec![batch, seq, d], h),
            pooler_output: self.post_norm(&cls),
            hidden_states: collected.hidden_states,
            attentions: collected.attentions,
        })
    }

    /// `pooler_output` alone: it depends on the class token's row of the
    /// last layer, so the last layer runs for that row only (its keys and
    /// values for all), which saves most of a layer.
    pub fn pooled_output(&self, pixel_values: &Tensor, interpolate: bool) -> Result<Tensor> {
        let (mut h, batch, seq) = self.embed(pixel_values, interpolate)?;
        let cls = self.encoder.forward_picked(
            &mut h,
            &vec![seq; batch],
            &vec![0; batch],
            AttentionMask::None,
        );
        Ok(self.post_norm(&cls))
    }

    /// `post_layernorm` of the class tokens' rows `[batch, hidden]`.
    fn post_norm(&self, cls: &[f32]) -> Tensor {
        let d = self.config.hidden_size;
        let mut pooled = vec![0.0f32; cls.len()];
        layer_norm(cls, &self.post_layernorm, &mut pooled);
        Tensor::from_parts(vec![cls.len() / d, d], pooled)
    }

    /// The encoder's input: patch and class embeddings plus positions, after
    /// `pre_layrnorm`, `[batch * seq, hidden]`, with `batch` and `seq`.
    fn embed(&self, pixel_values: &Tensor, interpolate: bool) -> Result<(Vec<f32>, usize, usize)> {
        let cfg = &self.config;
        let (d, p, c) = (cfg.hidden_size, cfg.patch_size, cfg.num_channels);
        let &[batch, channels, height, width] = pixel_values.shape() else {
            return Err(Error::invalid(format!(
                "pixel_values must be [batch, channels, height, width], got shape {:?}",
                pixel_values.shape()
            )));
        };
        if channels != c {
            return Err(Error::invalid(format!(
                "pixel_values has {channels} channels, the model expects {c}"
            )));
        }
        if !interpolate && (height != cfg.image_size || width != cfg.image_size) {
            return Err(Error::invalid(format!(
                "input image size ({height}*{width}) doesn't match model ({}*{}); resize it or set interpolate_pos_encoding",
                cfg.image_size, cfg.image_size
            )));
        }
        let (gh, gw) = (height / p, width / p);
        if gh == 0 || gw == 0 {
            return Err(Error::invalid(format!(
                "image of {height}x{width} pixels is smaller than one {p}x{p} patch"
            )));
        }
        if let Some(i) = first_non_finite(pixel_values.data()) {
            return Err(Error::invalid(format!(
                "pixel_values holds a non-finite value at index {i}"
            )));
        }
        let threads = rayon::current_num_threads();
        // im2col: one row per patch, columns in the conv weight's (c, ky, kx) order.
        let np = gh * gw;
        let cols = c * p * p;
        let px = pixel_values.data();
        let mut patches = vec![0.0f32; batch * np * cols];
        for b in 0..batch {
            for gy in 0..gh {
                for gx in 0..gw {
                    let row = &mut patches[((b * np) + gy * gw + gx) * cols..][..cols];
                    for ch in 0..c {
                        for ky in 0..p {
                            let src = ((b * c + ch) * height + gy * p + ky) * width + gx * p;
                            row[(ch * p + ky) * p..][..p].copy_from_slice(&px[src..src + p]);
                        }
                    }
                }
            }
        }
        let mut embedded = vec![0.0f32; batch * np * d];
        self.patch_embedding.forward(&patches, batch * np, &mut embedded, threads);
        drop(patches);
        let seq = np + 1;
        let pos = self.positions(gh, gw, interpolate);
        let mut x = vec![0.0f32; batch * seq * d];
        for b in 0..batch {
            let xb = &mut x[b * seq * d..(b + 1) * seq * d];
            xb[..d].copy_from_slice(&self.class_embedding);
            xb[d..].copy_from_slice(&embedded[b * np * d..(b + 1) * np * d]);
            for (v, q) in xb.iter_mut().zip(&pos) {
                *v += q;
            }
        }
        let Some(pre) = &self.pre_layrnorm else { return Ok((x, batch, seq)) };
        let mut h = vec![0.0f32; x.len()];
        layer_norm(&x, pre, &mut h);
        drop(x);
        Ok((h, batch, seq))
    }
}

/// PyTorch's `F.interpolate(mode="bicubic", align_corners=False)` without
/// antialiasing (cubic convolution, A = -0.75, edge-clamped taps) of a
/// `[ih, iw, d]` grid to `[oh, ow, d]`, as transformers interpolates position
/// embeddings.
fn interpolate_bicubic(
    src: &[f32],
    ih: usize,
    iw: usize,
    d: usize,
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    const A: f64 = -0.75;
    let c1 = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let taps = |out_i: usize, in_n: usize, out_n: usize| -> ([usize; 4], [f64; 4]) {
        let scale = in_n as f32 / out_n as f32;
        let src = scale * (out_i as f32 + 0.5) - 0.5;
        let i0 = src.floor();
        let t = (src - i0) as f64;
        let idx = |k: i64| (i0 as i64 + k).clamp(0, in_n as i64 - 1) as usize;
        ([idx(-1), idx(0), idx(1), idx(2)], [c2(t + 1.0), c1(t), c1(1.0 - t), c2(2.0 - t)])
    };
    let mut out = vec![0.0f32; oh * ow * d];
    for oy in 0..oh {
        let (ys, wy) = taps(oy, ih, oh);
        for ox in 0..ow {
            let (xs, wx) = taps(ox, iw, ow);
            let o = &mut out[(oy * ow + ox) * d..][..d];
            for (k, v) in o.iter_mut().enumerate() {
                let mut acc = 0.0f64;
                for (a, &y) in ys.iter().enumerate() {
                    let mut row = 0.0f64;
                    for (bb, &x) in xs.iter().enumerate() {
                        row += wx[bb] * src[(y * iw + x) * d + k] as f64;
                    }
                    acc += wy[a] * row;
                }
                *v = acc as f32;
            }
        }
    }
    out
}

/// transformers' `CLIPVisionModel`: the vision tower without projection.
pub struct CLIPVisionModel(Loaded<Projected<VisionTransformer>>);

impl CLIPVisionModel {
    /// Loads a model directory (a vision config, or a full `CLIPModel`
    /// checkpoint, whose vision half is used).
    pub fn from_pretrained(dir: impl AsRef<Path>) -> Result<Self> {
        let ModelDir { config, store } = load_model_dir(dir.as_ref())?;
        Self::from_store(&vision_config_of(config)?, &store)
    }

    /// Builds the model from a config and opened weights.
    pub fn from_store(config: &CLIPVisionConfig, store: &WeightStore) -> Result<Self> {
        Ok(CLIPVisionModel(Loaded::load(store, |nn| Projected::load(nn, config, None))?))
    }

    /// The configuration.
    pub fn config(&self) -> &CLIPVisionConfig {
        self.0.modules.tower.config()
    }

    /// Runs the model on `pixel_values` `[batch, 3, H, W]`.
    pub fn forward(
        &self,
        pixel_values: &Tensor,
        opts: &ForwardOptions,
    ) -> Result<VisionModelOutput> {
        self.0.modules.tower.forward(pixel_values, opts)
    }
}

/// Outputs of [`CLIPVisionModelWithProjection::forward`].
#[derive(Debug, Clone)]
pub struct VisionModelWithProjectionOutput {
    /// `[batch, projection_dim]`: the projected pooled output (not normalised).
    pub image_embeds: Tensor,
    /// As [`VisionModelOutput::last_hidden_state`].
    pub last_hidden_state: Tensor,
    /// As [`VisionModelOutput::hidden_states`].
    pub hidden_states: Option<Vec<Tensor>>,
    /// As [`VisionModelOutput::attentions`].
    pub attentions: Option<Vec<Tensor>>,
}

/// transformers' `CLIPVisionModelWithProjection`.
pub struct CLIPVisionModelWithProjection(Loaded<Projected<VisionTransformer>>);

impl CLIPVisionModelWithProjection {
    /// Loads a model directory (a vision config with `projection_dim`, or a
    /// full `CLIPModel` checkpoint, whose vision half is used).
    pub fn from_pretrained(dir: impl AsRef<Path>) -> Result<Self> {
        let ModelDir { config, store } = load_model_dir(dir.as_ref())?;
        let projection_dim = match &config {
            ModelConfig::Clip(c) => c.projection_dim,
            ModelConfig::Vision(v) => v.projection_dim,
            ModelConfig::Text(_) => 0,
        };
        Self::from_store(&vision_config_of(config)?, projection_dim, &store)
    }

    /// Builds the model from a config, the projection width and opened weights.
    pub fn from_store(
        config: &CLIPVisionConfig,
        projection_dim: usize,
        store: &WeightStore,
    ) -> Result<Self> {
        let load = |nn: &LayerBuilder<'_>| Projected::load(nn, config, Some(projection_dim));
        Ok(CLIPVisionModelWithProjection(Loaded::load(store, load)?))
    }

    /// The configuration.
    pub fn config(&self) -> &CLIPVisionConfig {
        self.0.modules.tower.config()
    }

    /// Runs the model on `pixel_values` `[batch, 3, H, W]`.
    pub fn forward(
        &self,
        pixel_values: &Tensor,
        opts: &ForwardOptions,
    ) -> Result<VisionModelWithProjectionOutput> {
        let m = &self.0.modules;
        let out = m.tower.forward(pixel_values, opts)?;
        Ok(VisionModelWithProjectionOutput {
            image_embeds: m.project(&out.pooler_output),
            last_hidden_state: out.last_hidden_state,
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }
}

model_class_accessors!(CLIPVisionModel, CLIPVisionModelWithProjection);

pub(crate) fn vision_config_of(config: ModelConfig) -> Result<CLIPVisionConfig> {
    match config {
        ModelConfig::Clip(c) => Ok(c.vision_config),
        ModelConfig::Vision(v) => Ok(v),
        ModelConfig::Text(_) => Err(Error::invalid("this is a text model: it has no vision tower")),
    }
}
