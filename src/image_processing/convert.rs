//! Conversion of decoded images to 8-bit RGB, as Pillow and transformers do it.
//!
//! transformers 5 (`image_transforms.convert_to_rgb`) composites images that
//! have an alpha channel (or PNG `tRNS` transparency) on an opaque white
//! background with Pillow's integer `alpha_composite`, and otherwise calls
//! `convert("RGB")`. Pillow's rules per mode, which [`DecodedImage::to_rgb8`]
//! reproduces:
//!
//! | decoded as | Pillow mode | to RGB |
//! |---|---|---|
//! | gray 8-bit (1/2/4-bit PNG gray scaled to 0..255) | `L` / `1` | `(l, l, l)` |
//! | gray + alpha 8-bit, PNG gray + `tRNS` | `LA` / `L` + transparency | composite `(l, l, l, a)` |
//! | RGB 8-bit | `RGB` | unchanged |
//! | RGBA, palette (+ `tRNS`), RGB + `tRNS`, GIF | `RGBA` / `P` / `RGB` + transparency | composite |
//! | gray 16-bit | `I;16` | **clamped** to 0..255 (`min(v, 255)`, not scaled) |
//! | RGB / RGBA / gray+alpha 16-bit | `RGB` / `RGBA` / `LA` (Pillow keeps the high byte) | `v >> 8`, then as 8-bit |
//!
//! Compositing on white: `out = round((c·a + 255·(255 − a)) / 255)`, exactly
//! Pillow's `ImagingAlphaComposite` with an opaque white background (no ties
//! can occur, so `(x + 127) / 255` in integers is exact).

use super::decode::{DecodedImage, Pixels};
use crate::error::{Error, Result};

/// What to do with an alpha channel when converting to RGB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AlphaPolicy {
    /// Composite on an opaque white background (transformers 5, the pinned
    /// reference). Fully transparent pixels become white.
    #[default]
    CompositeOnWhite,
    /// Drop the alpha channel and keep the stored colour (transformers 4 and
    /// OpenAI's `clip.load`, which call Pillow's `convert("RGB")`).
    Drop,
}

/// An 8-bit RGB image, row-major, 3 interleaved bytes per pixel, no padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage8 {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl RgbImage8 {
    /// An image from tightly packed RGB bytes; fails with `InvalidArgument` if
    /// a dimension is zero or `data.len() != width * height * 3`.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::invalid(format!(
                "image size {width}x{height} has a zero dimension"
            )));
        }
        let expected = width.checked_mul(height).and_then(|n| n.checked_mul(3));
        if expected != Some(data.len()) {
            return Err(Error::invalid(format!(
                "RGB image of {width}x{height} needs {} bytes, got {}",
                width.saturating_mul(height).saturating_mul(3),
                data.len()
            )));
        }
        Ok(RgbImage8 { width, height, data })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The RGB bytes, row-major.
    pub fn as_raw(&self) -> &[u8] {
        &self.data
    }

    /// Consumes the image, returning its RGB bytes.
    pub fn into_raw(self) -> Vec<u8> {
        self.data
    }
}

/// Pillow's `alpha_composite` of `(c, a)` over opaque white.
#[inline(always)]
pub(crate) fn composite_on_white(c: u8, a: u8) -> u8 {
    let (c, a) = (c as u32, a as u32);
    ((c * a + 255 * (255 - a) + 127) / 255) as u8
}

/// Pillow's 16-bit to 8-bit sample rule for RGB/RGBA/LA PNGs: the high byte.
#[inline(always)]
fn hi(v: u16) -> u8 {
    (v >> 8) as u8
}

impl DecodedImage {
    /// Converts to 8-bit RGB as transformers 5 `convert_to_rgb` (with
    /// [`AlphaPolicy::CompositeOnWhite`]) or Pillow's `convert("RGB")` (with
    /// [`AlphaPolicy::Drop`]) would. See the module docs for the rules.
    pub fn to_rgb8(&self, alpha: AlphaPolicy) -> RgbImage8 {
        let n = self.width * self.height;
        let mut out = Vec::with_capacity(n * 3);
        let white = alpha == AlphaPolicy::CompositeOnWhite;
        let mix = |c: u8, a: u8| if white { composite_on_white(c, a) } else { c };
        match &self.pixels {
            Pixels::Gray8(p) => p.iter().for_each(|&l| out.extend_from_slice(&[l, l, l])),
            Pixels::GrayAlpha8(p) => p.chunks_exact(2).for_each(|q| {
                let l = mix(q[0], q[1]);
                out.extend_from_slice(&[l, l, l]);
            }),
            Pixels::Rgb8(p) => out.extend_from_slice(p),
            Pixels::Rgba8(p) => p.chunks_exact(4).for_each(|q| {
                out.extend_from_slice(&[mix(q[0], q[3]), mix(q[1], q[3]), mix(q[2], q[3])]);
            }),
            Pixels::Gray16(p) => p.iter().for_each(|&v| {
                let l = v.min(255) as u8;
                out.extend_from_slice(&[l, l, l]);
            }),
            Pixels::GrayAlpha16(p) => p.chunks_exact(2).for_each(|q| {
                let l = mix(hi(q[0]), hi(q[1]));
                out.extend_from_slice(&[l, l, l]);
            }),
            Pixels::Rgb16(p) => out.extend(p.iter().map(|&v| hi(v))),
            Pixels::Rgba16(p) => p.chunks_exact(4).for_each(|q| {
                let a = hi(q[3]);
                out.extend_from_slice(&[mix(hi(q[0]), a), mix(hi(q[1]), a), mix(hi(q[2]), a)]);
            }),
        }
        RgbImage8 { width: self.width, height: self.height, data: out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_matches_rounded_formula() {
        for c in 0..=255u32 {
            for a in 0..=255u32 {
                let exact = (c * a + 255 * (255 - a)) as f64 / 255.0;
                assert_eq!(composite_on_white(c as u8, a as u8) as f64, exact.round());
            }
            assert_eq!(composite_on_white(c as u8, 0), 255);
            assert_eq!(composite_on_white(c as u8, 255), c as u8);
        }
    }
}
