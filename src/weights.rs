//! Model weights: safetensors files mapped with `memmap2`, and the two
//! weight namings (Hugging Face and OpenAI / open_clip).
//!
//! A tensor whose bytes are usable as they are (little-endian, aligned F32,
//! F16 or BF16) is read in place from the mapping and never copied; F16 and
//! BF16 stay 16-bit. Only small vectors (biases, norms, embeddings of the
//! class token and positions) are widened to owned f32.

mod naming;
mod store;
mod tensor;

pub(crate) use naming::Loader;
pub use naming::{Naming, WeightsSummary};
pub use store::WeightStore;
pub(crate) use tensor::{widen_bf16, widen_f16};
pub use tensor::{DType, WeightTensor, WeightView};
