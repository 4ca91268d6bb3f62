//! Linear layers: `y = x W^T + b`, with the weights as stored (F32, F16 or
//! BF16, `[out, in]`) and an optional f32 bias.

use crate::config::Activation;
use crate::error::Result;
use crate::kernels::{
    packed_len, Dest, Epilogue, Input, LinearProduct, Mat, Part, Precision, PrecisionHandle,
    RowBlocks,
};

/// A linear layer: `out = x W^T + b` for one weight matrix, or for several
/// stacked along the output ([`Linear::stack`]: e.g. query, key and value,
/// computed as one product whose output row is the parts' outputs side by
/// side).
///
/// With a kernel that has its own micro-kernel (AVX-512, AVX2, NEON) the
/// matrices are packed for it on first use; the packed copy is shared by
/// clones of the layer. The parameters cannot change after construction, so
/// the packed copy never goes stale.
#[derive(Clone)]
pub struct Linear {
    product: LinearProduct,
}

impl Linear {
    /// A layer of `mat` and `bias` (full precision).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
    /// when the weight does not hold `out_features * in_features` elements
    /// or the bias is not `out_features` long.
    pub fn new(mat: Mat, bias: Option<Vec<f32>>) -> Result<Self> {
        let parts = vec![(mat, bias)];
        LinearProduct::check(&parts)?;
        Ok(Linear::of_parts(parts, PrecisionHandle::default()))
    }

    /// The layers `parts` (which share their input size) as one layer
    /// whose output is theirs side by side, following the first part's
    /// precision.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
    /// when `parts` is empty or their input sizes differ.
    pub fn stack(parts: Vec<Linear>) -> Result<Self> {
        let (parts, precision) = Linear::unstack(parts);
        LinearProduct::check(&parts)?;
        Ok(Linear::of_parts(parts, precision))
    }

    /// A layer of `parts` (matrices and biases whose shapes a loader has
    /// checked) following `precision`.
    pub(crate) fn of_parts(parts: Vec<Part>, precision: PrecisionHandle) -> Self {
        Linear { product: LinearProduct::new(parts, precision) }
    }

    /// [`Linear::stack`] of layers a loader has checked.
    pub(crate) fn stack_unchecked(parts: Vec<Linear>) -> Self {
        let (parts, precision) = Linear::unstack(parts);
        Linear::of_parts(parts, precision)
    }

    /// The matrices and biases of `layers`, in order, and the first
    /// layer's precision.
    fn unstack(layers: Vec<Linear>) -> (Vec<Part>, PrecisionHandle) {
        let precision = layers.first().map(|p| p.product.precision().clone()).unwrap_or_default();
        (layers.into_iter().flat_map(|p| p.product.into_parts()).collect(), precision)
    }

    /// This layer computing in `precision` (see [`Precision`]): with
    /// [`Precision::Int8`] its weights are quantised on first use, where the
    /// kernel has int8 products. Clones made before this share the setting.
    pub fn with_precision(self, precision: Precision) -> Self {
        self.product.precision().set(precision);
        self
    }

    /// Output features (of all parts, for a stack).
    pub fn out_features(&self) -> usize {
        self.product.out_features()
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.product.in_features()
    }

    /// `out[m, out_features] = x[m, in_features] W^T + b`, using up to
    /// `threads` threads.
    ///
    /// # Panics
    /// If `x` or `out` is not `m` rows long.
    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32], threads: usize) {
        self.forward_rows(x, m, out, Epilogue::Store, threads)
    }

    /// `out[m, out_features] = act(x W^T + b)`: each thread applies the
    /// activation to the block it has just computed, while it is in cache.
    ///
    /// # Panics
    /// If `x` or `out` is not `m` rows long.
    pub fn forward_activated(
        &self,
        x: &[f32],
        m: usize,
        out: &mut [f32],
        act: Activation,
        threads: usize,
    ) {
        self.forward_rows(x, m, out, Epilogue::Activate(act), threads)
    }

    /// `out[m, out_features] += x W^T + b` (a residual connection fused
    /// into the product).
    ///
    /// # Panics
    /// If `x` or `out` is not `m` rows long.
    pub fn forward_accumulate(&self, x: &[f32], m: usize, out: &mut [f32], threads: usize) {
        self.forward_rows(x, m, out, Epilogue::Accumulate, threads)
    }

    fn forward_rows(
        &self,
        x: &[f32],
        m: usize,
        out: &mut [f32],
        epilogue: Epilogue,
        threads: usize,
    ) {
        assert!(
            x.len() == m * self.in_features() && out.len() == m * self.out_features(),
            "linear layer: {m} rows of {} in, {} out, given {} and {} floats",
            self.in_features(),
            self.out_features(),
            x.len(),
            out.len()
        );
        self.forward_to(Input::Rows(x), m, out, None, epilogue, threads)
    }

    /// How this layer's input rows should be laid out for `m` rows (now):
    /// the step that computes them writes them there ([`Linear::forward_to`]
    /// with `next`, or attention's contexts), and this layer then reads them
    /// with no copy.
    pub(crate) fn input(&self, m: usize) -> LayerInput {
        let layout = self.product.input_layout(m);
        LayerInput { layout, rows: m, width: self.in_features() }
    }

    /// `x W^T + b` for the `m` rows of `x` (see [`Input`]), finished by
    /// `epilogue`: into `out` as rows of `out_features`, or laid out as the
    /// `next` layer reads its input (`next` from that layer's
    /// [`Linear::input`]).
    pub(crate) fn forward_to(
        &self,
        x: Input<'_>,
        m: usize,
        out: &mut [f32],
        next: Option<&LayerInput>,
        epilogue: Epilogue,
        threads: usize,
    ) {
        let dest = match next {
            Some(input) => input.dest(),
            None => Dest::Rows(self.out_features()),
        };
        self.product.forward_to(x, m, out, dest, epilogue, threads)
    }
}

/// The input of a layer for some number of rows, laid out as the layer
/// reads it (packed for its micro-kernel, or plain rows): from
/// [`Linear::input`], for the step that computes those rows.
pub(crate) struct LayerInput {
    layout: Option<RowBlocks>,
    rows: usize,
    width: usize,
}

impl LayerInput {
    /// The packed layout, for steps that write their results in it
    /// (attention's contexts); `None` for plain rows.
    pub(crate) fn layout(&self) -> Option<&RowBlocks> {
        self.layout.as_ref()
    }

    /// Where a product writes rows in this layout.
    fn dest(&self) -> Dest<'_> {
        match &self.layout {
            Some(l) => Dest::Packed(l),
            None => Dest::Rows(self.width),
        }
    }

    /// The layer's input as written into `buf` in this layout.
    pub(crate) fn read<'a>(&self, buf: &'a [f32]) -> Input<'a> {
        match self.layout {
            Some(_) => Input::Packed(buf),
            None => Input::Rows(&buf[..self.rows * self.width]),
        }
    }
}

/// Floats a buffer needs to hold the input of a layer of `width` inputs for
/// `m` rows, in any layout ([`LayerInput`]).
pub(crate) fn input_buffer_len(m: usize, width: usize) -> usize {
    packed_len(m, width).max(m * width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_support::pseudo;
    use crate::weights::{DType, WeightTensor};

    /// `with_precision(Int8)` switches the layer to int8 products, whose
    /// results lie within the rounding bound of the two quantisations
    /// (symmetric, 127 steps a side: weights per output, inputs per row),
    /// and `with_precision(Full)` switches back to the same bits as before.
    #[test]
    fn with_precision_switches_between_int8_and_full() {
        let (m, n, k) = (5, 48, 96);
        let w = pseudo(n * k, 3);
        let x = pseudo(m * k, 4);
        let bias = pseudo(n, 5);
        let mat = Mat {
            weight: WeightTensor::from_f32_as(&w, vec![n, k], DType::F32),
            out_features: n,
            in_features: k,
        };
        let layer = Linear::new(mat, Some(bias)).expect("a consistent layer");
        let run = |l: &Linear| {
            let mut out = vec![0.0; m * n];
            l.forward(&x, m, &mut out, 1);
            out
        };
        let full = run(&layer);
        let layer = layer.with_precision(Precision::Int8);
        let int8 = run(&layer);
        assert!(int8 != full, "int8 products ran at full precision");
        for i in 0..m {
            let xr = &x[i * k..][..k];
            let sx = xr.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 127.0;
            for j in 0..n {
                let wr = &w[j * k..][..k];
                let sw = wr.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 127.0;
                // |x w - x' w'| <= |x - x'| |w| + |x'| |w - w'|, each
                // rounding at most half a step; plus f32 rounding.
                let bound: f32 = xr
                    .iter()
                    .zip(wr)
                    .map(|(a, b)| sx / 2.0 * b.abs() + (a.abs() + sx / 2.0) * sw / 2.0)
                    .sum::<f32>()
                    + 1e-5;
                let err = (int8[i * n + j] - full[i * n + j]).abs();
                assert!(err <= bound, "row {i} col {j}: error {err} over bound {bound}");
            }
        }
        let back = run(&layer.with_precision(Precision::Full));
        assert!(back == full, "full precision after int8");
    }
}
