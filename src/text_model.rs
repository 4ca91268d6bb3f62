//! The text tower: `CLIPTextModel` and `CLIPTextModelWithProjection`.
//!
//! Token and position embeddings, a causal pre-LN transformer, a final layer
//! norm, and the pooled output at the end-of-text token. Pooling follows
//! transformers exactly ([`TextPooling::Eos`], the default): with the legacy
//! `eos_token_id == 2` (every OpenAI hub config) the position of the largest
//! token id is used (the first `<|endoftext|>` of a CLIP vocabulary);
//! otherwise the first position holding `eos_token_id`, or 0 when there is
//! none. open_clip models may pool at the largest id, the first or the last
//! position instead (their `text_pool_type`).

use crate::config::{CLIPTextConfig, ModelConfig, TextPooling};
use crate::encoder::{Encoder, EncoderShape, ForwardOptions};
use crate::error::{Error, Result};
use crate::kernels::{layer_norm, AttentionMask, LayerNorm};
use crate::layers::LayerBuilder;
use crate::loaded::{model_class_accessors, Loaded};
use crate::model_dir::{load_model_dir, ModelDir};
use crate::tensor::Tensor;
use crate::tower::{Projected, Tower};
use crate::weights::{WeightStore, WeightTensor};
use std::path::Path;

/// Outputs of [`CLIPTextModel::forward`] (transformers' `BaseModelOutputWithPooling`).
#[derive(Debug, Clone)]
pub struct TextModelOutput {
    /// `[batch, seq, hidden]`, after the final layer norm.
    pub last_hidden_state: Tensor,
    /// `[batch, hidden]`: `last_hidden_state` at the end-of-text position.
    pub pooler_output: Tensor,
    /// `num_layers + 1` tensors `[batch, seq, hidden]` (embeddings, then each
    /// layer's output, the last one before the final layer norm), on request.
    pub hidden_states: Option<Vec<Tensor>>,
    /// One `[batch, heads, seq, seq]` tensor per layer, on request.
    pub attentions: Option<Vec<Tensor>>,
}

/// The text transformer shared by every text-side model.
pub(crate) struct TextTransformer {
    pub config: CLIPTextConfig,
    token_embedding: WeightTensor,
    position_embedding: Vec<f32>,
    encoder: Encoder,
    final_layer_norm: LayerNorm,
}

impl Tower for TextTransformer {
    type Config = CLIPTextConfig;
    const PROJECTION: &'static str = "text_projection.weight";

    fn load(nn: &LayerBuilder<'_>, config: &CLIPTextConfig) -> Result<Self> {
        // Configs built in code skip `from_json`'s validation: sizes must be
        // sane before any shape arithmetic.
        config.validate()?;
        let loader = nn.loader();
        let d = config.hidden_size;
        let token_embedding = loader
            .tensor("text_model.embeddings.token_embedding.weight", &[config.vocab_size, d])?;
        let position_embedding = loader
            .tensor(
                "text_model.embeddings.position_embedding.weight",
                &[config.max_position_embeddings, d],
            )?
            .to_f32_vec();
        let shape = EncoderShape {
            hidden: d,
            intermediate: config.intermediate_size,
            layers: config.num_hidden_layers,
            heads: config.num_attention_heads,
            eps: config.layer_norm_eps,
            act: config.activation()?,
            layer_scale: config.layer_scale,
        };
        Ok(TextTransformer {
            config: config.clone(),
            token_embedding,
            position_embedding,
            encoder: Encoder::load(nn, "text_model.encoder", &shape)?,
            final_layer_norm: nn.layer_norm(
                "text_model.final_layer_norm",
                d,
                config.layer_norm_eps,
            )?,
        })
    }

    fn config(&self) -> &CLIPTextConfig {
        &self.config
    }

    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }
}

impl TextTransformer {
    /// Checks the batch and returns `(batch, seq)`.
    fn check_inputs(
        &self,
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<u32>]>,
    ) -> Result<(usize, usize)> {
        let batch = input_ids.len();
        let seq = input_ids.first().map_or(0, |r| r.len());
        if let Some(i) = input_ids.iter().position(|r| r.len() != seq) {
            return Err(Error::invalid(format!(
                "input_ids rows must have one length: row 0 has {seq} tokens, row {i} has {} (pad the batch)",
                input_ids[i].len()
            )));
        }
        if batch > 0 && seq == 0 {
            return Err(Error::invalid("input_ids rows are empty"));
        }
        if seq > self.config.max_position_embeddings {
            return Err(Error::invalid(format!(
                "sequence length {seq} exceeds max_position_embeddings {} (truncate the text)",
                self.config.max_position_embeddings
            )));
        }
        for row in input_ids {
            if let Some(&id) = row.iter().find(|&&id| id as usize >= self.config.vocab_size) {
                return Err(Error::invalid(format!(
                    "token id {id} is outside the vocabulary (size {})",
                    self.config.vocab_size
                )));
            }
        }
        if let Some(mask) = attention_mask {
            if mask.len() != batch || mask.iter().any(|r| r.len() != seq) {
                return Err(Error::invalid("attention_mask must have the shape of input_ids"));
            }
        }
        Ok((batch, seq))
    }

    /// The full forward pass.
    pub fn forward(
        &self,
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<u32>]>,
        opts: &ForwardOptions,
    ) -> Result<TextModelOutput> {
        let (batch, seq) = self.check_inputs(input_ids, attention_mask)?;
        let d = self.config.hidden_size;
        let mut h = Vec::with_capacity(batch * seq * d);
        for row in input_ids {
            self.embed_into(row, &mut h);
        }
        let flat_mask: Option<Vec<u32>> =
            attention_mask.map(|m| m.iter().flatten().map(|&v| u32::from(v != 0)).collect());
        let mask = AttentionMask::Causal { key_mask: flat_mask.as_deref() };
        let collected = self.encoder.forward(&mut h, batch, seq, mask, opts);
        let mut last = vec![0.0f32; h.len()];
        layer_norm(&h, &self.final_layer_norm, &mut last);
        let mut pooled = Vec::with_capacity(batch * d);
        for (b, row) in input_ids.iter().enumerate() {
            let pos = self.pool_position(row);
            pooled.extend_from_slice(&last[(b * seq + pos) * d..(b * seq + pos + 1) * d]);
        }
        Ok(TextModelOutput {
            last_hidden_state: Tensor::from_parts(vec![batch, seq, d], last),
            pooler_output: Tensor::from_parts(vec![batch, d], pooled),
            hidden_states: collected.hidden_states,
            attentions: collected.attentions,
        })
    }

    /// `pooler_output` alone, computing only the positions it depends on.
    ///
    /// Attention is causal, so the pooled position of a text depends on that
    /// text's tokens up to it and on nothing after it (padding included).
    /// Each text is therefore run without its tail, the texts of the batch
    /// stored back to back (a ragged batch); the last layer and the final
    /// layer norm run for the pooled rows only.
    pub fn pooled_output(
        &self,
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<u32>]>,
    ) -> Result<Tensor> {
        let (batch, _) = self.check_inputs(input_ids, attention_mask)?;
        let d = self.config.hidden_size;
        let lens: Vec<usize> = input_ids.iter().map(|r| self.pool_position(r) + 1).collect();
        let rows: usize = lens.iter().sum();
        let mut h = Vec::with_capacity(rows * d);
        for (row, &len) in input_ids.iter().zip(&lens) {
            self.embed_into(&row[..len], &mut h);
        }
        let flat_mask: Option<Vec<u32>> = attention_mask.map(|m| {
            m.iter()
                .zip(&lens)
                .flat_map(|(r, &len)| &r[..len])
                .map(|&v| u32::from(v != 0))
                .collect()
        });
        let mask = AttentionMask::Causal { key_mask: flat_mask.as_deref() };
        let picks: Vec<usize> = lens.iter().map(|len| len - 1).collect();
        let last_rows = self.encoder.forward_picked(&mut h, &lens, &picks, mask);
        let mut pooled = vec![0.0f32; batch * d];
        layer_norm(&last_rows, &self.final_layer_norm, &mut pooled);
        Ok(Tensor::from_parts(vec![batch, d], pooled))
    }

    /// Appends the token + position embeddings of `ids` (from position 0) to `h`.
    fn embed_into(&self, ids: &[u32], h: &mut Vec<f32>) {
        let d = self.config.hidden_size;
        for (i, &id) in ids.iter().enumerate() {
            let at = h.len();
            h.resize(at + d, 0.0);
            let out = &mut h[at..];
            self.token_embedding.row_into(id as usize, out);
            for (o, p) in out.iter_mut().zip(&self.position_embedding[i * d..(i + 1) * d]) {
                *o += p;
            }
        }
    }

    /// The position the pooled output is taken from ([`TextPooling`]; see
    /// the module docs).
    fn pool_position(&self, row: &[u32]) -> usize {
        let eos = self.config.eos_token_id.unwrap_or(49407);
        // torch.argmax: the first maximal element.
        let argmax = || {
            let mut best = 0;
            for (i, &id) in row.iter().enumerate() {
                if id > row[best] {
                    best = i;
                }
            }
            best
        };
        match self.config.pooling {
            TextPooling::Eos if eos == 2 => argmax(),
            TextPooling::Eos => row.iter().position(|&id| i64::from(id) == eos).unwrap_or(0),
            TextPooling::Argmax => argmax(),
            TextPooling::First => 0,
            TextPooling::Last => row.len().saturating_sub(1),
        }
    }
}

/// transformers' `CLIPTextModel`: the text tower without projection.
pub struct CLIPTextModel(Loaded<Projected<TextTransformer>>);

impl CLIPTextModel {
    /// Loads a model directory: `config.json` (a text config, or a full
    /// `CLIPModel` config whose `text_config` is used) and its safetensors.
    pub fn from_pretrained(dir: impl AsRef<Path>) -> Result<Self> {
        let ModelDir { config, store } = load_model_dir(dir.as_ref())?;
        Self::from_store(&text_config_of(config)?, &store)
    }

    /// Builds the model from a config and opened weights.
    pub fn from_store(config: &CLIPTextConfig, store: &WeightStore) -> Result<Self> {
        Ok(CLIPTextModel(Loaded::load(store, |nn| Projected::load(nn, config, None))?))
    }

    /// The configuration.
    pub fn config(&self) -> &CLIPTextConfig {
        self.0.modules.tower.config()
    }

    /// Runs the model. `input_ids` rows must have one length (pad them);
    /// `attention_mask` (1 attend, 0 padding) has the same shape.
    pub fn forward(
        &self,
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<u32>]>,
        opts: &ForwardOptions,
    ) -> Result<TextModelOutput> {
        self.0.modules.tower.forward(input_ids, attention_mask, opts)
    }
}

/// Outputs of [`CLIPTextModelWithProjection::forward`].
#[derive(Debug, Clone)]
pub struct TextModelWithProjectionOutput {
    /// `[batch, projection_dim]`: the projected pooled output (not normalised).
    pub text_embeds: Tensor,
    /// `[batch, seq, hidden]`, after the final layer norm.
    pub last_hidden_state: Tensor,
    /// As [`TextModelOutput::hidden_states`].
    pub hidden_states: Option<Vec<Tensor>>,
    /// As [`TextModelOutput::attentions`].
    pub attentions: Option<Vec<Tensor>>,
}

/// transformers' `CLIPTextModelWithProjection`.
pub struct CLIPTextModelWithProjection(Loaded<Projected<TextTransformer>>);

impl CLIPTextModelWithProjection {
    /// Loads a model directory (a text config with `projection_dim`, or a full
    /// `CLIPModel` checkpoint, whose text half is used).
    pub fn from_pretrained(dir: impl AsRef<Path>) -> Result<Self> {
        let ModelDir { config, store } = load_model_dir(dir.as_ref())?;
        let projection_dim = match &config {
            ModelConfig::Clip(c) => c.projection_dim,
            ModelConfig::Text(t) => t.projection_dim,
            ModelConfig::Vision(_) => 0,
        };
        Self::from_store(&text_config_of(config)?, projection_dim, &store)
    }

    /// Builds the model from a config, the projection width and opened weights.
    pub fn from_store(
        config: &CLIPTextConfig,
        projection_dim: usize,
        store: &WeightStore,
    ) -> Result<Self> {
        let load = |nn: &LayerBuilder<'_>| {
            Projected::load(nn, config, Some(projection_dim).filter(|_| config.text_projection))
        };
        Ok(CLIPTextModelWithProjection(Loaded::load(store, load)?))
    }

    /// The configuration.
    pub fn config(&self) -> &CLIPTextConfig {
        self.0.modules.tower.config()
    }

    /// Runs the model.
    pub fn forward(
        &self,
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<u32>]>,
        opts: &ForwardOptions,
    ) -> Result<TextModelWithProjectionOutput> {
        let m = &self.0.modules;
        let out = m.tower.forward(input_ids, attention_mask, opts)?;
        Ok(TextModelWithProjectionOutput {
            text_embeds: m.project(&out.pooler_output),
            last_hidden_state: out.last_hidden_state,
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }
}

model_class_accessors!(CLIPTextModel, CLIPTextModelWithProjection);

fn text_config_of(config: ModelConfig) -> Result<CLIPTextConfig> {
    match config {
        ModelConfig::Clip(c) => Ok(c.text_config),
        ModelConfig::Text(t) => Ok(t),
        ModelConfig::Vision(_) => {
            Err(Error::invalid("this is a vision model: it has no text tower"))
        }
    }
}
