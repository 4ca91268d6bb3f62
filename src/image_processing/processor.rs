//! `CLIPImageProcessor`: RGB image in, `pixel_values` out.
//!
//! The pipeline of transformers 5 `CLIPImageProcessorPil` (`backend="pil"`):
//! resize (Pillow resampling on uint8), center crop (offset
//! `(H - crop) // 2`, zero padding when the image is smaller), rescale
//! `f32(x · factor)` computed in f64, normalise `(x − mean) / std` in f32,
//! channels first.

use super::config::{ImageProcessorConfig, PREPROCESSOR_CONFIG_FILE};
use super::convert::{AlphaPolicy, RgbImage8};
use super::decode::{decode_bytes, decode_path, DecodedImage, ImageLimits};
use super::resize::resize;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::path::Path;

/// An image processor driven by `preprocessor_config.json`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CLIPImageProcessor {
    /// The preprocessing settings.
    pub config: ImageProcessorConfig,
    /// Decoding limits for the `*_path` and `*_bytes` entry points, also
    /// applied to the resized image.
    pub limits: ImageLimits,
    /// How alpha is turned into RGB (default: composite on white, as
    /// transformers 5).
    pub alpha: AlphaPolicy,
}

impl CLIPImageProcessor {
    /// A processor with `config`, default limits and alpha policy.
    pub fn new(config: ImageProcessorConfig) -> Self {
        CLIPImageProcessor { config, limits: ImageLimits::default(), alpha: AlphaPolicy::default() }
    }

    /// A processor from `dir/preprocessor_config.json` (defaults if the file
    /// is absent). Fails if the file is malformed or asks for something this
    /// runtime does not implement (the NEAREST filter).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let config = ImageProcessorConfig::from_dir(&dir)?;
        let p = Self::new(config);
        p.validate()
            .map_err(|e| e.context(dir.as_ref().join(PREPROCESSOR_CONFIG_FILE).display()))?;
        Ok(p)
    }

    /// Checks that the configuration can be run: every filter but NEAREST,
    /// and a rescale factor, mean and std that map every pixel value to a
    /// finite number (a zero `image_std` would make every input NaN/Inf).
    pub fn validate(&self) -> Result<()> {
        if self.config.do_resize && self.config.resample == super::resize::Filter::Nearest {
            return Err(Error::unsupported(
                "resample 0 (NEAREST) is not implemented; use 3 (BICUBIC)",
            ));
        }
        self.lookup_tables().map(|_| ())
    }

    /// The value of every u8 sample after rescaling and normalisation, per
    /// channel; an error if any is not finite.
    fn lookup_tables(&self) -> Result<[[f32; 256]; 3]> {
        let c = &self.config;
        let mut lut = [[0f32; 256]; 3];
        for (ch, table) in lut.iter_mut().enumerate() {
            let mean = c.image_mean[ch] as f32;
            let std = c.image_std[ch] as f32;
            for (v, out) in table.iter_mut().enumerate() {
                let mut x =
                    if c.do_rescale { (v as f64 * c.rescale_factor) as f32 } else { v as f32 };
                if c.do_normalize {
                    x = (x - mean) / std;
                }
                if !x.is_finite() {
                    return Err(Error::format(format!(
                        "rescale_factor {}, image_mean {:?} and image_std {:?} turn the sample value {v} into {x} (channel {ch})",
                        c.rescale_factor, c.image_mean, c.image_std
                    )));
                }
                *out = x;
            }
        }
        Ok(lut)
    }

    /// The `(height, width)` of every output, or `None` when it depends on the
    /// input (no center crop and an aspect-preserving or no resize).
    pub fn output_size(&self) -> Option<(usize, usize)> {
        self.config.output_size()
    }

    /// Preprocesses one RGB image into `pixel_values` of shape `[3, H, W]`.
    pub fn preprocess(&self, image: &RgbImage8) -> Result<Tensor> {
        let c = &self.config;
        let (mut w, mut h) = (image.width(), image.height());
        let resized;
        let mut pixels: &[u8] = image.as_raw();
        if c.do_resize {
            let (oh, ow) = c.size.output_size(h, w);
            if oh == 0 || ow == 0 {
                return Err(Error::invalid(format!(
                    "a {w}x{h} image would be resized to {ow}x{oh}: a zero dimension"
                )));
            }
            if (oh, ow) != (h, w) {
                self.limits
                    .check(
                        u32::try_from(ow).unwrap_or(u32::MAX),
                        u32::try_from(oh).unwrap_or(u32::MAX),
                        3,
                    )
                    .map_err(|e| e.context(format!("resizing a {w}x{h} image")))?;
                resized = resize::<3>(pixels, w, h, ow, oh, c.resample)?;
                pixels = &resized;
                (w, h) = (ow, oh);
            }
        }
        let cropped;
        if c.do_center_crop {
            let (ch, cw) = (c.crop_size.height, c.crop_size.width);
            if (ch, cw) != (h, w) {
                self.limits
                    .check(
                        u32::try_from(cw).unwrap_or(u32::MAX),
                        u32::try_from(ch).unwrap_or(u32::MAX),
                        3,
                    )
                    .map_err(|e| e.context(format!("center-cropping a {w}x{h} image")))?;
                cropped = center_crop(pixels, w, h, cw, ch);
                pixels = &cropped;
                (w, h) = (cw, ch);
            }
        }
        self.to_tensor(pixels, w, h)
    }

    /// Rescale, normalise and transpose HWC u8 to CHW f32.
    fn to_tensor(&self, pixels: &[u8], w: usize, h: usize) -> Result<Tensor> {
        // One lookup table per channel: every op depends only on the u8 value.
        let lut = self.lookup_tables()?;
        let plane = w * h;
        let mut data = vec![0f32; 3 * plane];
        let (r, rest) = data.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, px) in pixels.chunks_exact(3).enumerate() {
            r[i] = lut[0][px[0] as usize];
            g[i] = lut[1][px[1] as usize];
            b[i] = lut[2][px[2] as usize];
        }
        Ok(Tensor::from_parts(vec![3, h, w], data))
    }

    /// Preprocesses a batch in parallel into `[B, 3, H, W]`. All outputs must
    /// have one size (use a center crop or a fixed `size`); an empty batch is
    /// an `InvalidArgument` error.
    pub fn preprocess_batch(&self, images: &[RgbImage8]) -> Result<Tensor> {
        let items: Vec<Tensor> =
            images.par_iter().map(|im| self.preprocess(im)).collect::<Result<_>>()?;
        Tensor::stack(&items)
    }

    /// Converts a decoded image to RGB with the processor's alpha policy and
    /// preprocesses it into `[3, H, W]`.
    pub fn preprocess_decoded(&self, image: &DecodedImage) -> Result<Tensor> {
        self.preprocess(&image.to_rgb8(self.alpha))
    }

    /// Decodes (with the processor's limits) and preprocesses an image file into
    /// `[3, H, W]`. Errors name the file.
    pub fn preprocess_path(&self, path: impl AsRef<Path>) -> Result<Tensor> {
        let path = path.as_ref();
        let decoded = decode_path(path, &self.limits)?;
        self.preprocess_decoded(&decoded).map_err(|e| e.context(path.display()))
    }

    /// Decodes (with the processor's limits) and preprocesses an encoded image
    /// in memory into `[3, H, W]`.
    pub fn preprocess_bytes(&self, bytes: &[u8]) -> Result<Tensor> {
        self.preprocess_decoded(&decode_bytes(bytes, &self.limits)?)
    }

    /// Decodes and preprocesses many files in parallel, one result per path in
    /// input order, so that a caller can report and skip the bad ones. Each
    /// tensor is `[3, H, W]`; stack them with [`Tensor::stack`].
    pub fn load_and_preprocess<P: AsRef<Path> + Sync>(&self, paths: &[P]) -> Vec<Result<Tensor>> {
        paths.par_iter().map(|p| self.preprocess_path(p)).collect()
    }
}

/// transformers' `center_crop` on an HWC u8 image: offset `(H - ch) // 2`
/// (floor), and when the image is smaller than the crop, zero padding with
/// `ceil((new - old) / 2)` before.
fn center_crop(src: &[u8], w: usize, h: usize, cw: usize, ch: usize) -> Vec<u8> {
    let (w_i, h_i, cw_i, ch_i) = (w as i64, h as i64, cw as i64, ch as i64);
    // Offsets of the crop window relative to the source image, as in the
    // padded branch of transformers (identical to the plain one when the image
    // is large enough).
    let top = (h_i - ch_i).div_euclid(2);
    let left = (w_i - cw_i).div_euclid(2);
    let top_pad = (ch_i - h_i).max(0).div_euclid(2) + (ch_i - h_i).max(0) % 2;
    let left_pad = (cw_i - w_i).max(0).div_euclid(2) + (cw_i - w_i).max(0) % 2;
    let mut out = vec![0u8; cw * ch * 3];
    // In the padded canvas the window starts at max(0, top + top_pad); the
    // image sits at top_pad. So output row r shows source row
    // r + max(0, top + top_pad) - top_pad.
    let y0 = (top + top_pad).max(0) - top_pad;
    let x0 = (left + left_pad).max(0) - left_pad;
    for r in 0..ch_i {
        let sy = r + y0;
        if sy < 0 || sy >= h_i {
            continue;
        }
        let xs = x0.max(0);
        let xe = (x0 + cw_i).min(w_i);
        if xs >= xe {
            continue;
        }
        let dst = (r * cw_i + (xs - x0)) as usize * 3;
        let srco = (sy * w_i + xs) as usize * 3;
        let n = (xe - xs) as usize * 3;
        out[dst..dst + n].copy_from_slice(&src[srco..srco + n]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transformers algorithm, literally (for comparison).
    fn hf_center_crop(src: &[u8], w: usize, h: usize, cw: usize, ch: usize) -> Vec<u8> {
        let (w, h, cw, ch) = (w as i64, h as i64, cw as i64, ch as i64);
        let mut top = (h - ch).div_euclid(2);
        let mut left = (w - cw).div_euclid(2);
        let (nh, nw) = (ch.max(h), cw.max(w));
        let tp = (nh - h + 1) / 2;
        let lp = (nw - w + 1) / 2;
        let mut canvas = vec![0u8; (nh * nw * 3) as usize];
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    canvas[(((y + tp) * nw + x + lp) * 3 + c) as usize] =
                        src[((y * w + x) * 3 + c) as usize];
                }
            }
        }
        top += tp;
        left += lp;
        let (t, b) = (top.max(0), (top + ch).min(nh));
        let (l, r) = (left.max(0), (left + cw).min(nw));
        let mut out = vec![];
        for y in t..b {
            for x in l..r {
                for c in 0..3 {
                    out.push(canvas[((y * nw + x) * 3 + c) as usize]);
                }
            }
        }
        out
    }

    #[test]
    fn crop_matches_transformers_including_padding() {
        for (w, h) in [(5, 7), (224, 300), (1, 1), (10, 3), (3, 10), (8, 8)] {
            let src: Vec<u8> = (0..w * h * 3).map(|i| (i % 251) as u8 + 1).collect();
            for (cw, ch) in [(4, 4), (5, 7), (6, 9), (9, 2), (2, 9), (11, 11), (224, 224)] {
                assert_eq!(
                    center_crop(&src, w, h, cw, ch),
                    hf_center_crop(&src, w, h, cw, ch),
                    "{w}x{h} -> {cw}x{ch}"
                );
            }
        }
    }
}
