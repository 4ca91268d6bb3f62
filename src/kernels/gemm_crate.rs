//! Products on the `gemm` crate: the [`Kernel::Gemm`](super::Kernel::Gemm)
//! path, and the scores and contexts of attention heads on it.
//!
//! [`gemm_f32`] is the one place that calls into `gemm` (an `unsafe` API
//! taking raw pointers and strides); it checks every stride against the
//! slice it addresses first. 16-bit weights are widened to f32 a block of
//! output features at a time, so the model keeps them 16-bit in memory.
//! `gemm` picks its own SIMD code at run time (AVX-512, FMA, NEON, scalar).

use super::linear_product::Mat;
use crate::weights::{widen_bf16, widen_f16, WeightView};
use gemm::Parallelism;

/// One operand of [`gemm_f32`]: a slice and the strides of its rows and columns.
#[derive(Clone, Copy)]
pub struct GemmOperand<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Distance between consecutive rows.
    pub row_stride: usize,
    /// Distance between consecutive columns.
    pub col_stride: usize,
}

fn max_offset(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows - 1) * rs + (cols - 1) * cs
}

/// The destination of [`gemm_f32`]: row-major rows at `row_stride`
/// (column stride 1), overwritten or added to.
pub struct GemmDst<'a> {
    /// The elements.
    pub data: &'a mut [f32],
    /// Distance between consecutive rows.
    pub row_stride: usize,
    /// Add the product to the current values instead of overwriting them.
    pub accumulate: bool,
}

/// `dst[m, n] = (accumulate ? dst : 0) + scale * lhs[m, k] · rhs[k, n]`,
/// using up to `threads` rayon threads inside the product (1 = none).
///
/// # Panics
/// If a stride would address outside its slice.
pub fn gemm_f32(
    (m, n, k): (usize, usize, usize),
    dst: GemmDst<'_>,
    lhs: GemmOperand<'_>,
    rhs: GemmOperand<'_>,
    scale: f32,
    threads: usize,
) {
    let GemmDst { data: dst, row_stride: dst_rs, accumulate } = dst;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(max_offset(m, n, dst_rs, 1) < dst.len(), "gemm: dst out of bounds");
    assert!(
        max_offset(m, k, lhs.row_stride, lhs.col_stride) < lhs.data.len(),
        "gemm: lhs out of bounds"
    );
    assert!(
        max_offset(k, n, rhs.row_stride, rhs.col_stride) < rhs.data.len(),
        "gemm: rhs out of bounds"
    );
    let parallelism = if threads > 1 && m * n * k >= 64 * 64 * 64 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the three asserts above prove that every element the product
    // addresses (row r < m / k, column c < k / n, at r*rs + c*cs) lies inside
    // its slice; `dst` is borrowed mutably and the inputs immutably, so they
    // do not alias; f32 is one of the types `gemm` supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Rows of widened weights per block: about 1 MiB of f32 scratch.
fn block_rows(in_features: usize) -> usize {
    ((1 << 18) / in_features.max(1)).clamp(16, 4096)
}

/// `out[i, :] (+)= x[i, :] W^T + b` on the `gemm` crate, row `i` of `out`
/// at `i * out_rs` (the `gemm` kernel's products).
pub(crate) fn linear_fallback(
    x: &[f32],
    m: usize,
    (mat, bias): (&Mat, Option<&[f32]>),
    out: &mut [f32],
    out_rs: usize,
    accumulate: bool,
    threads: usize,
) {
    let (n, k) = (mat.out_features, mat.in_features);
    if m == 0 {
        return;
    }
    let accumulate = match bias {
        Some(b) => {
            for i in 0..m {
                let row = &mut out[i * out_rs..i * out_rs + n];
                if accumulate {
                    row.iter_mut().zip(b).for_each(|(o, b)| *o += b);
                } else {
                    row.copy_from_slice(b);
                }
            }
            true
        }
        None => accumulate,
    };
    let lhs = GemmOperand { data: x, row_stride: k, col_stride: 1 };
    match mat.weight.view() {
        WeightView::F32(w) => {
            // B[k, n] = W^T: element (kk, nn) of the [out, in] storage is at nn*k + kk.
            let rhs = GemmOperand { data: w, row_stride: 1, col_stride: k };
            gemm_f32(
                (m, n, k),
                GemmDst { data: out, row_stride: out_rs, accumulate },
                lhs,
                rhs,
                1.0,
                threads,
            );
        }
        WeightView::F16(w) => {
            let dst = (out, out_rs, accumulate);
            linear_widened(w, widen_f16, lhs, (m, n, k), dst, threads)
        }
        WeightView::BF16(w) => {
            let dst = (out, out_rs, accumulate);
            linear_widened(w, widen_bf16, lhs, (m, n, k), dst, threads)
        }
        WeightView::I8 { .. } => {
            // Full precision on a quantized checkpoint with the gemm kernel:
            // the matrix widened on every call (int8 is its precision).
            let w = mat.weight.to_f32_vec();
            let rhs = GemmOperand { data: &w, row_stride: 1, col_stride: k };
            let dst = GemmDst { data: out, row_stride: out_rs, accumulate };
            gemm_f32((m, n, k), dst, lhs, rhs, 1.0, threads);
        }
    }
}

fn linear_widened<T: Copy + Send + Sync>(
    w: &[T],
    widen: fn(&[T], &mut [f32]),
    lhs: GemmOperand<'_>,
    (m, n, k): (usize, usize, usize),
    (out, out_rs, accumulate): (&mut [f32], usize, bool),
    threads: usize,
) {
    use rayon::prelude::*;
    let nb = block_rows(k).min(n);
    let mut scratch = vec![0.0f32; nb * k];
    let mut n0 = 0;
    while n0 < n {
        let rows = nb.min(n - n0);
        let block = &mut scratch[..rows * k];
        // Widen output features n0..n0+rows into an [rows, k] f32 block.
        block
            .par_chunks_mut(k)
            .enumerate()
            .for_each(|(r, dst)| widen(&w[(n0 + r) * k..(n0 + r + 1) * k], dst));
        let rhs = GemmOperand { data: block, row_stride: 1, col_stride: k };
        gemm_f32(
            (m, rows, k),
            GemmDst { data: &mut out[n0..], row_stride: out_rs, accumulate },
            lhs,
            rhs,
            1.0,
            threads,
        );
        n0 += rows;
    }
}
