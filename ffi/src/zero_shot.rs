//! Similarities, label embeddings and zero-shot classification.

use crate::args::{mul, out_arg, paths_arg, slice_arg, strs_arg};
use crate::image::encode_files;
use crate::model::{embeddings_out, model_arg, ClipModel};
use crate::status::{guard, ClipStatus, FfiError, FfiResult};
use clip::{Tensor, DEFAULT_TEMPLATES};
use std::ffi::{c_char, CStr};

/// `DEFAULT_TEMPLATES` as C strings (checked equal by a test).
pub const DEFAULT_TEMPLATES_C: [&CStr; 4] =
    [c"a photo of a {}.", c"a picture of a {}.", c"an image of a {}.", c"a drawing of a {}."];

/// A `[n, dim]` feature matrix argument, copied into a tensor.
///
/// # Safety
/// `ptr` NULL or `n * dim` readable floats.
unsafe fn features(ptr: *const f32, n: usize, dim: usize, what: &str) -> FfiResult<Tensor> {
    // SAFETY: forwarded contract.
    let s = unsafe { slice_arg(ptr, mul(n, dim, what)?, what) }?;
    let mut v = Vec::new();
    v.try_reserve_exact(s.len()).map_err(|_| FfiError::oom(what))?;
    v.extend_from_slice(s);
    Ok(Tensor::new(vec![n, dim], v)?)
}

/// The templates argument: NULL with 0 means [`DEFAULT_TEMPLATES`].
///
/// # Safety
/// As `strs_arg`.
unsafe fn templates_arg<'a>(ptr: *const *const c_char, n: usize) -> FfiResult<Vec<&'a str>> {
    if ptr.is_null() && n == 0 {
        return Ok(DEFAULT_TEMPLATES.to_vec());
    }
    if n == 0 {
        return Err(FfiError::invalid("n_templates is 0; pass templates = NULL for the defaults"));
    }
    // SAFETY: forwarded contract.
    unsafe { strs_arg(ptr, n, "templates") }
}

/// `clip_similarity`
///
/// # Safety
/// Feature pointers NULL or `n * dim` readable floats; `out` NULL or
/// `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn clip_similarity(
    model: *const ClipModel,
    image_features: *const f32,
    n_images: usize,
    text_features: *const f32,
    n_texts: usize,
    out: *mut f32,
    out_len: usize,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let m = unsafe { model_arg(model) }?;
        let d = m.dim();
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (img, txt) = unsafe {
            (
                features(image_features, n_images, d, "image_features")?,
                features(text_features, n_texts, d, "text_features")?,
            )
        };
        let out =
            // SAFETY: the pointer arguments meet this function's documented contract.
            unsafe { out_arg(out, out_len, mul(n_images, n_texts, "n_images x n_texts")?, "out") }?;
        if out.is_empty() {
            return Ok(());
        }
        let logits = m.pipeline.model().logits_from_features(&img, &txt)?;
        out.copy_from_slice(logits.data());
        Ok(())
    })
}

/// `clip_label_embeddings`
///
/// # Safety
/// `labels` NULL or `n_labels` strings; `templates` NULL or `n_templates`
/// strings; `out` NULL or `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn clip_label_embeddings(
    model: *const ClipModel,
    labels: *const *const c_char,
    n_labels: usize,
    templates: *const *const c_char,
    n_templates: usize,
    out: *mut f32,
    out_len: usize,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (m, labels, templates) = unsafe {
            (
                model_arg(model)?,
                strs_arg(labels, n_labels, "labels")?,
                templates_arg(templates, n_templates)?,
            )
        };
        let out =
            // SAFETY: the pointer arguments meet this function's documented contract.
            unsafe { embeddings_out(m, out, out_len, n_labels, "n_labels") }?;
        let e = m.pipeline.label_embeddings(&labels, &templates)?;
        out.copy_from_slice(e.data());
        Ok(())
    })
}

/// `clip_zero_shot`
///
/// # Safety
/// As `clip_similarity`.
#[no_mangle]
pub unsafe extern "C" fn clip_zero_shot(
    model: *const ClipModel,
    image_features: *const f32,
    n_images: usize,
    label_embeddings: *const f32,
    n_labels: usize,
    out_probs: *mut f32,
    out_len: usize,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let m = unsafe { model_arg(model) }?;
        let d = m.dim();
        if n_labels == 0 {
            return Err(FfiError::invalid("n_labels is 0"));
        }
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (img, lab) = unsafe {
            (
                features(image_features, n_images, d, "image_features")?,
                features(label_embeddings, n_labels, d, "label_embeddings")?,
            )
        };
        // SAFETY: the pointer arguments meet this function's documented contract.
        let out = unsafe {
            out_arg(
                out_probs,
                out_len,
                mul(n_images, n_labels, "n_images x n_labels")?,
                "out_probs",
            )
        }?;
        if out.is_empty() {
            return Ok(());
        }
        let p = m.pipeline.zero_shot(&img, &lab)?;
        out.copy_from_slice(p.data());
        Ok(())
    })
}

/// `clip_classify_image_files`
///
/// # Safety
/// As `clip_encode_image_files` and `clip_label_embeddings`; `out_probs`
/// NULL or `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn clip_classify_image_files(
    model: *const ClipModel,
    paths: *const *const c_char,
    n_images: usize,
    labels: *const *const c_char,
    n_labels: usize,
    templates: *const *const c_char,
    n_templates: usize,
    out_probs: *mut f32,
    out_len: usize,
    item_status: *mut ClipStatus,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (m, paths, labels, templates) = unsafe {
            (
                model_arg(model)?,
                paths_arg(paths, n_images, "paths")?,
                strs_arg(labels, n_labels, "labels")?,
                templates_arg(templates, n_templates)?,
            )
        };
        // SAFETY: the pointer arguments meet this function's documented contract.
        let out = unsafe {
            out_arg(
                out_probs,
                out_len,
                mul(n_images, n_labels, "n_images x n_labels")?,
                "out_probs",
            )
        }?;
        let st = if item_status.is_null() {
            None
        } else {
            // SAFETY: the pointer arguments meet this function's documented contract.
            Some(unsafe { out_arg(item_status, n_images, n_images, "item_status") }?)
        };
        let lab = m.pipeline.label_embeddings(&labels, &templates)?;
        let d = m.dim();
        let mut feats = Vec::new();
        feats
            .try_reserve_exact(mul(n_images, d, "n_images x dim")?)
            .map_err(|_| FfiError::oom("image features"))?;
        feats.resize(n_images * d, 0.0);
        let mut local = vec![ClipStatus::Ok; n_images];
        let result = encode_files(m, &paths, &mut feats, Some(&mut local));
        if let Some(st) = st {
            st.copy_from_slice(&local);
        }
        if n_images > 0 {
            let p = m.pipeline.zero_shot(&Tensor::new(vec![n_images, d], feats)?, &lab)?;
            for (i, (o, row)) in out.chunks_mut(n_labels).zip(p.rows()).enumerate() {
                if local[i] == ClipStatus::Ok {
                    o.copy_from_slice(row);
                } else {
                    o.fill(0.0);
                }
            }
        }
        result
    })
}

/// `clip_default_template_count`
#[no_mangle]
pub extern "C" fn clip_default_template_count() -> usize {
    DEFAULT_TEMPLATES_C.len()
}

/// `clip_default_template`
#[no_mangle]
pub extern "C" fn clip_default_template(index: usize) -> *const c_char {
    DEFAULT_TEMPLATES_C.get(index).map_or(std::ptr::null(), |s| s.as_ptr())
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_templates_match_the_library() {
        let c: Vec<&str> = super::DEFAULT_TEMPLATES_C.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(c, clip::DEFAULT_TEMPLATES);
    }
}
