//! Layer normalisation over the last dimension.

use super::isa::vectorized;
use super::simd::lane_fold;
use super::team;

/// The parameters of a `LayerNorm` (`weight`, `bias`, `eps`), widened to f32.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// Scale, one per feature.
    pub weight: Vec<f32>,
    /// Shift, one per feature.
    pub bias: Vec<f32>,
    /// Added to the variance.
    pub eps: f32,
}

/// `out = (x - mean) / sqrt(var + eps) * weight + bias` for each row of
/// `x` (width `ln.weight.len()`), with the biased variance as PyTorch. The
/// statistics are accumulated in f64, so they are at least as accurate as
/// PyTorch's f32 Welford reduction.
pub fn layer_norm(x: &[f32], ln: &LayerNorm, out: &mut [f32]) {
    let d = ln.weight.len();
    debug_assert_eq!(x.len(), out.len());
    let rows = x.len() / d.max(1);
    // Rows `r0..` of `x` into `out`.
    let work = |r0: usize, out: &mut [f32]| {
        for (r, or) in out.chunks_mut(d.max(1)).enumerate() {
            normalize_row(&x[(r0 + r) * d..][..d], ln, or);
        }
    };
    const ROWS: usize = 8;
    if rows >= 2 * ROWS {
        team::for_each_chunk(&mut out[..rows * d], ROWS * d, |c, out| work(c * ROWS, out));
    } else {
        work(0, &mut out[..rows * d]);
    }
}

/// One row of [`layer_norm`] (for callers that normalise row by row).
pub(crate) fn normalize_row(x: &[f32], ln: &LayerNorm, out: &mut [f32]) {
    let (mean, rstd) = row_stats(x, ln.eps);
    normalize_segment(x, &ln.weight, &ln.bias, mean, rstd, out);
}

vectorized!(
    /// The mean and `1 / sqrt(var + eps)` of one row, as [`layer_norm`]
    /// uses them.
    pub(crate) fn row_stats(x: &[f32], eps: f32) -> (f32, f32) = row_stats_body
);

vectorized!(
    /// `out = (x - mean) * rstd * w + b` over a segment of a row (`x`, `w`,
    /// `b` and `out` the segment's elements): normalised values bit for bit
    /// as [`layer_norm`] gives them, for callers that store a row in pieces.
    pub(crate) fn normalize_segment(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        mean: f32,
        rstd: f32,
        out: &mut [f32]
    ) = normalize_segment_body
);

/// A sum of `f(v)` in eight independent f64 lanes ([`lane_fold`]).
#[inline(always)]
fn sum_f64(x: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    lane_fold::<f64, 8>(x, 0.0, |a, v| a + f(v), |a, b| a + b)
}

#[inline(always)]
fn row_stats_body(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f64;
    let mean = sum_f64(x, |v| v as f64) / d;
    let var = sum_f64(x, |v| (v as f64 - mean) * (v as f64 - mean)) / d;
    let rstd = 1.0 / (var + eps as f64).sqrt();
    (mean as f32, rstd as f32)
}

#[inline(always)]
fn normalize_segment_body(x: &[f32], w: &[f32], b: &[f32], mean: f32, rstd: f32, out: &mut [f32]) {
    for (((o, &v), &w), &b) in out.iter_mut().zip(x).zip(w).zip(b) {
        *o = (v - mean) * rstd * w + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_rows() {
        let ln = LayerNorm { weight: vec![1.0, 2.0], bias: vec![0.5, 0.0], eps: 0.0 };
        let mut out = vec![0.0; 4];
        layer_norm(&[1.0, 3.0, -2.0, -2.0], &ln, &mut out);
        assert!((out[0] - -0.5).abs() < 1e-6 && (out[1] - 2.0).abs() < 1e-6);
        assert!(out[2].is_nan()); // zero variance with eps 0 is 0/0, NaN in PyTorch too
    }

    /// On every kernel's instruction set: the statistics (f64 lanes) and
    /// the normalised rows against an f64 reference, for widths that leave
    /// partial vectors. Tolerance 1e-5 relative to the row's scale: f32
    /// rounding of O(1) values.
    #[test]
    fn every_kernel_normalises_like_f64() {
        use crate::kernels::isa::{vectorize_on, Kernel};
        use crate::kernels::test_support::pseudo;
        for kernel in Kernel::supported_all() {
            for d in [1, 7, 16, 33, 768] {
                let x: Vec<f32> = pseudo(d, d as u32).iter().map(|v| 3.0 * v + 1.0).collect();
                let (w, b) = (pseudo(d, 2), pseudo(d, 3));
                let mean = x.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
                let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
                let rstd = 1.0 / (var + 1e-5).sqrt();
                let (m, r) = vectorize_on(kernel, || row_stats_body(&x, 1e-5));
                assert!((m as f64 - mean).abs() < 1e-6 && (r as f64 / rstd - 1.0).abs() < 1e-6);
                let mut out = vec![0.0; d];
                vectorize_on(kernel, || normalize_segment_body(&x, &w, &b, m, r, &mut out));
                for i in 0..d {
                    let want = (x[i] as f64 - mean) * rstd * w[i] as f64 + b[i] as f64;
                    assert!((out[i] as f64 - want).abs() < 1e-5, "{kernel} d={d} [{i}]");
                }
            }
        }
    }
}
