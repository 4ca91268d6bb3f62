//! `clip preprocess [--model DIR] IMAGE --out FILE.npy`: writes `pixel_values`
//! `(1, 3, H, W)` as little-endian float32 `.npy`, identical to
//! transformers' `CLIPImageProcessor` (Pillow backend) on `PIL.Image.open(IMAGE)`.

use clip::image_processing::{AlphaPolicy, CLIPImageProcessor};
use clip::tensor::Tensor;
use std::path::PathBuf;

/// Alpha handling on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AlphaArg {
    /// Composite transparent pixels on white (transformers 5).
    #[default]
    White,
    /// Drop the alpha channel (transformers 4, OpenAI `clip.load`).
    Drop,
}

/// Arguments of `clip preprocess`.
#[derive(clap::Args, Debug)]
pub struct PreprocessArgs {
    /// Model directory with `preprocessor_config.json` (default: the built-in
    /// demo model's settings).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// The image (JPEG, PNG, WebP, GIF, BMP or TIFF).
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Where to write the `(1, 3, H, W)` float32 `.npy` array.
    #[arg(long, value_name = "FILE.npy")]
    pub out: PathBuf,
    /// How to convert images with transparency to RGB.
    #[arg(long, value_enum, default_value_t = AlphaArg::White)]
    pub alpha: AlphaArg,
}

/// Runs `clip preprocess`.
pub fn run(args: &PreprocessArgs) -> clip::Result<()> {
    let mut processor = match &args.model {
        Some(dir) => CLIPImageProcessor::from_dir(dir)?,
        None => clip::default_model::processor()?.image_processor,
    };
    processor.alpha = match args.alpha {
        AlphaArg::White => AlphaPolicy::CompositeOnWhite,
        AlphaArg::Drop => AlphaPolicy::Drop,
    };
    let pixel_values = processor.preprocess_path(&args.image)?;
    Tensor::stack(&[pixel_values])?.write_npy(&args.out)
}
