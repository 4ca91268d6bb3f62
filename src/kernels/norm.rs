//! Layer normalisation over the last dimension.

use rayon::prelude::*;

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
    let work = |(xr, or): (&[f32], &mut [f32])| {
        let mean = xr.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = xr.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let rstd = 1.0 / (var + ln.eps as f64).sqrt();
        let (mean, rstd) = (mean as f32, rstd as f32);
        for (((o, &v), &w), &b) in or.iter_mut().zip(xr).zip(&ln.weight).zip(&ln.bias) {
            *o = (v - mean) * rstd * w + b;
        }
    };
    if rows >= 16 {
        x.par_chunks(d).zip(out.par_chunks_mut(d)).for_each(work);
    } else {
        x.chunks(d).zip(out.chunks_mut(d)).for_each(work);
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
}
