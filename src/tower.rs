//! A tower with, for the `WithProjection` classes and `CLIPModel`, its
//! projection into the shared embedding space: what the text and vision
//! classes are built from.

use crate::error::Result;
use crate::layers::{LayerBuilder, Linear};
use crate::tensor::Tensor;

/// One of the two transformers (text, vision).
pub(crate) trait Tower: Sized {
    /// Its configuration.
    type Config;
    /// The name of its projection's weight (`text_projection.weight`, ...).
    const PROJECTION: &'static str;

    /// Loads the tower's parameters.
    fn load(nn: &LayerBuilder<'_>, config: &Self::Config) -> Result<Self>;

    /// Its configuration.
    fn config(&self) -> &Self::Config;

    /// The width of its pooled output (the projection's input).
    fn hidden_size(&self) -> usize;
}

/// A tower and its projection (none for `CLIPTextModel` and
/// `CLIPVisionModel`).
pub(crate) struct Projected<T> {
    pub(crate) tower: T,
    projection: Option<Linear>,
}

impl<T: Tower> Projected<T> {
    /// Loads the tower and, with `projection_dim`, its projection (no bias).
    pub(crate) fn load(
        nn: &LayerBuilder<'_>,
        config: &T::Config,
        projection_dim: Option<usize>,
    ) -> Result<Self> {
        let tower = T::load(nn, config)?;
        let projection = match projection_dim {
            Some(p) => Some(nn.linear_of(nn.mat(T::PROJECTION, p, tower.hidden_size())?, None)),
            None => None,
        };
        Ok(Projected { tower, projection })
    }

    /// `x W^T` for a `[batch, hidden]` pooled output (the projected
    /// features, not normalised); `x` itself for a tower loaded without
    /// projection (open_clip text towers with `proj_type: "none"`).
    pub(crate) fn project(&self, x: &Tensor) -> Tensor {
        match &self.projection {
            Some(layer) => project(x, layer),
            None => x.clone(),
        }
    }
}

/// `x W^T + b` for a `[batch, in]` tensor.
pub(crate) fn project(x: &Tensor, layer: &Linear) -> Tensor {
    let m = x.shape()[0];
    let n = layer.out_features();
    let mut out = vec![0.0f32; m * n];
    layer.forward(x.data(), m, &mut out, rayon::current_num_threads());
    Tensor::from_parts(vec![m, n], out)
}
