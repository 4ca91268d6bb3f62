//! Quantized checkpoints: [`quantize_dir`] writes a model directory whose
//! matrices are int8 with one scale per row, which loads memory-mapped like
//! any other and computes at [`Precision::Int8`](crate::Precision::Int8).
//! The format is in `docs/quantized.md`.

use crate::error::{Error, Result};
use crate::kernels::quantize_weight_row;
use crate::weights::WeightStore;
use half::f16;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// The quantization scheme a quantized checkpoint's metadata names
/// (`"clip.quantization"`).
pub const SCHEME: &str = "int8-rows-symmetric-v1";

/// The files of a model directory copied beside the weights (those that
/// exist; `config.json` is required).
const SIDE_FILES: [&str; 8] = [
    "config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "open_clip_config.json",
];

/// What [`quantize_dir`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuantizeSummary {
    /// Matrices written as I8 (each with its `_scale` tensor).
    pub quantized: usize,
    /// Other tensors (F32 written as F16; F16, BF16 and others as they are).
    pub kept: usize,
    /// Bytes of the source checkpoint's safetensors files.
    pub bytes_in: u64,
    /// Bytes of the written `model.safetensors`.
    pub bytes_out: u64,
    /// The side files copied (`config.json`, tokenizer, preprocessor).
    pub files: Vec<String>,
}

/// Whether the tensor `name` of this dtype and shape is a matrix to
/// quantize: a 2-D floating-point `...weight` (linear layers, the token
/// embedding, a classifier), not a position embedding.
fn is_matrix(name: &str, dtype: Dtype, shape: &[usize]) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16)
        && shape.len() == 2
        && shape.iter().all(|&d| d > 0)
        && name.ends_with("weight")
        && !name.contains("position")
}

/// Writes a quantized copy of the model directory `src` into `dst`
/// (created if missing): `model.safetensors` with every matrix as int8
/// rows `q` and their scales (`round(w / s)`, `s = max |w| / 127`: the
/// scheme of [`Precision::Int8`](crate::Precision::Int8)), other F32
/// tensors as F16, and the config, tokenizer and preprocessor files.
/// `progress(done, total)` is called after each tensor.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) when
/// `dst` is `src` or already holds a `model.safetensors` (unless
/// `overwrite`); [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
/// for an already quantized checkpoint; I/O and format errors of reading
/// `src` or writing `dst`. Nothing is left at `dst/model.safetensors` on
/// failure.
pub fn quantize_dir(
    src: &Path,
    dst: &Path,
    overwrite: bool,
    mut progress: impl FnMut(usize, usize),
) -> Result<QuantizeSummary> {
    if !src.join("config.json").is_file() {
        return Err(Error::io(src, std::io::Error::other("no config.json: not a model directory")));
    }
    let store = WeightStore::open_dir(src)?;
    if store.is_quantized() {
        return Err(Error::unsupported(format!(
            "{}: the checkpoint is already quantized (it has I8 tensors)",
            src.display()
        )));
    }
    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(src, dst) {
        return Err(Error::invalid("the output directory must not be the model directory"));
    }
    let out = dst.join("model.safetensors");
    if out.exists() && !overwrite {
        return Err(Error::invalid(format!(
            "{} exists (pass --force to replace it)",
            out.display()
        )));
    }
    let names = store.names();
    let mut summary =
        QuantizeSummary { bytes_in: store.total_bytes() as u64, ..QuantizeSummary::default() };
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, &name) in names.iter().enumerate() {
        let (dtype, shape, bytes) = store.raw(name).expect("listed tensor");
        let shape = shape.to_vec();
        if is_matrix(name, dtype, &shape) {
            let scale_name = format!("{name}_scale");
            if store.contains(&scale_name) {
                return Err(Error::format(format!(
                    "tensor \"{scale_name}\" exists: it would clash with the scales of \"{name}\""
                )));
            }
            let t = store.get(name)?.expect("listed tensor");
            let (rows, cols) = (shape[0], shape[1]);
            let mut q = vec![0i8; rows * cols];
            let mut scale = vec![0.0f32; rows];
            let mut w = vec![0.0f32; cols];
            for (r, (q, s)) in q.chunks_exact_mut(cols).zip(&mut scale).enumerate() {
                t.row_into(r, &mut w);
                *s = quantize_weight_row(&w, q);
            }
            tensors.push((name.to_string(), Dtype::I8, shape, bytemuck::cast_vec(q)));
            let scale_bytes = scale.iter().flat_map(|s| s.to_le_bytes()).collect();
            tensors.push((scale_name, Dtype::F32, vec![rows], scale_bytes));
            summary.quantized += 1;
        } else {
            let (dtype, bytes) = match dtype {
                Dtype::F32 => {
                    let halves = bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .flat_map(|v| f16::from_f32(v).to_le_bytes())
                        .collect();
                    (Dtype::F16, halves)
                }
                other => (other, bytes.to_vec()),
            };
            tensors.push((name.to_string(), dtype, shape, bytes));
            summary.kept += 1;
        }
        progress(i + 1, names.len());
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::format(format!("tensor \"{name}\": {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata: HashMap<String, String> = [
        ("format".to_string(), "pt".to_string()),
        ("clip.quantization".to_string(), SCHEME.to_string()),
    ]
    .into();
    let partial = dst.join("model.safetensors.partial");
    let written = safetensors::serialize_to_file(views, Some(metadata), &partial)
        .map_err(|e| Error::io(&partial, std::io::Error::other(e.to_string())))
        .and_then(|()| std::fs::rename(&partial, &out).map_err(|e| Error::io(&out, e)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    // (The safetensors crate creates the file private to its owner.)
    if let Ok(meta) = std::fs::metadata(src.join("config.json")) {
        let _ = std::fs::set_permissions(&out, meta.permissions());
    }
    summary.bytes_out = std::fs::metadata(&out).map_err(|e| Error::io(&out, e))?.len();
    for file in SIDE_FILES {
        let from = src.join(file);
        if from.is_file() {
            std::fs::copy(&from, dst.join(file)).map_err(|e| Error::io(&from, e))?;
            summary.files.push(file.to_string());
        }
    }
    Ok(summary)
}
