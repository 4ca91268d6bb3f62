//! One call of an int8 micro-kernel ([`TileI8`]), the epilogue every
//! instruction set shares ([`finish`]: exact i32 sums to f32 outputs), and
//! the plain Rust micro-kernel ([`scalar`]) the others match to the bit.

use crate::kernels::simd::F32Vec;

/// One int8 micro-kernel call: a `rows x NR` block of the output from
/// `groups` groups of `G` depths (4, or 8 for `smmla`:
/// [`Int8Dot::group_depth`](super::Int8Dot::group_depth)).
///
/// The panel `b` holds `groups` blocks of `NR x G` i8 weights `q` (`G`
/// consecutive depths of each column in turn); row `r` of `a` holds its
/// quantised activations `p` (in [-127, 127]) as i8, or as u8 `p + 128`
/// for the instructions that multiply unsigned bytes
/// ([`Int8Dot::unsigned_rows`](super::Int8Dot::unsigned_rows)), whatever
/// past the depth (the weights are zero there): each micro-kernel sums
/// `p q`, exactly, in i32 (those on unsigned bytes subtract `offset`).
#[derive(Clone, Copy)]
// The offsets and the prefetch hints are read by the x86 kernels only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct TileI8 {
    /// The block's quantised rows in chunks of `lda` bytes
    /// ([`TileLayout`](super::layout::TileLayout)): chunk `j` of row `r` at
    /// `a + j * step + r * lda`, `step` the tile's height times `lda`. Rows
    /// are one chunk (`lda` bytes from one row to the next, the depth and
    /// slack in each) for every [`Int8Dot`](super::Int8Dot) but `smmla`'s
    /// ([`Int8Dot::chunk`](super::Int8Dot::chunk)).
    pub a: *const u8,
    pub lda: usize,
    // (Read by the `smmla` kernel only.)
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    pub step: usize,
    /// One activation scale per row.
    pub row_scale: *const f32,
    /// First output of the block (row stride `ldc`).
    pub c: *mut f32,
    pub ldc: usize,
    /// Columns of the block that exist.
    pub n_valid: usize,
    /// `NR` weight scales, `128 sum_k q` offsets and biases (or null).
    pub scale: *const f32,
    pub offset: *const i32,
    pub bias: *const f32,
    /// Add to the output's current values.
    pub load_c: bool,
    /// Cache lines to prefetch into L2 while computing (two per group of
    /// four depths): this tile's share of the next panel. A hint: the
    /// address may be past the panels.
    pub next: *const u8,
    pub next_lines: usize,
}

/// Writes a tile's outputs from its exact sums `sum p q`: for row `r`
/// and column `j`, `y = fma(f32(sum) s_j, s_r, b_j)`, plus the output's
/// value when `t.load_c`; only the first `t.n_valid` columns are written.
/// The same operations on every instruction set, so the same bits.
///
/// # Safety
/// The CPU has `V`'s instruction set; `t` addresses what [`TileI8`]
/// describes for `ROWS` rows and `NR` columns (`NR` a multiple of
/// `V::LANES`).
#[inline(always)]
pub(crate) unsafe fn finish<V: F32Vec, const ROWS: usize, const NR: usize>(
    sums: &[[i32; NR]; ROWS],
    t: &TileI8,
) {
    for z in (0..NR.min(t.n_valid)).step_by(V::LANES) {
        let n = t.n_valid - z;
        let scale = V::load_first(t.scale.add(z), n);
        let bias = if t.bias.is_null() { V::splat(0.0) } else { V::load_first(t.bias.add(z), n) };
        for (r, row) in sums.iter().enumerate() {
            let c = t.c.add(r * t.ldc + z);
            let sum = V::load_i32(row.as_ptr().add(z));
            let mut v = sum.mul(scale).fused_mul_add(V::splat(*t.row_scale.add(r)), bias);
            if t.load_c {
                v = v.add(V::load_first(c, n));
            }
            v.store_first(c, n);
        }
    }
}

/// The int8 micro-kernel in plain Rust: `ROWS x NR` outputs, each the sum
/// of `p q` over the depth, then [`finish`].
///
/// # Safety
/// `b` points at `groups * 4 * NR` bytes of panel, `t` as [`TileI8`]
/// describes for `ROWS` whole rows and `NR` columns.
pub(crate) unsafe fn scalar<const ROWS: usize, const NR: usize>(
    groups: usize,
    b: *const u8,
    t: &TileI8,
) {
    let mut sums = [[0i32; NR]; ROWS];
    let panel = std::slice::from_raw_parts(b.cast::<i8>(), groups * 4 * NR);
    for (r, sums) in sums.iter_mut().enumerate() {
        let row = std::slice::from_raw_parts(t.a.add(r * t.lda), groups * 4);
        for (g, four) in row.chunks_exact(4).enumerate() {
            let block = &panel[g * 4 * NR..][..4 * NR];
            for (s, q) in sums.iter_mut().zip(block.chunks_exact(4)) {
                let dot: i32 =
                    four.iter().zip(q).map(|(&p, &q)| i32::from(p as i8) * i32::from(q)).sum();
                *s += dot;
            }
        }
    }
    finish::<f32, ROWS, NR>(&sums, t)
}
