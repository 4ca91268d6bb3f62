//! Image decoding and `CLIPImageProcessor`.
//!
//! The reference is transformers 5 `CLIPImageProcessor` with the Pillow
//! backend (`CLIPImageProcessorPil`, `backend="pil"`) and Pillow 13.0.0: for
//! lossless inputs `pixel_values` are bit-identical.
//!
//! - [`decode_path`], [`decode_bytes`], [`from_raw`]: files, encoded bytes or
//!   host-decoded pixel buffers to a [`DecodedImage`], under [`ImageLimits`].
//! - [`DecodedImage::to_rgb8`]: Pillow's / transformers' conversion to RGB
//!   ([`AlphaPolicy`]: composite on white as transformers 5, or drop alpha as
//!   transformers 4 and OpenAI).
//! - [`resize`]: Pillow's 8-bit convolution resampling, bit-exact.
//! - [`ImageProcessorConfig`] reads `preprocessor_config.json`.
//! - [`CLIPImageProcessor`]: resize, center crop, rescale, normalise to
//!   `pixel_values` `[B, 3, H, W]`.
//!
//! ```no_run
//! use clip::image_processing::CLIPImageProcessor;
//! let processor = CLIPImageProcessor::from_dir("models/clip-vit-base-patch32")?;
//! let pixel_values = processor.preprocess_path("cat.jpg")?; // [3, 224, 224]
//! # Ok::<(), clip::Error>(())
//! ```

mod config;
mod convert;
mod decode;
mod processor;
pub mod resize;

pub use config::{
    CropSize, ImageProcessorConfig, ResizeTarget, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD,
    PREPROCESSOR_CONFIG_FILE,
};
pub use convert::{AlphaPolicy, RgbImage8};
pub use decode::{
    decode_bytes, decode_path, from_raw, DecodedImage, ImageLimits, PixelFormat, Pixels,
};
pub use processor::CLIPImageProcessor;
pub use resize::Filter;
