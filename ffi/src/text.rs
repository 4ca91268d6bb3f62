//! Texts: tokenization, text embeddings from strings and from token ids.

use crate::args::{mul, out_arg, slice_arg, str_arg, strs_arg};
use crate::model::{embeddings_out, model_arg, ClipModel};
use crate::status::{guard, ClipStatus, FfiError, FfiResult};
use clip::tokenizer::{EncodeOptions, Padding};
use std::ffi::c_char;

/// Encodes `texts` into `out` (`[n, dim]`), as `Pipeline::encode_texts`.
fn encode(m: &ClipModel, texts: &[&str], out: &mut [f32]) -> FfiResult<()> {
    let t = m.pipeline.encode_texts(texts)?;
    out.copy_from_slice(t.data());
    Ok(())
}

/// `clip_tokenize`
///
/// # Safety
/// `texts` NULL or `n_texts` string pointers; `input_ids` / `attention_mask`
/// NULL or `out_len` writable elements.
#[no_mangle]
pub unsafe extern "C" fn clip_tokenize(
    model: *const ClipModel,
    texts: *const *const c_char,
    n_texts: usize,
    input_ids: *mut u32,
    attention_mask: *mut u32,
    out_len: usize,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (m, texts) = unsafe { (model_arg(model)?, strs_arg(texts, n_texts, "texts")?) };
        let ctx = m.pipeline.context_length();
        let needed = mul(n_texts, ctx, "n_texts x context length")?;
        // SAFETY: the pointer arguments meet this function's documented contract.
        let ids = unsafe { out_arg(input_ids, out_len, needed, "input_ids") }?;
        let mask = if attention_mask.is_null() {
            None
        } else {
            // SAFETY: the pointer arguments meet this function's documented contract.
            Some(unsafe { out_arg(attention_mask, out_len, needed, "attention_mask") }?)
        };
        let opts = EncodeOptions {
            max_length: ctx,
            padding: Padding::MaxLength,
            truncation: true,
            ..Default::default()
        };
        let enc = m.pipeline.processor().tokenizer.encode_batch(&texts, &opts)?;
        for (i, row) in enc.input_ids.iter().enumerate() {
            if row.len() != ctx {
                return Err(FfiError::new(
                    ClipStatus::Internal,
                    format!("tokenizer gave {} ids, not {ctx}", row.len()),
                ));
            }
            ids[i * ctx..(i + 1) * ctx].copy_from_slice(row);
        }
        if let Some(mask) = mask {
            for (i, row) in enc.attention_mask.iter().enumerate() {
                mask[i * ctx..(i + 1) * ctx].copy_from_slice(row);
            }
        }
        Ok(())
    })
}

/// `clip_encode_texts`
///
/// # Safety
/// `texts` NULL or `n_texts` string pointers; `out` NULL or `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn clip_encode_texts(
    model: *const ClipModel,
    texts: *const *const c_char,
    n_texts: usize,
    out: *mut f32,
    out_len: usize,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let m = unsafe { model_arg(model) }?;
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (texts, out) = unsafe {
            (
                strs_arg(texts, n_texts, "texts")?,
                embeddings_out(m, out, out_len, n_texts, "n_texts")?,
            )
        };
        encode(m, &texts, out)
    })
}

/// `clip_encode_text`
///
/// # Safety
/// `text` NULL or a NUL-terminated string; `out` NULL or `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn clip_encode_text(
    model: *const ClipModel,
    text: *const c_char,
    out: *mut f32,
    out_len: usize,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let m = unsafe { model_arg(model) }?;
        // SAFETY: the pointer arguments meet this function's documented contract.
        let (text, out) =
            unsafe { (str_arg(text, "text")?, embeddings_out(m, out, out_len, 1, "one")?) };
        encode(m, &[text], out)
    })
}

/// `clip_encode_token_ids`
///
/// # Safety
/// `input_ids` (and `attention_mask` unless NULL) address `n_texts * row_len`
/// elements; `out` NULL or `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn clip_encode_token_ids(
    model: *const ClipModel,
    input_ids: *const u32,
    attention_mask: *const u32,
    n_texts: usize,
    row_len: usize,
    out: *mut f32,
    out_len: usize,
) -> ClipStatus {
    guard(|| {
        // SAFETY: the pointer arguments meet this function's documented contract.
        let m = unsafe { model_arg(model) }?;
        let total = mul(n_texts, row_len, "n_texts x row_len")?;
        if n_texts > 0 && row_len == 0 {
            return Err(FfiError::invalid("row_len is 0"));
        }
        // SAFETY: the pointer arguments meet this function's documented contract.
        let ids = unsafe { slice_arg(input_ids, total, "input_ids") }?;
        let mask = if attention_mask.is_null() {
            None
        } else {
            // SAFETY: the pointer arguments meet this function's documented contract.
            Some(unsafe { slice_arg(attention_mask, total, "attention_mask") }?)
        };
        // SAFETY: the pointer arguments meet this function's documented contract.
        let out = unsafe { embeddings_out(m, out, out_len, n_texts, "n_texts") }?;
        if n_texts == 0 {
            return Ok(());
        }
        let rows = |s: &[u32]| -> FfiResult<Vec<Vec<u32>>> {
            let mut v = Vec::new();
            v.try_reserve_exact(n_texts).map_err(|_| FfiError::oom("token rows"))?;
            v.extend(s.chunks(row_len).map(<[u32]>::to_vec));
            Ok(v)
        };
        let ids = rows(ids)?;
        let mask = mask.map(rows).transpose()?;
        if let Some(mask) = &mask {
            if let Some((i, _)) = mask.iter().flatten().enumerate().find(|(_, &v)| v > 1) {
                return Err(FfiError::invalid(format!("attention_mask[{i}] is neither 0 nor 1")));
            }
        }
        let feats =
            m.pipeline.install(|| m.pipeline.model().get_text_features(&ids, mask.as_deref()))?;
        out.copy_from_slice(feats.data());
        Ok(())
    })
}
