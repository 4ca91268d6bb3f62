//! Multi-head scaled dot-product attention, as transformers' eager
//! `CLIPAttention`: `softmax(q k^T * head_dim^-0.5 + mask) v`.
//!
//! One task per (sequence, head); a head's two products run on the
//! selected kernel's head tiles ([`attention_heads`](super::attention_heads)),
//! or on the `gemm` crate for the `gemm` kernel.

use super::attention_heads::{Contexts, Scores};
use super::gemm_crate::{gemm_f32, GemmDst, GemmOperand};
use super::isa::{selected, with_isa, Isa, Kernel};
use super::packed::{OutPtr, RowBlocks};
use super::softmax::softmax_rows;
use super::team;
use rayon::prelude::*;

/// Which keys each query may attend to.
#[derive(Debug, Clone, Copy)]
pub enum AttentionMask<'a> {
    /// Every key (the vision tower).
    None,
    /// Keys at or before the query (the text tower), optionally combined with
    /// a padding mask `[batch * seq]` of 1 (attend) and 0 (ignore).
    ///
    /// The two are combined as transformers v4 does: each adds `f32::MIN`
    /// where it masks, so a key masked by both gets `-inf` and one masked by
    /// the padding mask alone keeps a finite, hugely negative score. Both
    /// give it zero weight unless a query can see no unmasked key at all.
    Causal {
        /// Padding mask, `[batch * seq]`, or `None` for all ones.
        key_mask: Option<&'a [u32]>,
    },
}

/// The attention heads: how many, and the width of each (their product is
/// the model width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    /// Number of heads.
    pub count: usize,
    /// Width of one head.
    pub dim: usize,
}

impl Heads {
    /// The width of all heads together.
    pub fn width(self) -> usize {
        self.count * self.dim
    }
}

/// Attention over a fused projection buffer.
///
/// `qkv` is `[batch * seq, 3 * width]`, each row holding the query, key and
/// value of one position. Writes the per-head contexts, concatenated over
/// heads, to `out` (`[batch * seq, width]`), and the post-softmax
/// probabilities to `probs` (`[batch, heads, seq, seq]`) when given.
pub fn attention(
    qkv: &[f32],
    (batch, seq): (usize, usize),
    heads: Heads,
    mask: AttentionMask<'_>,
    out: &mut [f32],
    probs: Option<&mut [f32]>,
) {
    let segments: Vec<usize> = vec![seq; batch];
    attention_segments(qkv, &segments, heads, mask, out, probs)
}

/// As [`attention`] for sequences of different lengths stored one after the
/// other: sequence `s` is the `lens[s]` rows starting after the rows of the
/// sequences before it, and attends only within itself. The key mask, when
/// given, has one entry per row. `probs`, when given, is the
/// `[heads, len, len]` blocks of each sequence in order.
pub fn attention_segments(
    qkv: &[f32],
    lens: &[usize],
    heads: Heads,
    mask: AttentionMask<'_>,
    out: &mut [f32],
    probs: Option<&mut [f32]>,
) {
    attention_segments_to(qkv, lens, heads, mask, (out, None), probs)
}

/// As [`attention_segments`], writing the contexts in `layout` when given
/// (the output projection's input layout, see `layers::LayerInput`): they
/// are then packed as they are computed, with no copy of their own.
pub(crate) fn attention_segments_to(
    qkv: &[f32],
    lens: &[usize],
    heads: Heads,
    mask: AttentionMask<'_>,
    (out, layout): (&mut [f32], Option<&RowBlocks>),
    probs: Option<&mut [f32]>,
) {
    attend(qkv, (lens, None), heads, mask, (out, layout), probs)
}

/// As [`attention_segments`] for one query per sequence: row `picks[s]` of
/// sequence `s` (counted from the sequence's first row) attends to the keys
/// of its sequence, and its context is row `s` of `out` (`[lens.len(),
/// heads * head_dim]`). What a pooled output needs of the last layer.
pub fn attention_picked(
    qkv: &[f32],
    lens: &[usize],
    picks: &[usize],
    heads: Heads,
    mask: AttentionMask<'_>,
    out: &mut [f32],
) {
    assert!(
        picks.len() == lens.len() && picks.iter().zip(lens).all(|(p, l)| p < l),
        "attention: one pick per sequence, inside it"
    );
    attend(qkv, (lens, Some(picks)), heads, mask, (out, None), None)
}

/// One (sequence, head) of [`attend`]: the sequence's first row and length,
/// the head, the first query row (within the sequence), how many queries, and
/// the row of `out` taking the first query's context.
#[derive(Clone, Copy)]
struct Task {
    first: usize,
    len: usize,
    head: usize,
    q0: usize,
    queries: usize,
    out_row: usize,
}

/// Every query of each sequence of `lens` (`picks` `None`), or row
/// `picks[s]` alone; the contexts go to `out` as rows of the heads' width,
/// or in the packed layout given.
fn attend(
    qkv: &[f32],
    (lens, picks): (&[usize], Option<&[usize]>),
    Heads { count: heads, dim: head_dim }: Heads,
    mask: AttentionMask<'_>,
    (out, layout): (&mut [f32], Option<&RowBlocks>),
    probs: Option<&mut [f32]>,
) {
    let d = heads * head_dim;
    let row = 3 * d;
    let rows: usize = lens.iter().sum();
    let out_rows = if picks.is_some() { lens.len() } else { rows };
    let out_len = layout.map_or(out_rows * d, RowBlocks::len);
    assert!(qkv.len() >= rows * row && out.len() >= out_len, "attention: buffers too short");
    if let Some(l) = layout {
        assert!(l.shape() == (out_rows, d), "attention: output layout");
    }
    if rows == 0 {
        return;
    }
    let scale = (head_dim as f32).powf(-0.5);
    let mut tasks = Vec::with_capacity(lens.len() * heads);
    let mut first = 0;
    for (s, &len) in lens.iter().enumerate() {
        let (q0, queries, out_row) = match picks {
            Some(p) => (p[s], 1, s),
            None => (0, len, first),
        };
        tasks.extend((0..heads).map(|head| Task { first, len, head, q0, queries, out_row }));
        first += len;
    }
    let out_ptr = OutPtr(out.as_mut_ptr());
    let task = |t: Task, scores: &mut [f32], ctx: &mut [f32], kt: &mut [f32]| {
        let Task { first, len, head, q0, queries, out_row } = t;
        let base = first * row + head * head_dim;
        let h = HeadRows {
            q: &qkv[base + q0 * row..],
            k: &qkv[base + d..],
            v: &qkv[base + 2 * d..],
            row,
            head_dim,
        };
        let causal = matches!(mask, AttentionMask::Causal { .. });
        // Under the causal mask a query sees the keys up to its own.
        let visible = |i: usize| if causal { q0 + i + 1 } else { len };
        head_scores(h, queries, len, &visible, scale, kt, scores);
        if let AttentionMask::Causal { key_mask } = mask {
            for (i, srow) in scores.chunks_exact_mut(len).enumerate() {
                for (j, s) in srow.iter_mut().enumerate() {
                    let causal = if j > q0 + i { f32::MIN } else { 0.0 };
                    let padding = match key_mask {
                        Some(km) if km[first + j] == 0 => f32::MIN,
                        _ => 0.0,
                    };
                    *s += causal + padding;
                }
            }
        }
        softmax_rows(scores, len);
        head_contexts(h, scores, queries, len, &visible, ctx);
        for (i, c) in ctx.chunks_exact(head_dim).enumerate() {
            // SAFETY: row `out_row + i` of `out` has `d` elements, as rows
            // of `d` or in `layout` (asserted above: queries of different
            // tasks of one head go to different rows); this task alone
            // writes its columns `head * head_dim..(head + 1) * head_dim` of
            // those rows (one task per sequence and head), nothing reads
            // `out` while the tasks run, and `out` is borrowed mutably for
            // the whole call.
            unsafe {
                let (r, col) = (out_row + i, head * head_dim);
                match layout {
                    Some(l) => l.write(out_ptr, r, col, c),
                    None => {
                        let dst = out_ptr.get().add(r * d + col);
                        std::ptr::copy_nonoverlapping(c.as_ptr(), dst, head_dim);
                    }
                }
            }
        }
    };
    let longest = lens.iter().copied().max().unwrap_or(0);
    let most_queries = if picks.is_some() { 1 } else { longest };
    // The keys of one head, transposed (the head tiles only).
    let kt_len = if head_tiles(selected()) { head_dim * padded(longest) } else { 0 };
    let ctx_len = most_queries * head_dim;
    match probs {
        Some(probs) => {
            assert_eq!(probs.len(), lens.iter().map(|l| heads * l * l).sum::<usize>());
            let mut rest = probs;
            let mut with_probs = Vec::with_capacity(tasks.len());
            for t in tasks {
                let (p, r) = rest.split_at_mut(t.queries * t.len);
                rest = r;
                with_probs.push((t, p));
            }
            // Per thread: the contexts and keys of one head (the scores are `probs`).
            let scratch = || vec![0.0f32; ctx_len + kt_len];
            with_probs.into_par_iter().for_each_init(scratch, |scratch, (t, p)| {
                let (ctx, kt) = scratch.split_at_mut(ctx_len);
                task(t, p, &mut ctx[..t.queries * head_dim], kt)
            });
        }
        None => {
            // Per thread: scores, contexts and keys of one head, reused.
            let scores_len = most_queries * longest;
            team::for_each(tasks.len(), |i| {
                let t = tasks[i];
                let mut scratch = SCRATCH.take();
                scratch.resize(scratch.len().max(scores_len + ctx_len + kt_len), 0.0);
                let (scores, rest) = scratch.split_at_mut(scores_len);
                let (ctx, kt) = rest.split_at_mut(ctx_len);
                task(t, &mut scores[..t.queries * t.len], &mut ctx[..t.queries * head_dim], kt);
                SCRATCH.set(scratch);
            })
        }
    }
}

/// One head's operands in the fused projection buffer: row `i` of the
/// queries starts at `q[i * row]`, of the keys at `k[i * row]`, of the
/// values at `v[i * row]`, each `head_dim` wide.
#[derive(Clone, Copy)]
pub(crate) struct HeadRows<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub row: usize,
    pub head_dim: usize,
}

/// Whether `kernel` runs a head's products on its own tiles (else on the
/// `gemm` crate).
fn head_tiles(kernel: Kernel) -> bool {
    with_isa!(kernel, |K| K::HEAD_VECS != 0)
}

/// `len` rounded up to a whole 16 floats (a multiple of every instruction
/// set's lanes): the row length of the keys transposed for the head tiles.
pub(super) fn padded(len: usize) -> usize {
    len.div_ceil(16) * 16
}

/// `scores` (`[queries, len]`) = `q k^T * scale` for one head; `kt` is
/// scratch for the head tiles (`head_dim * padded(len)`). Scores the causal
/// mask hides (query `i`'s from key `visible(i)` on) may be left zero rather
/// than computed.
fn head_scores(
    h: HeadRows<'_>,
    queries: usize,
    len: usize,
    visible: &dyn Fn(usize) -> usize,
    scale: f32,
    kt: &mut [f32],
    scores: &mut [f32],
) {
    let kernel = selected();
    if head_tiles(kernel) {
        let op = Scores { h, queries, len, visible, scale, kt, scores };
        // SAFETY: the selected kernel is supported by this CPU.
        return with_isa!(kernel, |K| unsafe { K::run(op) });
    }
    let q = GemmOperand { data: h.q, row_stride: h.row, col_stride: 1 };
    let k = GemmOperand { data: h.k, row_stride: 1, col_stride: h.row };
    gemm_f32(
        (queries, len, h.head_dim),
        GemmDst { data: scores, row_stride: len, accumulate: false },
        q,
        k,
        scale,
        1,
    );
}

/// `ctx` (`[queries, head_dim]`) = `p v` for one head, `p` being the
/// `[queries, len]` weights, of which query `i`'s from key `visible(i)` on
/// are zero (the head tiles skip them).
fn head_contexts(
    h: HeadRows<'_>,
    p: &[f32],
    queries: usize,
    len: usize,
    visible: &dyn Fn(usize) -> usize,
    ctx: &mut [f32],
) {
    let kernel = selected();
    if head_tiles(kernel) {
        let op = Contexts { h, p, queries, len, visible, ctx };
        // SAFETY: the selected kernel is supported by this CPU.
        return with_isa!(kernel, |K| unsafe { K::run(op) });
    }
    let p = GemmOperand { data: p, row_stride: len, col_stride: 1 };
    let v = GemmOperand { data: h.v, row_stride: h.row, col_stride: 1 };
    gemm_f32(
        (queries, h.head_dim, len),
        GemmDst { data: ctx, row_stride: h.head_dim, accumulate: false },
        p,
        v,
        1.0,
        1,
    );
}

thread_local! {
    /// The attention scores and contexts of this thread's task (reused;
    /// taken out while in use).
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward f64 reference of the same math.
    fn reference(qkv: &[f32], b: usize, l: usize, h: usize, hd: usize, causal: bool) -> Vec<f32> {
        let d = h * hd;
        let mut out = vec![0.0f32; b * l * d];
        for bb in 0..b {
            for hh in 0..h {
                for i in 0..l {
                    let at = |pos: usize, part: usize, c: usize| {
                        qkv[(bb * l + pos) * 3 * d + part * d + hh * hd + c] as f64
                    };
                    let visible = if causal { i + 1 } else { l };
                    let scores: Vec<f64> = (0..visible)
                        .map(|j| {
                            (0..hd).map(|c| at(i, 0, c) * at(j, 1, c)).sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in 0..hd {
                        let v: f64 = (0..visible).map(|j| e[j] / z * at(j, 2, c)).sum();
                        out[(bb * l + i) * d + hh * hd + c] = v as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_reference_with_and_without_causal_mask() {
        let (b, l, h, hd) = (2, 5, 3, 4);
        let qkv: Vec<f32> =
            (0..b * l * 3 * h * hd).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
        for causal in [false, true] {
            let mut out = vec![0.0; b * l * h * hd];
            let mut probs = vec![0.0; b * h * l * l];
            let mask =
                if causal { AttentionMask::Causal { key_mask: None } } else { AttentionMask::None };
            attention(&qkv, (b, l), Heads { count: h, dim: hd }, mask, &mut out, Some(&mut probs));
            let expected = reference(&qkv, b, l, h, hd, causal);
            let err = out.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err < 1e-5, "causal={causal}: {err}");
            if causal {
                assert_eq!(probs[1], 0.0, "a future key must get exactly zero weight");
            }
            let mut out2 = vec![0.0; b * l * h * hd];
            attention(&qkv, (b, l), Heads { count: h, dim: hd }, mask, &mut out2, None);
            assert_eq!(out, out2);
        }
    }

    /// Model shapes: 64-wide heads over 50 keys (a B/32 image), 77 keys
    /// under the causal mask (a padded caption) and 300 keys (a large
    /// image). Tolerance 2e-5: f32 sums of 64-300 terms of O(1) against f64.
    #[test]
    fn model_shapes_match_reference() {
        for (l, causal) in [(50, false), (77, true), (300, false)] {
            let (b, h, hd) = (1, 2, 64);
            let n = b * l * 3 * h * hd;
            let qkv: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
            let mask =
                if causal { AttentionMask::Causal { key_mask: None } } else { AttentionMask::None };
            let mut out = vec![0.0; b * l * h * hd];
            attention(&qkv, (b, l), Heads { count: h, dim: hd }, mask, &mut out, None);
            let expected = reference(&qkv, b, l, h, hd, causal);
            let err = out.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err < 2e-5, "l={l} causal={causal}: {err}");
        }
    }

    /// Sequences of lengths 5 and 2 stored back to back give what each gives
    /// alone (the second one's reference is a batch of one).
    #[test]
    fn segments_attend_within_themselves() {
        let (h, hd) = (2, 4);
        let row = 3 * h * hd;
        let qkv: Vec<f32> = (0..7 * row).map(|i| ((i * 53 % 97) as f32 / 40.0) - 1.2).collect();
        let mask = AttentionMask::Causal { key_mask: None };
        let mut out = vec![0.0; 7 * h * hd];
        attention_segments(&qkv, &[5, 2], Heads { count: h, dim: hd }, mask, &mut out, None);
        let first = reference(&qkv[..5 * row], 1, 5, h, hd, true);
        let second = reference(&qkv[5 * row..], 1, 2, h, hd, true);
        let expected: Vec<f32> = first.into_iter().chain(second).collect();
        let err = out.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 1e-5, "{err}");
    }

    /// One picked query per sequence gets the context its row gets when
    /// every query runs, with and without the causal mask.
    #[test]
    fn picked_queries_match_their_rows() {
        let (h, hd) = (2, 4);
        let d = h * hd;
        let row = 3 * d;
        let qkv: Vec<f32> = (0..7 * row).map(|i| ((i * 29 % 89) as f32 / 35.0) - 1.1).collect();
        let lens = [5, 2];
        for (mask, causal) in
            [(AttentionMask::None, false), (AttentionMask::Causal { key_mask: None }, true)]
        {
            let expected: Vec<f32> = reference(&qkv[..5 * row], 1, 5, h, hd, causal)
                .into_iter()
                .chain(reference(&qkv[5 * row..], 1, 2, h, hd, causal))
                .collect();
            for picks in [[4, 1], [0, 0], [2, 1]] {
                let mut out = vec![0.0; 2 * d];
                attention_picked(&qkv, &lens, &picks, Heads { count: h, dim: hd }, mask, &mut out);
                let want: Vec<f32> = [picks[0], 5 + picks[1]]
                    .iter()
                    .flat_map(|&r| expected[r * d..(r + 1) * d].to_vec())
                    .collect();
                let err = out.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(err < 1e-5, "causal={causal} picks={picks:?}: {err}");
            }
        }
    }
    /// Contexts written in a packed layout are the plain ones, also when a
    /// head's columns straddle a depth block (80-wide heads: the fourth
    /// spans columns 240..320) and with several row blocks.
    #[test]
    fn packed_contexts_match_plain_ones() {
        for (lens, h, hd) in [(vec![50], 4, 80), (vec![77, 77, 77, 77], 2, 64)] {
            let d = h * hd;
            let rows: usize = lens.iter().sum();
            let qkv: Vec<f32> =
                (0..rows * 3 * d).map(|i| ((i * 31 % 83) as f32 / 40.0) - 1.0).collect();
            let mask = AttentionMask::Causal { key_mask: None };
            let mut plain = vec![0.0; rows * d];
            attention_segments(&qkv, &lens, Heads { count: h, dim: hd }, mask, &mut plain, None);
            let layout = RowBlocks::new(rows, d);
            let mut packed = vec![f32::NAN; layout.len()];
            attention_segments_to(
                &qkv,
                &lens,
                Heads { count: h, dim: hd },
                mask,
                (&mut packed, Some(&layout)),
                None,
            );
            let mut back = vec![0.0; rows * d];
            layout.unpack(&packed, &mut back);
            assert!(back == plain, "lens={lens:?} heads={h}x{hd}");
        }
    }
}
