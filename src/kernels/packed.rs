//! Weights pre-packed for this crate's own GEMM micro-kernels.
//!
//! The `gemm` crate re-packs the whole weight matrix on every call, which
//! dominates when few rows go through a layer (one image is 50 rows, one
//! caption about 10). Here a weight matrix `[out, in]` is packed once, on its
//! first use, into panels of `NR` output features ([`panels`]), `NR` being
//! the tile width of the instruction set that packs it ([`Isa::NR`]). A
//! product then streams each panel once from memory while the activations
//! stay in cache.
//!
//! The activations are packed too, per product, in row blocks of depth
//! blocks ([`RowBlocks`], the same for every instruction set). The step that
//! computes them can write them there directly: a layer norm as the product
//! packs its rows ([`Input::Normed`]), attention's contexts and an activated
//! product's outputs ([`Dest::Packed`]) for the next product to read as
//! they are ([`Input::Packed`]).
//!
//! Everything here is written once; the instruction set contributes its
//! micro-kernel ([`Isa::tile`]) and tile shape. On kernels without one
//! ([`Kernel::Gemm`]) [`PackedLinear::pack`] returns `None` and callers use
//! the `gemm` crate.

mod epilogue;
mod panels;
mod row_blocks;
mod tasks;

pub(crate) use epilogue::Epilogue;
pub(crate) use panels::{
    load_panel, release_pages, PanelMemory, PanelType, Stack, DT_BF16, DT_F16, DT_F32,
};
pub(crate) use row_blocks::{balanced_blocks, packed_len, Dest, OutPtr, RowBlocks};
pub(crate) use tasks::{next_share, split_work, threads_for, tile_rows, Share};

use super::isa::{with_isa, Isa, Kernel};
use super::linear_product::{Input, Mat};
use super::simd::F32Vec;
use crate::weights::{DType, WeightView};
use panels::{pack_panels, Widen};

/// Most rows of a micro-kernel tile over every instruction set (the
/// smallest row block of [`RowBlocks`]).
pub(crate) const MR_MAX: usize = 12;
/// Depth of one pass over a panel: a `KC x 32` slice is 32 KiB in f32, held
/// in L1. Every instruction set's `NR` divides it.
pub(crate) const KC: usize = 256;
/// Row stride of a packed activation tile: `KC` plus one cache line, so the
/// rows of a tile fall in different L1 sets.
pub(crate) const LDA: usize = KC + 16;

/// One micro-kernel call: a `rows x NR` block of the output.
pub(crate) struct Tile {
    /// The tile's packed activations: `rows` rows at stride [`LDA`].
    pub a: *const f32,
    /// First output of the block (row stride `ldc`).
    pub c: *mut f32,
    pub ldc: usize,
    /// Columns of the block that exist (the rest is padding).
    pub n_valid: usize,
    /// `NR` biases to add, or null.
    pub bias: *const f32,
    /// Add to the output's current values instead of overwriting them.
    pub load_c: bool,
    /// Prefetch the panel ahead of the loads (the first tile of a slice,
    /// whose panel rows are not in cache yet); a hint the micro-kernel may
    /// ignore.
    pub prefetch: bool,
    /// Cache lines to prefetch while computing (spread over the depth
    /// steps): this tile's share of the next panel slice, so that streaming
    /// the weights from memory overlaps with the arithmetic of every tile,
    /// not only the first. A hint: the address may be past the panels.
    pub next: *const u8,
    pub next_lines: usize,
}

/// Evaluates `$call` with the const `$R` set to the runtime tile height
/// `$rows` (1 to `$max`; more is `$max`), `$max` being an instruction
/// set's `MR` (6, 8 or 12): how it picks the instance of its micro-kernel
/// for a tile.
macro_rules! with_rows {
    (12, $rows:expr, |$R:ident| $call:expr) => {
        with_rows!(@arms $rows, $R, $call, 12, 1 2 3 4 5 6 7 8 9 10 11)
    };
    (8, $rows:expr, |$R:ident| $call:expr) => {
        with_rows!(@arms $rows, $R, $call, 8, 1 2 3 4 5 6 7)
    };
    (6, $rows:expr, |$R:ident| $call:expr) => {
        with_rows!(@arms $rows, $R, $call, 6, 1 2 3 4 5)
    };
    (@arms $rows:expr, $R:ident, $call:expr, $max:literal, $($n:literal)*) => {
        match $rows {
            $($n => {
                const $R: usize = $n;
                $call
            })*
            _ => {
                const $R: usize = $max;
                $call
            }
        }
    };
}
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(unused_imports))]
pub(crate) use with_rows;

/// The end of a micro-kernel call, the same for every instruction set:
/// adds the bias (when `t.bias` is not null) and, when `t.load_c`, the
/// output's current values to the `ROWS x VECS` accumulators, and stores
/// the `t.n_valid` columns that exist.
///
/// # Safety
/// The CPU has `V`'s instruction set; `t` addresses what [`Tile`] says.
#[inline(always)]
pub(crate) unsafe fn finish_tile<V: F32Vec, const ROWS: usize, const VECS: usize>(
    acc: &[[V; VECS]; ROWS],
    t: &Tile,
) {
    // Columns of each vector that exist.
    let valid = |z: usize| t.n_valid.saturating_sub(z * V::LANES);
    let mut bias = [V::splat(0.0); VECS];
    if !t.bias.is_null() {
        for (z, b) in bias.iter_mut().enumerate() {
            *b = V::load_first(t.bias.add(z * V::LANES), valid(z));
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let c = t.c.add(r * t.ldc);
        for (z, acc) in acc.iter().enumerate() {
            let cz = c.add(z * V::LANES);
            let mut v = acc.add(bias[z]);
            if t.load_c {
                v = v.add(V::load_first(cz, valid(z)));
            }
            v.store_first(cz, valid(z));
        }
    }
}

/// One or more weight matrices stacked along the output dimension (e.g. the
/// query, key and value projections) and packed into panels for one
/// kernel, with their biases.
pub(crate) struct PackedLinear {
    kernel: Kernel,
    n: usize,
    k: usize,
    panels: usize,
    dtype: PanelType,
    /// `panels * k * NR` elements of `dtype`.
    data: PanelMemory,
    /// `panels * NR` biases (zero where a part has none, and in the padding).
    bias: Vec<f32>,
    has_bias: bool,
}

/// Tiles of one slice from which 16-bit panels are widened to f32 first:
/// the widening pass costs about 600 cycles a slice (512 conversions and
/// stores for a 32-wide panel), under 5% of four tiles' multiply-adds,
/// while converting inside every tile adds conversions to each step's
/// multiply-adds on the same ports.
const WIDEN_TILES: usize = 4;

/// Depths of a slice widened at a time: 128 x 32 f32 (16 KiB) stay in L1
/// beside a tile's activations, where a whole 256-deep slice (32 KiB)
/// competed with them.
const WIDE_KC: usize = 128;

/// One cache line of f32. The widened panels are stored in these, 64-byte
/// aligned like the packed panels: in a plain `Vec<f32>` (16-byte aligned
/// by the allocator) every 64-byte load of the micro-kernel straddled two
/// cache lines.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Line([f32; 16]);

// SAFETY: 16 f32 and nothing else (64 bytes, no padding at alignment 64);
// any bit pattern is valid and all zeros is 0.0.
unsafe impl bytemuck::Zeroable for Line {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for Line {}

impl PackedLinear {
    /// Packs `parts` for the selected kernel: see [`PackedLinear::pack_for`].
    pub fn pack(parts: &[(&Mat, Option<&[f32]>)]) -> Option<PackedLinear> {
        Self::pack_for(super::isa::selected(), parts)
    }

    /// Packs `parts` (matrices with the same input size and dtype, and their
    /// optional biases), stacked in order along the output dimension, into
    /// `kernel`'s panels. `None` when `kernel` has no packed micro-kernel
    /// or the parts do not stack.
    pub fn pack_for(kernel: Kernel, parts: &[(&Mat, Option<&[f32]>)]) -> Option<PackedLinear> {
        let nr = with_isa!(kernel, |K| K::NR);
        if nr == 0 || !kernel.supported() {
            return None;
        }
        if parts.iter().any(|(m, _)| m.weight.dtype() == DType::I8) {
            // Full precision on int8 weights: f32 panels of the weights'
            // values (`q * scale`), widened once.
            let wide: Vec<Mat> = parts.iter().map(|(m, _)| m.widened()).collect();
            let wide: Vec<(&Mat, Option<&[f32]>)> =
                wide.iter().zip(parts).map(|(w, (_, b))| (w, *b)).collect();
            let packed = Self::pack_for(kernel, &wide);
            release_pages(parts);
            return packed;
        }
        let Stack { k, n, panels, bias, has_bias } = Stack::of(parts, nr)?;
        let dtype_of = |m: &Mat| match m.weight.view() {
            WeightView::F32(_) => PanelType::F32,
            WeightView::F16(_) => PanelType::F16,
            WeightView::BF16(_) => PanelType::BF16,
            WeightView::I8 { .. } => unreachable!("widened above"),
        };
        let dtype = dtype_of(parts[0].0);
        if parts.iter().any(|(m, _)| dtype_of(m) != dtype) {
            return None;
        }
        let total = panels * k * nr;
        let mut data = PanelMemory::zeroed(total * dtype.size())?;
        if total > 0 {
            // Rows of the stacked matrix, typed (f16 and bf16 are moved as u16).
            fn rows<'a, T: bytemuck::Pod>(
                parts: &[(&'a Mat, Option<&[f32]>)],
                k: usize,
            ) -> Vec<&'a [T]> {
                let mut out = Vec::new();
                for (m, _) in parts {
                    let all: &[T] = match m.weight.view() {
                        WeightView::F32(v) => bytemuck::cast_slice(v),
                        WeightView::F16(v) => bytemuck::cast_slice(v),
                        WeightView::BF16(v) => bytemuck::cast_slice(v),
                        WeightView::I8 { .. } => unreachable!("widened above"),
                    };
                    out.extend(all.chunks_exact(k).take(m.out_features));
                }
                out
            }
            match dtype {
                PanelType::F32 => pack_panels(&rows::<f32>(parts, k), k, nr, data.as_mut_slice()),
                PanelType::F16 | PanelType::BF16 => {
                    pack_panels(&rows::<u16>(parts, k), k, nr, data.as_mut_slice())
                }
            }
        }
        release_pages(parts);
        Some(PackedLinear { kernel, n, k, panels, dtype, data, bias, has_bias })
    }

    /// [`PackedLinear::forward_to`] rows of `out` at stride `out_rs`.
    #[cfg(test)]
    pub fn forward(
        &self,
        x: Input<'_>,
        m: usize,
        out: &mut [f32],
        out_rs: usize,
        epilogue: Epilogue,
        threads: usize,
    ) {
        self.forward_to(x, m, out, Dest::Rows(out_rs), epilogue, threads)
    }

    /// `x W^T + b` for the `m` rows of `x` (`[m, k]`; see [`Input`] for the
    /// other forms), written to `out` as `dest` lays rows out and finished
    /// by `epilogue` (which may add to what `out` holds). Splits the work
    /// over up to `threads` threads.
    ///
    /// # Panics
    /// If `x` or `out` is too short, or `dest` is a layout of another shape
    /// (an internal bug).
    pub fn forward_to(
        &self,
        x: Input<'_>,
        m: usize,
        out: &mut [f32],
        dest: Dest<'_>,
        epilogue: Epilogue,
        threads: usize,
    ) {
        if m == 0 || self.n == 0 {
            return;
        }
        let blocks = RowBlocks::new(m, self.k);
        match dest {
            Dest::Rows(rs) => {
                assert!(rs >= self.n && out.len() >= (m - 1) * rs + self.n, "packed gemm: output")
            }
            Dest::Packed(l) => assert!(
                l.shape() == (m, self.n) && out.len() >= l.len(),
                "packed gemm: output layout"
            ),
        }
        let t = threads_for(m * self.n * self.k.max(1), threads, self.panels);
        // Taken out of the thread-local for the duration of the product: a
        // rayon worker waiting for the jobs below may run another product
        // meanwhile, which then packs into a buffer of its own.
        let mut own = Vec::new();
        let a: &[f32] = match x {
            Input::Packed(a) => {
                assert!(a.len() >= blocks.len(), "packed gemm: input too short");
                a
            }
            _ => {
                assert!(x.rows().len() >= m * self.k, "packed gemm: input too short");
                own = A_PACK.take();
                if own.len() < blocks.len() {
                    own.resize(blocks.len(), 0.0);
                }
                blocks.pack(x, &mut own, t);
                &own
            }
        };
        let out_ptr = OutPtr(out.as_mut_ptr());
        split_work(blocks.count(), self.panels, t, |share| {
            // SAFETY: `a` is `x` packed by `blocks`; `out` holds `m` rows of
            // `n` as `dest` lays them out (asserted above); this job
            // writes only its share's rows and columns, disjoint from every
            // other job's (`split_work` covers each pair of row block and
            // panel once), and nothing else reads `out` while the jobs run
            // (`out` is borrowed mutably for this whole call); the kernel
            // that packed the panels is supported by this CPU.
            with_isa!(self.kernel, |K| unsafe {
                self.run_share::<K>(a, &blocks, share, out_ptr, dest, epilogue)
            })
        });
        if !own.is_empty() {
            A_PACK.set(own);
        }
    }

    /// Computes the columns of panels `share.p0..share.p1` for the rows of
    /// row blocks `share.rows`.
    ///
    /// # Safety
    /// `K` packed the panels (so the CPU has it); `a` is the activations
    /// packed by `blocks` (for this layer's `k`); `out` addresses
    /// `blocks.m` rows of `n` elements as `dest` lays them out, and no one
    /// else accesses this share's rows and columns meanwhile.
    unsafe fn run_share<K: Isa>(
        &self,
        a: &[f32],
        blocks: &RowBlocks,
        share: Share,
        out: OutPtr,
        dest: Dest<'_>,
        epilogue: Epilogue,
    ) {
        // A tile's columns lie in one depth block of a packed destination.
        const { assert!(K::NR == 0 || (KC.is_multiple_of(K::NR) && K::MR <= MR_MAX)) };
        debug_assert!(K::KERNEL == self.kernel && K::NR > 0, "packed gemm: kernel");
        let Share { rows, p0, p1 } = share;
        let (k, nr) = (self.k, K::NR);
        let panel_elems = k * nr;
        let base = self.data.as_ptr();
        let es = self.dtype.size();
        let mut wide: Vec<Line> = Vec::new();
        let mut tiles = Vec::new();
        for m0 in (rows.start * blocks.mc..blocks.m.min(rows.end * blocks.mc)).step_by(blocks.mc) {
            let mlen = blocks.mc.min(blocks.m - m0);
            // Near-equal tiles of at most `K::MR` rows (first row and
            // height, from `m0`), none across a row block of the destination.
            tiles.clear();
            for run in dest.row_runs(m0..m0 + mlen) {
                let n = run.len().div_ceil(K::MR);
                let mut r0 = run.start - m0;
                tiles.extend((0..n).map(|t| {
                    let rows = tile_rows(run.len(), n, t);
                    r0 += rows;
                    (r0 - rows, rows)
                }));
            }
            let ntiles = tiles.len();
            for p in p0..p1 {
                let n_valid = nr.min(self.n - p * nr);
                for kb in 0..k.div_ceil(KC).max(1) {
                    let k0 = kb * KC;
                    let kc = KC.min(k - k0);
                    let first = kb == 0;
                    let b = base.add((p * panel_elems + k0 * nr) * es);
                    let bias = if first && self.has_bias {
                        self.bias[p * nr..].as_ptr()
                    } else {
                        std::ptr::null()
                    };
                    // This (row block, depth block) of the packed activations.
                    let ablock = a.as_ptr().add(blocks.offset(m0, mlen, kb));
                    // The slice computed next (the next depth block, or the
                    // next panel's first: the panels are contiguous), cut
                    // into one share of cache lines per tile.
                    let next = b.wrapping_add(kc * nr * es);
                    let lines = (KC.min(k) * nr * es).div_ceil(64);
                    // 16-bit panels feeding many tiles are widened once into
                    // an f32 buffer rather than in every tile: the
                    // conversions compete with the multiply-adds for an
                    // execution port. Few tiles read them directly. The
                    // buffer holds `WIDE_KC` depths at a time, so that it
                    // and a tile's activations stay in L1 together.
                    let widened = self.dtype != PanelType::F32 && ntiles >= WIDEN_TILES;
                    let sub = if widened { WIDE_KC } else { kc.max(1) };
                    // (One part when `k` is 0: the bias alone.)
                    let parts = kc.div_ceil(sub).max(1);
                    for part in 0..parts {
                        let s0 = part * sub;
                        let sk = sub.min(kc - s0);
                        let (b, dtype) = if widened {
                            wide.resize((sub * nr).div_ceil(16), Line::default());
                            let dst: &mut [f32] = bytemuck::cast_slice_mut(&mut wide[..]);
                            let (src, dst) = (b.add(s0 * nr * es), &mut dst[..sk * nr]);
                            // SAFETY: `b` addresses this slice's `kc * nr`
                            // elements, `s0 + sk <= kc` of them here; `sk *
                            // nr` is a multiple of the vector's lanes.
                            K::run(Widen { dtype: self.dtype, src, dst });
                            (wide.as_ptr().cast::<u8>(), PanelType::F32)
                        } else {
                            (b, self.dtype)
                        };
                        // This part's share of the next slice's lines.
                        let (l0, l1) = (lines * part / parts, lines * (part + 1) / parts);
                        for (t, &(r0, rows)) in tiles.iter().enumerate() {
                            // A tile's columns lie in one depth block of a
                            // packed destination (`KC` is a multiple of `NR`),
                            // its rows in one row block.
                            let (at, ldc) = dest.at(m0 + r0, p * nr);
                            let (next, next_lines) =
                                next_share(next.wrapping_add(l0 * 64), l1 - l0, t, ntiles);
                            let tile = Tile {
                                next,
                                next_lines,
                                a: ablock.add(r0 * LDA + s0),
                                c: out.get().add(at),
                                ldc,
                                n_valid,
                                bias: if part == 0 { bias } else { std::ptr::null() },
                                load_c: !(first && part == 0) || epilogue.accumulates(),
                                prefetch: t == 0 && dtype == self.dtype,
                            };
                            K::tile(dtype, rows, sk, b, &tile);
                        }
                    }
                }
            }
            for rows in dest.row_runs(m0..m0 + mlen) {
                for cols in dest.runs(p0 * nr..self.n.min(p1 * nr)) {
                    let (at, rs) = dest.at(rows.start, cols.start);
                    // SAFETY: these are this share's rows and columns (see
                    // above), `rows.len()` rows of `cols.len()` from `at` at
                    // stride `rs`.
                    let (at, rows, cols) =
                        (OutPtr(out.get().add(at)), 0..rows.len(), 0..cols.len());
                    epilogue.finish(K::KERNEL, at, rs, rows, cols);
                }
            }
        }
    }
}

thread_local! {
    /// The packed activations of the product running on this thread (reused).
    static A_PACK: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The kernels with a packed micro-kernel that this CPU runs (for tests).
#[cfg(test)]
pub(crate) fn packed_kernels() -> Vec<Kernel> {
    let kernels: Vec<Kernel> =
        Kernel::supported_all().into_iter().filter(|&k| with_isa!(k, |K| K::NR != 0)).collect();
    if kernels.is_empty() {
        println!("skipped: this CPU has no packed micro-kernel (only the gemm crate runs)");
    }
    kernels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;
    use crate::kernels::test_support::{linear_f64 as reference, pseudo};
    use crate::weights::{DType, WeightTensor};

    /// On every packed kernel the CPU has: every tile height (1 to `MR`
    /// and the balanced splits of larger m; with m = 100, 16-bit panels
    /// widened once per slice), panel tails (n not a multiple of `NR`),
    /// several depth blocks (k > 256), several row blocks (m = 100 at k =
    /// 3000: blocks of 84 rows, shared out per block), both output modes, 1
    /// and 2 threads, each dtype, two stacked parts with one bias missing.
    /// Tolerance 1e-4: sums of up to 3000 products of O(0.1) terms in f32
    /// (rounding error ~1e-5), against f64.
    #[test]
    fn matches_f64_reference_on_every_kernel() {
        let cases =
            [(1, 32, 0, 8), (7, 40, 9, 600), (50, 64, 64, 257), (25, 3, 0, 0), (100, 40, 0, 300)]
                .into_iter()
                .chain([(100, 40, 9, 3000), (13, 20, 5, 33)]);
        for kernel in packed_kernels() {
            for (m, n1, n2, k) in cases.clone() {
                let n = n1 + n2;
                let x = pseudo(m * k, 1);
                for dtype in [DType::F32, DType::F16, DType::BF16] {
                    let w = WeightTensor::from_f32_as(&pseudo(n * k, 2), vec![n, k], dtype);
                    let wf = w.to_f32_vec();
                    let b1 = pseudo(n1, 3);
                    let mats = [
                        Mat { weight: w.rows(0, n1), out_features: n1, in_features: k },
                        Mat { weight: w.rows(n1, n2), out_features: n2, in_features: k },
                    ];
                    let parts: Vec<(&Mat, Option<&[f32]>)> = if n2 > 0 {
                        vec![(&mats[0], Some(&b1[..])), (&mats[1], None)]
                    } else {
                        vec![(&mats[0], Some(&b1[..]))]
                    };
                    let packed = PackedLinear::pack_for(kernel, &parts).unwrap();
                    assert_eq!(packed.kernel, kernel);
                    let mut b = b1.clone();
                    b.resize(n, 0.0);
                    let want = reference(&x, m, &wf, n, k, &b);
                    let epilogues = [
                        (1, Epilogue::Store),
                        (2, Epilogue::Store),
                        (2, Epilogue::Accumulate),
                        (2, Epilogue::Activate(Activation::QuickGelu)),
                    ];
                    for (threads, epilogue) in epilogues {
                        let out_rs = n + 3;
                        let init = pseudo(m * out_rs, 4);
                        let mut out = init.clone();
                        packed.forward(Input::Rows(&x), m, &mut out, out_rs, epilogue, threads);
                        for i in 0..m {
                            for j in 0..out_rs {
                                let got = out[i * out_rs + j] as f64;
                                let before = init[i * out_rs + j] as f64;
                                let exp = if j >= n {
                                    before
                                } else {
                                    let y = want[i * n + j];
                                    match epilogue {
                                        Epilogue::Store => y,
                                        Epilogue::Accumulate => y + before,
                                        // x sigmoid(1.702 x), every output of the share.
                                        Epilogue::Activate(_) => y / (1.0 + (-1.702 * y).exp()),
                                    }
                                };
                                assert!(
                                    (got - exp).abs() < 1e-4,
                                    "{kernel} {dtype:?} m={m} n={n} k={k} t={threads} \
                                     {epilogue:?} [{i},{j}]: {got} vs {exp}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// On every packed kernel: the other forms of input and output give the
    /// plain product's numbers bit for bit: rows normalised while packed
    /// (against `layer_norm` first), results written packed (read back by
    /// `unpack`, with a last panel of fewer than `NR` columns, and into
    /// several row blocks) and rows read packed by the next product.
    #[test]
    fn packed_inputs_and_outputs_match_plain_ones() {
        use crate::kernels::norm::{layer_norm, LayerNorm};
        for kernel in packed_kernels() {
            // The last: the destination has three row blocks of 67 rows, the
            // first product one of 200.
            for (m, n, k) in [(50, 3072, 768), (7, 100, 300), (85, 64, 3000), (200, 3072, 64)] {
                let x = pseudo(m * k, 1);
                let mat = |n: usize, k: usize, seed| Mat {
                    weight: WeightTensor::from_f32_as(&pseudo(n * k, seed), vec![n, k], DType::F32),
                    out_features: n,
                    in_features: k,
                };
                let (first, next) = (mat(n, k, 2), mat(40, n, 3));
                let bias = pseudo(n, 4);
                let first = PackedLinear::pack_for(kernel, &[(&first, Some(&bias[..]))]).unwrap();
                let next = PackedLinear::pack_for(kernel, &[(&next, None)]).unwrap();
                let weight = pseudo(k, 5).iter().map(|v| v + 1.0).collect();
                let ln = LayerNorm { weight, bias: pseudo(k, 6), eps: 1e-5 };
                let act = Epilogue::Activate(Activation::QuickGelu);
                for threads in [1, 2] {
                    let case = format!("{kernel} m={m} n={n} k={k} t={threads}");
                    let mut normed = vec![0.0; m * k];
                    layer_norm(&x, &ln, &mut normed);
                    let mut want = vec![0.0; m * n];
                    first.forward(Input::Rows(&normed), m, &mut want, n, act, threads);
                    let mut got = vec![0.0; m * n];
                    first.forward(Input::Normed(&x, &ln), m, &mut got, n, act, threads);
                    assert!(got == want, "normed {case}");
                    let layout = RowBlocks::new(m, n);
                    let mut a = vec![f32::NAN; layout.len()];
                    let dest = Dest::Packed(&layout);
                    first.forward_to(Input::Normed(&x, &ln), m, &mut a, dest, act, threads);
                    let mut back = vec![0.0; m * n];
                    layout.unpack(&a, &mut back);
                    assert!(back == want, "packed output {case}");
                    let (mut from_rows, mut from_packed) = (vec![0.0; m * 40], vec![0.0; m * 40]);
                    let store = Epilogue::Store;
                    next.forward(Input::Rows(&want), m, &mut from_rows, 40, store, threads);
                    next.forward(Input::Packed(&a), m, &mut from_packed, 40, store, threads);
                    assert!(from_rows == from_packed, "packed input {case}");
                }
            }
        }
    }

    /// The kernels without a micro-kernel pack nothing.
    #[test]
    fn gemm_kernel_packs_nothing() {
        let w = WeightTensor::from_f32_as(&pseudo(64, 1), vec![8, 8], DType::F32);
        let mat = Mat { weight: w, out_features: 8, in_features: 8 };
        assert!(PackedLinear::pack_for(Kernel::Gemm, &[(&mat, None)]).is_none());
    }
}
