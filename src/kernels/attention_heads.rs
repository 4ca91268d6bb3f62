//! The products of one attention head (see [`mod@super::attention`]), written
//! once over the instruction set's vectors: the scores `q k^T * scale` and
//! the contexts `p v`, for a head's few dozen queries and keys, where a
//! general GEMM spends much of its time packing and dispatching.
//!
//! The keys are transposed once per head (blocks of `LANES x LANES` in
//! registers, [`F32Vec::transpose_block`]) into rows of `padded(len)`
//! floats, so the scores of a query are whole vectors over keys; the values
//! are read in place (a row of `v` is a vector over the head's columns).
//! Both products keep a tile of up to 6 query rows x `HEAD_VECS` vectors in
//! registers over the whole depth.

use super::attention::{padded, HeadRows};
use super::isa::{Isa, SimdOp};
use super::simd::F32Vec;

/// Calls `$f::<V, R, VECS>(args)` for the runtime tile shape `(rows, vecs)`
/// (rows 6, 2 or 1; vecs 1 to 4).
macro_rules! by_shape {
    ($V:ty, $rows:expr, $vecs:expr, $f:ident($($arg:expr),*)) => {
        match ($rows, $vecs) {
            (6, 4) => $f::<$V, 6, 4>($($arg),*),
            (6, 3) => $f::<$V, 6, 3>($($arg),*),
            (6, 2) => $f::<$V, 6, 2>($($arg),*),
            (6, 1) => $f::<$V, 6, 1>($($arg),*),
            (2, 4) => $f::<$V, 2, 4>($($arg),*),
            (2, 3) => $f::<$V, 2, 3>($($arg),*),
            (2, 2) => $f::<$V, 2, 2>($($arg),*),
            (2, 1) => $f::<$V, 2, 1>($($arg),*),
            (_, 4) => $f::<$V, 1, 4>($($arg),*),
            (_, 3) => $f::<$V, 1, 3>($($arg),*),
            (_, 2) => $f::<$V, 1, 2>($($arg),*),
            _ => $f::<$V, 1, 1>($($arg),*),
        }
    };
}

/// Query rows per tile.
const ROWS: usize = 6;

/// Whether `rows` rows of `width` at stride `row` lie inside `s`.
fn holds(s: &[f32], rows: usize, row: usize, width: usize) -> bool {
    rows == 0 || (rows - 1) * row + width <= s.len()
}

/// The scores of one head as a [`SimdOp`]: `scores` (`[queries, len]`) =
/// `q k^T * scale` over `len` keys, with `kt` (at least `head_dim *
/// padded(len)`) as scratch for the keys. Query `i`'s scores for keys from
/// `visible(i)` on (hidden by the causal mask) are left zero where its tile
/// of queries sees none of those keys.
///
/// # Panics
/// When a buffer is too short for the shapes.
pub(crate) struct Scores<'a> {
    pub h: HeadRows<'a>,
    pub queries: usize,
    pub len: usize,
    pub visible: &'a dyn Fn(usize) -> usize,
    pub scale: f32,
    pub kt: &'a mut [f32],
    pub scores: &'a mut [f32],
}

impl SimdOp for Scores<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn eval<K: Isa>(self) {
        let Scores { h, queries, len, visible, scale, kt, scores } = self;
        let l = <K::F32 as F32Vec>::LANES;
        let vecs_max = K::HEAD_VECS;
        let (hd, lp) = (h.head_dim, padded(len));
        assert!(
            holds(h.q, queries, h.row, hd)
                && holds(h.k, len, h.row, hd)
                && kt.len() >= hd * lp
                && scores.len() >= queries * len
                && (1..=4).contains(&vecs_max),
            "attention: head buffers too short"
        );
        let scores = &mut scores[..queries * len];
        if queries == 0 || len == 0 || hd == 0 {
            scores.fill(0.0);
            return;
        }
        // The keys the last (most seeing) query sees.
        let seen = visible(queries - 1).clamp(1, len);
        // SAFETY (the transposition and the score tiles): the CPU has `K`
        // (this op's contract); the transposition reads `seen <= len` rows
        // of `hd` of `k` and writes `hd` rows of `padded(seen) <= lp` floats
        // of `kt` (the blocks are `l` wide, `l` divides 16); a score tile
        // reads `rows` rows of `hd` of `q` from row `i` (`i + rows <=
        // queries`) and `hd` rows of `l vecs` floats of `kt` from column `j`
        // (`j + l vecs <= padded(keys) <= lp`), and writes `rows` rows of
        // `valid` floats of `scores` (stride `len`) from column `j` (`j +
        // valid <= keys <= len`): all inside the buffers by the assert above.
        for j0 in (0..seen).step_by(l) {
            for c0 in (0..hd).step_by(l) {
                let (rows, cols) = (l.min(seen - j0), l.min(hd - c0));
                let src = h.k.as_ptr().add(j0 * h.row + c0);
                let dst = kt.as_mut_ptr().add(c0 * lp + j0);
                K::F32::transpose_block(src, h.row, rows, cols, dst, lp);
            }
        }
        let mut i = 0;
        while i < queries {
            let rows = tile_rows(queries - i);
            let keys = visible(i + rows - 1).clamp(1, seen);
            let mut j = 0;
            while j < keys {
                let (valid, vecs) =
                    ((keys - j).min(l * vecs_max), (keys - j).div_ceil(l).min(vecs_max));
                let tile = ScoreTile {
                    q: h.q[i * h.row..].as_ptr(),
                    row: h.row,
                    kt: kt[j..].as_ptr(),
                    lp,
                    hd,
                    scale,
                };
                let out = scores[i * len + j..].as_mut_ptr();
                by_shape!(K::F32, rows, vecs, score_tile(&tile, out, len, valid));
                j += l * vecs_max;
            }
            for r in i..i + rows {
                scores[r * len + keys..(r + 1) * len].fill(0.0);
            }
            i += rows;
        }
    }
}

/// The contexts of one head as a [`SimdOp`]: `ctx` (`[queries,
/// head_dim]`) = `p v`, `p` being `[queries, len]`; query `i` reads the
/// values of keys `0..visible(i)` only (the others have weight zero: under
/// the causal mask those after the query).
///
/// # Panics
/// When a buffer is too short for the shapes.
pub(crate) struct Contexts<'a> {
    pub h: HeadRows<'a>,
    pub p: &'a [f32],
    pub queries: usize,
    pub len: usize,
    pub visible: &'a dyn Fn(usize) -> usize,
    pub ctx: &'a mut [f32],
}

impl SimdOp for Contexts<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn eval<K: Isa>(self) {
        let Contexts { h, p, queries, len, visible, ctx } = self;
        let l = <K::F32 as F32Vec>::LANES;
        let vecs_max = K::HEAD_VECS;
        let hd = h.head_dim;
        assert!(
            holds(h.v, len, h.row, hd)
                && p.len() >= queries * len
                && ctx.len() >= queries * hd
                && (1..=4).contains(&vecs_max),
            "attention: head buffers too short"
        );
        if queries == 0 || len == 0 || hd == 0 {
            ctx[..queries * hd].fill(0.0);
            return;
        }
        let mut i = 0;
        while i < queries {
            let rows = tile_rows(queries - i);
            // The keys the tile's last (most seeing) query sees.
            let keys = visible(i + rows - 1).min(len);
            let mut c = 0;
            while c < hd {
                let vecs = (hd - c).div_ceil(l).min(vecs_max);
                let valid = (hd - c).min(l * vecs_max);
                // SAFETY: the CPU has `K` (this op's contract); the tile
                // reads rows `i..i + rows` of `p` (`keys <= len` each) and
                // `keys` value rows at columns `c..c + valid` (inside `hd`),
                // and writes those columns of rows `i..i + rows` of `ctx`:
                // all inside the buffers by the assert above.
                let tile = ContextTile {
                    p: p.as_ptr().add(i * len),
                    len,
                    v: h.v.as_ptr().add(c),
                    row: h.row,
                    keys,
                };
                let out = ctx.as_mut_ptr().add(i * hd + c);
                by_shape!(K::F32, rows, vecs, context_tile(&tile, out, hd, valid));
                c += l * vecs_max;
            }
            i += rows;
        }
    }
}

/// The rows of the next tile when `left` query rows remain: 6, then 2 or
/// 1 for the remainder (50 queries: 8 x 6 + 2; 77: 12 x 6 + 2 + 2 + 1).
fn tile_rows(left: usize) -> usize {
    if left >= ROWS {
        ROWS
    } else if left >= 2 {
        2
    } else {
        1
    }
}

/// One depth step of a tile: `acc[r][z] += a[r * stride] * b[z]`, the
/// `a` broadcast.
///
/// # Safety
/// The CPU has `V`'s instruction set; `a` addresses `R` floats at `stride`.
#[inline(always)]
unsafe fn rank1<V: F32Vec, const R: usize, const VECS: usize>(
    acc: &mut [[V; VECS]; R],
    b: &[V; VECS],
    a: *const f32,
    stride: usize,
) {
    for (r, acc) in acc.iter_mut().enumerate() {
        let a = V::splat(*a.add(r * stride));
        for (acc, b) in acc.iter_mut().zip(b) {
            *acc = a.mul_add(*b, *acc);
        }
    }
}

/// Operands of a [`score_tile`]: query rows at `q` (stride `row`), the
/// transposed keys from the tile's first key (`hd` rows at stride `lp`).
struct ScoreTile {
    q: *const f32,
    row: usize,
    kt: *const f32,
    lp: usize,
    hd: usize,
    scale: f32,
}

/// `R` rows of scores for `valid` keys (`VECS` vectors, the last one
/// possibly partial) at `out` (stride `ldo`).
///
/// # Safety
/// The CPU has `V`'s instruction set; `t.q` addresses `R` rows of `t.hd`
/// floats, `t.kt` `t.hd` rows of `LANES VECS` floats and `out` `R` rows of
/// `valid` floats (`LANES (VECS - 1) < valid <= LANES VECS`).
#[inline(always)]
unsafe fn score_tile<V: F32Vec, const R: usize, const VECS: usize>(
    t: &ScoreTile,
    out: *mut f32,
    ldo: usize,
    valid: usize,
) {
    let mut acc = [[V::splat(0.0); VECS]; R];
    for c in 0..t.hd {
        let kt = t.kt.add(c * t.lp);
        let mut b = [V::splat(0.0); VECS];
        for (z, b) in b.iter_mut().enumerate() {
            *b = V::load(kt.add(V::LANES * z));
        }
        rank1(&mut acc, &b, t.q.add(c), t.row);
    }
    let scale = V::splat(t.scale);
    for (r, acc) in acc.iter().enumerate() {
        for (z, acc) in acc.iter().enumerate() {
            acc.mul(scale).store_first(out.add(r * ldo + V::LANES * z), valid - V::LANES * z);
        }
    }
}

/// Operands of a [`context_tile`]: the weights of the tile's rows at `p`
/// (stride `len`), the values from the tile's first column at `v` (stride
/// `row`), of which the first `keys` rows are read.
struct ContextTile {
    p: *const f32,
    len: usize,
    v: *const f32,
    row: usize,
    keys: usize,
}

/// `R` rows of contexts for `valid` columns (`VECS` vectors, the last one
/// possibly partial) at `out` (stride `ldo`).
///
/// # Safety
/// The CPU has `V`'s instruction set; `t.p` addresses `R` rows of `t.keys`
/// floats (stride `t.len`), `t.v` `t.keys` rows of `valid` floats and `out`
/// `R` rows of `valid` floats (`LANES (VECS - 1) < valid <= LANES VECS`).
#[inline(always)]
unsafe fn context_tile<V: F32Vec, const R: usize, const VECS: usize>(
    t: &ContextTile,
    out: *mut f32,
    ldo: usize,
    valid: usize,
) {
    let mut n = [0; VECS];
    for (z, n) in n.iter_mut().enumerate() {
        *n = valid - V::LANES * z;
    }
    let mut acc = [[V::splat(0.0); VECS]; R];
    for j in 0..t.keys {
        let v = t.v.add(j * t.row);
        let mut b = [V::splat(0.0); VECS];
        for (z, b) in b.iter_mut().enumerate() {
            *b = V::load_first(v.add(V::LANES * z), n[z]);
        }
        rank1(&mut acc, &b, t.p.add(j), t.len);
    }
    for (r, acc) in acc.iter().enumerate() {
        for (z, acc) in acc.iter().enumerate() {
            acc.store_first(out.add(r * ldo + V::LANES * z), n[z]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::isa::{with_isa, Kernel};

    /// The kernels whose heads run on these tiles; says so when none.
    fn head_kernels() -> Vec<Kernel> {
        let kernels: Vec<Kernel> = Kernel::supported_all()
            .into_iter()
            .filter(|&k| with_isa!(k, |K| K::HEAD_VECS != 0))
            .collect();
        if kernels.is_empty() {
            println!("skipped: no kernel with attention head tiles on this CPU");
        }
        kernels
    }

    /// A block transposed by each kernel's vectors equals the plain loop's
    /// transposition, for every partial size (rows and columns from 1 to
    /// `LANES`), the rows past `rows` zero.
    #[test]
    fn transpose_blocks_match_plain_loops() {
        struct Check;
        impl SimdOp for Check {
            type Output = ();
            #[inline(always)]
            unsafe fn eval<K: Isa>(self) {
                let l = <K::F32 as F32Vec>::LANES;
                let src: Vec<f32> = (0..l * (l + 3)).map(|i| i as f32 + 0.5).collect();
                for rows in 1..=l {
                    for cols in 1..=l {
                        let mut got = vec![f32::NAN; l * (l + 1)];
                        K::F32::transpose_block(
                            src.as_ptr(),
                            l + 3,
                            rows,
                            cols,
                            got.as_mut_ptr(),
                            l + 1,
                        );
                        for c in 0..cols {
                            for r in 0..l {
                                let want = if r < rows { src[r * (l + 3) + c] } else { 0.0 };
                                assert_eq!(
                                    got[c * (l + 1) + r],
                                    want,
                                    "{} {rows}x{cols} ({r},{c})",
                                    K::KERNEL
                                );
                            }
                        }
                    }
                }
            }
        }
        for kernel in head_kernels() {
            // SAFETY: the kernel is supported by this CPU.
            with_isa!(kernel, |K| unsafe { K::run(Check) })
        }
    }

    /// On every kernel with head tiles: scores and contexts against plain
    /// f64 loops, over shapes that leave partial vectors and tiles on every
    /// side: heads of 64, 80 and 24 columns, 1-77 keys and queries, a stride
    /// wider than the head; all keys visible, and the causal mask's (later
    /// keys' scores zero). Tolerance 1e-5: f32 sums of at most 80 products
    /// of magnitude <= 1.
    #[test]
    fn products_match_plain_loops() {
        let shapes = [(50, 50, 64), (77, 77, 64), (13, 13, 80), (1, 50, 64), (7, 70, 24)];
        for kernel in head_kernels() {
            for ((queries, len, hd), causal) in
                shapes.into_iter().flat_map(|s| [(s, false), (s, true)])
            {
                let row = 3 * hd + 5;
                let n = len.max(queries) * row + 2 * hd;
                let buf: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
                let h = HeadRows { q: &buf, k: &buf[hd..], v: &buf[2 * hd..], row, head_dim: hd };
                let visible = |i: usize| if causal { i + 1 } else { len };
                let case = format!("{kernel} {queries}x{len}x{hd} causal={causal}");
                let mut kt = vec![f32::NAN; hd * padded(len)];
                let mut s = vec![f32::NAN; queries * len];
                let op = Scores {
                    h,
                    queries,
                    len,
                    visible: &visible,
                    scale: 0.125,
                    kt: &mut kt,
                    scores: &mut s,
                };
                // SAFETY: the kernel is supported by this CPU.
                with_isa!(kernel, |K| unsafe { K::run(op) });
                for i in 0..queries {
                    for j in 0..len {
                        let want: f64 = (0..hd)
                            .map(|c| h.q[i * row + c] as f64 * h.k[j * row + c] as f64)
                            .sum::<f64>()
                            * 0.125;
                        let got = s[i * len + j] as f64;
                        // A hidden score is zero, or computed with its tile.
                        let hidden_zero = j >= visible(i) && got == 0.0;
                        let ok = (got - want).abs() < 1e-5 || hidden_zero;
                        assert!(ok, "scores {case} ({i},{j}): {got} vs {want}");
                    }
                }
                // Weights of 1/len on the keys each query sees.
                let p: Vec<f32> = (0..queries * len)
                    .map(|x| if x % len < visible(x / len) { 1.0 / len as f32 } else { 0.0 })
                    .collect();
                let mut ctx = vec![f32::NAN; queries * hd];
                let op = Contexts { h, p: &p, queries, len, visible: &visible, ctx: &mut ctx };
                // SAFETY: the kernel is supported by this CPU.
                with_isa!(kernel, |K| unsafe { K::run(op) });
                for i in 0..queries {
                    for c in 0..hd {
                        let want: f64 =
                            (0..len).map(|j| p[i * len + j] as f64 * h.v[j * row + c] as f64).sum();
                        let got = ctx[i * hd + c] as f64;
                        assert!((got - want).abs() < 1e-5, "contexts {case} ({i},{c})");
                    }
                }
            }
        }
    }
}
