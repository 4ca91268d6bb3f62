//! Layers made from a checkpoint's tensors, all following one precision.

use super::linear::Linear;
use crate::error::Result;
use crate::kernels::{LayerNorm, Mat, PrecisionHandle};
use crate::weights::Loader;

/// Makes a model's layers from the parameters a [`Loader`] resolves; every
/// linear layer it makes shares one precision ([`LayerBuilder::precision`]).
pub(crate) struct LayerBuilder<'a> {
    loader: &'a Loader<'a>,
    precision: PrecisionHandle,
}

impl<'a> LayerBuilder<'a> {
    /// Layers over `loader`'s parameters, at full precision.
    pub fn new(loader: &'a Loader<'a>) -> Self {
        LayerBuilder { loader, precision: PrecisionHandle::default() }
    }

    /// The loader, for parameters that are not layers (embeddings, ...).
    pub fn loader(&self) -> &'a Loader<'a> {
        self.loader
    }

    /// The precision shared by the layers this builder makes.
    pub fn precision(&self) -> PrecisionHandle {
        self.precision.clone()
    }

    /// The weight matrix `canonical`, `[out, in]`.
    pub fn mat(&self, canonical: &str, out_features: usize, in_features: usize) -> Result<Mat> {
        let weight = self.loader.tensor(canonical, &[out_features, in_features])?;
        Ok(Mat { weight, out_features, in_features })
    }

    /// The linear layer `{prefix}.weight` (+ `{prefix}.bias`).
    pub fn linear(
        &self,
        prefix: &str,
        out_features: usize,
        in_features: usize,
        bias: bool,
    ) -> Result<Linear> {
        let mat = self.mat(&format!("{prefix}.weight"), out_features, in_features)?;
        let bias = match bias {
            true => Some(self.loader.vector(&format!("{prefix}.bias"), out_features)?),
            false => None,
        };
        Ok(self.linear_of(mat, bias))
    }

    /// A linear layer over `mat` (e.g. a projection) following the shared
    /// precision. The loader checked the shapes; a missing tensor is an
    /// empty stand-in that [`Loader::finish`] reports before anything runs.
    pub fn linear_of(&self, mat: Mat, bias: Option<Vec<f32>>) -> Linear {
        Linear::of_parts(vec![(mat, bias)], self.precision.clone())
    }

    /// A linear layer over `mat` that stays at full precision whatever the
    /// model's precision (the patch embedding).
    pub fn full_precision(&self, mat: Mat, bias: Option<Vec<f32>>) -> Linear {
        Linear::of_parts(vec![(mat, bias)], PrecisionHandle::default())
    }

    /// Linear layers of this builder's, stacked ([`Linear::stack`]).
    pub fn stack(&self, parts: Vec<Linear>) -> Linear {
        Linear::stack_unchecked(parts)
    }

    /// The layer norm `{prefix}.weight` / `{prefix}.bias`.
    pub fn layer_norm(&self, prefix: &str, dim: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.loader.vector(&format!("{prefix}.weight"), dim)?,
            bias: self.loader.vector(&format!("{prefix}.bias"), dim)?,
            eps: eps as f32,
        })
    }
}
