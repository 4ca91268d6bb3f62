//! The model-facing layers: linear layers (one matrix, or several stacked
//! and computed as one product), layer norms, and the precision a model's
//! linear layers share. They own their parameters and compute through the
//! [`kernels`](crate::kernels); a loader-side builder makes them from a
//! checkpoint's tensors.

mod builder;
mod linear;

pub(crate) use crate::kernels::PrecisionHandle;
pub use crate::kernels::{LayerNorm, Mat, Precision};
pub(crate) use builder::LayerBuilder;
pub use linear::Linear;
pub(crate) use linear::{input_buffer_len, LayerInput};
