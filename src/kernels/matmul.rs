//! Linear layers and the choice of the product that computes them: the
//! selected kernel's packed micro-kernel ([`PackedLinear`]), its int8
//! micro-kernel at [`Precision::Int8`], or the `gemm` crate
//! ([`gemm_crate`](super::gemm_crate)) for the `gemm` kernel.
//! [`linear`] computes `y = x W^T + b` for `[out, in]` weights in F32, F16
//! or BF16; 16-bit weights stay 16-bit in memory on every path.

use super::activation::apply_activation;
use super::gemm_crate::linear_fallback;
use super::int8::Int8Linear;
use super::norm::{layer_norm, LayerNorm};
use super::packed::{Dest, Epilogue, PackedLinear, RowBlocks};
use crate::config::Activation;
use crate::weights::WeightTensor;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

/// The rows a product multiplies.
#[derive(Clone, Copy)]
pub(crate) enum Input<'a> {
    /// `[m, k]` rows as they are.
    Rows(&'a [f32]),
    /// `layer_norm(x, ln)` of the `[m, k]` rows `x`. The packed kernel
    /// normalises each row as it packs it (one pass over the rows, no
    /// parallel step of its own); the other kernels into a scratch buffer
    /// first.
    Normed(&'a [f32], &'a LayerNorm),
    /// Rows already in the packed kernel's layout (`RowBlocks::new(m, k)`),
    /// where the step that computed them wrote them; from
    /// [`Linear::input_layout`].
    Packed(&'a [f32]),
}

impl<'a> Input<'a> {
    /// The slice given (for `Packed`, the packed buffer).
    pub(crate) fn rows(self) -> &'a [f32] {
        match self {
            Input::Rows(x) | Input::Normed(x, _) | Input::Packed(x) => x,
        }
    }

    /// The `[m, k]` rows to multiply, normalised or unpacked into `scratch`
    /// when it holds `m * k` (else into a new buffer). (A packed input meets
    /// a kernel other than the packed one only when the model's precision
    /// changed during the pass.)
    pub(crate) fn resolve<'s>(self, m: usize, k: usize, scratch: &'s mut [f32]) -> Cow<'s, [f32]>
    where
        'a: 's,
    {
        let n = m * k;
        // The rows of `self` into `dst` (`n` long).
        let write = |dst: &mut [f32]| match self {
            Input::Rows(x) => dst.copy_from_slice(&x[..n]),
            Input::Normed(x, ln) => layer_norm(&x[..n], ln, dst),
            Input::Packed(a) => RowBlocks::new(m, k).unpack(a, dst),
        };
        match self {
            Input::Rows(x) => Cow::Borrowed(x),
            _ if scratch.len() >= n => {
                write(&mut scratch[..n]);
                Cow::Borrowed(&scratch[..n])
            }
            _ => {
                let mut own = vec![0.0; n];
                write(&mut own);
                Cow::Owned(own)
            }
        }
    }
}

/// A weight matrix mapping `in_features` to `out_features`, stored
/// `[out, in]` (PyTorch's `nn.Linear` layout, `y = x W^T`).
#[derive(Clone)]
pub struct Mat {
    /// The stored elements (mapped or owned; F32, F16 or BF16).
    pub weight: WeightTensor,
    /// Output features.
    pub out_features: usize,
    /// Input features.
    pub in_features: usize,
}

/// How linear layers compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 arithmetic on the weights as stored (F32, F16 or BF16), f32
    /// accumulation: the numbers transformers gives (the default).
    #[default]
    Full,
    /// Int8 weights (one scale per output feature) times int8 activations
    /// (one scale per row, computed per product), summed exactly in i32:
    /// faster and less accurate (the README states the measured cost).
    /// Where the selected kernel has no int8 products
    /// ([`Kernel::has_int8`](super::Kernel::has_int8); today only AVX-512
    /// with VNNI has them) this is the same as `Full`.
    Int8,
}

impl Precision {
    /// Whether the selected kernel runs [`Precision::Int8`] with int8
    /// arithmetic on this CPU.
    pub fn int8_supported() -> bool {
        super::isa::selected().has_int8()
    }
}

/// The precision shared by every layer of one model (so it can be changed
/// after loading): a shared atomic.
#[derive(Clone, Default)]
pub(crate) struct PrecisionHandle(Arc<AtomicU8>);

impl PrecisionHandle {
    pub fn get(&self) -> Precision {
        match self.0.load(Ordering::Relaxed) {
            1 => Precision::Int8,
            _ => Precision::Full,
        }
    }

    pub fn set(&self, p: Precision) {
        self.0.store(p as u8, Ordering::Relaxed)
    }
}

/// A linear layer: a matrix and an optional bias (f32).
///
/// With a kernel that has its own micro-kernel (AVX-512, AVX2, NEON) the
/// matrix is packed for it on first use (see `kernels::packed`); the packed
/// copy is shared by clones of the layer.
#[derive(Clone)]
pub struct Linear {
    /// The weight.
    pub mat: Mat,
    /// The bias, one per output feature.
    pub bias: Option<Vec<f32>>,
    prepared: Prepared,
    precision: PrecisionHandle,
}

impl Linear {
    /// A layer of `mat` and `bias` (full precision).
    pub fn new(mat: Mat, bias: Option<Vec<f32>>) -> Self {
        Linear { mat, bias, prepared: Prepared::default(), precision: PrecisionHandle::default() }
    }

    /// The same layer following a model's shared precision.
    pub(crate) fn with_precision(mut self, precision: PrecisionHandle) -> Self {
        self.precision = precision;
        self
    }

    /// The layout of `m` input rows when this layer runs on the packed
    /// kernel (now): the step computing them can write them there, and the
    /// product then takes them as [`Input::Packed`] with no copy.
    pub(crate) fn input_layout(&self, m: usize) -> Option<RowBlocks> {
        match self.product() {
            Product::Packed(_) => Some(RowBlocks::new(m, self.mat.in_features)),
            _ => None,
        }
    }

    /// The implementation to use now, preparing it on first use.
    fn product(&self) -> Product<'_> {
        self.prepared.product(self.precision.get(), || vec![(&self.mat, self.bias.as_deref())])
    }
}

/// The forms of one matrix, or of stacked matrices, prepared for the
/// kernels on first use and shared by clones.
#[derive(Clone, Default)]
struct Prepared {
    packed: Arc<OnceLock<Option<PackedLinear>>>,
    int8: Arc<OnceLock<Option<Int8Linear>>>,
}

type Parts<'a> = Vec<(&'a Mat, Option<&'a [f32]>)>;

impl Prepared {
    /// The implementation for `precision`: int8 when asked for and the
    /// selected kernel has it, else the selected kernel's packed
    /// micro-kernel when it has one, else `gemm`. `parts` lists the
    /// matrices and biases, stacked in order.
    fn product<'a>(&'a self, precision: Precision, parts: impl Fn() -> Parts<'a>) -> Product<'a> {
        if precision == Precision::Int8 {
            if let Some(q) = self.int8.get_or_init(|| Int8Linear::quantize(&parts())) {
                return Product::Int8(q);
            }
        }
        match self.packed.get_or_init(|| PackedLinear::pack(&parts())) {
            Some(p) => Product::Packed(p),
            None => Product::Gemm,
        }
    }
}

/// Which implementation computes a product.
enum Product<'a> {
    Int8(&'a Int8Linear),
    Packed(&'a PackedLinear),
    /// The `gemm` crate on the weights as stored.
    Gemm,
}

/// Linear layers with the same input, computed as one product whose output
/// row is the parts' outputs side by side (e.g. query, key and value). The
/// parts follow the first one's precision (one model's layers share it).
#[derive(Clone)]
pub struct StackedLinear {
    parts: Vec<Linear>,
    prepared: Prepared,
}

impl StackedLinear {
    /// Stacks `parts`, which must share their input size.
    pub fn new(parts: Vec<Linear>) -> Self {
        StackedLinear { parts, prepared: Prepared::default() }
    }

    /// Output features of all parts together.
    pub fn out_features(&self) -> usize {
        self.parts.iter().map(|p| p.mat.out_features).sum()
    }

    fn in_features(&self) -> usize {
        self.parts.first().map_or(0, |p| p.mat.in_features)
    }

    /// `out[m, sum(out_features)] = [x W_1^T + b_1, x W_2^T + b_2, ...]`.
    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32], threads: usize) {
        self.forward_input(Input::Rows(x), &mut [], m, out, threads)
    }

    /// As [`StackedLinear::forward`] on `layer_norm(x, ln)`; `scratch`
    /// (`x.len()` long) receives the normalised rows when the kernel is not
    /// the packed one (which normalises them as it packs them).
    pub(crate) fn forward_normed(
        &self,
        x: &[f32],
        ln: &LayerNorm,
        scratch: &mut [f32],
        m: usize,
        out: &mut [f32],
        threads: usize,
    ) {
        self.forward_input(Input::Normed(x, ln), scratch, m, out, threads)
    }

    fn forward_input(
        &self,
        x: Input<'_>,
        scratch: &mut [f32],
        m: usize,
        out: &mut [f32],
        threads: usize,
    ) {
        let n = self.out_features();
        let precision = self.parts.first().map_or(Precision::Full, |p| p.precision.get());
        let parts = || self.parts.iter().map(|p| (&p.mat, p.bias.as_deref())).collect();
        match self.prepared.product(precision, parts) {
            Product::Int8(q) => q.forward(x, m, out, n, Epilogue::Store, threads),
            Product::Packed(p) => p.forward(x, m, out, n, Epilogue::Store, threads),
            Product::Gemm => {
                let x = x.resolve(m, self.in_features(), scratch);
                let mut col = 0;
                for part in &self.parts {
                    linear_fallback(&x, m, part, &mut out[col..], n, false, threads);
                    col += part.mat.out_features;
                }
            }
        }
    }
}

/// `out[m, out_features] = x[m, in_features] · W^T + b`, using up to
/// `threads` threads.
pub fn linear(x: &[f32], m: usize, layer: &Linear, out: &mut [f32], threads: usize) {
    debug_assert_eq!(out.len(), m * layer.mat.out_features);
    linear_into(x, m, layer, out, layer.mat.out_features, Epilogue::Store, threads)
}

/// `out[m, out_features] = act(x[m, in_features] · W^T + b)`: with the
/// packed kernels each thread applies the activation to the block it has
/// just computed, while it is in cache.
pub fn linear_activated(
    x: &[f32],
    m: usize,
    layer: &Linear,
    out: &mut [f32],
    act: Activation,
    threads: usize,
) {
    debug_assert_eq!(out.len(), m * layer.mat.out_features);
    linear_into(x, m, layer, out, layer.mat.out_features, Epilogue::Activate(act), threads)
}

/// `out[m, out_features] += x[m, in_features] · W^T + b` (a residual
/// connection fused into the product).
pub fn linear_accumulate(x: &[f32], m: usize, layer: &Linear, out: &mut [f32], threads: usize) {
    debug_assert_eq!(out.len(), m * layer.mat.out_features);
    linear_into(x, m, layer, out, layer.mat.out_features, Epilogue::Accumulate, threads)
}

/// As [`linear`], writing row `i` of the result at `out[i * out_rs..]`
/// (e.g. into one third of a fused `[m, 3D]` query/key/value buffer).
pub fn linear_strided(
    x: &[f32],
    m: usize,
    layer: &Linear,
    out: &mut [f32],
    out_rs: usize,
    threads: usize,
) {
    linear_into(x, m, layer, out, out_rs, Epilogue::Store, threads)
}

/// [`linear_to`] from rows of `x` to rows of `out` (stride `out_rs`).
fn linear_into(
    x: &[f32],
    m: usize,
    layer: &Linear,
    out: &mut [f32],
    out_rs: usize,
    epilogue: Epilogue,
    threads: usize,
) {
    debug_assert_eq!(x.len(), m * layer.mat.in_features);
    let dest = Dest::Rows(out_rs);
    linear_to(Input::Rows(x), &mut [], m, layer, out, dest, epilogue, threads)
}

/// `x W^T + b` for the `m` rows of `x` (see [`Input`]; `scratch`, `m * k`
/// long or empty, takes normalised or unpacked rows for kernels that need
/// them), written to `out` as `dest` lays rows out and finished by
/// `epilogue`. A [`Dest::Packed`] layout comes from the next layer's
/// [`Linear::input_layout`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_to(
    x: Input<'_>,
    scratch: &mut [f32],
    m: usize,
    layer: &Linear,
    out: &mut [f32],
    dest: Dest<'_>,
    epilogue: Epilogue,
    threads: usize,
) {
    let (n, k) = (layer.mat.out_features, layer.mat.in_features);
    let product = layer.product();
    if let Product::Packed(p) = product {
        return p.forward_to(x, m, out, dest, epilogue, threads);
    }
    let out_rs = match dest {
        Dest::Rows(rs) => rs,
        Dest::Packed(layout) => {
            // Only when the precision changed during the pass: rows first.
            let mut rows = vec![0.0f32; m * n];
            linear_to(x, scratch, m, layer, &mut rows, Dest::Rows(n), epilogue, threads);
            return layout.pack(Input::Rows(&rows), out, 1);
        }
    };
    match product {
        Product::Int8(q) => q.forward(x, m, out, out_rs, epilogue, threads),
        Product::Packed(_) | Product::Gemm => {
            let x = x.resolve(m, k, scratch);
            linear_fallback(&x, m, layer, out, out_rs, epilogue.accumulates(), threads);
            if let Epilogue::Activate(act) = epilogue {
                // Only `linear_activated` asks for an activation, and it
                // writes contiguous rows.
                debug_assert_eq!(out_rs, layer.mat.out_features);
                apply_activation(act, &mut out[..m * out_rs]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_support::pseudo;
    use crate::weights::{DType, WeightTensor};
    use half::{bf16, f16};

    fn naive(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, b: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = b[j] as f64;
                for t in 0..k {
                    s += x[i * k + t] as f64 * w[j * k + t] as f64;
                }
                out[i * n + j] = s as f32;
            }
        }
        out
    }

    #[test]
    fn linear_matches_naive_in_every_layout_and_dtype() {
        let (m, n, k) = (5, 300, 70);
        let x = pseudo(m * k, 1);
        // Round weights to f16-representable values so every dtype sees the same matrix.
        let w: Vec<f32> = pseudo(n * k, 2).iter().map(|&v| f16::from_f32(v).to_f32()).collect();
        let b = pseudo(n, 3);
        let expected = naive(&x, m, &w, n, k, &b);
        {
            let (data, shape) = (&w, vec![n, k]);
            for dtype in [DType::F32, DType::F16, DType::BF16] {
                let vals: Vec<f32> = match dtype {
                    DType::BF16 => data.iter().map(|&v| bf16::from_f32(v).to_f32()).collect(),
                    _ => data.to_vec(),
                };
                let exp = if dtype == DType::BF16 {
                    let wb: Vec<f32> = w.iter().map(|&v| bf16::from_f32(v).to_f32()).collect();
                    naive(&x, m, &wb, n, k, &b)
                } else {
                    expected.clone()
                };
                let weight = WeightTensor::from_f32_as(&vals, shape.clone(), dtype);
                let layer =
                    Linear::new(Mat { weight, out_features: n, in_features: k }, Some(b.clone()));
                for threads in [1, 2] {
                    let mut out = vec![f32::NAN; m * n];
                    linear(&x, m, &layer, &mut out, threads);
                    let err = out.iter().zip(&exp).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                    assert!(err < 1e-5, "{dtype:?} threads={threads}: max err {err}");
                    // The `gemm` path directly (what CPUs without the packed
                    // kernel run), overwriting and accumulating.
                    let mut out = vec![f32::NAN; m * n];
                    linear_fallback(&x, m, &layer, &mut out, n, false, threads);
                    let err = out.iter().zip(&exp).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                    assert!(err < 1e-5, "gemm {dtype:?} threads={threads}: max err {err}");
                    let before = pseudo(m * n, 9);
                    let mut out = before.clone();
                    linear_fallback(&x, m, &layer, &mut out, n, true, threads);
                    let err = out
                        .iter()
                        .zip(exp.iter().zip(&before))
                        .map(|(a, (e, b0))| (a - e - b0).abs())
                        .fold(0.0, f32::max);
                    assert!(err < 1e-5, "gemm accumulate {dtype:?} threads={threads}: {err}");
                }
            }
        }
    }

    /// The activation applied by each share of the product gives exactly
    /// (bit for bit) the product followed by a pass of the same activation,
    /// at full precision and int8, on 1 and 2 threads, with several row
    /// blocks (k = 3000) and panel tails (n = 300).
    #[test]
    fn activated_product_equals_product_then_activation() {
        let (m, n, k) = (100, 300, 3000);
        let x = pseudo(m * k, 1);
        let weight = WeightTensor::from_f32_as(&pseudo(n * k, 2), vec![n, k], DType::F32);
        let handle = PrecisionHandle::default();
        let layer =
            Linear::new(Mat { weight, out_features: n, in_features: k }, Some(pseudo(n, 3)))
                .with_precision(handle.clone());
        let mut precisions = vec![Precision::Full];
        if Precision::int8_supported() {
            precisions.push(Precision::Int8);
        }
        for precision in precisions {
            handle.set(precision);
            for act in [Activation::QuickGelu, Activation::Gelu] {
                for threads in [1, 2] {
                    let mut want = vec![f32::NAN; m * n];
                    linear(&x, m, &layer, &mut want, threads);
                    apply_activation(act, &mut want);
                    let mut got = vec![f32::NAN; m * n];
                    linear_activated(&x, m, &layer, &mut got, act, threads);
                    let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{precision:?} {act:?} threads={threads}");
                }
            }
        }
    }
    /// Kernels other than the packed one take normalised or packed rows
    /// through `resolve`: into the scratch buffer when it is long enough,
    /// else into a buffer of their own. A packed destination on such a
    /// kernel (the precision changed during a pass) gets the rows packed.
    #[test]
    fn other_kernels_take_every_form_of_input_and_output() {
        let (m, n, k) = (9, 70, 300);
        let x = pseudo(m * k, 1);
        let ln = LayerNorm { weight: pseudo(k, 2), bias: pseudo(k, 3), eps: 1e-5 };
        let mut normed = vec![0.0; m * k];
        layer_norm(&x, &ln, &mut normed);
        let layout = RowBlocks::new(m, k);
        let mut packed = vec![0.0; layout.len()];
        layout.pack(Input::Rows(&x), &mut packed, 1);
        for scratch_len in [m * k, 0] {
            let mut scratch = vec![0.0; scratch_len];
            assert!(*Input::Normed(&x, &ln).resolve(m, k, &mut scratch) == *normed);
            assert!(*Input::Packed(&packed).resolve(m, k, &mut scratch) == *x);
        }
        if !Precision::int8_supported() {
            println!("skipped the int8 part: the selected kernel has no int8 products here");
            return;
        }
        let weight = WeightTensor::from_f32_as(&pseudo(n * k, 4), vec![n, k], DType::F32);
        let handle = PrecisionHandle::default();
        handle.set(Precision::Int8);
        let mat = Mat { weight, out_features: n, in_features: k };
        let layer = Linear::new(mat, Some(pseudo(n, 5))).with_precision(handle);
        let act = Epilogue::Activate(Activation::QuickGelu);
        let mut rows = vec![0.0; m * n];
        linear_to(Input::Normed(&x, &ln), &mut [], m, &layer, &mut rows, Dest::Rows(n), act, 2);
        let out_layout = RowBlocks::new(m, n);
        let mut out = vec![0.0; out_layout.len()];
        let dest = Dest::Packed(&out_layout);
        linear_to(Input::Normed(&x, &ln), &mut [], m, &layer, &mut out, dest, act, 2);
        let mut back = vec![0.0; m * n];
        out_layout.unpack(&out, &mut back);
        assert!(back == rows);
    }
}
