//! Weights pre-packed for this crate's own GEMM micro-kernel.
//!
//! The `gemm` crate re-packs the whole weight matrix on every call, which
//! dominates when few rows go through a layer (one image is 50 rows, one
//! caption about 10). Here a weight matrix `[out, in]` is packed once, on its
//! first use, into panels of [`NR`] output features laid out `[panel][in][NR]`
//! (64-byte aligned, zero padded), keeping its dtype: F16 and BF16 stay 16-bit
//! and are widened inside the micro-kernel. A product then streams each panel
//! once from memory while the activations stay in cache.
//!
//! The activations are packed too, per product, in row blocks of depth
//! blocks ([`RowBlocks`]). The step that computes them can write them there
//! directly: a layer norm as the product packs its rows ([`Input::Normed`]),
//! attention's contexts and an activated product's outputs ([`Dest::Packed`])
//! for the next product to read as they are ([`Input::Packed`]).
//!
//! The micro-kernel exists for x86-64 with AVX-512 ([`super::avx512`]); on
//! other CPUs [`PackedLinear::pack`] returns `None` and callers use `gemm`.

use super::activation::activation_fn;
use super::matmul::{Input, Mat};
use super::norm::{normalize_segment, row_stats};
use super::team;
use crate::config::Activation;
use crate::weights::WeightView;
use rayon::prelude::*;
use std::ops::Range;

/// Output features per panel: two 16-lane vectors.
pub(crate) const NR: usize = 32;
/// Most rows per micro-kernel call (24 accumulators of the 32 registers).
pub(crate) const MR_MAX: usize = 12;
/// Depth of one pass over a panel: a `KC x NR` slice is 32 KiB in f32, held in L1.
const KC: usize = 256;
/// Row stride of a packed activation tile: `KC` plus one cache line, so the
/// rows of a tile fall in different L1 sets.
pub(crate) const LDA: usize = KC + 16;

/// The element type of packed panels (the weights' own dtype).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PanelType {
    F32,
    F16,
    BF16,
}

impl PanelType {
    fn size(self) -> usize {
        match self {
            PanelType::F32 => 4,
            PanelType::F16 | PanelType::BF16 => 2,
        }
    }
}

/// One or more weight matrices stacked along the output dimension (e.g. the
/// query, key and value projections) and packed into panels, with their
/// biases.
pub(crate) struct PackedLinear {
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

/// Writes `rows` (`[n][k]`) as panels `[n / NR][k][NR]`, zero padded, in
/// parallel over panels.
fn pack_panels<T: bytemuck::Pod + Send + Sync>(rows: &[&[T]], k: usize, out: &mut [T]) {
    out.par_chunks_mut(k * NR).enumerate().for_each(|(p, panel)| {
        let mine = &rows[p * NR..rows.len().min((p + 1) * NR)];
        for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
            for (d, row) in dst.iter_mut().zip(mine) {
                *d = row[kk];
            }
        }
    });
}

/// Memory for packed panels: a private anonymous mapping (page aligned,
/// zero filled by the OS), asked to be backed by transparent huge pages on
/// Linux. Packing touches every byte once, and with 4 KiB pages the page
/// faults alone cost more than the copy (86,000 faults for B/32 in F32).
pub(crate) struct PanelMemory(Option<memmap2::MmapMut>);

impl PanelMemory {
    /// `None` if the OS refuses the mapping (the caller falls back to `gemm`).
    pub(crate) fn zeroed(bytes: usize) -> Option<Self> {
        if bytes == 0 {
            return Some(PanelMemory(None));
        }
        let map = memmap2::MmapMut::map_anon(bytes).ok()?;
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Some(PanelMemory(Some(map)))
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.0.as_ref().map_or(std::ptr::NonNull::dangling().as_ptr(), |m| m.as_ptr())
    }

    pub(crate) fn as_mut_slice<T: bytemuck::Pod>(&mut self) -> &mut [T] {
        match self.0.as_mut() {
            Some(m) => bytemuck::cast_slice_mut(&mut m[..]),
            None => &mut [],
        }
    }
}

/// Whether this CPU runs the packed micro-kernel.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVX512: OnceLock<bool> = OnceLock::new();
        *AVX512.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::env::var_os("CLIP_NO_PACKED_GEMM").is_none()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What the f32 panels and the int8 panels of stacked parts share: the
/// common input size, the total output size, the number of `NR`-wide
/// panels and the biases.
pub(crate) struct Stack {
    pub k: usize,
    pub n: usize,
    pub panels: usize,
    /// `panels * NR` biases (zero where a part has none, and in the padding).
    pub bias: Vec<f32>,
    pub has_bias: bool,
}

impl Stack {
    /// `None` when `parts` is empty or their input sizes differ.
    pub fn of(parts: &[(&Mat, Option<&[f32]>)]) -> Option<Stack> {
        let k = parts.first()?.0.in_features;
        if parts.iter().any(|(m, _)| m.in_features != k) {
            return None;
        }
        let n: usize = parts.iter().map(|(m, _)| m.out_features).sum();
        let panels = n.div_ceil(NR);
        let mut bias = vec![0.0f32; panels * NR];
        let mut row = 0;
        for (m, b) in parts {
            if let Some(b) = b {
                bias[row..row + m.out_features].copy_from_slice(b);
            }
            row += m.out_features;
        }
        let has_bias = parts.iter().any(|(_, b)| b.is_some());
        Some(Stack { k, n, panels, bias, has_bias })
    }
}

/// Once the parts are packed, their panels are all that will be read: the
/// mapped pages of the originals can go.
pub(crate) fn release_pages(parts: &[(&Mat, Option<&[f32]>)]) {
    for (m, _) in parts {
        m.weight.release_pages();
    }
}

/// The size of row blocks of at most `cap` rows that split `m` rows
/// evenly: 800 rows at a cap of 336 make blocks of 267, 267 and 266, not
/// 336, 336 and 128, whose shares (see [`split_work`]) left one thread idle
/// at the end of every product while the other finished a large one.
pub(crate) fn balanced_blocks(m: usize, cap: usize) -> usize {
    m.div_ceil(m.div_ceil(cap.max(1)).max(1)).max(1)
}

/// How many threads a product of `work` multiply-adds over `panels` panels
/// uses: one when it is too small to be worth splitting.
pub(crate) fn threads_for(work: usize, threads: usize, panels: usize) -> usize {
    if work < 1 << 18 {
        1
    } else {
        threads.clamp(1, panels.max(1))
    }
}

/// What a product does with its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Epilogue {
    /// `out = x W^T + b`.
    Store,
    /// `out += x W^T + b` (a residual connection).
    Accumulate,
    /// `out = act(x W^T + b)`, applied by each share to its own block
    /// right after computing it (in cache, on the product's threads), not
    /// in a separate pass over the whole output.
    Activate(Activation),
}

impl Epilogue {
    /// Whether the product adds to the output's current values.
    pub fn accumulates(self) -> bool {
        self == Epilogue::Accumulate
    }

    /// Applies the activation (if any) to columns `cols` of rows `rows`
    /// of `out` (row stride `out_rs`).
    ///
    /// # Safety
    /// `out` addresses those rows and columns, and nothing else accesses
    /// them meanwhile.
    pub unsafe fn finish(self, out: OutPtr, out_rs: usize, rows: Range<usize>, cols: Range<usize>) {
        if let Epilogue::Activate(act) = self {
            let f = activation_fn(act);
            for i in rows {
                f(std::slice::from_raw_parts_mut(
                    out.get().add(i * out_rs + cols.start),
                    cols.len(),
                ));
            }
        }
    }
}

/// Where a product writes its `m x n` results.
#[derive(Clone, Copy)]
pub(crate) enum Dest<'a> {
    /// Row `i` at `out[i * rs..]`.
    Rows(usize),
    /// In the layout the packed kernel reads its activations in (the next
    /// product's input, packed as it is computed, with no copy and no step
    /// of its own).
    Packed(&'a RowBlocks),
}

impl Dest<'_> {
    /// Where output `(row, col)` goes, and the row stride from there on
    /// (for rows in one row block and columns in one depth block).
    fn at(self, row: usize, col: usize) -> (usize, usize) {
        match self {
            Dest::Rows(rs) => (row * rs + col, rs),
            Dest::Packed(l) => (l.index(row, col), LDA),
        }
    }

    /// `cols` cut where the layout's rows are not contiguous (depth blocks).
    fn runs(self, cols: Range<usize>) -> impl Iterator<Item = Range<usize>> {
        cut_at(cols, if let Dest::Packed(_) = self { KC } else { usize::MAX })
    }

    /// `rows` cut where the layout's row stride is not constant (its row
    /// blocks).
    fn row_runs(self, rows: Range<usize>) -> impl Iterator<Item = Range<usize>> {
        cut_at(rows, if let Dest::Packed(l) = self { l.mc } else { usize::MAX })
    }
}

/// `range` cut at the multiples of `step`.
fn cut_at(range: Range<usize>, step: usize) -> impl Iterator<Item = Range<usize>> {
    let (mut at, end) = (range.start, range.end);
    std::iter::from_fn(move || {
        (at < end).then(|| {
            let next = end.min((at / step).saturating_add(1).saturating_mul(step));
            let run = at..next;
            at = next;
            run
        })
    })
}

/// A share of a product: row blocks `rows` (indices of blocks of `mc` rows)
/// times panels `p0..p1`.
#[derive(Clone)]
pub(crate) struct Share {
    pub rows: Range<usize>,
    pub p0: usize,
    pub p1: usize,
}

impl Share {
    /// Row blocks `rows` times panel range `c` of `panels` cut in `chunks`.
    fn cut(rows: Range<usize>, panels: usize, c: usize, chunks: usize) -> Share {
        Share { rows, p0: panels * c / chunks, p1: panels * (c + 1) / chunks }
    }
}

/// Runs `job` over shares covering `row_blocks` row blocks x `panels`
/// panels: inline when `t` is 1, else as tasks ([`team::for_each`]) that
/// the threads claim one at a time, so a core slowed by a neighbour
/// (another VM on its sibling hyperthread, an interrupt) does not keep the
/// other waiting at the end of every product (fixed halves did: +10-16% for
/// a batch-1 image on this noisy VM). One row block: `4 t` panel ranges.
/// Several: each row block times `t` panel ranges, so each share reads its
/// block of activations once, as a fixed split did (finer panel ranges
/// everywhere would re-read them from L3: -4% at batch 16), except the
/// middle row block (two when their number is even), cut into `4 t`: the
/// leader claims from the front and the followers from the back, so the
/// last tasks of a product are those, and a thread that finishes first
/// waits for a quarter of a share at most (batch 16: +1-4% on the noisy VM).
pub(crate) fn split_work(row_blocks: usize, panels: usize, t: usize, job: impl Fn(Share) + Sync) {
    let cut = |rows, c, chunks| Share::cut(rows, panels, c, chunks);
    if t == 1 {
        job(cut(0..row_blocks, 0, 1))
    } else if row_blocks <= 1 {
        let chunks = (4 * t).min(panels);
        team::for_each(chunks, |c| job(cut(0..row_blocks, c, chunks)))
    } else {
        let shares = shares(row_blocks, panels, t);
        team::for_each(shares.len(), |i| job(shares[i].clone()))
    }
}

/// The shares of [`split_work`] over several row blocks, in claiming order.
fn shares(row_blocks: usize, panels: usize, t: usize) -> Vec<Share> {
    let mid = row_blocks / 2;
    let middle = |rb: usize| rb == mid || (row_blocks.is_multiple_of(2) && rb + 1 == mid);
    let mut shares = Vec::new();
    for rb in 0..row_blocks {
        let chunks = if middle(rb) { (4 * t).min(panels) } else { t };
        shares.extend((0..chunks).map(|c| Share::cut(rb..rb + 1, panels, c, chunks)));
    }
    shares
}

impl PackedLinear {
    /// Packs `parts` (matrices with the same input size and dtype, and their
    /// optional biases), stacked in order along the output dimension. `None`
    /// when this CPU has no packed kernel or the parts do not stack.
    pub fn pack(parts: &[(&Mat, Option<&[f32]>)]) -> Option<PackedLinear> {
        if !available() {
            return None;
        }
        let Stack { k, n, panels, bias, has_bias } = Stack::of(parts)?;
        let dtype = match parts[0].0.weight.view() {
            WeightView::F32(_) => PanelType::F32,
            WeightView::F16(_) => PanelType::F16,
            WeightView::BF16(_) => PanelType::BF16,
        };
        let same_dtype = |m: &Mat| {
            matches!(
                (m.weight.view(), dtype),
                (WeightView::F32(_), PanelType::F32)
                    | (WeightView::F16(_), PanelType::F16)
                    | (WeightView::BF16(_), PanelType::BF16)
            )
        };
        if parts.iter().any(|(m, _)| !same_dtype(m)) {
            return None;
        }
        let total = panels * k * NR;
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
                    };
                    out.extend(all.chunks_exact(k).take(m.out_features));
                }
                out
            }
            match dtype {
                PanelType::F32 => pack_panels(&rows::<f32>(parts, k), k, data.as_mut_slice()),
                PanelType::F16 | PanelType::BF16 => {
                    pack_panels(&rows::<u16>(parts, k), k, data.as_mut_slice())
                }
            }
        }
        release_pages(parts);
        Some(PackedLinear { n, k, panels, dtype, data, bias, has_bias })
    }

    /// `out[i, :n] = (accumulate ? out[i, :n] : 0) + x[i, :] W^T + b` for the
    /// `m` rows of `x` (`[m, k]`; see [`Input`] for the other forms), row
    /// `i` of `out` starting at `i * out_rs`. Splits the output panels over
    /// up to `threads` threads.
    ///
    /// # Panics
    /// If `x` or `out` is too short for `m` rows (an internal bug).
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

    /// As [`PackedLinear::forward`], writing the results to `dest`.
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
                l.m == m && l.k == self.n && out.len() >= l.len(),
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
        split_work(blocks.m.div_ceil(blocks.mc), self.panels, t, |share| {
            // SAFETY: `a` is `x` packed by `blocks`; `out` holds `m` rows of
            // `n` as `dest` lays them out (asserted above); this job
            // writes only its share's rows and columns, disjoint from every
            // other job's (`split_work` covers each pair of row block and
            // panel once), and nothing else reads `out` while the jobs run
            // (`out` is borrowed mutably for this whole call).
            unsafe { self.run_share(a, &blocks, share, out_ptr, dest, epilogue) }
        });
        if !own.is_empty() {
            A_PACK.set(own);
        }
    }

    /// Computes the columns of panels `share.p0..share.p1` for the rows of
    /// row blocks `share.rows`.
    ///
    /// # Safety
    /// `a` is the activations packed by `blocks` (for this layer's `k`);
    /// `out` addresses `blocks.m` rows of `n` elements as `dest` lays them
    /// out, and no one else accesses this share's rows and columns
    /// meanwhile.
    unsafe fn run_share(
        &self,
        a: &[f32],
        blocks: &RowBlocks,
        share: Share,
        out: OutPtr,
        dest: Dest<'_>,
        epilogue: Epilogue,
    ) {
        let Share { rows, p0, p1 } = share;
        let k = self.k;
        let panel_elems = k * NR;
        let base = self.data.as_ptr();
        let es = self.dtype.size();
        let mut wide: Vec<Line> = Vec::new();
        let mut tiles = Vec::new();
        for m0 in (rows.start * blocks.mc..blocks.m.min(rows.end * blocks.mc)).step_by(blocks.mc) {
            let mlen = blocks.mc.min(blocks.m - m0);
            // Near-equal tiles of at most `MR_MAX` rows (first row and
            // height, from `m0`), none across a row block of the destination.
            tiles.clear();
            for run in dest.row_runs(m0..m0 + mlen) {
                let n = run.len().div_ceil(MR_MAX);
                let mut r0 = run.start - m0;
                tiles.extend((0..n).map(|t| {
                    let rows = tile_rows(run.len(), n, t);
                    r0 += rows;
                    (r0 - rows, rows)
                }));
            }
            let ntiles = tiles.len();
            for p in p0..p1 {
                let n_valid = NR.min(self.n - p * NR);
                for kb in 0..k.div_ceil(KC).max(1) {
                    let k0 = kb * KC;
                    let kc = KC.min(k - k0);
                    let first = kb == 0;
                    let b = base.add((p * panel_elems + k0 * NR) * es);
                    let bias = if first && self.has_bias {
                        self.bias[p * NR..].as_ptr()
                    } else {
                        std::ptr::null()
                    };
                    // This (row block, depth block) of the packed activations.
                    let ablock = a.as_ptr().add(blocks.offset(m0, mlen, kb));
                    // The slice computed next (the next depth block, or the
                    // next panel's first: the panels are contiguous), cut
                    // into one share of cache lines per tile.
                    let next = b.wrapping_add(kc * NR * es);
                    let lines = (KC.min(k) * NR * es).div_ceil(64);
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
                            wide.resize(sub * NR / 16, Line::default());
                            let dst: &mut [f32] = bytemuck::cast_slice_mut(&mut wide[..]);
                            // SAFETY: `b` addresses this slice's `kc * NR`
                            // elements, `s0 + sk <= kc` of them here.
                            widen(self.dtype, b.add(s0 * NR * es), &mut dst[..sk * NR]);
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
                            let (at, ldc) = dest.at(m0 + r0, p * NR);
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
                            kernel(dtype, rows, sk, b, &tile);
                        }
                    }
                }
            }
            for rows in dest.row_runs(m0..m0 + mlen) {
                for cols in dest.runs(p0 * NR..self.n.min(p1 * NR)) {
                    let (at, rs) = dest.at(rows.start, cols.start);
                    // SAFETY: these are this share's rows and columns (see
                    // above), `rows.len()` rows of `cols.len()` from `at` at
                    // stride `rs`.
                    epilogue.finish(OutPtr(out.get().add(at)), rs, 0..rows.len(), 0..cols.len());
                }
            }
        }
    }
}

thread_local! {
    /// The packed activations of the product running on this thread (reused).
    static A_PACK: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Tile `t`'s share of the `lines` cache lines at `next` (the slice that
/// is computed next), for it to prefetch: its first line and line count.
pub(crate) fn next_share(
    next: *const u8,
    lines: usize,
    t: usize,
    ntiles: usize,
) -> (*const u8, usize) {
    let (l0, l1) = (lines * t / ntiles, lines * (t + 1) / ntiles);
    (next.wrapping_add(l0 * 64), l1 - l0)
}

/// Height of tile `t` when `mlen` rows are split into `ntiles` near-equal tiles.
pub(crate) fn tile_rows(mlen: usize, ntiles: usize, t: usize) -> usize {
    mlen / ntiles + usize::from(t < mlen % ntiles)
}

/// Floats `m` rows of `k` activations take packed ([`RowBlocks::len`]).
pub(crate) fn packed_len(m: usize, k: usize) -> usize {
    m * k.div_ceil(KC).max(1) * LDA
}

/// How the `m x k` activations are cut and packed: row blocks of `mc` rows;
/// within a block, depth blocks of `KC` columns, each stored as the block's
/// rows at stride [`LDA`] (a plain copy, contiguous per depth block).
pub(crate) struct RowBlocks {
    m: usize,
    k: usize,
    mc: usize,
    kblocks: usize,
}

impl RowBlocks {
    /// The layout of `m` rows of `k` activations for a product of depth `k`.
    pub(crate) fn new(m: usize, k: usize) -> Self {
        // At most about 1 MiB of packed activations per row block (kept in L2).
        let mc = balanced_blocks(m, ((1 << 18) / k.max(1)).clamp(MR_MAX, 4096));
        RowBlocks { m, k, mc, kblocks: k.div_ceil(KC).max(1) }
    }

    /// Where depth block `kb` of the row block starting at row `m0` (of
    /// `mlen` rows) starts in the packed buffer.
    fn offset(&self, m0: usize, mlen: usize, kb: usize) -> usize {
        (m0 * self.kblocks + kb * mlen) * LDA
    }

    /// Rows and depth laid out.
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.m, self.k)
    }

    /// Floats the packed buffer takes.
    pub(crate) fn len(&self) -> usize {
        packed_len(self.m, self.k)
    }

    /// Where activation `(row, col)` is in the packed buffer; the next
    /// columns up to the depth block's end follow it.
    pub(crate) fn index(&self, row: usize, col: usize) -> usize {
        let m0 = row / self.mc * self.mc;
        let mlen = self.mc.min(self.m - m0);
        self.offset(m0, mlen, col / KC) + (row - m0) * LDA + col % KC
    }

    /// Writes `src` as activations `(row, col..col + src.len())` of the
    /// packed buffer at `a`.
    ///
    /// # Safety
    /// `a` addresses [`RowBlocks::len`] floats, `col + src.len() <= k`, and
    /// no one else accesses those activations meanwhile.
    pub(crate) unsafe fn write(&self, a: OutPtr, row: usize, col: usize, src: &[f32]) {
        let mut c = col;
        let mut rest = src;
        while !rest.is_empty() {
            let len = rest.len().min(KC - c % KC);
            std::ptr::copy_nonoverlapping(rest.as_ptr(), a.get().add(self.index(row, c)), len);
            rest = &rest[len..];
            c += len;
        }
    }

    /// Copies packed activations `a` back to `[m, k]` rows.
    pub(crate) fn unpack(&self, a: &[f32], out: &mut [f32]) {
        for (i, row) in out.chunks_exact_mut(self.k.max(1)).take(self.m).enumerate() {
            for (kb, seg) in row.chunks_mut(KC).enumerate() {
                let at = self.index(i, kb * KC);
                seg.copy_from_slice(&a[at..at + seg.len()]);
            }
        }
    }

    /// Packs `x` (`[m, k]`) into `a`, normalising the rows on the way for
    /// [`Input::Normed`]; in parallel over rows when large.
    pub(crate) fn pack(&self, x: Input<'_>, a: &mut [f32], threads: usize) {
        let (m, k, len) = (self.m, self.k, self.len());
        assert!(a.len() >= len && !matches!(x, Input::Packed(_)), "packing: buffer");
        let dst = OutPtr(a.as_mut_ptr());
        let pack_row = |i: usize| {
            let src = &x.rows()[i * k..][..k];
            let stats = match x {
                Input::Normed(_, ln) => Some((ln, row_stats(src, ln.eps))),
                Input::Rows(_) | Input::Packed(_) => None,
            };
            for kb in 0..k.div_ceil(KC) {
                let k0 = kb * KC;
                let kc = KC.min(k - k0);
                let at = self.index(i, k0);
                // SAFETY: row `i` of depth block `kb` owns `a[at..at + kc]`
                // (rows are `LDA >= kc` apart and blocks do not overlap), so no
                // other task writes there, and `at + kc <= len <= a.len()`.
                let row = unsafe { std::slice::from_raw_parts_mut(dst.get().add(at), kc) };
                let seg = &src[k0..k0 + kc];
                match stats {
                    Some((ln, (mean, rstd))) => {
                        let (w, b) = (&ln.weight[k0..k0 + kc], &ln.bias[k0..k0 + kc]);
                        normalize_segment(seg, w, b, mean, rstd, row)
                    }
                    None => row.copy_from_slice(seg),
                }
            }
        };
        // Chunks of 8 rows: a 50-row image is 7 tasks for two threads.
        if threads > 1 && m * k >= 1 << 14 {
            team::for_each(m.div_ceil(8), |c| (c * 8..m.min(c * 8 + 8)).for_each(pack_row));
        } else {
            (0..m).for_each(pack_row);
        }
    }
}

/// An output (or packing) pointer shared by the threads of one product.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);

impl OutPtr {
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: each thread writes a disjoint set of columns through it (see
// `PackedLinear::forward`), and the borrow it came from outlives the threads.
unsafe impl Send for OutPtr {}
// SAFETY: as above; shared references to it only copy the pointer.
unsafe impl Sync for OutPtr {}

/// One micro-kernel call: a `rows x NR` block of the output.
// Read only by the x86-64 micro-kernels.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
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
    /// whose panel rows are not in cache yet).
    pub prefetch: bool,
    /// Cache lines to prefetch into L2 while computing (spread over the depth steps):
    /// this tile's share of the next panel slice, so that streaming the
    /// weights from memory overlaps with the arithmetic of every tile, not
    /// only the first. A hint: the address may be past the panels.
    pub next: *const u8,
    pub next_lines: usize,
}

/// Tiles of one slice from which 16-bit panels are widened to f32 first:
/// the widening pass costs about 600 cycles a slice (512 conversions and
/// stores), under 5% of four tiles' multiply-adds, while converting inside
/// every tile adds 2 conversions to each step's 20-24 multiply-adds on the
/// same ports. (An A/B of 4 against 8 on this VM was within its noise.)
const WIDEN_TILES: usize = 4;

/// Depths of a slice widened at a time: 128 x 32 f32 (16 KiB) stay in L1
/// beside a tile's activations, where a whole 256-deep slice (32 KiB)
/// competed with them (+2-3% for 50-row F16 products).
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

/// Widens `dst.len()` (a multiple of 16) elements of `dtype` at `src`.
///
/// # Safety
/// `src` addresses `dst.len()` elements of `dtype`; only called when
/// [`available`] is true.
#[cfg(target_arch = "x86_64")]
unsafe fn widen(dtype: PanelType, src: *const u8, dst: &mut [f32]) {
    use super::avx512::{widen, DT_BF16, DT_F16, DT_F32};
    match dtype {
        PanelType::F32 => widen::<DT_F32>(src, dst.as_mut_ptr(), dst.len()),
        PanelType::F16 => widen::<DT_F16>(src, dst.as_mut_ptr(), dst.len()),
        PanelType::BF16 => widen::<DT_BF16>(src, dst.as_mut_ptr(), dst.len()),
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn widen(_: PanelType, _: *const u8, _: &mut [f32]) {
    unreachable!("packed kernel without a micro-kernel for this CPU")
}

/// Dispatches to the micro-kernel for `rows` rows of `dtype` panels.
///
/// # Safety
/// As [`super::avx512::kernel`]; only called when [`available`] is true.
#[cfg(target_arch = "x86_64")]
unsafe fn kernel(dtype: PanelType, rows: usize, kc: usize, b: *const u8, t: &Tile) {
    use super::avx512::{kernel as k, with_rows};
    macro_rules! by_rows {
        ($dt:expr, $l1:expr) => {
            with_rows!(rows, |R| k::<R, { $dt }, $l1>(kc, b, t))
        };
    }
    use super::avx512::{spread_into_l1, DT_BF16, DT_F16, DT_F32};
    match (dtype, spread_into_l1()) {
        (PanelType::F32, false) => by_rows!(DT_F32, false),
        (PanelType::F32, true) => by_rows!(DT_F32, true),
        (PanelType::F16, false) => by_rows!(DT_F16, false),
        (PanelType::F16, true) => by_rows!(DT_F16, true),
        (PanelType::BF16, false) => by_rows!(DT_BF16, false),
        (PanelType::BF16, true) => by_rows!(DT_BF16, true),
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel(_: PanelType, _: usize, _: usize, _: *const u8, _: &Tile) {
    unreachable!("packed kernel without a micro-kernel for this CPU")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_support::pseudo;
    use crate::weights::{DType, WeightTensor};

    /// f64 reference of `out0 + x W^T + b` for stacked parts.
    fn reference(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, b: &[f32]) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k).map(|t| x[i * k + t] as f64 * w[j * k + t] as f64).sum();
                out[i * n + j] = dot + b[j] as f64;
            }
        }
        out
    }

    /// Every tile height (1..=12 and the balanced splits of larger m; with
    /// m = 100, 16-bit panels widened once per slice), panel
    /// tails (n not a multiple of 32), several depth blocks (k > 256),
    /// several row blocks (m = 100 at k = 3000: blocks of 84 rows, shared
    /// out per block), both output modes, 1 and 2 threads, each dtype, two
    /// stacked parts with one bias missing. Tolerance 1e-4: sums of up to
    /// 3000 products of O(0.1) terms in f32 (rounding error ~1e-5), against f64.
    #[test]
    fn matches_f64_reference() {
        if !available() {
            return;
        }
        let cases =
            [(1, 32, 0, 8), (7, 40, 9, 600), (50, 64, 64, 257), (25, 3, 0, 0), (100, 40, 0, 300)]
                .into_iter()
                .chain([(100, 40, 9, 3000)]);
        for (m, n1, n2, k) in cases {
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
                let packed = PackedLinear::pack(&parts).unwrap();
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
                                "{dtype:?} m={m} n={n} k={k} t={threads} {epilogue:?} [{i},{j}]: {got} vs {exp}"
                            );
                        }
                    }
                }
            }
        }
    }
    /// The other forms of input and output give the plain product's numbers
    /// bit for bit: rows normalised while packed (against `layer_norm`
    /// first), results written packed (read back by `unpack`, with a last
    /// panel of fewer than `NR` columns, and into several row blocks) and
    /// rows read packed by the next product.
    #[test]
    fn packed_inputs_and_outputs_match_plain_ones() {
        use crate::kernels::norm::{layer_norm, LayerNorm};
        if !available() {
            return;
        }
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
            let first = PackedLinear::pack(&[(&first, Some(&bias[..]))]).unwrap();
            let next = PackedLinear::pack(&[(&next, None)]).unwrap();
            let weight = pseudo(k, 5).iter().map(|v| v + 1.0).collect();
            let ln = LayerNorm { weight, bias: pseudo(k, 6), eps: 1e-5 };
            let act = Epilogue::Activate(Activation::QuickGelu);
            for threads in [1, 2] {
                let mut normed = vec![0.0; m * k];
                layer_norm(&x, &ln, &mut normed);
                let mut want = vec![0.0; m * n];
                first.forward(Input::Rows(&normed), m, &mut want, n, act, threads);
                let mut got = vec![0.0; m * n];
                first.forward(Input::Normed(&x, &ln), m, &mut got, n, act, threads);
                assert!(got == want, "normed m={m} n={n} k={k} t={threads}");
                let layout = RowBlocks::new(m, n);
                let mut a = vec![f32::NAN; layout.len()];
                first.forward_to(
                    Input::Normed(&x, &ln),
                    m,
                    &mut a,
                    Dest::Packed(&layout),
                    act,
                    threads,
                );
                let mut back = vec![0.0; m * n];
                layout.unpack(&a, &mut back);
                assert!(back == want, "packed output m={m} n={n} k={k} t={threads}");
                let (mut from_rows, mut from_packed) = (vec![0.0; m * 40], vec![0.0; m * 40]);
                next.forward(Input::Rows(&want), m, &mut from_rows, 40, Epilogue::Store, threads);
                next.forward(Input::Packed(&a), m, &mut from_packed, 40, Epilogue::Store, threads);
                assert!(from_rows == from_packed, "packed input m={m} n={n} k={k} t={threads}");
            }
        }
    }

    /// Rows written into a layout of several row blocks in pieces that
    /// straddle depth blocks are where packing puts them, and unpack back.
    #[test]
    fn layout_writes_pack_and_unpack() {
        let (m, k) = (300, 1000);
        let layout = RowBlocks::new(m, k);
        assert!(layout.mc < m);
        let x = pseudo(m * k, 7);
        let mut packed = vec![0.0; layout.len()];
        layout.pack(Input::Rows(&x), &mut packed, 2);
        let mut written = vec![0.0; layout.len()];
        for (i, row) in x.chunks(k).enumerate() {
            for (c, piece) in row.chunks(300).enumerate() {
                // SAFETY: `written` holds the layout, pieces are disjoint.
                unsafe { layout.write(OutPtr(written.as_mut_ptr()), i, c * 300, piece) };
            }
        }
        assert!(written == packed);
        let mut back = vec![0.0; m * k];
        layout.unpack(&written, &mut back);
        assert!(back == x);
    }

    #[test]
    fn packed_destinations_run_within_depth_blocks() {
        let layout = RowBlocks::new(4, 600);
        let runs: Vec<_> = Dest::Packed(&layout).runs(200..600).collect();
        assert_eq!(runs, vec![200..256, 256..512, 512..600]);
        assert_eq!(Dest::Rows(600).runs(200..600).collect::<Vec<_>>(), vec![200..600]);
    }
    /// Every (row block, panel) pair is in exactly one share; the middle
    /// row block (two when their number is even) is cut four times finer.
    #[test]
    fn shares_cover_every_block_once_finer_in_the_middle() {
        let cases: [(usize, usize, usize, &[usize]); 4] = [
            (3, 24, 2, &[2, 8, 2]),
            (10, 24, 2, &[2, 2, 2, 2, 8, 8, 2, 2, 2, 2]),
            (2, 5, 2, &[5, 5]),
            (7, 96, 3, &[3, 3, 3, 12, 3, 3, 3]),
        ];
        for (row_blocks, panels, t, want) in cases {
            let shares = shares(row_blocks, panels, t);
            let mut seen = vec![0; row_blocks * panels];
            let mut per_block = vec![0; row_blocks];
            for s in &shares {
                for rb in s.rows.clone() {
                    per_block[rb] += 1;
                    (s.p0..s.p1).for_each(|p| seen[rb * panels + p] += 1);
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{row_blocks}x{panels}");
            assert_eq!(per_block, want, "{row_blocks}x{panels}");
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use crate::weights::{DType, WeightTensor};

    /// Not a test: `cargo test --release --lib packed_speed -- --ignored --nocapture`.
    /// Cycles through 36 matrices (340 MB in F32, the B/32 image tower's
    /// size), so the weights come from memory as in a model, not from cache
    /// (`CLIP_PACKED_MATS=1`: one matrix, from cache, for comparison).
    #[test]
    #[ignore]
    fn packed_speed() {
        let mats: usize =
            std::env::var("CLIP_PACKED_MATS").ok().and_then(|v| v.parse().ok()).unwrap_or(36);
        let shapes = [(800, 3072, 768), (800, 768, 3072), (50, 3072, 768), (50, 768, 3072)];
        for (m, n, k, dtype) in
            shapes.iter().flat_map(|&(m, n, k)| [DType::F32, DType::F16].map(|d| (m, n, k, d)))
        {
            let w = WeightTensor::from_f32_as(&vec![0.01; n * k], vec![n, k], dtype);
            let mat = Mat { weight: w, out_features: n, in_features: k };
            let ps: Vec<_> =
                (0..mats).map(|_| PackedLinear::pack(&[(&mat, None)]).unwrap()).collect();
            let x = vec![0.5f32; m * k];
            let mut out = vec![0.0f32; m * n];
            for threads in [1, 2] {
                let reps = 36 * if m > 100 { 1 } else { 4 };
                for p in &ps {
                    p.forward(Input::Rows(&x), m, &mut out, n, Epilogue::Store, threads);
                }
                // The mean, and the fastest product: on a VM whose neighbours
                // slow it at random, the latter is the undisturbed rate.
                let mut best = f64::INFINITY;
                let t0 = std::time::Instant::now();
                for r in 0..reps {
                    let t1 = std::time::Instant::now();
                    ps[r % mats].forward(Input::Rows(&x), m, &mut out, n, Epilogue::Store, threads);
                    best = best.min(t1.elapsed().as_secs_f64());
                }
                let dt = t0.elapsed().as_secs_f64() / reps as f64;
                let gf = |dt: f64| 2.0 * (m * n * k) as f64 / dt / 1e9;
                println!(
                    "{dtype:?} m={m} n={n} k={k} threads={threads}: {:.3} ms {:.1} GFLOP/s, best {:.1}",
                    dt * 1e3,
                    gf(dt),
                    gf(best)
                );
            }
        }
    }
}
