//! The small demo model built into the library (`assets/demo-model/`), so
//! the `clip` command works offline with no download.
//!
//! It is a toy: a 4M-parameter CLIP trained by `scripts/train_demo_model.py`
//! on generated pictures of coloured shapes (see
//! `assets/demo-model/README.md` for what it recognises). The weights (F16)
//! are compiled into the binary and used in place, like a mapped file.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::image_processing::{CLIPImageProcessor, ImageProcessorConfig};
use crate::model::CLIPModel;
use crate::pipeline::Pipeline;
use crate::processor::CLIPProcessor;
use crate::tokenizer::CLIPTokenizer;
use crate::weights::WeightStore;
use std::sync::Arc;

/// Bytes with the alignment of any tensor dtype, so the weights can be used
/// in place (`include_bytes!` alone only guarantees byte alignment).
#[repr(C, align(64))]
struct Aligned<B: ?Sized>(B);

static WEIGHTS: &Aligned<[u8]> =
    &Aligned(*include_bytes!("../assets/demo-model/model.safetensors"));
const CONFIG: &str = include_str!("../assets/demo-model/config.json");
const PREPROCESSOR: &str = include_str!("../assets/demo-model/preprocessor_config.json");

/// The embedded model's `CLIPModel`.
pub fn model() -> Result<CLIPModel> {
    let ModelConfig::Clip(config) = ModelConfig::from_json(CONFIG)? else {
        return Err(Error::internal("the embedded demo config is not a CLIPModel config"));
    };
    let store = WeightStore::from_shared_bytes("built-in demo model", Arc::new(&WEIGHTS.0))?;
    CLIPModel::from_store(&config, &store)
}

/// The embedded model's processor: the built-in CLIP vocabulary and its
/// 64-pixel preprocessing.
pub fn processor() -> Result<CLIPProcessor> {
    Ok(CLIPProcessor {
        tokenizer: CLIPTokenizer::builtin()?,
        image_processor: CLIPImageProcessor::new(ImageProcessorConfig::from_json(
            PREPROCESSOR.as_bytes(),
        )?),
    })
}

/// The embedded demo model with its processor.
pub fn pipeline() -> Result<Pipeline> {
    Ok(Pipeline::new(model()?, processor()?))
}
