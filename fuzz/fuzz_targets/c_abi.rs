//! The C ABI's entry points fed arbitrary buffers: model files in memory
//! (weights, config.json, tokenizer.json, preprocessor_config.json), texts
//! as arbitrary NUL-terminated bytes (invalid UTF-8 included), encoded
//! images, raw pixel views, token ids, features with NaN/Inf, output
//! buffers of any length. Every call must return a status; a caught panic
//! (`CLIP_ERR_PANIC`) or an internal error is a bug, as is any crash.
//!
//! The ffi crate builds only as a cdylib/staticlib, so its modules are
//! compiled into this binary from `ffi/src/` (they refer to each other as
//! `crate::args` etc., which resolves here). Pointers and lengths passed are
//! always consistent, as `clip.h` requires of callers; the contents are not.
//!
//! `cargo +nightly fuzz run c_abi corpus/c_abi seeds/c_abi -- -max_len=8192`
#![no_main]
#![allow(dead_code, clippy::missing_safety_doc)]

#[path = "../../ffi/src/args.rs"]
pub mod args;
#[path = "../../ffi/src/image.rs"]
pub mod image;
#[path = "../../ffi/src/model.rs"]
pub mod model;
#[path = "../../ffi/src/status.rs"]
pub mod status;
#[path = "../../ffi/src/text.rs"]
pub mod text;
#[path = "../../ffi/src/zero_shot.rs"]
pub mod zero_shot;

use image::ClipImageView;
use libfuzzer_sys::fuzz_target;
use model::{ClipModel, ClipModelBuffers};
use status::ClipStatus;
use std::ffi::{c_char, CString};
use std::sync::OnceLock;

const CONFIG: &[u8] = include_bytes!("../../tests/fixtures/models/tiny-quickgelu/config.json");
const WEIGHTS: &[u8] =
    include_bytes!("../../tests/fixtures/models/tiny-quickgelu/model.safetensors");
const PREPROCESSOR: &[u8] = br#"{"size": 32, "crop_size": 32}"#;

/// `tests/common::tiny_tokenizer`'s files: the small test vocabulary cut to
/// the tiny model's 1000 ids.
fn tokenizer_files() -> &'static (Vec<u8>, Vec<u8>) {
    static FILES: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    FILES.get_or_init(|| {
        let vocab = include_bytes!("../../tests/fixtures/tokenizer/small/vocab.json");
        let merges = include_str!("../../tests/fixtures/tokenizer/small/merges.txt");
        let vocab: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(vocab).unwrap();
        let mut kept: serde_json::Map<String, serde_json::Value> =
            vocab.into_iter().filter(|(_, id)| id.as_u64().unwrap() < 998).collect();
        kept.insert("<|startoftext|>".into(), 998.into());
        kept.insert("<|endoftext|>".into(), 999.into());
        let merges: String = merges
            .lines()
            .filter(|l| {
                l.starts_with('#')
                    || l.split_once(' ').is_some_and(|(a, b)| kept.contains_key(&format!("{a}{b}")))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        (serde_json::to_vec(&serde_json::Value::Object(kept)).unwrap(), merges.into_bytes())
    })
}

struct Files<'a> {
    config: &'a [u8],
    weights: &'a [u8],
    tokenizer_json: Option<&'a [u8]>,
    preprocessor: &'a [u8],
}

fn load(f: &Files<'_>) -> (ClipStatus, *mut ClipModel) {
    let (vocab, merges) = tokenizer_files();
    let mut b = ClipModelBuffers {
        struct_size: std::mem::size_of::<ClipModelBuffers>(),
        config_json: f.config.as_ptr().cast(),
        config_json_len: f.config.len(),
        weights: f.weights.as_ptr(),
        weights_len: f.weights.len(),
        tokenizer_json: std::ptr::null(),
        tokenizer_json_len: 0,
        vocab_json: vocab.as_ptr().cast(),
        vocab_json_len: vocab.len(),
        merges_txt: merges.as_ptr().cast(),
        merges_txt_len: merges.len(),
        preprocessor_config_json: f.preprocessor.as_ptr().cast(),
        preprocessor_config_json_len: f.preprocessor.len(),
    };
    if let Some(t) = f.tokenizer_json {
        (b.tokenizer_json, b.tokenizer_json_len) = (t.as_ptr().cast(), t.len());
        (b.vocab_json, b.vocab_json_len, b.merges_txt, b.merges_txt_len) =
            (std::ptr::null(), 0, std::ptr::null(), 0);
    }
    let mut options = model::ClipModelOptions { num_threads: 1, ..Default::default() };
    options.struct_size = std::mem::size_of::<model::ClipModelOptions>();
    let mut m: *mut ClipModel = std::ptr::null_mut();
    // SAFETY: every pointer is valid for its length for the whole call.
    let s = unsafe { model::clip_model_load_from_memory(&b, &options, &mut m) };
    (s, m)
}

/// The shared model for the calls that do not load one.
fn shared() -> &'static SharedModel {
    static MODEL: OnceLock<SharedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let (s, m) = load(&Files {
            config: CONFIG,
            weights: WEIGHTS,
            tokenizer_json: None,
            preprocessor: PREPROCESSOR,
        });
        assert_eq!(s as i32, ClipStatus::Ok as i32);
        SharedModel(m)
    })
}

struct SharedModel(*mut ClipModel);
// SAFETY: the handle is documented as shareable among threads, never freed.
unsafe impl Send for SharedModel {}
// SAFETY: as above.
unsafe impl Sync for SharedModel {}

fn check(s: ClipStatus, what: &str) {
    assert!(
        !matches!(s, ClipStatus::Panic | ClipStatus::Internal),
        "{what}: {s:?}: {:?}",
        // SAFETY: the thread's last error is a valid C string until the next call.
        unsafe { std::ffi::CStr::from_ptr(status::last_error_ptr()) }
    );
}

/// A little reader over the fuzz input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn rest(&mut self) -> &'a [u8] {
        self.take(usize::MAX)
    }
}

/// NUL-separated pieces as C strings (arbitrary bytes, not UTF-8 checked).
fn c_strings(bytes: &[u8], max: usize) -> Vec<CString> {
    bytes.split(|&b| b == 0).take(max).map(|s| CString::new(s).unwrap()).collect()
}

fn ptrs(v: &[CString]) -> Vec<*const c_char> {
    v.iter().map(|s| s.as_ptr()).collect()
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mode = input.byte();
    let m = shared().0 as *const ClipModel;
    let dim = 24;
    match mode % 8 {
        // Model files in memory, one of them replaced by the input.
        0 => {
            let which = input.byte();
            let bytes = input.rest();
            let mut f = Files {
                config: CONFIG,
                weights: WEIGHTS,
                tokenizer_json: None,
                preprocessor: PREPROCESSOR,
            };
            match which % 4 {
                0 => f.weights = bytes,
                1 => f.config = bytes,
                2 => f.tokenizer_json = Some(bytes),
                _ => f.preprocessor = bytes,
            }
            let (s, loaded) = load(&f);
            check(s, "load");
            if s as i32 == ClipStatus::Ok as i32 {
                let text = CString::new("a photo of a cat").unwrap();
                // SAFETY: dim() tells the output length; the handle is valid.
                unsafe {
                    let d = model::clip_model_embedding_dim(loaded);
                    let mut out = vec![0f32; d];
                    check(
                        text::clip_encode_text(loaded, text.as_ptr(), out.as_mut_ptr(), d),
                        "text",
                    );
                    let px = vec![128u8; 40 * 30 * 3];
                    let view = ClipImageView {
                        pixels: px.as_ptr(),
                        width: 40,
                        height: 30,
                        stride: 120,
                        pixel_format: 2,
                    };
                    check(
                        image::clip_encode_raw_image(loaded, &view, out.as_mut_ptr(), d),
                        "image",
                    );
                    model::clip_model_free(loaded);
                }
            } else {
                assert!(loaded.is_null());
            }
        }
        // Texts: arbitrary bytes (invalid UTF-8 included), any output length.
        1 => {
            let out_rows = input.byte() as usize % 8;
            let texts = c_strings(input.rest(), 16);
            let p = ptrs(&texts);
            let mut out = vec![0f32; out_rows * dim];
            // SAFETY: p holds texts.len() valid C strings; out has out.len() floats.
            unsafe {
                check(
                    text::clip_encode_texts(m, p.as_ptr(), p.len(), out.as_mut_ptr(), out.len()),
                    "texts",
                );
                let ctx = model::clip_model_context_length(m);
                let mut ids = vec![0u32; out_rows * ctx];
                let mut mask = vec![0u32; out_rows * ctx];
                let s = text::clip_tokenize(
                    m,
                    p.as_ptr(),
                    p.len(),
                    ids.as_mut_ptr(),
                    mask.as_mut_ptr(),
                    ids.len(),
                );
                check(s, "tokenize");
                if let Some(t) = texts.first() {
                    check(
                        text::clip_encode_text(m, t.as_ptr(), out.as_mut_ptr(), out.len()),
                        "text",
                    );
                }
            }
        }
        // Encoded images, up to 3, with per-item statuses.
        2 => {
            let n = 1 + input.byte() as usize % 3;
            let rest = input.rest();
            let parts: Vec<&[u8]> = rest.chunks(rest.len().div_ceil(n).max(1)).collect();
            let data: Vec<*const u8> = parts.iter().map(|p| p.as_ptr()).collect();
            let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            let mut out = vec![0f32; parts.len() * dim];
            let mut st = vec![ClipStatus::Ok; parts.len()];
            // SAFETY: data[i] points to sizes[i] bytes; out and st are long enough.
            unsafe {
                let s = image::clip_encode_image_buffers(
                    m,
                    data.as_ptr(),
                    sizes.as_ptr(),
                    data.len(),
                    out.as_mut_ptr(),
                    out.len(),
                    st.as_mut_ptr(),
                );
                check(s, "image buffers");
                for s in st {
                    check(s, "image item");
                }
            }
        }
        // A raw pixel view: arbitrary sizes, stride and format, with a buffer
        // as long as the header requires (skipped when the input is shorter).
        3 => {
            let width = u16::from_le_bytes([input.byte(), input.byte()]) as usize;
            let height = u16::from_le_bytes([input.byte(), input.byte()]) as usize;
            let pad = input.byte() as usize;
            let format = input.byte() as i32 % 8 - 1;
            let bpp = [1, 2, 3, 3, 4, 4].get(format as usize).copied().unwrap_or(1);
            let stride = width * bpp + pad;
            let needed = if height == 0 { 0 } else { stride * (height - 1) + width * bpp };
            let px = input.rest();
            if needed > px.len() {
                return;
            }
            let view =
                ClipImageView { pixels: px.as_ptr(), width, height, stride, pixel_format: format };
            let mut out = vec![0f32; dim];
            // SAFETY: the view's buffer holds `needed` bytes.
            let s = unsafe { image::clip_encode_raw_image(m, &view, out.as_mut_ptr(), out.len()) };
            check(s, "raw image");
        }
        // Token ids and masks of any values and shape.
        4 => {
            let rows = input.byte() as usize % 5;
            let row_len = input.byte() as usize % 24;
            let with_mask = input.byte() % 2 == 0;
            let vals: Vec<u32> = input
                .rest()
                .chunks(2)
                .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
                .collect();
            let n = rows * row_len;
            let ids: Vec<u32> =
                (0..n).map(|i| vals.get(i).copied().unwrap_or(999) % 1100).collect();
            let mask: Vec<u32> =
                (0..n).map(|i| vals.get(n + i).copied().unwrap_or(1) % 3).collect();
            let mut out = vec![0f32; rows * dim];
            let mp = if with_mask { mask.as_ptr() } else { std::ptr::null() };
            // SAFETY: ids and mask hold rows * row_len values.
            let s = unsafe {
                text::clip_encode_token_ids(
                    m,
                    ids.as_ptr(),
                    mp,
                    rows,
                    row_len,
                    out.as_mut_ptr(),
                    out.len(),
                )
            };
            check(s, "token ids");
        }
        // Similarity and zero-shot over arbitrary floats (NaN, Inf, huge).
        5 => {
            let ni = input.byte() as usize % 4;
            let nt = input.byte() as usize % 4;
            let mut f = floats(input.rest());
            f.resize((ni + nt) * dim, 0.5);
            let (a, b) = f.split_at(ni * dim);
            let mut out = vec![0f32; ni * nt];
            // SAFETY: a has ni * dim floats, b nt * dim, out ni * nt.
            unsafe {
                check(
                    zero_shot::clip_similarity(
                        m,
                        a.as_ptr(),
                        ni,
                        b.as_ptr(),
                        nt,
                        out.as_mut_ptr(),
                        out.len(),
                    ),
                    "sim",
                );
                let s = zero_shot::clip_zero_shot(
                    m,
                    a.as_ptr(),
                    ni,
                    b.as_ptr(),
                    nt,
                    out.as_mut_ptr(),
                    out.len(),
                );
                check(s, "zero-shot");
                if s as i32 == ClipStatus::Ok as i32 && nt > 0 {
                    assert!(out.iter().all(|p| p.is_finite()), "non-finite probabilities");
                }
            }
        }
        // Labels and templates: arbitrary bytes, `{}` or not.
        6 => {
            let split = input.byte() as usize;
            let rest = input.rest();
            let (l, t) = rest.split_at(split.min(rest.len()));
            let labels = c_strings(l, 6);
            let templates = c_strings(t, 4);
            let (lp, tp) = (ptrs(&labels), ptrs(&templates));
            let mut out = vec![0f32; labels.len() * dim];
            let (tptr, tn) =
                if templates.len() > 1 { (tp.as_ptr(), tp.len()) } else { (std::ptr::null(), 0) };
            // SAFETY: lp/tp hold valid C strings; out is long enough.
            let s = unsafe {
                zero_shot::clip_label_embeddings(
                    m,
                    lp.as_ptr(),
                    lp.len(),
                    tptr,
                    tn,
                    out.as_mut_ptr(),
                    out.len(),
                )
            };
            check(s, "labels");
        }
        // Output buffers that are too short, and odd queries.
        _ => {
            let len = input.byte() as usize % (2 * dim);
            let text =
                CString::new(input.rest().iter().map(|&b| b.max(1)).collect::<Vec<u8>>()).unwrap();
            let mut out = vec![0f32; len];
            // SAFETY: out has len floats.
            unsafe {
                let s = text::clip_encode_text(m, text.as_ptr(), out.as_mut_ptr(), len);
                check(s, "short out");
                if len < dim {
                    // Arguments are checked in order: a text that is not
                    // UTF-8 may be reported first.
                    assert!(
                        matches!(s, ClipStatus::BufferTooSmall | ClipStatus::InvalidUtf8),
                        "{s:?}"
                    );
                }
                let (mut h, mut w) = (0usize, 0usize);
                check(model::clip_model_image_size(m, &mut h, &mut w), "image size");
            }
        }
    }
});
