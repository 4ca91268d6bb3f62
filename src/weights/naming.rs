//! The two weight namings and the loader that resolves model parameters.
//!
//! Models ask for parameters by their Hugging Face `CLIPModel` names
//! (`text_model.encoder.layers.0.self_attn.q_proj.weight`, ...). The loader
//! maps each to what the checkpoint holds:
//! - Hugging Face: the same name, or without the `text_model.` /
//!   `vision_model.` prefix (standalone models saved by transformers 5).
//! - OpenAI / open_clip: `transformer.resblocks.N.attn.in_proj_weight`
//!   (query, key and value fused by rows: split without copying),
//!   `visual.proj` and `text_projection` stored `[in, out]` (transposed once
//!   at load time, a small copy, so both namings run the very same
//!   arithmetic and agree to the bit), `ln_pre`, `ln_post`, `ln_final`, ...
//!
//! Missing tensors are collected, so one error names all of the first ones
//! missing rather than only the first.

use super::store::WeightStore;
use super::tensor::{DType, WeightTensor};
use crate::error::{Error, Result};
use std::cell::RefCell;

/// The weight naming scheme of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    /// transformers' names. The prefixes are `"text_model."` /
    /// `"vision_model."` or empty (standalone models saved by transformers 5).
    HuggingFace {
        /// Prefix of text-tower tensors.
        text_prefix: String,
        /// Prefix of vision-tower tensors.
        vision_prefix: String,
    },
    /// OpenAI's / open_clip's state-dict names.
    OpenAi,
}

impl Naming {
    /// Detects the naming from the tensor names present.
    pub fn detect(store: &WeightStore) -> Naming {
        let names = store.names();
        let openai = names.iter().any(|n| {
            n.starts_with("transformer.resblocks.")
                || n.starts_with("visual.")
                || *n == "token_embedding.weight"
                || *n == "positional_embedding"
        });
        if openai {
            return Naming::OpenAi;
        }
        let prefix = |p: &str| {
            if names.iter().any(|n| n.starts_with(p)) {
                p.to_string()
            } else {
                String::new()
            }
        };
        Naming::HuggingFace {
            text_prefix: prefix("text_model."),
            vision_prefix: prefix("vision_model."),
        }
    }

    /// A short description for `clip info`.
    pub fn describe(&self) -> &'static str {
        match self {
            Naming::HuggingFace { .. } => "Hugging Face",
            Naming::OpenAi => "OpenAI / open_clip",
        }
    }
}

/// How a stored tensor becomes the requested parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transform {
    None,
    /// Third `i` (0 = query, 1 = key, 2 = value) of a fused projection.
    Chunk(usize),
    /// Stored `[in, out]`.
    Transposed,
}

/// Maps a Hugging Face tower-internal name (`encoder.layers.3.mlp.fc1.weight`)
/// to its OpenAI name under `root` (`transformer.` or `visual.transformer.`).
fn openai_layer_name(rest: &str, root: &str) -> Option<(String, Transform)> {
    let rest = rest.strip_prefix("encoder.layers.")?;
    let (n, param) = rest.split_once('.')?;
    let block = format!("{root}resblocks.{n}");
    let chunk =
        |i: usize, suffix: &str| (format!("{block}.attn.in_proj_{suffix}"), Transform::Chunk(i));
    Some(match param {
        "self_attn.q_proj.weight" => chunk(0, "weight"),
        "self_attn.k_proj.weight" => chunk(1, "weight"),
        "self_attn.v_proj.weight" => chunk(2, "weight"),
        "self_attn.q_proj.bias" => chunk(0, "bias"),
        "self_attn.k_proj.bias" => chunk(1, "bias"),
        "self_attn.v_proj.bias" => chunk(2, "bias"),
        _ => {
            let mapped = param
                .replacen("self_attn.out_proj", "attn.out_proj", 1)
                .replacen("layer_norm1", "ln_1", 1)
                .replacen("layer_norm2", "ln_2", 1)
                .replacen("mlp.fc1", "mlp.c_fc", 1)
                .replacen("mlp.fc2", "mlp.c_proj", 1);
            (format!("{block}.{mapped}"), Transform::None)
        }
    })
}

fn openai_name(canonical: &str) -> Option<(String, Transform)> {
    let plain = |s: &str| Some((s.to_string(), Transform::None));
    if let Some(rest) = canonical.strip_prefix("text_model.") {
        return match rest {
            "embeddings.token_embedding.weight" => plain("token_embedding.weight"),
            "embeddings.position_embedding.weight" => plain("positional_embedding"),
            "final_layer_norm.weight" => plain("ln_final.weight"),
            "final_layer_norm.bias" => plain("ln_final.bias"),
            _ => openai_layer_name(rest, "transformer."),
        };
    }
    if let Some(rest) = canonical.strip_prefix("vision_model.") {
        return match rest {
            "embeddings.patch_embedding.weight" => plain("visual.conv1.weight"),
            "embeddings.class_embedding" => plain("visual.class_embedding"),
            "embeddings.position_embedding.weight" => plain("visual.positional_embedding"),
            "pre_layrnorm.weight" => plain("visual.ln_pre.weight"),
            "pre_layrnorm.bias" => plain("visual.ln_pre.bias"),
            "post_layernorm.weight" => plain("visual.ln_post.weight"),
            "post_layernorm.bias" => plain("visual.ln_post.bias"),
            _ => openai_layer_name(rest, "visual.transformer."),
        };
    }
    match canonical {
        "text_projection.weight" => Some(("text_projection".into(), Transform::Transposed)),
        "visual_projection.weight" => Some(("visual.proj".into(), Transform::Transposed)),
        "logit_scale" => plain("logit_scale"),
        _ => None,
    }
}

/// What a loaded model keeps resident, for `clip info` and the README's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeightsSummary {
    /// Number of parameter tensors used.
    pub tensors: usize,
    /// Bytes of parameters read in place from the file mapping (or caller's
    /// buffer): not copied, paged in by the OS on first use.
    pub in_place_bytes: usize,
    /// Bytes of parameters copied at load time (small vectors widened to f32,
    /// transposed projections, misaligned tensors).
    pub copied_bytes: usize,
    /// Tensor count per dtype of the checkpoint (`"F32"`, `"F16"`, `"BF16"`, `"I8"`).
    pub dtypes: std::collections::BTreeMap<&'static str, usize>,
}

/// Parts open_clip can build that this runtime does not implement, by a
/// tensor-name fragment that only they have in open_clip's naming, and what
/// to call them.
pub(crate) const UNSUPPORTED: &[(&str, &str)] = &[
    ("visual.trunk.", "a timm image tower (ConvNeXt, EVA, ...)"),
    ("visual.layer1.", "a ModifiedResNet image tower (RN50, RN101, ...)"),
    ("visual.attnpool.", "a ModifiedResNet attention-pool head"),
    ("visual.attn_pool", "the attentional pooler (CoCa, attentional_pool)"),
    ("text_decoder.", "a CoCa multimodal text decoder"),
    ("text.", "a Hugging Face text tower inside open_clip (hf_model_name)"),
    ("text_projection.weight", "a linear text projection (proj_type \"linear\")"),
    (".attn.ln_q.", "query/key normalisation (qk_norm)"),
    (".attn.logit_scale", "scaled cosine attention (scaled_cosine_attn)"),
    (".attn.head_scale", "per-head scaling (scale_heads)"),
    (".attn.ln_inner.", "attention with an inner layer norm (scale_attn_inner)"),
    (".ln_attn.", "a layer norm after attention (scale_attn)"),
    (".mlp.ln.", "an MLP with an inner layer norm (scale_fc)"),
    ("logit_bias", "a sigmoid-loss logit bias (SigLIP)"),
];

/// Refuses a checkpoint that holds a part named in [`UNSUPPORTED`], naming
/// the part and the tensor that shows it.
fn refuse_unsupported(store: &WeightStore) -> Result<()> {
    for name in store.names() {
        if let Some((_, what)) = UNSUPPORTED.iter().find(|(frag, _)| {
            if frag.starts_with('.') {
                name.contains(frag)
            } else {
                name.starts_with(frag)
            }
        }) {
            return Err(Error::unsupported(format!(
                "tensor \"{name}\": {what} is not supported (see README, Supported checkpoints)"
            )));
        }
    }
    Ok(())
}

/// Resolves parameters for a model being built, collecting missing names.
pub(crate) struct Loader<'a> {
    store: &'a WeightStore,
    naming: Naming,
    missing: RefCell<Vec<String>>,
    summary: RefCell<WeightsSummary>,
}

impl<'a> Loader<'a> {
    /// A loader over `store`, detecting its naming. Fails on checkpoints
    /// built from parts this runtime does not implement ([`UNSUPPORTED`]),
    /// and when `CLIP_KERNEL` names a kernel that does not exist or that
    /// this CPU cannot run ([`crate::kernels::active_kernel`]).
    pub fn new(store: &'a WeightStore) -> Result<Self> {
        crate::kernels::active_kernel()?;
        let naming = Naming::detect(store);
        if naming == Naming::OpenAi {
            refuse_unsupported(store)?;
        }
        Ok(Loader {
            store,
            naming,
            missing: RefCell::new(Vec::new()),
            summary: RefCell::new(WeightsSummary::default()),
        })
    }

    /// The detected naming.
    pub fn naming(&self) -> &Naming {
        &self.naming
    }

    fn resolve(&self, canonical: &str) -> Option<(String, Transform)> {
        match &self.naming {
            Naming::OpenAi => openai_name(canonical),
            Naming::HuggingFace { text_prefix, vision_prefix } => {
                let name = if let Some(rest) = canonical.strip_prefix("text_model.") {
                    format!("{text_prefix}{rest}")
                } else if let Some(rest) = canonical.strip_prefix("vision_model.") {
                    format!("{vision_prefix}{rest}")
                } else {
                    canonical.to_string()
                };
                Some((name, Transform::None))
            }
        }
    }

    /// The parameter `canonical` with the given (Hugging Face) shape. A
    /// missing tensor is recorded and an empty placeholder returned: call
    /// [`Loader::finish`] before using anything built.
    pub fn tensor(&self, canonical: &str, shape: &[usize]) -> Result<WeightTensor> {
        let placeholder = || WeightTensor::from_f32_as(&[], vec![0], DType::F32);
        let Some((name, transform)) = self.resolve(canonical) else {
            self.missing.borrow_mut().push(canonical.to_string());
            return Ok(placeholder());
        };
        let Some(t) = self.store.get(&name)? else {
            self.missing.borrow_mut().push(name);
            return Ok(placeholder());
        };
        let expected: Vec<usize> = match transform {
            Transform::None => shape.to_vec(),
            Transform::Chunk(_) => {
                let mut s = shape.to_vec();
                s[0] = s[0].saturating_mul(3);
                s
            }
            Transform::Transposed => shape.iter().rev().copied().collect(),
        };
        if t.shape() != expected.as_slice() {
            let what =
                if name == canonical { String::new() } else { format!(" (for {canonical})") };
            return Err(Error::format(format!(
                "tensor \"{name}\"{what} has shape {:?}, expected {expected:?}",
                t.shape()
            )));
        }
        let t = match transform {
            Transform::None => t,
            Transform::Chunk(i) => t.rows(i * shape[0], shape[0]),
            Transform::Transposed => t.transposed(),
        };
        let mut summary = self.summary.borrow_mut();
        summary.tensors += 1;
        *summary.dtypes.entry(t.dtype().name()).or_default() += 1;
        if t.is_in_place() {
            summary.in_place_bytes += t.nbytes();
        } else {
            summary.copied_bytes += t.nbytes();
        }
        Ok(t)
    }

    /// A vector parameter widened to f32 (an owned copy).
    pub fn vector(&self, canonical: &str, len: usize) -> Result<Vec<f32>> {
        self.owned_f32(canonical, &[len])
    }

    /// A parameter widened to an owned f32 vector (position embeddings, ...).
    pub fn owned_f32(&self, canonical: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let n = shape.iter().product::<usize>();
        let t = self.tensor(canonical, shape)?;
        let mut summary = self.summary.borrow_mut();
        if t.is_in_place() {
            summary.in_place_bytes -= t.nbytes();
        } else {
            summary.copied_bytes -= t.nbytes();
        }
        summary.copied_bytes += n * 4;
        Ok(t.to_f32_vec())
    }

    /// Succeeds if every requested parameter was found (returning what the
    /// model keeps resident); otherwise names the first missing ones.
    pub fn finish(self) -> Result<WeightsSummary> {
        let missing = self.missing.into_inner();
        if missing.is_empty() {
            return Ok(self.summary.into_inner());
        }
        const SHOWN: usize = 5;
        let mut list =
            missing.iter().take(SHOWN).map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
        if missing.len() > SHOWN {
            list.push_str(&format!(" and {} more", missing.len() - SHOWN));
        }
        Err(Error::format(format!(
            "{} tensor(s) missing from the checkpoint ({} naming): {list}",
            missing.len(),
            self.naming.describe()
        )))
    }
}
