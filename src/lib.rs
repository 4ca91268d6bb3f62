//! # clip: a pure-Rust CPU runtime for OpenAI's CLIP
//!
//! Loads Hugging Face CLIP checkpoints (`config.json`, `preprocessor_config.json`,
//! tokenizer files, `*.safetensors`) and computes the same numbers as
//! `transformers`' `CLIPModel`, `CLIPTokenizerFast` and `CLIPImageProcessor`.
//!
//! Module map (one concept each):
//! - [`config`]: `CLIPConfig`, `CLIPTextConfig`, `CLIPVisionConfig`.
//! - [`weights`]: memory-mapped safetensors, both weight namings.
//! - [`kernels`]: matrix products, layer norm, softmax, activations, attention,
//!   one implementation per instruction set.
//! - [`layers`]: linear layers and layer norms, built from a checkpoint.
//! - [`text_model`], [`vision_model`]: the two towers.
//! - [`model`]: `CLIPModel` and `CLIPForImageClassification`.
//! - [`tokenizer`]: CLIP's byte-level BPE.
//! - [`image_processing`]: decoding and `CLIPImageProcessor`.
//! - [`processor`]: `CLIPProcessor` (tokenizer + image processor).
//! - [`pipeline`]: a model with its processor, for applications: embeddings,
//!   similarities and zero-shot labels, in bounded-memory chunks.

#![warn(missing_docs)]

pub mod config;
pub mod default_model;
pub mod error;
pub mod image_processing;
pub mod kernels;
pub mod layers;
pub mod model;
mod model_dir;
pub mod open_clip_config;
pub mod pipeline;
pub mod processor;
pub mod quantize;
pub mod tensor;
pub mod text_model;
pub mod tokenizer;
pub mod vision_model;
pub mod weights;

mod encoder;
mod loaded;
mod tower;

pub use config::{
    Activation, CLIPConfig, CLIPTextConfig, CLIPVisionConfig, ModelConfig, TextPooling,
};
pub use encoder::ForwardOptions;
pub use error::{Error, ErrorKind, Result};
pub use kernels::{Kernel, Precision};
pub use model::{CLIPForImageClassification, CLIPModel, CLIPOutput, ImageClassifierOutput};
pub use pipeline::{Pipeline, DEFAULT_TEMPLATES};
pub use processor::CLIPProcessor;
pub use tensor::Tensor;
pub use text_model::{
    CLIPTextModel, CLIPTextModelWithProjection, TextModelOutput, TextModelWithProjectionOutput,
};
pub use vision_model::{
    CLIPVisionModel, CLIPVisionModelWithProjection, VisionModelOutput,
    VisionModelWithProjectionOutput,
};

/// The README's Rust example, compiled as a doctest so it cannot drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
