//! The pre-LayerNorm transformer encoder shared by both towers
//! (`CLIPEncoder` / `CLIPEncoderLayer`).

use crate::config::Activation;
use crate::error::Result;
use crate::kernels::team;
use crate::kernels::{
    attention_picked, attention_segments_to, AttentionMask, Epilogue, Heads, Input, LayerNorm,
};
use crate::layers::{input_buffer_len, LayerBuilder, LayerInput, Linear};
use crate::tensor::Tensor;
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
    /// open_clip's LayerScale: each residual branch scaled per channel.
    pub layer_scale: bool,
}

struct EncoderLayer {
    layer_norm1: LayerNorm,
    /// Query, key and value projections as one product.
    qkv_proj: Linear,
    out_proj: Linear,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    /// LayerScale factors of the attention and MLP branches (`ls_1`,
    /// `ls_2`), for models that have them.
    layer_scale: Option<[Vec<f32>; 2]>,
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
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    mlp: Vec<f32>,
}

/// The sequences of a pass: their lengths (stored one after the other,
/// each attending only within itself) and the attention mask.
#[derive(Clone, Copy)]
struct Batch<'a> {
    lens: &'a [usize],
    mask: AttentionMask<'a>,
}

impl Batch<'_> {
    /// Rows of all sequences.
    fn rows(&self) -> usize {
        self.lens.iter().sum()
    }
}

/// Buffers larger than this (in f32, 64 MiB in all) are freed after a pass
/// rather than kept: a one-off huge batch does not pin its memory.
const MAX_SPARE_FLOATS: usize = 16 << 20;

impl Buffers {
    /// Sizes every buffer for `m` rows (only growth touches memory).
    fn sized(mut self, m: usize, d: usize, f: usize) -> Self {
        // `ctx` and `mlp` hold the next layer's input, in its layout.
        for (v, len) in [
            (&mut self.qkv, m * 3 * d),
            (&mut self.ctx, input_buffer_len(m, d)),
            (&mut self.mlp, input_buffer_len(m, f)),
        ] {
            v.truncate(len);
            v.resize(len, 0.0);
        }
        self
    }

    fn capacity(&self) -> usize {
        self.qkv.capacity() + self.ctx.capacity() + self.mlp.capacity()
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
    pub fn load(nn: &LayerBuilder<'_>, prefix: &str, s: &EncoderShape) -> Result<Self> {
        let (d, f) = (s.hidden, s.intermediate);
        let mut layers = Vec::with_capacity(s.layers);
        for i in 0..s.layers {
            let p = format!("{prefix}.layers.{i}");
            layers.push(EncoderLayer {
                layer_norm1: nn.layer_norm(&format!("{p}.layer_norm1"), d, s.eps)?,
                qkv_proj: nn.stack(vec![
                    nn.linear(&format!("{p}.self_attn.q_proj"), d, d, true)?,
                    nn.linear(&format!("{p}.self_attn.k_proj"), d, d, true)?,
                    nn.linear(&format!("{p}.self_attn.v_proj"), d, d, true)?,
                ]),
                out_proj: nn.linear(&format!("{p}.self_attn.out_proj"), d, d, true)?,
                layer_norm2: nn.layer_norm(&format!("{p}.layer_norm2"), d, s.eps)?,
                fc1: nn.linear(&format!("{p}.mlp.fc1"), f, d, true)?,
                fc2: nn.linear(&format!("{p}.mlp.fc2"), d, f, true)?,
                layer_scale: match s.layer_scale {
                    true => Some([
                        nn.loader().vector(&format!("{p}.ls_1.gamma"), d)?,
                        nn.loader().vector(&format!("{p}.ls_2.gamma"), d)?,
                    ]),
                    false => None,
                },
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
        let all = Batch { lens: &lens, mask };
        team::run(|| self.run(h, all, None, opts.output_attentions, &mut on_layer));
        if let Some(hs) = collected.hidden_states.as_mut() {
            hs.push(Tensor::from_parts(vec![batch, seq, d], h.to_vec()));
        }
        collected
    }

    /// The encoder's output at row `picks[s]` of each sequence `s`,
    /// `[lens.len(), hidden]`: what a pooled output needs. The sequences may
    /// differ in length and are stored one after the other in `h`
    /// (`[sum(lens), hidden]`), each attending only within itself (a batch
    /// without its padding). Every layer but the last runs over all
    /// rows (in place in `h`); the last computes the keys and values of all
    /// rows and everything else for the picked rows only, which saves most of
    /// a layer (`h` then holds the last layer's input).
    pub fn forward_picked(
        &self,
        h: &mut [f32],
        lens: &[usize],
        picks: &[usize],
        mask: AttentionMask<'_>,
    ) -> Vec<f32> {
        team::run(|| self.run(h, Batch { lens, mask }, Some(picks), false, &mut |_, _| {}))
    }

    /// The layers; `on_layer` sees each layer's input (and, when `probs`,
    /// its attention probabilities). With `picks`, the last layer runs for
    /// the picked rows only and returns them (see [`Encoder::forward_picked`]);
    /// without, every layer runs over every row and the result is empty.
    /// Callers run it as one pass of the pool's threads ([`team::run`]):
    /// its ~70 parallel steps an image then go to workers that spin between
    /// steps rather than park (waking a parked thread costs tens of µs).
    fn run(
        &self,
        h: &mut [f32],
        batch: Batch<'_>,
        picks: Option<&[usize]>,
        probs: bool,
        on_layer: &mut LayerHook<'_>,
    ) -> Vec<f32> {
        let (d, f) = (self.hidden, self.intermediate);
        // A poisoned lock only means another pass panicked: the list is intact.
        let spare = || self.spare.lock().unwrap_or_else(|e| e.into_inner());
        let mut bufs = spare().pop().unwrap_or_default().sized(batch.rows(), d, f);
        let (full, last) = match (picks, self.layers.split_last()) {
            (Some(_), Some((last, rest))) => (rest, Some(last)),
            _ => (&self.layers[..], None),
        };
        for layer in full {
            self.layer(layer, h, batch, probs, on_layer, &mut bufs);
        }
        let picked = match picks {
            Some(picks) => {
                let rows = picked_rows(batch.lens, picks);
                let gathered = rows.iter().flat_map(|&r| &h[r * d..(r + 1) * d]).copied();
                let mut out: Vec<f32> = gathered.collect();
                if let Some(layer) = last {
                    self.last_layer_picked(layer, h, batch, picks, &mut bufs, &mut out);
                }
                out
            }
            None => Vec::new(),
        };
        if bufs.capacity() <= MAX_SPARE_FLOATS {
            spare().push(bufs);
        }
        picked
    }

    /// The heads of every layer.
    fn heads(&self) -> Heads {
        Heads { count: self.heads, dim: self.hidden / self.heads }
    }

    /// One layer over every row of `h`, in place.
    fn layer(
        &self,
        layer: &EncoderLayer,
        h: &mut [f32],
        batch: Batch<'_>,
        probs: bool,
        on_layer: &mut LayerHook<'_>,
        bufs: &mut Buffers,
    ) {
        let m = batch.rows();
        let threads = rayon::current_num_threads();
        let Buffers { qkv, ctx, mlp } = bufs;
        // Self-attention block. The contexts are written where the output
        // projection reads them.
        project_qkv(layer, h, m, qkv, threads);
        let probs_len: usize = batch.lens.iter().map(|l| self.heads * l * l).sum();
        let mut p = probs.then(|| vec![0.0f32; probs_len]);
        let ctx_in = layer.out_proj.input(m);
        let (lens, mask, heads) = (batch.lens, batch.mask, self.heads());
        let ctx_out = (&mut ctx[..], ctx_in.layout());
        attention_segments_to(qkv, lens, heads, mask, ctx_out, p.as_deref_mut());
        on_layer(h, p);
        // `qkv` is free once attention has read it.
        let scale = layer.layer_scale.as_ref().map(|[ls1, _]| ls1);
        residual(&layer.out_proj, ctx_in.read(ctx), m, h, scale, qkv, threads);
        self.mlp_block(layer, h, m, mlp, qkv, threads);
    }

    /// The last layer for the picked rows: `out` (`[picks.len(), hidden]`)
    /// holds their inputs and receives their outputs; `h` is every row's input.
    fn last_layer_picked(
        &self,
        layer: &EncoderLayer,
        h: &[f32],
        batch: Batch<'_>,
        picks: &[usize],
        bufs: &mut Buffers,
        out: &mut [f32],
    ) {
        let (d, n) = (self.hidden, picks.len());
        let threads = rayon::current_num_threads();
        let Buffers { qkv, ctx, mlp } = bufs;
        // Keys and values of every row (the queries of the others come
        // along: one stacked product, a twelfth of the layer).
        project_qkv(layer, h, batch.rows(), qkv, threads);
        let ctx = &mut ctx[..n * d];
        attention_picked(qkv, batch.lens, picks, self.heads(), batch.mask, ctx);
        let scale = layer.layer_scale.as_ref().map(|[ls1, _]| ls1);
        residual(&layer.out_proj, Input::Rows(ctx), n, out, scale, qkv, threads);
        self.mlp_block(layer, out, n, mlp, qkv, threads);
    }

    /// The MLP block over the `rows` rows of `h`, in place:
    /// `h += fc2(act(fc1(layer_norm2(h))))` (times `ls_2` with LayerScale),
    /// with `mlp` (of at least `rows` rows, in any layout) and `scratch`
    /// (`rows * hidden` floats, for LayerScale) as scratch. `layer_norm2` is
    /// applied as `fc1` packs its input, and `fc1` writes its output as
    /// `fc2` reads it.
    fn mlp_block(
        &self,
        layer: &EncoderLayer,
        h: &mut [f32],
        rows: usize,
        mlp: &mut [f32],
        scratch: &mut [f32],
        threads: usize,
    ) {
        let fc2_in: LayerInput = layer.fc2.input(rows);
        let (x, act) = (Input::Normed(h, &layer.layer_norm2), Epilogue::Activate(self.act));
        layer.fc1.forward_to(x, rows, mlp, Some(&fc2_in), act, threads);
        let scale = layer.layer_scale.as_ref().map(|[_, ls2]| ls2);
        residual(&layer.fc2, fc2_in.read(mlp), rows, h, scale, scratch, threads);
    }
}

/// A residual branch's last product added to `h` (`rows` rows):
/// `h += x W^T + b`, or with LayerScale factors `h += (x W^T + b) * scale`
/// (per column, rounded as open_clip computes it: the product is stored,
/// scaled, then added), using `scratch` (`rows * out_features` floats).
fn residual(
    layer: &Linear,
    x: Input<'_>,
    rows: usize,
    h: &mut [f32],
    scale: Option<&Vec<f32>>,
    scratch: &mut [f32],
    threads: usize,
) {
    let Some(scale) = scale else {
        layer.forward_to(x, rows, h, None, Epilogue::Accumulate, threads);
        return;
    };
    let d = layer.out_features();
    let branch = &mut scratch[..rows * d];
    layer.forward_to(x, rows, branch, None, Epilogue::Store, threads);
    for (h, branch) in h[..rows * d].chunks_exact_mut(d).zip(branch.chunks_exact(d)) {
        for ((h, &b), &g) in h.iter_mut().zip(branch).zip(scale) {
            *h += b * g;
        }
    }
}

/// The attention block's input: `qkv = [q | k | v](layer_norm1(h))` for the
/// `m` rows of `h`, the norm applied as the stacked product packs its input
/// (or as other kernels read it).
fn project_qkv(layer: &EncoderLayer, h: &[f32], m: usize, qkv: &mut [f32], threads: usize) {
    let p = &layer.qkv_proj;
    let x = Input::Normed(&h[..m * p.in_features()], &layer.layer_norm1);
    p.forward_to(x, m, &mut qkv[..m * p.out_features()], None, Epilogue::Store, threads);
}

/// The global row of each sequence's pick (`picks[s]` counts from the
/// first row of sequence `s`).
fn picked_rows(lens: &[usize], picks: &[usize]) -> Vec<usize> {
    let starts = lens.iter().scan(0, |at, &len| {
        let start = *at;
        *at += len;
        Some(start)
    });
    starts.zip(picks).map(|(start, &p)| start + p).collect()
}
