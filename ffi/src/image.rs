//! Images: embeddings from files, from encoded bytes and from raw pixels.

use crate::args::{mul, out_arg, path_arg, paths_arg, slice_arg};
use crate::model::{embeddings_out, model_arg, ClipModel, LogLevel};
use crate::status::{guard, status_of, ClipStatus, FfiError, FfiResult};
use clip::image_processing::{from_raw, PixelFormat, RgbImage8};
use std::ffi::c_char;

/// `clip_image_view`: a raw pixel buffer decoded by the caller.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ClipImageView {
    pub pixels: *const u8,
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    pub pixel_format: i32,
}

/// Per-item results of a batch call: the rows go to `out` (zeros for a
/// failed item), the statuses to `item_status` (if not NULL). The call's
/// status is `CLIP_OK` if every item succeeded, else the first failure's,
/// with a message naming the item.
pub fn scatter(
    m: &ClipModel,
    results: Vec<clip::Result<Vec<f32>>>,
    out: &mut [f32],
    item_status: Option<&mut [ClipStatus]>,
    name: impl Fn(usize) -> String,
) -> FfiResult<()> {
    let d = m.dim();
    let mut first: Option<FfiError> = None;
    let mut failed = 0;
    let mut statuses = item_status;
    for (i, r) in results.into_iter().enumerate() {
        let row = &mut out[i * d..(i + 1) * d];
        let status = match r {
            Ok(v) if v.len() == d => {
                row.copy_from_slice(&v);
                ClipStatus::Ok
            }
            Ok(v) => {
                row.fill(0.0);
                let e = FfiError::new(
                    ClipStatus::Internal,
                    format!("{}: got {} features, not {d}", name(i), v.len()),
                );
                first.get_or_insert(e);
                failed += 1;
                ClipStatus::Internal
            }
            Err(e) => {
                row.fill(0.0);
                let status = status_of(e.kind());
                let msg = format!("{}: {e}", name(i));
                m.log(LogLevel::Warn, &msg);
                first.get_or_insert(FfiError::new(status, msg));
                failed += 1;
                status
            }
        };
        if let Some(s) = statuses.as_deref_mut() {
            s[i] = status;
        }
    }
    match first {
        None => Ok(()),
        Some(mut e) => {
            let n = out.len() / d.max(1);
            if n > 1 {
                e.message = format!("{e} ({failed} of {n} images failed)", e = e.message);
            }
            Err(e)
        }
    }
}

/// The optional `item_status` output of `n` entries.
///
/// # Safety
/// `ptr` is NULL or points to `n` writable statuses.
unsafe fn statuses<'a>(ptr: *mut ClipStatus, n: usize) -> FfiResult<Option<&'a mut [ClipStatus]>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    Ok(Some(unsafe { out_arg(ptr, n, n, "item_status") }?))
}

/// Embeds image files into `out`; see [`scatter`].
pub fn encode_files(
    m: &ClipModel,
    paths: &[std::path::PathBuf],
    out: &mut [f32],
    item_status: Option<&mut [ClipStatus]>,
) -> FfiResult<()> {
    let results = m.pipeline.encode_image_files(paths, |_| {});
    scatter(m, results, out, item_status, |i| format!("image {i} ({})", paths[i].display()))
}

/// `clip_encode_image_files`
///
/// # Safety
/// `paths` NULL or `n_images` string pointers; `out` NULL or `out_len`
/// writable floats; `item_status` NULL or `n_images` writable statuses.
#[no_mangle]
pub unsafe extern "C" fn clip_encode_image_files(
    model: *const ClipModel,
    paths: *const *const c_char,
    n_images: usize,
    out: *mut f32,
    out_len: usize,
    item_status: *mut ClipStatus,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (m, paths) = unsafe { (model_arg(model)?, paths_arg(paths, n_images, "paths")?) };
        let out =
            // SAFETY: the pointer arguments meet this function's documented contract.
            unsafe { embeddings_out(m, out, out_len, n_images, "n_images") }?;
        // SAFETY: the pointer arguments meet this function's documented contract.
        let st = unsafe { statuses(item_status, n_images) }?;
        encode_files(m, &paths, out, st)
    })
}

/// `clip_encode_image_file`
///
/// # Safety
/// `path` NULL or a NUL-terminated string; `out` NULL or `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn clip_encode_image_file(
    model: *const ClipModel,
    path: *const c_char,
    out: *mut f32,
    out_len: usize,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let m = unsafe { model_arg(model) }?;
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (path, out) =
            unsafe { (path_arg(path, "path")?, embeddings_out(m, out, out_len, 1, "one")?) };
        let r = m.pipeline.encode_image_files(&[&path], |_| {});
        scatter(m, r, out, None, |_| path.display().to_string())
    })
}

/// `clip_encode_image_buffers`
///
/// # Safety
/// `data` and `sizes` NULL or `n_images` entries, `data[i]` addressing
/// `sizes[i]` bytes; `out`, `item_status` as in `clip_encode_image_files`.
#[no_mangle]
pub unsafe extern "C" fn clip_encode_image_buffers(
    model: *const ClipModel,
    data: *const *const u8,
    sizes: *const usize,
    n_images: usize,
    out: *mut f32,
    out_len: usize,
    item_status: *mut ClipStatus,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (m, ptrs, sizes) = unsafe {
            (
                model_arg(model)?,
                slice_arg(data, n_images, "data")?,
                slice_arg(sizes, n_images, "sizes")?,
            )
        };
        let mut bufs: Vec<&[u8]> = Vec::new();
        bufs.try_reserve_exact(n_images).map_err(|_| FfiError::oom("data"))?;
        for (i, (&p, &n)) in ptrs.iter().zip(sizes).enumerate() {
            // SAFETY: the pointer arguments meet this function's documented contract.
            bufs.push(unsafe { slice_arg(p, n, &format!("data[{i}]")) }?);
        }
        let out =
            // SAFETY: the pointer arguments meet this function's documented contract.
            unsafe { embeddings_out(m, out, out_len, n_images, "n_images") }?;
        // SAFETY: the pointer arguments meet this function's documented contract.
        let st = unsafe { statuses(item_status, n_images) }?;
        let results = m.pipeline.encode_image_bytes(&bufs);
        scatter(m, results, out, st, |i| format!("image {i}"))
    })
}

/// `clip_encode_image_buffer`
///
/// # Safety
/// `data` NULL or `size` readable bytes; `out` NULL or `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn clip_encode_image_buffer(
    model: *const ClipModel,
    data: *const u8,
    size: usize,
    out: *mut f32,
    out_len: usize,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let m = unsafe { model_arg(model) }?;
        if data.is_null() {
            return Err(FfiError::null("data"));
        }
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (bytes, out) =
            unsafe { (slice_arg(data, size, "data")?, embeddings_out(m, out, out_len, 1, "one")?) };
        let r = m.pipeline.encode_image_bytes(&[bytes]);
        scatter(m, r, out, None, |_| "image".to_string())
    })
}

fn pixel_format(code: i32) -> FfiResult<PixelFormat> {
    Ok(match code {
        0 => PixelFormat::Gray8,
        1 => PixelFormat::GrayAlpha8,
        2 => PixelFormat::Rgb8,
        3 => PixelFormat::Bgr8,
        4 => PixelFormat::Rgba8,
        5 => PixelFormat::Bgra8,
        c => return Err(FfiError::invalid(format!("pixel_format {c} is not a clip_pixel_format"))),
    })
}

/// Converts one view to RGB (copying its pixels), as the Rust API's
/// `from_raw(..)?.to_rgb8(alpha)`.
///
/// # Safety
/// `v.pixels` is NULL or addresses `stride * (height - 1) + width * bpp` bytes.
unsafe fn view_to_rgb(m: &ClipModel, v: &ClipImageView, what: &str) -> FfiResult<RgbImage8> {
    let format = pixel_format(v.pixel_format)
        .map_err(|e| FfiError::invalid(format!("{what}: {}", e.message)))?;
    if v.width == 0 || v.height == 0 {
        return Err(FfiError::invalid(format!(
            "{what}: size {}x{} has a zero dimension",
            v.width, v.height
        )));
    }
    let row = mul(v.width, format.bytes_per_pixel(), what)?;
    if v.stride < row {
        return Err(FfiError::invalid(format!(
            "{what}: stride {} is smaller than a row of {} pixels ({row} bytes)",
            v.stride, v.width
        )));
    }
    let len = mul(v.stride, v.height - 1, what)?
        .checked_add(row)
        .ok_or_else(|| FfiError::invalid(format!("{what}: the buffer size overflows")))?;
    let limits = &m.pipeline.processor().image_processor.limits;
    let (w, h) =
        (u32::try_from(v.width).unwrap_or(u32::MAX), u32::try_from(v.height).unwrap_or(u32::MAX));
    limits.check(w, h, 3).map_err(|e| FfiError::from(e.context(what)))?;
    // SAFETY: forwarded contract; the length is what the view describes.
    let bytes = unsafe { slice_arg(v.pixels, len, &format!("{what}.pixels")) }?;
    let decoded = from_raw(bytes, v.width, v.height, v.stride, format)
        .map_err(|e| FfiError::from(e.context(what)))?;
    Ok(decoded.to_rgb8(m.pipeline.processor().image_processor.alpha))
}

/// `clip_encode_raw_images`
///
/// # Safety
/// `images` NULL or `n_images` views, each addressing its pixels; `out` NULL
/// or `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn clip_encode_raw_images(
    model: *const ClipModel,
    images: *const ClipImageView,
    n_images: usize,
    out: *mut f32,
    out_len: usize,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (m, views) = unsafe { (model_arg(model)?, slice_arg(images, n_images, "images")?) };
        let out =
            // SAFETY: the pointer arguments meet this function's documented contract.
            unsafe { embeddings_out(m, out, out_len, n_images, "n_images") }?;
        let mut rgb = Vec::new();
        rgb.try_reserve_exact(n_images).map_err(|_| FfiError::oom("images"))?;
        for (i, v) in views.iter().enumerate() {
            // SAFETY: the pointer arguments meet this function's documented contract.
            rgb.push(unsafe { view_to_rgb(m, v, &format!("images[{i}]")) }?);
        }
        let t = m.pipeline.encode_images(&rgb)?;
        out.copy_from_slice(t.data());
        Ok(())
    })
}

/// `clip_encode_raw_image`
///
/// # Safety
/// `image` NULL or a view addressing its pixels; `out` NULL or `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn clip_encode_raw_image(
    model: *const ClipModel,
    image: *const ClipImageView,
    out: *mut f32,
    out_len: usize,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let m = unsafe { model_arg(model) }?;
        // SAFETY: the pointer arguments meet this function's documented contract.
        let v = unsafe { image.as_ref() }.ok_or_else(|| FfiError::null("image"))?;
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (out, rgb) =
            unsafe { (embeddings_out(m, out, out_len, 1, "one")?, view_to_rgb(m, v, "image")?) };
        let t = m.pipeline.encode_images(&[rgb])?;
        out.copy_from_slice(t.data());
        Ok(())
    })
}
