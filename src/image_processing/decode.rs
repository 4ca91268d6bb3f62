//! Decoding images from files, encoded bytes and raw pixel buffers, with
//! limits against decompression bombs.
//!
//! Formats: JPEG, PNG, WebP, GIF (first frame), BMP, TIFF, recognised by
//! their content (the file extension is only a fallback). The header is read
//! first and its dimensions checked against [`ImageLimits`] before any pixel
//! is decoded; the same limits are handed to the `image` crate's decoders.
//!
//! Like transformers' handling of `PIL.Image.open(path)`, no EXIF orientation
//! is applied.

use crate::error::{Error, ErrorKind, Result};
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};
use std::io::Cursor;
use std::path::Path;

/// Limits checked before decoding, against decompression bombs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageLimits {
    /// Largest accepted width in pixels.
    pub max_width: u32,
    /// Largest accepted height in pixels.
    pub max_height: u32,
    /// Largest accepted size of the decoded pixel buffer (and budget handed
    /// to the decoder for its own allocations), in bytes.
    pub max_alloc_bytes: u64,
}

impl Default for ImageLimits {
    /// 32768 × 32768 pixels and 512 MiB of decoded pixels (about 179 million
    /// RGB pixels, like Pillow's decompression-bomb error threshold).
    fn default() -> Self {
        ImageLimits { max_width: 32768, max_height: 32768, max_alloc_bytes: 512 << 20 }
    }
}

impl ImageLimits {
    /// No practical limit (for trusted inputs).
    pub fn unlimited() -> Self {
        ImageLimits { max_width: u32::MAX, max_height: u32::MAX, max_alloc_bytes: u64::MAX }
    }

    /// Checks `width` × `height` with `bytes_per_pixel` against the limits.
    pub fn check(&self, width: u32, height: u32, bytes_per_pixel: u64) -> Result<()> {
        if width > self.max_width || height > self.max_height {
            return Err(Error::limit(format!(
                "image of {width}x{height} pixels exceeds the limit of {}x{}",
                self.max_width, self.max_height
            )));
        }
        let bytes = width as u64 * height as u64 * bytes_per_pixel;
        if bytes > self.max_alloc_bytes {
            return Err(Error::limit(format!(
                "image of {width}x{height} pixels needs {bytes} bytes, over the limit of {} bytes",
                self.max_alloc_bytes
            )));
        }
        Ok(())
    }

    fn to_image_limits(self) -> image::Limits {
        let mut l = image::Limits::no_limits();
        l.max_image_width = Some(self.max_width);
        l.max_image_height = Some(self.max_height);
        l.max_alloc = Some(self.max_alloc_bytes);
        l
    }
}

/// Decoded samples, in the layout the file stored them (after palette
/// expansion). 16-bit samples are native-endian `u16`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pixels {
    /// 8-bit gray (1-, 2- and 4-bit gray are scaled to 0..=255).
    Gray8(Vec<u8>),
    /// 8-bit gray and alpha, interleaved.
    GrayAlpha8(Vec<u8>),
    /// 8-bit RGB, interleaved.
    Rgb8(Vec<u8>),
    /// 8-bit RGBA (straight alpha), interleaved. Palette and `tRNS`
    /// transparency, and GIF frames, decode to this.
    Rgba8(Vec<u8>),
    /// 16-bit gray.
    Gray16(Vec<u16>),
    /// 16-bit gray and alpha.
    GrayAlpha16(Vec<u16>),
    /// 16-bit RGB.
    Rgb16(Vec<u16>),
    /// 16-bit RGBA.
    Rgba16(Vec<u16>),
}

impl Pixels {
    /// Channels per pixel.
    pub fn channels(&self) -> usize {
        match self {
            Pixels::Gray8(_) | Pixels::Gray16(_) => 1,
            Pixels::GrayAlpha8(_) | Pixels::GrayAlpha16(_) => 2,
            Pixels::Rgb8(_) | Pixels::Rgb16(_) => 3,
            Pixels::Rgba8(_) | Pixels::Rgba16(_) => 4,
        }
    }

    /// True when there is an alpha channel.
    pub fn has_alpha(&self) -> bool {
        self.channels().is_multiple_of(2)
    }
}

/// A decoded image: dimensions and samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedImage {
    /// Width in pixels (> 0).
    pub width: usize,
    /// Height in pixels (> 0).
    pub height: usize,
    /// The samples.
    pub pixels: Pixels,
}

/// Layouts of raw pixel buffers accepted by [`from_raw`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 1 byte per pixel, gray.
    Gray8,
    /// 2 bytes per pixel, gray then alpha.
    GrayAlpha8,
    /// 3 bytes per pixel, R G B.
    Rgb8,
    /// 3 bytes per pixel, B G R.
    Bgr8,
    /// 4 bytes per pixel, R G B A (straight, not premultiplied, alpha).
    Rgba8,
    /// 4 bytes per pixel, B G R A (straight, not premultiplied, alpha).
    Bgra8,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::GrayAlpha8 => 2,
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => 3,
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => 4,
        }
    }
}

/// Wraps a raw pixel buffer decoded by the host: `height` rows of `width`
/// pixels, row `y` starting at byte `y * stride` (`stride` ≥ `width` × bytes
/// per pixel; padding bytes are ignored). The last row needs only
/// `width` × bytes per pixel bytes. The pixels are copied.
pub fn from_raw(
    pixels: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    format: PixelFormat,
) -> Result<DecodedImage> {
    if width == 0 || height == 0 {
        return Err(Error::invalid(format!(
            "raw image size {width}x{height} has a zero dimension"
        )));
    }
    let bpp = format.bytes_per_pixel();
    let row = width
        .checked_mul(bpp)
        .ok_or_else(|| Error::invalid(format!("raw image width {width} is too large")))?;
    if stride < row {
        return Err(Error::invalid(format!(
            "raw image stride {stride} is smaller than a row ({width} pixels x {bpp} bytes = {row})"
        )));
    }
    let needed = stride.checked_mul(height - 1).and_then(|n| n.checked_add(row));
    if needed.is_none_or(|n| pixels.len() < n) {
        return Err(Error::invalid(format!(
            "raw image buffer of {} bytes is too short for {height} rows of stride {stride}",
            pixels.len()
        )));
    }
    let mut data = Vec::with_capacity(row * height);
    for y in 0..height {
        data.extend_from_slice(&pixels[y * stride..y * stride + row]);
    }
    let swap_rb =
        |data: &mut Vec<u8>, n: usize| data.chunks_exact_mut(n).for_each(|p| p.swap(0, 2));
    let pixels = match format {
        PixelFormat::Gray8 => Pixels::Gray8(data),
        PixelFormat::GrayAlpha8 => Pixels::GrayAlpha8(data),
        PixelFormat::Rgb8 => Pixels::Rgb8(data),
        PixelFormat::Rgba8 => Pixels::Rgba8(data),
        PixelFormat::Bgr8 => {
            swap_rb(&mut data, 3);
            Pixels::Rgb8(data)
        }
        PixelFormat::Bgra8 => {
            swap_rb(&mut data, 4);
            Pixels::Rgba8(data)
        }
    };
    Ok(DecodedImage { width, height, pixels })
}

/// Decodes the image file at `path`. Errors name the file: `Io` if it cannot
/// be read, `Format` if it is not a decodable image (unknown format,
/// truncated, corrupt, zero-sized), `Unsupported` for a recognised but
/// unsupported variant, `LimitExceeded` if it is larger than `limits`.
pub fn decode_path(path: impl AsRef<Path>, limits: &ImageLimits) -> Result<DecodedImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let hint = ImageFormat::from_path(path).ok();
    decode_impl(&bytes, hint, limits).map_err(|e| e.context(path.display()))
}

/// Decodes an encoded image (JPEG, PNG, WebP, GIF, BMP or TIFF) from memory.
/// Errors as for [`decode_path`], prefixed with "image data".
pub fn decode_bytes(bytes: &[u8], limits: &ImageLimits) -> Result<DecodedImage> {
    decode_impl(bytes, None, limits).map_err(|e| e.context("image data"))
}

fn decode_impl(
    bytes: &[u8],
    hint: Option<ImageFormat>,
    limits: &ImageLimits,
) -> Result<DecodedImage> {
    if bytes.is_empty() {
        return Err(Error::format("empty file, not an image"));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::format(format!("cannot read image data: {e}")))?;
    if reader.format().is_none() {
        match hint {
            Some(f) => reader.set_format(f),
            None => {
                return Err(Error::format(
                    "not a recognised image format (expected JPEG, PNG, WebP, GIF, BMP or TIFF)",
                ))
            }
        }
    }
    let format = reader.format();
    reader.limits(limits.to_image_limits());
    // Reads the header only; the limits are checked here by the decoders.
    let decoder = match reader.into_decoder() {
        Ok(d) => d,
        Err(e @ ImageError::Limits(_)) => {
            // Say which dimensions were refused when the header can tell.
            let dims = ImageReader::new(Cursor::new(bytes))
                .with_guessed_format()
                .ok()
                .and_then(|r| r.into_dimensions().ok());
            return Err(match dims {
                Some((w, h)) => limits.check(w, h, 1).err().unwrap_or_else(|| map_image_error(e)),
                None => map_image_error(e),
            });
        }
        Err(e) => return Err(map_image_error(e)),
    };
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(Error::format(format!("image has a zero dimension ({width}x{height})")));
    }
    limits.check(width, height, decoder.color_type().bytes_per_pixel() as u64)?;
    let image = DynamicImage::from_decoder(decoder).map_err(map_image_error)?;
    let pixels = match image {
        DynamicImage::ImageLuma8(b) => Pixels::Gray8(b.into_raw()),
        DynamicImage::ImageLumaA8(b) => Pixels::GrayAlpha8(b.into_raw()),
        DynamicImage::ImageRgb8(b) => Pixels::Rgb8(b.into_raw()),
        DynamicImage::ImageRgba8(b) => Pixels::Rgba8(b.into_raw()),
        DynamicImage::ImageLuma16(b) => Pixels::Gray16(b.into_raw()),
        DynamicImage::ImageLumaA16(b) => {
            let raw = b.into_raw();
            if format == Some(ImageFormat::Png) && png_color_type(bytes) == Some(0) {
                // 16-bit gray + tRNS: Pillow opens it as `I;16` with
                // `info["transparency"] = t`; `convert("RGBA")` clamps to
                // 0..255 first and then makes the pixels equal to `t`
                // transparent (so t ≥ 256 never matches, t = 255 matches all
                // v ≥ 255). The decoder's alpha compared 16-bit values instead.
                let t = png_gray_trns(bytes);
                let mut la = Vec::with_capacity(raw.len());
                for p in raw.chunks_exact(2) {
                    let l = p[0].min(255);
                    la.extend_from_slice(&[l as u8, if Some(l) == t { 0 } else { 255 }]);
                }
                Pixels::GrayAlpha8(la)
            } else {
                Pixels::GrayAlpha16(raw)
            }
        }
        DynamicImage::ImageRgb16(b) => Pixels::Rgb16(b.into_raw()),
        DynamicImage::ImageRgba16(b) => Pixels::Rgba16(b.into_raw()),
        other => {
            return Err(Error::unsupported(format!(
                "pixel type {:?} is not supported",
                other.color()
            )))
        }
    };
    Ok(DecodedImage { width: width as usize, height: height as usize, pixels })
}

/// The colour type byte of a PNG's IHDR, if `bytes` starts like a PNG.
fn png_color_type(bytes: &[u8]) -> Option<u8> {
    (bytes.len() > 25 && &bytes[12..16] == b"IHDR").then(|| bytes[25])
}

/// The gray value of a grayscale PNG's `tRNS` chunk (before `IDAT`).
fn png_gray_trns(bytes: &[u8]) -> Option<u16> {
    let mut off = 8;
    while off + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[off..off + 4].try_into().ok()?) as usize;
        let kind = &bytes[off + 4..off + 8];
        let data = bytes.get(off + 8..off + 8 + len)?;
        match kind {
            b"tRNS" if len >= 2 => return Some(u16::from_be_bytes([data[0], data[1]])),
            b"IDAT" | b"IEND" => return None,
            _ => off = off.checked_add(12 + len)?,
        }
    }
    None
}

fn map_image_error(e: ImageError) -> Error {
    let (kind, what) = match &e {
        ImageError::Limits(_) => (ErrorKind::LimitExceeded, "image exceeds the decoding limits"),
        ImageError::Unsupported(_) => (ErrorKind::Unsupported, "unsupported image"),
        ImageError::IoError(_) => (ErrorKind::Format, "truncated or unreadable image data"),
        _ => (ErrorKind::Format, "cannot decode image"),
    };
    let message = format!("{what}: {e}");
    Error::new(kind, message).with_source(e)
}
