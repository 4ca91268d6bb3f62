//! `CLIPProcessor`: the tokenizer and the image processor of one model.

use crate::error::Result;
use crate::image_processing::{CLIPImageProcessor, RgbImage8};
use crate::tensor::Tensor;
use crate::tokenizer::{BatchEncoding, CLIPTokenizer, EncodeOptions, Padding};
use std::path::Path;

/// transformers' `CLIPProcessor`: turns texts into `input_ids` /
/// `attention_mask` and images into `pixel_values`, as the model expects.
#[derive(Debug, Clone)]
pub struct CLIPProcessor {
    /// The text side.
    pub tokenizer: CLIPTokenizer,
    /// The image side.
    pub image_processor: CLIPImageProcessor,
}

impl CLIPProcessor {
    /// Both halves from a model directory: `tokenizer.json` or `vocab.json` +
    /// `merges.txt` (else the built-in CLIP vocabulary), and
    /// `preprocessor_config.json` (else transformers' CLIP defaults).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        Ok(CLIPProcessor {
            tokenizer: CLIPTokenizer::from_dir(dir)?,
            image_processor: CLIPImageProcessor::from_dir(dir)?,
        })
    }

    /// The built-in CLIP vocabulary and the default 224-pixel preprocessing.
    pub fn builtin() -> Result<Self> {
        Ok(CLIPProcessor {
            tokenizer: CLIPTokenizer::builtin()?,
            image_processor: CLIPImageProcessor::default(),
        })
    }

    /// Tokenizes a batch for the model: BOS + at most `max_length - 2` tokens
    /// + EOS, padded to the longest text, with the attention mask.
    pub fn tokenize(&self, texts: &[&str], max_length: usize) -> Result<BatchEncoding> {
        let opts = EncodeOptions {
            max_length,
            padding: Padding::Longest,
            truncation: true,
            ..Default::default()
        };
        self.tokenizer.encode_batch(texts, &opts)
    }

    /// `pixel_values` `[batch, 3, H, W]` for decoded RGB images.
    pub fn process_images(&self, images: &[RgbImage8]) -> Result<Tensor> {
        self.image_processor.preprocess_batch(images)
    }
}
