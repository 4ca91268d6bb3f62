//! Numeric kernels: matrix products, layer norm, softmax, activations and
//! multi-head attention, organised by instruction set.
//!
//! Each process runs one [`Kernel`]: the fastest this CPU supports
//! (AVX-512, AVX2 + FMA, NEON), or the one the `CLIP_KERNEL` environment
//! variable names ([`active_kernel`]); `gemm` runs the products on the
//! `gemm` crate and the element-wise loops as the compiler vectorises them
//! for the target's baseline. Products accumulate in f32 (int8 products,
//! at [`Precision::Int8`], in i32); F16 and BF16 weights stay 16-bit in
//! memory and are widened to f32 inside the products.
//!
//! Map: `isa` (the kernel interface and the choice of kernel), `simd`
//! (the f32 vector the generic bodies are written over), `x86_64/` and
//! `aarch64/` (one file per instruction set), `packed` (weight panels,
//! activation layout, tasks, epilogues: the tiling every instruction set
//! shares), `int8`, `gemm_crate` (the `gemm` kernel's products),
//! `linear_product` (a linear layer's product and which kernel computes it), `attention`
//! and `attention_heads`, `norm`, `softmax`, `activation`, `team` (the
//! threads of a pass).

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

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod activation;
mod attention;
mod attention_heads;
mod gemm_crate;
mod int8;
pub(crate) mod isa;
mod linear_product;
mod norm;
mod packed;
mod simd;
mod softmax;
pub(crate) mod team;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use activation::apply_activation;
pub(crate) use attention::attention_segments_to;
pub use attention::{attention, attention_picked, attention_segments, AttentionMask, Heads};
pub use gemm_crate::{gemm_f32, GemmDst, GemmOperand};
pub(crate) use int8::quantize_weight_row;
pub use int8::{Int8Dot, INT8_DOT_ENV};
pub use isa::{active_kernel, Kernel, KERNEL_ENV};
pub(crate) use linear_product::{Input, LinearProduct, Part, PrecisionHandle};
pub use linear_product::{Mat, Precision};
pub use norm::{layer_norm, LayerNorm};
pub(crate) use packed::{packed_len, Dest, Epilogue, RowBlocks};
pub use softmax::{l2_normalize_rows, softmax_rows};

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

    /// `x W^T + b` in f64 for `m` rows of `x` (`[m, k]`) and `w` `[n, k]`:
    /// the reference the products are checked against.
    pub fn linear_f64(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, b: &[f32]) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k).map(|t| x[i * k + t] as f64 * w[j * k + t] as f64).sum();
                out[i * n + j] = dot + b[j] as f64;
            }
        }
        out
    }
}
