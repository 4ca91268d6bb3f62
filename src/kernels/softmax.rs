//! Row-wise softmax and L2 normalisation.

use super::activation::exp_approx;
use super::isa::vectorized;
use super::simd::lane_fold;

/// Softmax over each row of length `n` of `x`, in place: subtracts the row
/// maximum first, so large logits do not overflow. Rows whose entries are all
/// `-inf` become all zeros rather than NaN; an entry more than 87 below its
/// row's maximum (a masked one) gets exactly zero.
pub fn softmax_rows(x: &mut [f32], n: usize) {
    if n == 0 {
        return;
    }
    softmax_all_rows(x, n)
}

vectorized!(fn softmax_all_rows(x: &mut [f32], n: usize) = softmax_rows_body);

/// A plain loop: `for_each(softmax_row)` was outlined into a generic `fold`
/// compiled without the instruction set's features.
#[inline(always)]
fn softmax_rows_body(x: &mut [f32], n: usize) {
    for row in x.chunks_mut(n) {
        softmax_row(row)
    }
}

/// One row; the reductions run in independent lanes ([`lane_fold`]) and the
/// exponential is [`exp_approx`], so every loop vectorises.
#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let max = lane_fold::<f32, 16>(row, f32::NEG_INFINITY, f32::max, f32::max);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    for v in row.iter_mut() {
        let d = *v - max;
        // Below -87, e^d is under f32's normal range: zero, as masked scores need.
        *v = if d < -87.0 { 0.0 } else { exp_approx(d) };
    }
    let inv = 1.0 / lane_fold::<f32, 16>(row, 0.0, |a, v| a + v, |a, b| a + b);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Scales each row of width `n` to unit L2 norm, as transformers'
/// `_get_vector_norm` does (`x / sqrt(sum x^2)`, no epsilon: a zero row
/// becomes NaN there; here it stays zero).
pub fn l2_normalize_rows(x: &mut [f32], n: usize) {
    if n == 0 {
        return;
    }
    for row in x.chunks_mut(n) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            for v in row.iter_mut() {
                *v /= norm;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::isa::{vectorize_on, Kernel};

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let mut x = vec![1000.0, 1001.0, 1002.0, f32::NEG_INFINITY, 0.0, 0.0];
        softmax_rows(&mut x, 3);
        assert!((x[0..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[2] > x[1] && x[1] > x[0]);
        assert_eq!(x[3], 0.0);
        assert!((x[4] - 0.5).abs() < 1e-7);
        let mut all_masked = vec![f32::NEG_INFINITY; 4];
        softmax_rows(&mut all_masked, 4);
        assert_eq!(all_masked, vec![0.0; 4]);
    }

    /// On every kernel's instruction set, rows of 1 to 77 scores against
    /// f64 (tolerance 1e-6 absolute: probabilities in [0, 1], f32 sums of
    /// at most 77 terms), with a masked (`f32::MIN` below) entry exactly 0.
    #[test]
    fn every_kernel_matches_f64() {
        for kernel in Kernel::supported_all() {
            for n in [1, 5, 16, 50, 77] {
                let mut x: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) / 3.0).collect();
                if n > 2 {
                    x[1] = f32::MIN;
                }
                let max = x.iter().cloned().fold(f32::MIN, f32::max) as f64;
                let z: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
                let want: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp() / z).collect();
                vectorize_on(kernel, || softmax_rows_body(&mut x, n));
                for (i, (&g, w)) in x.iter().zip(&want).enumerate() {
                    assert!((g as f64 - w).abs() < 1e-6, "{kernel} n={n} [{i}]: {g} vs {w}");
                }
                if n > 2 {
                    assert_eq!(x[1], 0.0, "{kernel} n={n}");
                }
            }
        }
    }
}
