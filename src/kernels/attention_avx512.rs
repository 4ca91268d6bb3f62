//! The AVX-512 products of one attention head (see [`mod@super::attention`]):
//! the scores `q k^T * scale` and the contexts `p v`, for a head's few
//! dozen queries and keys, where a general GEMM spends much of its time
//! packing and dispatching (the `gemm` crate ran them at about half the
//! packed kernel's speed: 1.9% of the time of a batch of 16 images for 1.1%
//! of its multiply-adds).
//!
//! The keys are transposed once per head (16 x 16 blocks in registers) into
//! rows of `padded(len)` floats, so the scores of a query are whole vectors
//! over keys; the values are read in place (a row of `v` is a vector over
//! the head's columns). Both products keep a tile of up to 6 query rows x 4
//! vectors in registers over the whole depth.

use super::attention::{padded, HeadRows};
use super::avx512::lanes;
use std::arch::x86_64::*;

/// Calls `$f::<R, V>(args)` for the runtime tile shape `(rows, vecs)`
/// (rows 6, 2 or 1; vecs 1..=4).
macro_rules! by_shape {
    ($rows:expr, $vecs:expr, $f:ident($($arg:expr),*)) => {
        match ($rows, $vecs) {
            (6, 4) => $f::<6, 4>($($arg),*),
            (6, 3) => $f::<6, 3>($($arg),*),
            (6, 2) => $f::<6, 2>($($arg),*),
            (6, 1) => $f::<6, 1>($($arg),*),
            (2, 4) => $f::<2, 4>($($arg),*),
            (2, 3) => $f::<2, 3>($($arg),*),
            (2, 2) => $f::<2, 2>($($arg),*),
            (2, 1) => $f::<2, 1>($($arg),*),
            (_, 4) => $f::<1, 4>($($arg),*),
            (_, 3) => $f::<1, 3>($($arg),*),
            (_, 2) => $f::<1, 2>($($arg),*),
            _ => $f::<1, 1>($($arg),*),
        }
    };
}

/// Query rows per tile (6 x 4 vectors = 24 accumulators).
const ROWS: usize = 6;
/// Vectors of 16 per tile row.
const VECS: usize = 4;

/// Whether `rows` rows of `width` at stride `row` lie inside `s`.
fn holds(s: &[f32], rows: usize, row: usize, width: usize) -> bool {
    rows == 0 || (rows - 1) * row + width <= s.len()
}

/// `scores` (`[queries, len]`) = `q k^T * scale` over `len` keys, with
/// `kt` (at least `head_dim * padded(len)`) as scratch for the keys. Query
/// `i`'s scores for keys from `visible(i)` on (hidden by the causal mask)
/// are left zero where its tile of queries sees none of those keys.
///
/// # Safety
/// The CPU has AVX-512F.
///
/// # Panics
/// When a buffer is too short for the shapes.
pub(crate) unsafe fn scores(
    h: HeadRows<'_>,
    queries: usize,
    len: usize,
    visible: impl Fn(usize) -> usize,
    scale: f32,
    kt: &mut [f32],
    scores: &mut [f32],
) {
    let (hd, lp) = (h.head_dim, padded(len));
    assert!(
        holds(h.q, queries, h.row, hd)
            && holds(h.k, len, h.row, hd)
            && kt.len() >= hd * lp
            && scores.len() >= queries * len,
        "attention: head buffers too short"
    );
    let scores = &mut scores[..queries * len];
    if queries == 0 || len == 0 || hd == 0 {
        scores.fill(0.0);
        return;
    }
    // The keys the last (most seeing) query sees.
    let seen = visible(queries - 1).clamp(1, len);
    // SAFETY (this block and the score tiles' below): the CPU has AVX-512F (this function's
    // contract); `transpose_keys` reads `seen <= len` rows of `hd` of `k`
    // and writes `hd * padded(seen) <= hd * lp` floats of `kt`; a score tile
    // reads `rows` rows of `hd` of `q` from row `i` (`i + rows <= queries`)
    // and `hd` rows of `16 vecs` floats of `kt` from column `j` (`j + 16 vecs
    // <= padded(keys) <= lp`), and writes `rows` rows of `valid` floats of
    // `scores` (stride `len`) from column `j` (`j + valid <= keys <= len`):
    // all inside the buffers by the assert above.
    unsafe { transpose_keys(h.k.as_ptr(), h.row, seen, hd, kt.as_mut_ptr(), lp) };
    let mut i = 0;
    while i < queries {
        let rows = tile_rows(queries - i);
        let keys = visible(i + rows - 1).clamp(1, seen);
        let mut j = 0;
        while j < keys {
            let (valid, vecs) = ((keys - j).min(16 * VECS), (keys - j).div_ceil(16).min(VECS));
            let tile = ScoreTile {
                q: h.q[i * h.row..].as_ptr(),
                row: h.row,
                kt: kt[j..].as_ptr(),
                lp,
                hd,
                scale,
            };
            let out = scores[i * len + j..].as_mut_ptr();
            // SAFETY: as for `transpose_keys` above.
            unsafe { by_shape!(rows, vecs, score_tile(&tile, out, len, valid)) };
            j += 16 * VECS;
        }
        for r in i..i + rows {
            scores[r * len + keys..(r + 1) * len].fill(0.0);
        }
        i += rows;
    }
}

/// `ctx` (`[queries, head_dim]`) = `p v`, `p` being `[queries, len]`;
/// query `i` reads the values of keys `0..visible(i)` only (the others
/// have weight zero: under the causal mask those after the query).
///
/// # Safety
/// The CPU has AVX-512F.
///
/// # Panics
/// When a buffer is too short for the shapes.
pub(crate) unsafe fn contexts(
    h: HeadRows<'_>,
    p: &[f32],
    queries: usize,
    len: usize,
    visible: impl Fn(usize) -> usize,
    ctx: &mut [f32],
) {
    let hd = h.head_dim;
    assert!(
        holds(h.v, len, h.row, hd) && p.len() >= queries * len && ctx.len() >= queries * hd,
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
            let vecs = (hd - c).div_ceil(16).min(VECS);
            let valid = (hd - c).min(16 * VECS);
            // SAFETY: the CPU has AVX-512F (this function's contract); the tile reads
            // rows `i..i + rows` of `p` (`keys <= len` each) and `keys`
            // value rows at columns `c..c + valid` (inside `hd`), and writes
            // those columns of rows `i..i + rows` of `ctx`: all inside the
            // buffers by the assert above.
            unsafe {
                let tile = ContextTile {
                    p: p.as_ptr().add(i * len),
                    len,
                    v: h.v.as_ptr().add(c),
                    row: h.row,
                    keys,
                };
                let out = ctx.as_mut_ptr().add(i * hd + c);
                by_shape!(rows, vecs, context_tile(&tile, out, hd, valid));
            }
            c += 16 * VECS;
        }
        i += rows;
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

/// The keys `k` (`len` rows of `hd` at stride `row`) transposed into `kt`
/// (`hd` rows at stride `lp`, of `padded(len)` floats: keys from `len` on
/// zero), 16 x 16 at a time.
///
/// # Safety
/// The CPU has AVX-512F; `k` addresses `len` rows of `hd` at stride `row`
/// and `kt` `hd` rows of `padded(len)` floats at stride `lp`.
#[target_feature(enable = "avx512f")]
unsafe fn transpose_keys(
    k: *const f32,
    row: usize,
    len: usize,
    hd: usize,
    kt: *mut f32,
    lp: usize,
) {
    for j0 in (0..len).step_by(16) {
        for c0 in (0..hd).step_by(16) {
            let cols = lanes(hd - c0);
            let mut r = [_mm512_setzero_ps(); 16];
            for (t, r) in r.iter_mut().enumerate() {
                if j0 + t < len {
                    *r = _mm512_maskz_loadu_ps(cols, k.add((j0 + t) * row + c0));
                }
            }
            let r = transpose16(r);
            for (m, r) in r.iter().enumerate().take(hd - c0) {
                _mm512_storeu_ps(kt.add((c0 + m) * lp + j0), *r);
            }
        }
    }
}

/// A 16 x 16 transpose: element `c` of vector `r` goes to element `r` of
/// vector `c`. Interleaves pairs of rows (4-byte then 8-byte lanes), then
/// moves 128-bit lanes twice.
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    let mut t = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let b = 4 * g;
        let (lo01, hi01) = (_mm512_unpacklo_ps(r[b], r[b + 1]), _mm512_unpackhi_ps(r[b], r[b + 1]));
        let (lo23, hi23) =
            (_mm512_unpacklo_ps(r[b + 2], r[b + 3]), _mm512_unpackhi_ps(r[b + 2], r[b + 3]));
        let pd = _mm512_castps_pd;
        let ps = _mm512_castpd_ps;
        // Within each 128-bit lane, t[b + m] holds column m of rows b..b+4.
        t[b] = ps(_mm512_unpacklo_pd(pd(lo01), pd(lo23)));
        t[b + 1] = ps(_mm512_unpackhi_pd(pd(lo01), pd(lo23)));
        t[b + 2] = ps(_mm512_unpacklo_pd(pd(hi01), pd(hi23)));
        t[b + 3] = ps(_mm512_unpackhi_pd(pd(hi01), pd(hi23)));
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for m in 0..4 {
        // Lanes 0 and 2, or 1 and 3, of the rows 0-3 and 4-7 groups, and of 8-11 and 12-15.
        let a = _mm512_shuffle_f32x4::<0x88>(t[m], t[4 + m]);
        let b = _mm512_shuffle_f32x4::<0xdd>(t[m], t[4 + m]);
        let c = _mm512_shuffle_f32x4::<0x88>(t[8 + m], t[12 + m]);
        let d = _mm512_shuffle_f32x4::<0xdd>(t[8 + m], t[12 + m]);
        // Column 4 * lane + m is lane `lane` of t[m], t[4 + m], t[8 + m], t[12 + m].
        out[m] = _mm512_shuffle_f32x4::<0x88>(a, c);
        out[8 + m] = _mm512_shuffle_f32x4::<0xdd>(a, c);
        out[4 + m] = _mm512_shuffle_f32x4::<0x88>(b, d);
        out[12 + m] = _mm512_shuffle_f32x4::<0xdd>(b, d);
    }
    out
}

/// One depth step of a tile: `acc[r][z] += a(r) * b[z]`, `a(r)` broadcast.
#[target_feature(enable = "avx512f")]
#[inline]
fn rank1<const R: usize, const V: usize>(
    acc: &mut [[__m512; V]; R],
    b: &[__m512; V],
    a: impl Fn(usize) -> f32,
) {
    for (r, acc) in acc.iter_mut().enumerate() {
        let a = _mm512_set1_ps(a(r));
        for (acc, b) in acc.iter_mut().zip(b) {
            *acc = _mm512_fmadd_ps(a, *b, *acc);
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

/// `R` rows of scores for `valid` keys (`V` vectors, the last one possibly
/// partial) at `out` (stride `ldo`).
///
/// # Safety
/// The CPU has AVX-512F; `t.q` addresses `R` rows of `t.hd` floats, `t.kt`
/// `t.hd` rows of `16 V` floats and `out` `R` rows of `valid` floats
/// (`16 (V - 1) < valid <= 16 V`).
#[target_feature(enable = "avx512f")]
unsafe fn score_tile<const R: usize, const V: usize>(
    t: &ScoreTile,
    out: *mut f32,
    ldo: usize,
    valid: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for c in 0..t.hd {
        let kt = t.kt.add(c * t.lp);
        let mut b = [_mm512_setzero_ps(); V];
        for (z, b) in b.iter_mut().enumerate() {
            *b = _mm512_loadu_ps(kt.add(16 * z));
        }
        rank1(&mut acc, &b, |r| *t.q.add(r * t.row + c));
    }
    let scale = _mm512_set1_ps(t.scale);
    for (r, acc) in acc.iter().enumerate() {
        for (z, acc) in acc.iter().enumerate() {
            let m = lanes(valid - 16 * z);
            _mm512_mask_storeu_ps(out.add(r * ldo + 16 * z), m, _mm512_mul_ps(*acc, scale));
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

/// `R` rows of contexts for `valid` columns (`V` vectors, the last one
/// possibly partial) at `out` (stride `ldo`).
///
/// # Safety
/// The CPU has AVX-512F; `t.p` addresses `R` rows of `t.keys` floats
/// (stride `t.len`), `t.v` `t.keys` rows of `valid` floats and `out` `R`
/// rows of `valid` floats (`16 (V - 1) < valid <= 16 V`).
#[target_feature(enable = "avx512f")]
unsafe fn context_tile<const R: usize, const V: usize>(
    t: &ContextTile,
    out: *mut f32,
    ldo: usize,
    valid: usize,
) {
    let mut m = [0 as __mmask16; V];
    for (z, m) in m.iter_mut().enumerate() {
        *m = lanes(valid - 16 * z);
    }
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for j in 0..t.keys {
        let v = t.v.add(j * t.row);
        let mut b = [_mm512_setzero_ps(); V];
        for (z, b) in b.iter_mut().enumerate() {
            *b = _mm512_maskz_loadu_ps(m[z], v.add(16 * z));
        }
        rank1(&mut acc, &b, |r| *t.p.add(r * t.len + j));
    }
    for (r, acc) in acc.iter().enumerate() {
        for (z, acc) in acc.iter().enumerate() {
            _mm512_mask_storeu_ps(out.add(r * ldo + 16 * z), m[z], *acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avx512() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    #[test]
    fn transpose_of_16_by_16() {
        if !avx512() {
            return;
        }
        let m: Vec<f32> = (0..256).map(|i| i as f32).collect();
        // SAFETY: AVX-512F checked above; the loads read 16 x 16 floats of `m`.
        let out = unsafe {
            let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(m.as_ptr().add(16 * i)));
            transpose16(r)
        };
        let mut got = vec![0.0f32; 256];
        for (i, v) in out.iter().enumerate() {
            // SAFETY: 16 floats into `got` at row i.
            unsafe { _mm512_storeu_ps(got.as_mut_ptr().add(16 * i), *v) };
        }
        for r in 0..16 {
            for c in 0..16 {
                assert_eq!(got[c * 16 + r], m[r * 16 + c], "({r}, {c})");
            }
        }
    }

    /// Scores and contexts against plain f64 loops, over shapes that leave
    /// partial vectors and tiles on every side: heads of 64, 80 and 24
    /// columns, 1-77 keys and queries, a stride wider than the head; all
    /// keys visible, and the causal mask's (later keys' scores zero).
    /// Tolerance 1e-5: f32 sums of at most 80 products of magnitude <= 1.
    #[test]
    fn products_match_plain_loops() {
        if !avx512() {
            return;
        }
        let shapes = [(50, 50, 64), (77, 77, 64), (13, 13, 80), (1, 50, 64), (7, 70, 24)];
        for ((queries, len, hd), causal) in shapes.into_iter().flat_map(|s| [(s, false), (s, true)])
        {
            let row = 3 * hd + 5;
            let n = len.max(queries) * row + 2 * hd;
            let buf: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
            let h = HeadRows { q: &buf, k: &buf[hd..], v: &buf[2 * hd..], row, head_dim: hd };
            let visible = |i: usize| if causal { i + 1 } else { len };
            let case = format!("{queries}x{len}x{hd} causal={causal}");
            let mut kt = vec![f32::NAN; hd * padded(len)];
            let mut s = vec![f32::NAN; queries * len];
            // SAFETY: AVX-512F checked above.
            unsafe { scores(h, queries, len, visible, 0.125, &mut kt, &mut s) };
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
            // SAFETY: AVX-512F checked above.
            unsafe { contexts(h, &p, queries, len, visible, &mut ctx) };
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
