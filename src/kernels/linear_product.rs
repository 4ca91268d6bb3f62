//! The product of a linear layer, `y = x W^T + b` for `[out, in]` weights
//! in F32, F16 or BF16 (one matrix, or several stacked along the output),
//! and the choice of what computes it: the selected kernel's packed
//! micro-kernel ([`PackedLinear`]), its int8 micro-kernel at
//! [`Precision::Int8`], or the `gemm` crate ([`gemm_crate`](super::gemm_crate))
//! for the `gemm` kernel. 16-bit weights stay 16-bit in memory on every
//! path. The model-facing layer is [`crate::layers::Linear`].

use super::activation::activation_fn;
use super::gemm_crate::linear_fallback;
use super::int8::{Int8Dot, Int8Linear};
use super::norm::{layer_norm, LayerNorm};
use super::packed::{Dest, Epilogue, PackedLinear, RowBlocks};
use crate::error::{Error, Result};
use crate::weights::{DType, WeightTensor};
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
    /// [`LinearProduct::input_layout`].
    Packed(&'a [f32]),
}

impl<'a> Input<'a> {
    /// The slice given (for `Packed`, the packed buffer).
    pub(crate) fn rows(self) -> &'a [f32] {
        match self {
            Input::Rows(x) | Input::Normed(x, _) | Input::Packed(x) => x,
        }
    }

    /// Calls `f` with the `[m, k]` rows to multiply: `Rows` as they are;
    /// the others normalised or unpacked into a buffer of this thread's,
    /// reused from one product to the next. (A packed input meets a kernel
    /// other than the packed one only when the model's precision changed
    /// during the pass.)
    pub(crate) fn with_rows<R>(self, m: usize, k: usize, f: impl FnOnce(&[f32]) -> R) -> R {
        let n = m * k;
        let write = |dst: &mut [f32]| match self {
            Input::Rows(x) => dst.copy_from_slice(&x[..n]),
            Input::Normed(x, ln) => layer_norm(&x[..n], ln, dst),
            Input::Packed(a) => RowBlocks::new(m, k).unpack(a, dst),
        };
        if let Input::Rows(x) = self {
            return f(&x[..n]);
        }
        // Taken out while in use: `f` may run another product on this thread.
        let mut rows = ROWS.take();
        rows.resize(n, 0.0);
        write(&mut rows);
        let result = f(&rows);
        ROWS.set(rows);
        result
    }
}

thread_local! {
    /// The rows [`Input::with_rows`] normalises or unpacks (reused).
    static ROWS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A weight matrix mapping `in_features` to `out_features`, stored
/// `[out, in]` (PyTorch's `nn.Linear` layout, `y = x W^T`).
#[derive(Clone)]
pub struct Mat {
    /// The stored elements (mapped or owned; F32, F16, BF16, or I8 with row
    /// scales).
    pub weight: WeightTensor,
    /// Output features.
    pub out_features: usize,
    /// Input features.
    pub in_features: usize,
}

impl Mat {
    /// The same matrix as F32 values (a copy; for I8, `q * scale`).
    pub(crate) fn widened(&self) -> Mat {
        let shape = vec![self.out_features, self.in_features];
        let weight = WeightTensor::from_f32_as(&self.weight.to_f32_vec(), shape, DType::F32);
        Mat { weight, ..*self }
    }
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
    /// faster and less accurate (the README states the measured cost), the
    /// same numbers on every CPU, kernel and [`Int8Dot`]. (The one kernel
    /// without int8 products of its own, avx512 on a CPU without AVX-512
    /// VNNI, runs them on the avx2 kernel.)
    Int8,
}

impl Precision {
    /// Whether [`Precision::Int8`] computes with int8 arithmetic: on every
    /// CPU (kept for callers written when some computed it in f32).
    pub fn int8_supported() -> bool {
        Self::int8_dot().is_some()
    }

    /// The instructions [`Precision::Int8`]'s products run on this CPU (the
    /// selected kernel's [`Kernel::int8_dot`](super::Kernel::int8_dot), or
    /// another kernel's where it has none). Always `Some`.
    pub fn int8_dot() -> Option<Int8Dot> {
        Some(super::int8::int8_runner(super::isa::selected()).1)
    }
}

/// The precision shared by the products of one model (so that it can be
/// changed after loading): a shared atomic.
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

/// One matrix of a linear layer and its optional bias.
pub(crate) type Part = (Mat, Option<Vec<f32>>);

/// The matrices and biases of a linear layer (several stacked along the
/// output dimension, e.g. query, key and value, computed as one product),
/// the precision it follows, and the forms prepared for the kernels on
/// their first use (packed panels, int8 panels), shared by clones.
#[derive(Clone)]
pub(crate) struct LinearProduct {
    parts: Arc<[Part]>,
    out_features: usize,
    in_features: usize,
    precision: PrecisionHandle,
    prepared: Prepared,
}

impl LinearProduct {
    /// The product of `parts` stacked in order (one part: a plain layer),
    /// which [`LinearProduct::check`] accepts (or whose tensors a loader
    /// has checked: a missing one is an empty stand-in until the loader
    /// reports it).
    pub fn new(parts: Vec<Part>, precision: PrecisionHandle) -> Self {
        let in_features = parts.first().map_or(0, |(m, _)| m.in_features);
        let out_features = parts.iter().map(|(m, _)| m.out_features).sum();
        let prepared = Prepared::default();
        LinearProduct { parts: parts.into(), out_features, in_features, precision, prepared }
    }

    /// The precision the product follows.
    pub fn precision(&self) -> &PrecisionHandle {
        &self.precision
    }

    /// Whether `parts` make a product.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
    /// when there is no part, a matrix's element count is not `out * in`, a
    /// bias is not `out` long, or the parts' input sizes differ.
    pub fn check(parts: &[Part]) -> Result<()> {
        let in_features = parts
            .first()
            .ok_or_else(|| Error::invalid("a linear layer needs a matrix"))?
            .0
            .in_features;
        for (mat, bias) in parts {
            let (n, k) = (mat.out_features, mat.in_features);
            if mat.weight.numel() != n * k {
                return Err(Error::invalid(format!(
                    "a [{n}, {k}] linear layer has a weight of {} elements",
                    mat.weight.numel()
                )));
            }
            if let Some(b) = bias.as_ref().filter(|b| b.len() != n) {
                return Err(Error::invalid(format!(
                    "a linear layer of {n} outputs has a bias of {}",
                    b.len()
                )));
            }
            if k != in_features {
                return Err(Error::invalid(format!(
                    "stacked linear layers take {in_features} and {k} inputs: they must agree"
                )));
            }
        }
        Ok(())
    }

    /// The matrices and biases, in order.
    pub fn into_parts(self) -> Vec<Part> {
        self.parts.to_vec()
    }

    /// Output features of all parts together.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// The implementation for the current precision, preparing it on
    /// first use.
    fn product(&self) -> Product<'_> {
        let parts = || self.parts.iter().map(|(m, b)| (m, b.as_deref())).collect();
        self.prepared.product(self.precision.get(), parts)
    }

    /// The layout of `m` input rows when the product runs on the packed
    /// kernel (now): the step computing them can write them there, and the
    /// product then takes them as [`Input::Packed`] with no copy.
    pub fn input_layout(&self, m: usize) -> Option<RowBlocks> {
        match self.product() {
            Product::Packed(_) => Some(RowBlocks::new(m, self.in_features)),
            _ => None,
        }
    }

    /// `x W^T + b` for the `m` rows of `x` (see [`Input`]), written to
    /// `out` as `dest` lays rows out and finished by `epilogue`. A
    /// [`Dest::Packed`] layout comes from the next product's
    /// [`LinearProduct::input_layout`].
    ///
    /// # Panics
    /// If `x` or `out` is too short for `m` rows (an internal bug).
    pub fn forward_to(
        &self,
        x: Input<'_>,
        m: usize,
        out: &mut [f32],
        dest: Dest<'_>,
        epilogue: Epilogue,
        threads: usize,
    ) {
        let (n, k) = (self.out_features, self.in_features);
        let product = self.product();
        if let Product::Packed(p) = product {
            return p.forward_to(x, m, out, dest, epilogue, threads);
        }
        let out_rs = match dest {
            Dest::Rows(rs) => rs,
            Dest::Packed(layout) => {
                // Only when the precision changed during the pass: rows first.
                let mut rows = vec![0.0f32; m * n];
                self.forward_to(x, m, &mut rows, Dest::Rows(n), epilogue, threads);
                return layout.pack(Input::Rows(&rows), out, 1);
            }
        };
        match product {
            Product::Int8(q) => q.forward(x, m, out, out_rs, epilogue, threads),
            Product::Packed(_) | Product::Gemm => {
                let accumulate = epilogue.accumulates();
                x.with_rows(m, k, |x| {
                    let mut col = 0;
                    for (mat, bias) in self.parts.iter() {
                        let part = (mat, bias.as_deref());
                        linear_fallback(x, m, part, &mut out[col..], out_rs, accumulate, threads);
                        col += mat.out_features;
                    }
                });
                if let Epilogue::Activate(act) = epilogue {
                    let f = activation_fn(act);
                    out.chunks_mut(out_rs).take(m).for_each(|row| f(&mut row[..n]));
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;
    use crate::kernels::activation::apply_activation;
    use crate::kernels::test_support::{linear_f64, pseudo};
    use crate::weights::DType;
    use half::{bf16, f16};

    /// The f64 reference, rounded to f32.
    fn naive(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, b: &[f32]) -> Vec<f32> {
        linear_f64(x, m, w, n, k, b).into_iter().map(|v| v as f32).collect()
    }

    fn mat(values: &[f32], n: usize, k: usize, dtype: DType) -> Mat {
        let weight = WeightTensor::from_f32_as(values, vec![n, k], dtype);
        Mat { weight, out_features: n, in_features: k }
    }

    /// A product of `parts` at full precision.
    fn product(parts: Vec<Part>) -> LinearProduct {
        LinearProduct::new(parts, PrecisionHandle::default())
    }

    /// `out = x W^T + b` (or `out += ...`, ...) into rows.
    fn run(p: &LinearProduct, x: &[f32], m: usize, out: &mut [f32], e: Epilogue, threads: usize) {
        p.forward_to(Input::Rows(x), m, out, Dest::Rows(p.out_features()), e, threads)
    }

    /// Each dtype against f64, through the selected kernel and through the
    /// `gemm` crate directly (what the `gemm` kernel runs), overwriting and
    /// accumulating, for one matrix and for three stacked parts (one
    /// without a bias). Tolerance 1e-5: sums of 70 products of O(0.25).
    #[test]
    fn product_matches_naive_in_every_dtype_and_stack() {
        let (m, n, k) = (5, 300, 70);
        let x = pseudo(m * k, 1);
        // Round weights to f16-representable values so every dtype sees the same matrix.
        let w: Vec<f32> = pseudo(n * k, 2).iter().map(|&v| f16::from_f32(v).to_f32()).collect();
        let b = pseudo(n, 3);
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let vals: Vec<f32> = match dtype {
                DType::BF16 => w.iter().map(|&v| bf16::from_f32(v).to_f32()).collect(),
                _ => w.clone(),
            };
            // The stacked parts: rows 0..100 (bias), 100..250 (no bias), 250..300 (bias).
            let mut b_stacked = b.clone();
            b_stacked[100..250].fill(0.0);
            let exp_one = naive(&x, m, &vals, n, k, &b);
            let exp_stacked = naive(&x, m, &vals, n, k, &b_stacked);
            let one = product(vec![(mat(&vals, n, k, dtype), Some(b.clone()))]);
            let part = |r0: usize, r1: usize, bias: bool| {
                let m = mat(&vals[r0 * k..r1 * k], r1 - r0, k, dtype);
                (m, bias.then(|| b[r0..r1].to_vec()))
            };
            let parts = vec![part(0, 100, true), part(100, 250, false), part(250, 300, true)];
            LinearProduct::check(&parts).unwrap();
            let stacked = product(parts);
            for (what, p, exp) in [("one", &one, &exp_one), ("stacked", &stacked, &exp_stacked)] {
                for threads in [1, 2] {
                    let case = format!("{what} {dtype:?} threads={threads}");
                    let mut out = vec![f32::NAN; m * n];
                    run(p, &x, m, &mut out, Epilogue::Store, threads);
                    let err = out.iter().zip(exp).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                    assert!(err < 1e-5, "{case}: max err {err}");
                    let before = pseudo(m * n, 9);
                    let mut out = before.clone();
                    run(p, &x, m, &mut out, Epilogue::Accumulate, threads);
                    let err = out
                        .iter()
                        .zip(exp.iter().zip(&before))
                        .map(|(a, (e, b0))| (a - e - b0).abs())
                        .fold(0.0, f32::max);
                    assert!(err < 1e-5, "{case} accumulate: {err}");
                }
            }
            // The `gemm` path directly, overwriting.
            let m1 = mat(&vals, n, k, dtype);
            for threads in [1, 2] {
                let mut out = vec![f32::NAN; m * n];
                linear_fallback(&x, m, (&m1, Some(&b)), &mut out, n, false, threads);
                let err = out.iter().zip(&exp_one).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(err < 1e-5, "gemm {dtype:?} threads={threads}: max err {err}");
            }
        }
    }

    /// Malformed parts are refused with a message, not a panic later; a
    /// consistent stack (mixed dtypes, a bias missing) passes.
    #[test]
    fn inconsistent_parts_are_refused() {
        let w = pseudo(12, 1);
        let good =
            [(mat(&w, 3, 4, DType::F32), Some(vec![0.0; 3])), (mat(&w, 3, 4, DType::F16), None)];
        LinearProduct::check(&good).unwrap();
        // A [3, 4] tensor declared as a 3 x 5 matrix.
        let wrong_size = Mat { in_features: 5, ..mat(&w, 3, 4, DType::F32) };
        let bad = [
            vec![],
            vec![(wrong_size, None)],
            vec![(mat(&w, 3, 4, DType::F32), Some(vec![0.0; 2]))],
            vec![(mat(&w, 3, 4, DType::F32), None), (mat(&w, 4, 3, DType::F32), None)],
        ];
        for parts in bad {
            let e = LinearProduct::check(&parts).expect_err("refused");
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
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
        let p = product(vec![(mat(&pseudo(n * k, 2), n, k, DType::F32), Some(pseudo(n, 3)))]);
        for precision in [Precision::Full, Precision::Int8] {
            p.precision().set(precision);
            for act in [Activation::QuickGelu, Activation::Gelu] {
                for threads in [1, 2] {
                    let mut want = vec![f32::NAN; m * n];
                    run(&p, &x, m, &mut want, Epilogue::Store, threads);
                    apply_activation(act, &mut want);
                    let mut got = vec![f32::NAN; m * n];
                    run(&p, &x, m, &mut got, Epilogue::Activate(act), threads);
                    let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{precision:?} {act:?} threads={threads}");
                }
            }
        }
    }

    /// Kernels other than the packed one take normalised or packed rows
    /// through `with_rows` (into this thread's buffer, also when a product
    /// inside `f` takes it meanwhile). A packed destination on such a
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
        Input::Normed(&x, &ln).with_rows(m, k, |rows| {
            assert!(rows == normed);
            Input::Packed(&packed).with_rows(m, k, |inner| assert!(inner == x));
            assert!(rows == normed, "the nested call used a buffer of its own");
        });
        let p = product(vec![(mat(&pseudo(n * k, 4), n, k, DType::F32), Some(pseudo(n, 5)))]);
        p.precision().set(Precision::Int8);
        let act = Epilogue::Activate(Activation::QuickGelu);
        let x_in = Input::Normed(&x, &ln);
        let mut rows = vec![0.0; m * n];
        p.forward_to(x_in, m, &mut rows, Dest::Rows(n), act, 2);
        let out_layout = RowBlocks::new(m, n);
        let mut out = vec![0.0; out_layout.len()];
        p.forward_to(x_in, m, &mut out, Dest::Packed(&out_layout), act, 2);
        let mut back = vec![0.0; m * n];
        out_layout.unpack(&out, &mut back);
        assert!(back == rows);
    }
}
