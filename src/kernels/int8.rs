//! Int8 weights with dynamically quantised activations (opt-in, see
//! [`Precision::Int8`](crate::Precision)).
//!
//! Weights are quantised once, symmetrically per output feature
//! (`w ≈ s_n q`, `q` in [-127, 127]); each product quantises its input rows
//! symmetrically per row (`x ≈ s_m p`, `p` in [-127, 127], stored as i8,
//! or as `p + 128` in u8 for VNNI's unsigned x signed instruction). The
//! instruction set's int8 micro-kernel
//! ([`Isa::tile_i8`], with the instructions [`Int8Dot`] names) sums
//! `p q` over the depth in i32, exactly, and the shared epilogue
//! ([`tile::finish`]) scales: `y = s_m s_n sum_k p q + b`. The sums being
//! exact and the epilogue the same operations everywhere, every kernel and
//! [`Int8Dot`] gives the same bits. Same panel order as the f32 path, with
//! `G` consecutive depths of a column together, `[panel][k / G][NR][G]`:
//! `G = 4` (a 32-bit lane of the dot-product instructions), 8 for `smmla`
//! ([`Int8Dot::group_depth`]). The quantised activations are laid out for
//! the tiles ([`TileLayout`]): one row after another, or, for `smmla`, in
//! chunks of 8 bytes with each tile's rows interleaved.

mod dot;
mod layout;
pub(crate) mod tile;

pub(crate) use dot::{check_choice, int8_runner};
pub use dot::{Int8Dot, INT8_DOT_ENV};
use layout::TileLayout;
use tile::TileI8;

use super::isa::{vectorized, with_isa, Isa, Kernel};
use super::linear_product::{Input, Mat};
use super::norm::normalize_row;
use super::packed::{
    balanced_blocks, next_share, release_pages, split_work, threads_for, tile_rows, Epilogue,
    OutPtr, PanelMemory, Share, Stack, MR_MAX,
};
use super::simd::lane_fold;
use super::team;
use crate::weights::WeightView;
use rayon::prelude::*;

/// An int8-quantised linear layer (or stacked layers), packed for one
/// kernel's int8 micro-kernel (`NR_I8` columns a panel).
pub(crate) struct Int8Linear {
    kernel: Kernel,
    dot: Int8Dot,
    n: usize,
    k: usize,
    /// Depths a column keeps together in a panel ([`Int8Dot::group_depth`]).
    g: usize,
    /// `k` rounded up to a multiple of `g` (zero weights in the padding).
    k4: usize,
    panels: usize,
    data: PanelMemory,
    /// Per output feature: the weight scale, `128 * sum_k q`, the bias.
    scale: Vec<f32>,
    offset: Vec<i32>,
    bias: Vec<f32>,
    has_bias: bool,
}

impl Int8Linear {
    /// Quantises and packs `parts` for the selected kernel and its
    /// [`Int8Dot`]: see [`Int8Linear::quantize_for`].
    pub fn quantize(parts: &[(&Mat, Option<&[f32]>)]) -> Option<Int8Linear> {
        let (kernel, dot) = int8_runner(super::isa::selected());
        Self::quantize_for(kernel, dot, parts)
    }

    /// Quantises and packs `parts` stacked along the output dimension, as
    /// [`PackedLinear::pack_for`](super::packed::PackedLinear::pack_for),
    /// for `kernel`'s int8 micro-kernel on `dot`. `None` when `kernel`
    /// cannot run `dot` on this CPU or the parts do not stack.
    pub fn quantize_for(
        kernel: Kernel,
        dot: Int8Dot,
        parts: &[(&Mat, Option<&[f32]>)],
    ) -> Option<Int8Linear> {
        if !kernel.int8_dots().contains(&dot) {
            return None;
        }
        let nr = with_isa!(kernel, |K| K::NR_I8);
        let Stack { k, n, panels, bias, has_bias } = Stack::of(parts, nr)?;
        let g = dot.group_depth();
        let k4 = k.div_ceil(g) * g;
        // Row `i` of the stacked matrix: (its part, its row there).
        let rows: Vec<(&Mat, usize)> =
            parts.iter().flat_map(|(m, _)| (0..m.out_features).map(move |r| (*m, r))).collect();
        let mut data = PanelMemory::zeroed(panels * k4 * nr)?;
        let mut scale = vec![0.0f32; panels * nr];
        let mut offset = vec![0i32; panels * nr];
        if k4 > 0 {
            let out: &mut [i8] = data.as_mut_slice();
            out.par_chunks_mut(k4 * nr)
                .zip(scale.par_chunks_mut(nr))
                .zip(offset.par_chunks_mut(nr))
                .enumerate()
                .for_each(|(p, ((panel, scale), offset))| {
                    let (mut w, mut q) = (vec![0.0f32; k], vec![0i8; k]);
                    for j in 0..nr.min(n - p * nr) {
                        let (mat, r) = rows[p * nr + j];
                        scale[j] = match mat.weight.view() {
                            // A quantized checkpoint's values, as they are.
                            WeightView::I8 { q: all, scale } => {
                                q.copy_from_slice(&all[r * k..][..k]);
                                scale[r]
                            }
                            _ => {
                                mat.weight.row_into(r, &mut w);
                                quantize_weight_row(&w, &mut q)
                            }
                        };
                        let mut sum = 0i32;
                        for (kk, &q) in q.iter().enumerate() {
                            panel[(kk / g) * nr * g + j * g + kk % g] = q;
                            sum += i32::from(q);
                        }
                        offset[j] = 128 * sum;
                    }
                });
        }
        release_pages(parts);
        Some(Int8Linear { kernel, dot, g, n, k, k4, panels, data, scale, offset, bias, has_bias })
    }

    /// As [`PackedLinear::forward_to`](super::packed::PackedLinear::forward_to);
    /// [`Input::Normed`] rows are normalised as they are quantised.
    pub fn forward(
        &self,
        x: Input<'_>,
        m: usize,
        out: &mut [f32],
        out_rs: usize,
        epilogue: Epilogue,
        threads: usize,
    ) {
        if m == 0 || self.n == 0 {
            return;
        }
        let (x, ln) = match x {
            Input::Rows(x) => (x, None),
            Input::Normed(x, ln) => (x, Some(ln)),
            // (Only when the precision changed during a pass.)
            Input::Packed(_) => {
                return x.with_rows(m, self.k, |rows| {
                    self.forward(Input::Rows(rows), m, out, out_rs, epilogue, threads)
                });
            }
        };
        assert!(x.len() >= m * self.k, "int8 gemm: input too short");
        assert!(out_rs >= self.n && out.len() >= (m - 1) * out_rs + self.n, "int8 gemm: output");
        let mr = with_isa!(self.kernel, |K| K::MR);
        // Whole rows (64 bytes of slack past the depth for the loads of
        // four groups at a time), or chunks (`smmla`'s row pairs).
        let (row_bytes, c) = match self.dot.chunk() {
            Some(c) => (self.k4.div_ceil(c) * c, c),
            None => (self.k4 + 64, self.k4 + 64),
        };
        let layout = TileLayout::new(m, row_bytes, row_block(m, row_bytes), mr, c);
        // Reused between products (taken out while in use, as the f32 path's
        // buffer). In whole rows, bytes past `k` may hold an earlier
        // product's values: they meet the zero padding of the weights.
        let mut a = Q_PACK.take();
        if a.len() < layout.len() {
            a.resize(layout.len(), 0);
        }
        let k = self.k;
        let unsigned = self.dot.unsigned_rows();
        let mut row_scale = vec![0.0f32; m];
        // Each task writes only its own rows' bytes (disjoint, see
        // `TileLayout`).
        let dst = OutPtr(a.as_mut_ptr());
        let whole = c == row_bytes;
        // Rows `r0..` of `x` into their places in `a` and their scales into
        // `scales`.
        let quantize = |r0: usize, scales: &mut [f32]| {
            // A row in chunks is quantised here whole (the bytes past `k`
            // zero), then placed.
            let mut row = if whole { Vec::new() } else { vec![0u8; row_bytes] };
            let mut normed = Vec::new();
            for (r, s) in (r0..).zip(scales) {
                let (at, step) = layout.place(r);
                // SAFETY: `a` holds `layout.len()` bytes, in which row `r`'s
                // bytes are where `place` says, disjoint from every other
                // row's (see `TileLayout`): no other task touches them.
                let to = if whole {
                    unsafe { std::slice::from_raw_parts_mut(dst.get().add(at), row_bytes) }
                } else {
                    &mut row[..]
                };
                let x = &x[r * k..][..k];
                *s = match ln {
                    Some(ln) => {
                        normed.resize(k, 0.0);
                        normalize_row(x, ln, &mut normed);
                        quantize_row(&normed, to, unsigned)
                    }
                    None => quantize_row(x, to, unsigned),
                };
                if !whole {
                    debug_assert_eq!(c, 8);
                    // SAFETY: as above, for the row's chunks.
                    unsafe { place_row::<8>(&row, dst.get().add(at), step) };
                }
            }
        };
        // Normalising too makes a row's work worth sharing sooner.
        let worth = if ln.is_some() { 1 << 14 } else { 1 << 16 };
        if threads > 1 && m * self.k >= worth {
            const ROWS: usize = 8;
            team::for_each_chunk(&mut row_scale, ROWS, |i, scales| quantize(i * ROWS, scales));
        } else {
            quantize(0, &mut row_scale);
        }
        let t = threads_for(m * self.n * self.k.max(1), threads, self.panels);
        let out_ptr = OutPtr(out.as_mut_ptr());
        split_work(m.div_ceil(layout.block_rows()), self.panels, t, |share| {
            // SAFETY: `a` holds the `m` quantised rows as `layout` places them;
            // `forward` asserted `out` holds `m` rows of `n` at `out_rs`;
            // this job writes only its share's rows and columns (each pair
            // of row block and panel is in one share); the kernel that
            // quantised the panels runs `self.dot` on this CPU.
            let q = Quantized { rows: &a, layout, scales: &row_scale };
            with_isa!(self.kernel, |K| unsafe {
                self.run_share::<K>(q, share, out_ptr, out_rs, epilogue)
            })
        });
        Q_PACK.set(a);
    }

    /// Computes the columns of panels `share.p0..share.p1` for the rows of
    /// row blocks `share.rows`.
    ///
    /// # Safety
    /// As [`PackedLinear::forward_to`](super::packed::PackedLinear::forward_to)'s
    /// jobs; `K` runs `self.dot` on this CPU.
    unsafe fn run_share<K: Isa>(
        &self,
        q: Quantized<'_>,
        share: Share,
        out: OutPtr,
        out_rs: usize,
        epilogue: Epilogue,
    ) {
        debug_assert!(K::KERNEL == self.kernel && K::int8(self.dot), "int8 gemm: kernel");
        let Quantized { rows: a, layout, scales: row_scale } = q;
        let Share { rows, p0, p1 } = share;
        let m = row_scale.len();
        // Row blocks whose quantised rows (about 512 KiB) stay in L2.
        let mc = layout.block_rows();
        let (row_bytes, c) = (layout.row_bytes(), layout.chunk());
        let nr = K::NR_I8;
        for m0 in (rows.start * mc..m.min(rows.end * mc)).step_by(mc) {
            let mlen = mc.min(m - m0);
            let ntiles = layout.tiles(mlen);
            for p in p0..p1 {
                let b = self.data.as_ptr().add(p * self.k4 * nr);
                // The next panel (contiguous), one share of it per tile.
                let next = b.wrapping_add(self.k4 * nr);
                let lines = (self.k4 * nr).div_ceil(64);
                let mut r0 = 0;
                for t in 0..ntiles {
                    let rows = tile_rows(mlen, ntiles, t);
                    let (next, next_lines) = next_share(next, lines, t, ntiles);
                    let tile = TileI8 {
                        next,
                        next_lines,
                        a: a.as_ptr().add((m0 + r0) * row_bytes),
                        lda: c,
                        step: rows * c,
                        row_scale: row_scale.as_ptr().add(m0 + r0),
                        c: out.get().add((m0 + r0) * out_rs + p * nr),
                        ldc: out_rs,
                        n_valid: nr.min(self.n - p * nr),
                        scale: self.scale.as_ptr().add(p * nr),
                        offset: self.offset.as_ptr().add(p * nr),
                        bias: if self.has_bias {
                            self.bias.as_ptr().add(p * nr)
                        } else {
                            std::ptr::null()
                        },
                        load_c: epilogue.accumulates(),
                    };
                    K::tile_i8(self.dot, rows, self.k4 / self.g, b, &tile);
                    r0 += rows;
                }
            }
            // SAFETY: these are this share's rows and columns (see above).
            let cols = p0 * nr..self.n.min(p1 * nr);
            epilogue.finish(K::KERNEL, out, out_rs, m0..m0 + mlen, cols);
        }
    }
}

/// Quantises one weight row symmetrically: `q = round(w / s)` (ties to
/// even) in [-127, 127] with `s = max |w| / 127` (1 for a zero row),
/// returning `s`. The scheme of every int8 product and of quantized
/// checkpoints.
pub(crate) fn quantize_weight_row(w: &[f32], q: &mut [i8]) -> f32 {
    let amax = w.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
    for (q, &v) in q.iter_mut().zip(w) {
        *q = (v / s).round_ties_even().clamp(-127.0, 127.0) as i8;
    }
    s
}

/// A product's input rows, quantised: `scales.len()` rows of u8 where
/// `layout` places them, and one scale per row.
#[derive(Clone, Copy)]
struct Quantized<'a> {
    rows: &'a [u8],
    layout: TileLayout,
    scales: &'a [f32],
}

/// Copies `row`'s chunks of `C` bytes to `to`, `step` bytes apart.
///
/// # Safety
/// `row.len()` is a multiple of `C`; `to` is valid for writes of
/// `(row.len() / C - 1) * step + C` bytes at those places.
#[inline(always)]
unsafe fn place_row<const C: usize>(row: &[u8], to: *mut u8, step: usize) {
    debug_assert_eq!(row.len() % C, 0);
    for (j, chunk) in row.chunks_exact(C).enumerate() {
        to.add(j * step).cast::<[u8; C]>().write_unaligned(chunk.try_into().unwrap_unchecked());
    }
}

thread_local! {
    /// The quantised activations of the product running on this thread.
    static Q_PACK: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

vectorized!(
    /// Quantises one row to bytes `p = round(x / s)` as i8, returning `s`.
    fn quantize_row_signed(row: &[f32], dst: &mut [u8]) -> f32 = quantize_row_body::<false>
);

vectorized!(
    /// Quantises one row to bytes `p + 128` (`p = round(x / s)`), returning
    /// `s`.
    fn quantize_row_unsigned(row: &[f32], dst: &mut [u8]) -> f32 = quantize_row_body::<true>
);

/// Quantises one row to bytes `p = round(x / s)`, as i8 or (`UNSIGNED`) as
/// `p + 128` in u8, returning `s`.
fn quantize_row(row: &[f32], dst: &mut [u8], unsigned: bool) -> f32 {
    if unsigned {
        quantize_row_unsigned(row, dst)
    } else {
        quantize_row_signed(row, dst)
    }
}

#[inline(always)]
fn quantize_row_body<const UNSIGNED: bool>(row: &[f32], dst: &mut [u8]) -> f32 {
    let amax = lane_fold::<f32, 16>(row, 0.0, |a, v| a.max(v.abs()), f32::max);
    let s = if amax > 0.0 && amax.is_finite() { amax / 127.0 } else { 1.0 };
    let inv = 1.0 / s;
    // Adding 1.5 * 2^23 rounds `q` to an integer (ties to even, as
    // `round_ties_even`: the constant is even) and leaves `2^22 + q` in the
    // mantissa, whose low byte is `q` in two's complement (`q + 128` when
    // 128 more is added); read from there, without a float-to-int cast
    // (which saturates and would keep the loop scalar).
    let round = if UNSIGNED { 12_583_040.0f32 } else { 12_582_912.0f32 };
    for (d, &v) in dst.iter_mut().zip(row) {
        let q = (v * inv).clamp(-127.0, 127.0);
        *d = ((q + round).to_bits() & 0xff) as u8;
    }
    s
}

/// Rows of quantised activations per row block (at most about 512 KiB of
/// them, blocks of even size) for `m` rows of `bytes` bytes.
fn row_block(m: usize, bytes: usize) -> usize {
    balanced_blocks(m, ((1 << 19) / bytes.max(1)).clamp(MR_MAX, 4096))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::isa;
    use crate::kernels::test_support::pseudo;
    use crate::weights::{DType, WeightTensor};

    /// Every kernel of this CPU with each of its int8 instruction
    /// sequences (the gemm kernel's scalar ones at least).
    fn int8_kernels() -> Vec<(Kernel, Int8Dot)> {
        let all: Vec<(Kernel, Int8Dot)> = Kernel::supported_all()
            .into_iter()
            .flat_map(|k| k.int8_dots().into_iter().map(move |d| (k, d)))
            .collect();
        for k in Kernel::supported_all().into_iter().filter(|k| k.int8_dots().is_empty()) {
            println!("skipped {k}: no int8 products of its own on this CPU (another kernel's run)");
        }
        all
    }

    /// Every kernel and int8 instruction sequence this CPU has gives the
    /// same bits as the plain Rust one (the gemm kernel's): the sums are
    /// exact and the epilogue the same operations. Shapes with tails in
    /// rows, columns and depth, several row blocks, the accumulating
    /// epilogue, and rows and weights at full scale over a depth of 3072,
    /// whose sums (up to 3072 x 127 x 127) pass 2^24 and round when
    /// converted to f32.
    #[test]
    fn every_int8_dot_gives_the_same_bits() {
        let shapes = [(1, 8, 4), (7, 45, 70), (13, 64, 301), (100, 40, 6000), (5, 33, 3072)];
        for &(m, n, k) in &shapes {
            let (mut x, mut wv) = (pseudo(m * k, 1), pseudo(n * k, 2));
            if k == 3072 {
                // Full-scale products: every `p q` near 127 x 127.
                x.iter_mut().step_by(2).for_each(|v| *v = 1.0);
                wv.iter_mut().for_each(|v| *v = 0.5 + v.abs() * 0.01);
            }
            let w = WeightTensor::from_f32_as(&wv, vec![n, k], DType::F32);
            let b = pseudo(n, 3);
            let mat = Mat { weight: w, out_features: n, in_features: k };
            let run = |kernel, dot, threads, epilogue| {
                let q = Int8Linear::quantize_for(kernel, dot, &[(&mat, Some(&b[..]))]).unwrap();
                let mut out = pseudo(m * n, 4);
                q.forward(Input::Rows(&x), m, &mut out, n, epilogue, threads);
                out
            };
            for epilogue in [Epilogue::Store, Epilogue::Accumulate] {
                let want = run(Kernel::Gemm, Int8Dot::Scalar, 1, epilogue);
                for (kernel, dot) in int8_kernels() {
                    for threads in [1, 2] {
                        let got = run(kernel, dot, threads, epilogue);
                        let same = got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
                        assert!(same, "{kernel}/{dot} differs from scalar at {m}x{n}x{k}");
                    }
                }
            }
        }
    }

    /// The vectorised quantisation, on every kernel's instruction set, gives
    /// exactly the plain formula, `round_ties_even(v / s)` clamped to [-127,
    /// 127] with `s` = max|v| / 127, as i8 and as u8 plus 128, for every row
    /// length (lane tails) and at exact ties (x.5 after scaling).
    #[test]
    fn quantize_row_is_exact() {
        let kernels = Kernel::supported_all();
        for (kernel, len) in kernels.iter().flat_map(|&k| [1, 5, 16, 17, 40, 768].map(|l| (k, l))) {
            let mut row = pseudo(len, len as u32);
            // Ties: with max |v| = 127 the scale is 1, so v = n + 0.5 is a tie.
            row[0] = 127.0;
            for (i, v) in row.iter_mut().enumerate().skip(1).step_by(3) {
                *v = (i % 200) as f32 - 100.5;
            }
            for unsigned in [false, true] {
                let mut got = vec![0u8; len];
                let s = isa::vectorize_on(kernel, || match unsigned {
                    true => quantize_row_body::<true>(&row, &mut got),
                    false => quantize_row_body::<false>(&row, &mut got),
                });
                let amax = row.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                assert_eq!(s, amax / 127.0);
                for (i, (&g, &v)) in got.iter().zip(&row).enumerate() {
                    let p = (v * (1.0 / s)).clamp(-127.0, 127.0).round_ties_even() as i8;
                    let want = if unsigned { (i16::from(p) + 128) as u8 } else { p as u8 };
                    assert_eq!(g, want, "{kernel} len {len}, [{i}] = {v}, unsigned {unsigned}");
                }
            }
        }
    }

    /// The kernel computes exactly `s_m s_n sum_k p q + b` for the quantised
    /// values (checked in f64 from the same quantisation, to 1e-4 relative;
    /// m = 100 at k = 6000 takes two row blocks), and that is close to the
    /// f32 product (quantisation error: below 2% of the output's scale for
    /// these uniform inputs).
    #[test]
    fn matches_quantised_reference() {
        for ((kernel, dot), &(m, n, k)) in int8_kernels().into_iter().flat_map(|kernel| {
            [(1, 32, 8), (13, 45, 70), (50, 64, 300), (3, 5, 3), (100, 40, 6000)]
                .iter()
                .map(move |c| (kernel, c))
        }) {
            let x = pseudo(m * k, 1);
            let wv = pseudo(n * k, 2);
            let w = WeightTensor::from_f32_as(&wv, vec![n, k], DType::F32);
            let b = pseudo(n, 3);
            let mat = Mat { weight: w, out_features: n, in_features: k };
            let q = Int8Linear::quantize_for(kernel, dot, &[(&mat, Some(&b[..]))]).unwrap();
            for (threads, accumulate) in [(1, false), (2, true)] {
                let init = pseudo(m * n, 4);
                let mut out = init.clone();
                let epilogue = if accumulate { Epilogue::Accumulate } else { Epilogue::Store };
                q.forward(Input::Rows(&x), m, &mut out, n, epilogue, threads);
                for i in 0..m {
                    let xr = &x[i * k..(i + 1) * k];
                    let xa = xr.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 127.0;
                    let xq: Vec<f64> =
                        xr.iter().map(|v| (v / xa).round_ties_even() as f64 * xa as f64).collect();
                    for j in 0..n {
                        let wr = &wv[j * k..(j + 1) * k];
                        let wa = wr.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 127.0;
                        let dq: f64 = wr
                            .iter()
                            .zip(&xq)
                            .map(|(w, x)| (w / wa).round_ties_even() as f64 * wa as f64 * x)
                            .sum();
                        let exact: f64 = wr.iter().zip(xr).map(|(w, x)| (w * x) as f64).sum();
                        let before = if accumulate { init[i * n + j] as f64 } else { 0.0 };
                        let got = out[i * n + j] as f64 - before - b[j] as f64;
                        assert!(
                            (got - dq).abs() < 1e-4 * (1.0 + dq.abs()),
                            "{kernel}/{dot} [{i},{j}] {got} vs {dq}"
                        );
                        let scale = (k as f64).sqrt() * 0.25;
                        assert!(
                            (got - exact).abs() < 0.02 * scale,
                            "[{i},{j}] {got} vs f32 {exact}"
                        );
                    }
                }
            }
        }
    }
    /// Rows normalised as they are quantised, and packed rows, give what
    /// the plain rows give, bit for bit, serially and shared (m * k from
    /// 2^14 with a norm).
    #[test]
    fn normed_and_packed_inputs_match_plain_rows() {
        use crate::kernels::norm::{layer_norm, LayerNorm};
        use crate::kernels::packed::RowBlocks;
        for ((kernel, dot), &(m, n, k)) in int8_kernels()
            .into_iter()
            .flat_map(|kernel| [(3, 40, 70), (50, 64, 768)].iter().map(move |c| (kernel, c)))
        {
            let x = pseudo(m * k, 1);
            let w = WeightTensor::from_f32_as(&pseudo(n * k, 2), vec![n, k], DType::F32);
            let mat = Mat { weight: w, out_features: n, in_features: k };
            let q = Int8Linear::quantize_for(kernel, dot, &[(&mat, None)]).unwrap();
            let ln = LayerNorm { weight: pseudo(k, 3), bias: pseudo(k, 4), eps: 1e-5 };
            let mut normed = vec![0.0; m * k];
            layer_norm(&x, &ln, &mut normed);
            let layout = RowBlocks::new(m, k);
            let mut packed = vec![0.0; layout.len()];
            layout.pack(Input::Rows(&x), &mut packed, 1);
            for threads in [1, 2] {
                let run = |input: Input<'_>| {
                    let mut out = vec![0.0; m * n];
                    q.forward(input, m, &mut out, n, Epilogue::Store, threads);
                    out
                };
                assert!(run(Input::Normed(&x, &ln)) == run(Input::Rows(&normed)), "m={m}");
                assert!(run(Input::Packed(&packed)) == run(Input::Rows(&x)), "m={m}");
            }
        }
    }
}
