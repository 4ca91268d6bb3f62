//! The pre-LayerNorm transformer encoder shared by both towers
//! (`CLIPEncoder` / `CLIPEncoderLayer`).

use crate::config::Activation;
use crate::error::Result;
use crate::kernels::{
    apply_activation, attention_segments, layer_norm, linear, linear_accumulate, AttentionMask,
    LayerNorm, Linear, StackedLinear,
};
use crate::tensor::Tensor;
use crate::weights::Loader;
use std::sync::Mutex;

/// What a forward pass returns besides its main outputs, as transformers'
/// `output_hidden_states` / `output_attentions` / `interpolate_pos_encoding`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardOptions {
    /// Return the input of the encoder and the output of every layer.
    pub output_hidden_states: bool,
    /// Return every layer's post-softmax attention probabilities.
    pub output_attentions: bool,
    /// Vision tower: accept images of another size than the configured one,
    /// interpolating the position embeddings bicubically as transformers does.
    pub interpolate_pos_encoding: bool,
}

/// Hyper-parameters of one tower's encoder.
pub(crate) struct EncoderShape {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub eps: f64,
    pub act: Activation,
}

struct EncoderLayer {
    layer_norm1: LayerNorm,
    /// Query, key and value projections as one product.
    qkv_proj: StackedLinear,
    out_proj: Linear,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// Called with each layer's input and, on request, its attention probabilities.
type LayerHook<'a> = dyn FnMut(&[f32], Option<Vec<f32>>) + Send + 'a;

/// A stack of pre-LN transformer layers.
pub(crate) struct Encoder {
    layers: Vec<EncoderLayer>,
    hidden: usize,
    intermediate: usize,
    heads: usize,
    act: Activation,
    /// Intermediate buffers of finished passes, reused by the next ones.
    spare: Mutex<Vec<Buffers>>,
}

/// The intermediate activations of one pass (each fully written before it
/// is read, so a reused buffer's old contents never show).
#[derive(Default)]
struct Buffers {
    normed: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    mlp: Vec<f32>,
}

/// Buffers larger than this (in f32, 64 MiB in all) are freed after a pass
/// rather than kept: a one-off huge batch does not pin its memory.
const MAX_SPARE_FLOATS: usize = 16 << 20;

impl Buffers {
    /// Sizes every buffer for `m` rows (only growth touches memory).
    fn sized(mut self, m: usize, d: usize, f: usize) -> Self {
        for (v, len) in [
            (&mut self.normed, m * d),
            (&mut self.qkv, m * 3 * d),
            (&mut self.ctx, m * d),
            (&mut self.mlp, m * f),
        ] {
            v.truncate(len);
            v.resize(len, 0.0);
        }
        self
    }

    fn capacity(&self) -> usize {
        self.normed.capacity() + self.qkv.capacity() + self.ctx.capacity() + self.mlp.capacity()
    }
}

/// Hidden states and attentions collected on request.
#[derive(Default)]
pub(crate) struct Collected {
    pub hidden_states: Option<Vec<Tensor>>,
    pub attentions: Option<Vec<Tensor>>,
}

impl Encoder {
    /// Loads `{prefix}.layers.{i}.*` (e.g. prefix `text_model.encoder`).
    pub fn load(loader: &Loader<'_>, prefix: &str, s: &EncoderShape) -> Result<Self> {
        let (d, f) = (s.hidden, s.intermediate);
        let mut layers = Vec::with_capacity(s.layers);
        for i in 0..s.layers {
            let p = format!("{prefix}.layers.{i}");
            layers.push(EncoderLayer {
                layer_norm1: loader.layer_norm(&format!("{p}.layer_norm1"), d, s.eps)?,
                qkv_proj: StackedLinear::new(vec![
                    loader.linear(&format!("{p}.self_attn.q_proj"), d, d, true)?,
                    loader.linear(&format!("{p}.self_attn.k_proj"), d, d, true)?,
                    loader.linear(&format!("{p}.self_attn.v_proj"), d, d, true)?,
                ]),
                out_proj: loader.linear(&format!("{p}.self_attn.out_proj"), d, d, true)?,
                layer_norm2: loader.layer_norm(&format!("{p}.layer_norm2"), d, s.eps)?,
                fc1: loader.linear(&format!("{p}.mlp.fc1"), f, d, true)?,
                fc2: loader.linear(&format!("{p}.mlp.fc2"), d, f, true)?,
            });
        }
        Ok(Encoder {
            layers,
            hidden: d,
            intermediate: f,
            heads: s.heads,
            act: s.act,
            spare: Mutex::new(Vec::new()),
        })
    }

    /// Runs every layer over `h` (`[batch * seq, hidden]`) in place.
    pub fn forward(
        &self,
        h: &mut [f32],
        batch: usize,
        seq: usize,
        mask: AttentionMask<'_>,
        opts: &ForwardOptions,
    ) -> Collected {
        let d = self.hidden;
        let mut collected = Collected {
            hidden_states: opts.output_hidden_states.then(Vec::new),
            attentions: opts.output_attentions.then(Vec::new),
        };
        let heads = self.heads;
        let mut on_layer = |h: &[f32], probs: Option<Vec<f32>>| {
            if let Some(hs) = collected.hidden_states.as_mut() {
                hs.push(Tensor::from_parts(vec![batch, seq, d], h.to_vec()));
            }
            if let (Some(all), Some(p)) = (collected.attentions.as_mut(), probs) {
                all.push(Tensor::from_parts(vec![batch, heads, seq, seq], p));
            }
        };
        let lens = vec![seq; batch];
        in_pool(|| self.run(h, &lens, mask, opts.output_attentions, &mut on_layer));
        if let Some(hs) = collected.hidden_states.as_mut() {
            hs.push(Tensor::from_parts(vec![batch, seq, d], h.to_vec()));
        }
        collected
    }

    /// Runs every layer over sequences of different lengths stored one after
    /// the other in `h` (`[sum(lens), hidden]`), each attending only within
    /// itself: a batch without its padding.
    pub fn forward_ragged(&self, h: &mut [f32], lens: &[usize], mask: AttentionMask<'_>) {
        in_pool(|| self.run(h, lens, mask, false, &mut |_, _| {}));
    }

    /// The layers; `on_layer` sees each layer's input (and, when `probs`,
    /// its attention probabilities). Callers run it [`in_pool`].
    fn run(
        &self,
        h: &mut [f32],
        lens: &[usize],
        mask: AttentionMask<'_>,
        probs: bool,
        on_layer: &mut LayerHook<'_>,
    ) {
        let (d, f) = (self.hidden, self.intermediate);
        let m: usize = lens.iter().sum();
        let threads = rayon::current_num_threads();
        let head_dim = d / self.heads;
        // A poisoned lock only means another pass panicked: the list is intact.
        let spare = || self.spare.lock().unwrap_or_else(|e| e.into_inner());
        let buffers = spare().pop().unwrap_or_default().sized(m, d, f);
        let Buffers { mut normed, mut qkv, mut ctx, mut mlp } = buffers;
        let probs_len: usize = lens.iter().map(|l| self.heads * l * l).sum();
        for layer in &self.layers {
            // Self-attention block.
            layer_norm(h, &layer.layer_norm1, &mut normed);
            layer.qkv_proj.forward(&normed, m, &mut qkv, threads);
            let mut p = probs.then(|| vec![0.0f32; probs_len]);
            attention_segments(&qkv, lens, self.heads, head_dim, mask, &mut ctx, p.as_deref_mut());
            on_layer(h, p);
            linear_accumulate(&ctx, m, &layer.out_proj, h, threads);
            // MLP block.
            layer_norm(h, &layer.layer_norm2, &mut normed);
            linear(&normed, m, &layer.fc1, &mut mlp, threads);
            apply_activation(self.act, &mut mlp);
            linear_accumulate(&mlp, m, &layer.fc2, h, threads);
        }
        let buffers = Buffers { normed, qkv, ctx, mlp };
        if buffers.capacity() <= MAX_SPARE_FLOATS {
            spare().push(buffers);
        }
    }
}

/// Runs `f` on a thread of the current rayon pool: called from outside one
/// (e.g. the main thread with the global pool), every parallel step of
/// every layer would otherwise be a round trip that wakes the caller (about
/// 70 per image); from inside, the caller's thread is one of the workers and
/// the steps are cheap joins.
fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_none() {
        rayon::scope(|_| f())
    } else {
        f()
    }
}
