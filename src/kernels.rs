//! Numeric kernels: matrix products, layer norm, softmax, activations and
//! multi-head attention. The products run on packed AVX-512 micro-kernels
//! where the CPU has AVX-512F (`packed`, `avx512`, `int8`,
//! `attention_avx512`) and on the `gemm` crate elsewhere.
//!
//! All arithmetic is f32 with f32 accumulation inside the GEMM (as PyTorch on
//! the CPU); f16/bf16 weights are widened to f32 block by block inside
//! `matmul`, so they stay 16-bit in memory.

/// Defines `fn $name(args) -> ret` running `$body(args)` compiled for
/// AVX-512 when the CPU has it: the bodies' loops are written to vectorise,
/// and the baseline x86-64 target has only 4 lanes.
macro_rules! widest_simd {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($p:ident: $t:ty),*) $(-> $r:ty)? = $body:path) => {
        $(#[$m])*
        $vis fn $name($($p: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn wide($($p: $t),*) $(-> $r)? {
                    $body($($p),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: `wide` only needs AVX-512F, detected just above.
                    return unsafe { wide($($p),*) };
                }
            }
            $body($($p),*)
        }
    };
}

/// The switch of an in-process A/B experiment (feature `ab-experiment`):
/// code under test branches on [`experiment::on`] and `benches/ab.rs` times
/// calls alternately with it off and on. Without the feature it is a
/// constant `false`.
#[cfg(feature = "ab-experiment")]
#[doc(hidden)]
pub mod experiment {
    use std::sync::atomic::{AtomicBool, Ordering};

    static ON: AtomicBool = AtomicBool::new(false);

    /// Turns the variant under test on or off.
    pub fn set(on: bool) {
        ON.store(on, Ordering::Relaxed)
    }

    /// Whether the variant under test runs.
    pub fn on() -> bool {
        ON.load(Ordering::Relaxed)
    }
}

#[cfg(not(feature = "ab-experiment"))]
#[allow(dead_code)]
pub(crate) mod experiment {
    /// No experiment without the feature.
    pub(crate) const fn on() -> bool {
        false
    }
}

mod activation;
mod attention;
#[cfg(target_arch = "x86_64")]
mod attention_avx512;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod int8;
mod matmul;
mod norm;
mod packed;
pub(crate) mod team;

pub use activation::apply_activation;
pub(crate) use attention::attention_segments_to;
pub use attention::{attention, attention_picked, attention_segments, AttentionMask};
pub use matmul::{
    gemm_f32, linear, linear_accumulate, linear_activated, linear_strided, GemmOperand, Linear,
    Mat, Precision, StackedLinear,
};
pub(crate) use matmul::{linear_to, Input, PrecisionHandle};
pub(crate) use matmul::{widen_bf16, widen_f16};
pub use norm::{layer_norm, LayerNorm};
pub(crate) use packed::{packed_len, Dest, Epilogue, RowBlocks};

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

widest_simd!(fn softmax_all_rows(x: &mut [f32], n: usize) = softmax_rows_body);

/// A plain loop: `for_each(softmax_row)` was outlined into a generic `fold`
/// compiled without AVX-512.
#[inline(always)]
fn softmax_rows_body(x: &mut [f32], n: usize) {
    for row in x.chunks_mut(n) {
        softmax_row(row)
    }
}

/// One row; the reductions run in independent lanes ([`lane_fold`]) and the
/// exponential is [`activation::exp_approx`], so every loop vectorises.
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
        *v = if d < -87.0 { 0.0 } else { activation::exp_approx(d) };
    }
    let inv = 1.0 / lane_fold::<f32, 16>(row, 0.0, |a, v| a + v, |a, b| a + b);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Folds `x` in `L` independent lanes (`step` per element), then merges the
/// lanes in order and the remainder (`merge`): a reduction the compiler can
/// vectorise, where a single running float accumulator cannot be reordered.
#[inline(always)]
pub(crate) fn lane_fold<A: Copy, const L: usize>(
    x: &[f32],
    init: A,
    step: impl Fn(A, f32) -> A,
    merge: impl Fn(A, A) -> A,
) -> A {
    let mut lanes = [init; L];
    let chunks = x.chunks_exact(L);
    let tail = chunks.remainder().iter().fold(init, |a, &v| step(a, v));
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = step(*l, v);
        }
    }
    merge(lanes.iter().fold(init, |a, &l| merge(a, l)), tail)
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

/// Shared by the kernels' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    /// `n` deterministic pseudo-random values in [-0.5, 0.5) (an LCG).
    pub fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1u32 << 24) as f32) - 0.5
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
