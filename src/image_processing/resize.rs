//! Pillow's convolution resampling on 8-bit images, reproduced bit for bit.
//!
//! This is `Image.resize(size, resample)` of Pillow 13.0.0 for 8-bit images
//! (`src/libImaging/Resample.c`), which is what transformers' Pillow backend
//! runs on the uint8 image:
//!
//! - per axis, `precompute_coeffs` builds f64 filter weights (support scaled by
//!   the downscaling factor, i.e. antialiasing), normalises them by their
//!   sequential sum, and quantises them to 22-bit fixed point with round half
//!   away from zero;
//! - each output sample is `clamp((1 << 21 + Σ in·k) >> 22, 0, 255)` in i32;
//! - each pass writes an 8-bit intermediate; a pass whose size does not change
//!   is skipped;
//! - pass order (Pillow 13, PR #9549): vertical first iff
//!   `dy > 0 && dy > 2·dx` with `dy = in_h − out_h`, `dx = in_w − out_w`,
//!   otherwise horizontal first.
//!
//! Channels are independent, so an interleaved RGB buffer gives the same
//! numbers as Pillow's RGBX storage.

use crate::error::{Error, Result};

/// A filter kernel: weight as a function of the (scaled) distance.
type Kernel = fn(f64) -> f64;

/// Fixed-point precision of Pillow's 8-bit path (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// A Pillow resampling filter (the numbers are PIL's `Image.Resampling` values,
/// as stored in `preprocessor_config.json`'s `resample`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Filter {
    /// `NEAREST` (0): not implemented (resizing with it is an `Unsupported` error).
    Nearest,
    /// `LANCZOS` (1): windowed sinc, support 3.
    Lanczos,
    /// `BILINEAR` (2): triangle filter, support 1.
    Bilinear,
    /// `BICUBIC` (3): cubic convolution with a = −0.5, support 2 (CLIP's filter).
    Bicubic,
    /// `BOX` (4): box filter, support 0.5.
    Box,
    /// `HAMMING` (5): Hamming-windowed sinc, support 1.
    Hamming,
}

impl Filter {
    /// The filter for PIL's integer code, if it is one of 0..=5.
    pub fn from_pil_code(code: u8) -> Option<Filter> {
        Some(match code {
            0 => Filter::Nearest,
            1 => Filter::Lanczos,
            2 => Filter::Bilinear,
            3 => Filter::Bicubic,
            4 => Filter::Box,
            5 => Filter::Hamming,
            _ => return None,
        })
    }

    /// PIL's integer code for the filter.
    pub fn pil_code(self) -> u8 {
        match self {
            Filter::Nearest => 0,
            Filter::Lanczos => 1,
            Filter::Bilinear => 2,
            Filter::Bicubic => 3,
            Filter::Box => 4,
            Filter::Hamming => 5,
        }
    }

    /// PIL's name for the filter, e.g. `"BICUBIC"`.
    pub fn name(self) -> &'static str {
        match self {
            Filter::Nearest => "NEAREST",
            Filter::Lanczos => "LANCZOS",
            Filter::Bilinear => "BILINEAR",
            Filter::Bicubic => "BICUBIC",
            Filter::Box => "BOX",
            Filter::Hamming => "HAMMING",
        }
    }

    /// Support radius at scale 1 and the kernel, or `None` for NEAREST.
    fn kernel(self) -> Option<(f64, Kernel)> {
        Some(match self {
            Filter::Nearest => return None,
            Filter::Box => (0.5, box_filter),
            Filter::Bilinear => (1.0, bilinear_filter),
            Filter::Hamming => (1.0, hamming_filter),
            Filter::Bicubic => (2.0, bicubic_filter),
            Filter::Lanczos => (3.0, lanczos_filter),
        })
    }
}

// The kernels are written in exactly Pillow's expression order (no FMA).

fn box_filter(x: f64) -> f64 {
    if x > -0.5 && x <= 0.5 {
        1.0
    } else {
        0.0
    }
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn hamming_filter(x: f64) -> f64 {
    let x = x.abs();
    if x == 0.0 {
        1.0
    } else if x >= 1.0 {
        0.0
    } else {
        let x = x * std::f64::consts::PI;
        // Pillow writes `0.54f + 0.46f * cos(x)`: float constants promoted to double.
        x.sin() / x * (0.54f32 as f64 + 0.46f32 as f64 * x.cos())
    }
}

fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn sinc_filter(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos_filter(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc_filter(x) * sinc_filter(x / 3.0)
    } else {
        0.0
    }
}

/// Fixed-point coefficients of one axis: for output index `i`, the taps are
/// `coeffs[i * ksize .. i * ksize + bounds[i].1]` applied from input index
/// `bounds[i].0`.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    coeffs: Vec<i32>,
}

impl Coeffs {
    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let (xmin, n) = self.bounds[i];
        (xmin, &self.coeffs[i * self.ksize..i * self.ksize + n])
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the full box
/// `[0, in_size)`.
fn precompute_coeffs(
    in_size: usize,
    out_size: usize,
    support: f64,
    filter: fn(f64) -> f64,
) -> Coeffs {
    let in0 = 0.0f32;
    let in1 = in_size as f32;
    let scale = (in1 - in0) as f64 / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = support * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let inv = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut coeffs = vec![0i32; out_size * ksize];
    let mut w = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = in0 as f64 + (xx as f64 + 0.5) * scale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(0) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0f64;
        for (x, wx) in w.iter_mut().enumerate().take(n) {
            *wx = filter(((x + xmin) as f64 - center + 0.5) * inv);
            ww += *wx;
        }
        let row = &mut coeffs[xx * ksize..xx * ksize + n];
        for (k, &wx) in row.iter_mut().zip(&w[..n]) {
            let wx = if ww != 0.0 { wx / ww } else { wx };
            let scaled = wx * (1u32 << PRECISION_BITS) as f64;
            *k = if wx < 0.0 { (-0.5 + scaled) as i32 } else { (0.5 + scaled) as i32 };
        }
        bounds.push((xmin, n));
    }
    Coeffs { ksize, bounds, coeffs }
}

#[inline(always)]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Horizontal pass over rows `rows` of `src` (`width` × `C` interleaved),
/// writing `out_w` columns per row.
fn horizontal<const C: usize>(
    src: &[u8],
    width: usize,
    rows: std::ops::Range<usize>,
    c: &Coeffs,
    out_w: usize,
) -> Vec<u8> {
    let in_stride = width * C;
    let out_stride = out_w * C;
    let mut out = vec![0u8; rows.len() * out_stride];
    for (out_row, y) in out.chunks_exact_mut(out_stride).zip(rows) {
        let in_row = &src[y * in_stride..(y + 1) * in_stride];
        for (xx, px) in out_row.chunks_exact_mut(C).enumerate() {
            let (xmin, k) = c.taps(xx);
            let window = &in_row[xmin * C..(xmin + k.len()) * C];
            let mut ss = [1i32 << (PRECISION_BITS - 1); C];
            for (p, &kx) in window.chunks_exact(C).zip(k) {
                // Fixed-size views let the compiler drop the bounds checks.
                let p: &[u8; C] = p.try_into().expect("chunk of C bytes");
                for (s, &v) in ss.iter_mut().zip(p) {
                    *s += v as i32 * kx;
                }
            }
            for (o, &s) in px.iter_mut().zip(&ss) {
                *o = clip8(s);
            }
        }
    }
    out
}

/// Vertical pass: `src` has `row_len` bytes per row; output rows `out_h`,
/// with the taps of `c` shifted by `-offset` rows.
fn vertical(src: &[u8], row_len: usize, c: &Coeffs, offset: usize, out_h: usize) -> Vec<u8> {
    let mut out = vec![0u8; out_h * row_len];
    let mut acc = vec![0i32; row_len];
    for (yy, out_row) in out.chunks_exact_mut(row_len).enumerate() {
        let (ymin, k) = c.taps(yy);
        acc.fill(1i32 << (PRECISION_BITS - 1));
        for (i, &ky) in k.iter().enumerate() {
            let y = ymin + i - offset;
            let in_row = &src[y * row_len..(y + 1) * row_len];
            for (a, &p) in acc.iter_mut().zip(in_row) {
                *a += p as i32 * ky;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Resizes an interleaved 8-bit image with `C` channels from `in_w`×`in_h` to
/// `out_w`×`out_h`, exactly as Pillow 13's `Image.resize(..., filter)` (full
/// box, `reducing_gap=None`).
///
/// Fails with `Unsupported` for [`Filter::Nearest`] and `InvalidArgument` for
/// zero sizes or a buffer of the wrong length.
pub fn resize<const C: usize>(
    src: &[u8],
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    filter: Filter,
) -> Result<Vec<u8>> {
    if in_w == 0 || in_h == 0 || out_w == 0 || out_h == 0 {
        return Err(Error::invalid(format!(
            "cannot resize a {in_w}x{in_h} image to {out_w}x{out_h}: sizes must be positive"
        )));
    }
    if src.len() != in_w * in_h * C {
        return Err(Error::invalid(format!(
            "image buffer has {} bytes, expected {in_w}x{in_h}x{C}",
            src.len()
        )));
    }
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    if !need_h && !need_v {
        return Ok(src.to_vec());
    }
    let Some((support, kernel)) = filter.kernel() else {
        return Err(Error::unsupported(format!(
            "resampling filter {} ({}) is not implemented; use BICUBIC (3)",
            filter.name(),
            filter.pil_code()
        )));
    };
    let ch = need_h.then(|| precompute_coeffs(in_w, out_w, support, kernel));
    let cv = need_v.then(|| precompute_coeffs(in_h, out_h, support, kernel));
    let dy = in_h as i64 - out_h as i64;
    let dx = in_w as i64 - out_w as i64;
    let horizontal_first = !(dy > 0 && dy > 2 * dx);
    Ok(match (ch, cv) {
        (Some(ch), None) => horizontal::<C>(src, in_w, 0..in_h, &ch, out_w),
        (None, Some(cv)) => vertical(src, in_w * C, &cv, 0, out_h),
        (Some(ch), Some(cv)) if horizontal_first => {
            // Only the input rows the vertical pass reads.
            let first = cv.bounds[0].0;
            let (last_min, last_n) = cv.bounds[out_h - 1];
            let tmp = horizontal::<C>(src, in_w, first..last_min + last_n, &ch, out_w);
            vertical(&tmp, out_w * C, &cv, first, out_h)
        }
        (Some(ch), Some(cv)) => {
            let tmp = vertical(src, in_w * C, &cv, 0, out_h);
            horizontal::<C>(&tmp, in_w, 0..out_h, &ch, out_w)
        }
        (None, None) => unreachable!("handled above"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(1000, 224), (224, 1000), (7, 3), (3, 7), (1, 224)] {
            let c = precompute_coeffs(i, o, 2.0, bicubic_filter);
            for xx in 0..o {
                let (_, k) = c.taps(xx);
                let s: i64 = k.iter().map(|&v| v as i64).sum();
                assert!((s - (1 << 22)).abs() <= k.len() as i64, "{i}->{o} @{xx}: {s}");
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let src = vec![77u8; 13 * 9 * 3];
        for f in [Filter::Bicubic, Filter::Bilinear, Filter::Lanczos, Filter::Box, Filter::Hamming]
        {
            let out = resize::<3>(&src, 13, 9, 5, 20, f).unwrap();
            assert!(out.iter().all(|&v| v == 77), "{f:?}");
        }
    }

    #[test]
    fn nearest_is_unsupported_and_identity_is_a_copy() {
        let src = vec![1u8; 4 * 4 * 3];
        assert_eq!(resize::<3>(&src, 4, 4, 4, 4, Filter::Nearest).unwrap(), src);
        let e = resize::<3>(&src, 4, 4, 2, 2, Filter::Nearest).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
    }
}
