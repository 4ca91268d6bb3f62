//! Quantized checkpoints (`clip::quantize`, `clip quantize --int8`): what
//! `quantize_dir` refuses, and that a damaged or inconsistent quantized
//! file is a clear `Format` error, never a panic. Their accuracy is
//! measured in `tests/int8_precision.rs`.

use clip::{CLIPModel, ErrorKind};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-model")
}

/// A fresh directory under the system's temporary directory.
fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clip-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The demo model quantized into a fresh directory.
fn quantized(name: &str) -> PathBuf {
    let dir = temp(name);
    clip::quantize::quantize_dir(&demo(), &dir, false, |_, _| {}).unwrap();
    dir
}

/// Rewrites `dir/model.safetensors` with `edit` applied to its tensor list
/// (name, dtype, shape, bytes).
fn rewrite(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

const Q: &str = "text_model.encoder.layers.0.self_attn.q_proj.weight";

fn load_error(dir: &Path) -> clip::Error {
    match CLIPModel::from_pretrained(dir) {
        Ok(_) => panic!("{}: a damaged quantized checkpoint loaded", dir.display()),
        Err(e) => e,
    }
}

/// Row scales missing, of the wrong shape or dtype, or not finite: each is
/// a `Format` error naming the matrix.
#[test]
fn inconsistent_scales_are_format_errors() {
    let scale = format!("{Q}_scale");
    type Edit = Box<dyn Fn(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>)>;
    let s = scale.clone();
    let missing: Edit = Box::new(move |t| t.retain(|(n, ..)| *n != s));
    let s = scale.clone();
    let wrong_shape: Edit = Box::new(move |t| {
        let e = t.iter_mut().find(|(n, ..)| *n == s).unwrap();
        e.3.truncate(e.3.len() - 4);
        e.2 = vec![e.2[0] - 1];
    });
    let s = scale.clone();
    let wrong_dtype: Edit = Box::new(move |t| {
        let e = t.iter_mut().find(|(n, ..)| *n == s).unwrap();
        e.1 = Dtype::I8;
        e.3.truncate(e.2[0]);
    });
    let s = scale.clone();
    let not_finite: Edit = Box::new(move |t| {
        let e = t.iter_mut().find(|(n, ..)| *n == s).unwrap();
        e.3[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    // A non-square matrix stored transposed (its scales then do not match).
    const FC1: &str = "text_model.encoder.layers.0.mlp.fc1.weight";
    let matrix_shape: Edit = Box::new(|t| {
        let e = t.iter_mut().find(|(n, ..)| n == FC1).unwrap();
        assert_ne!(e.2[0], e.2[1]);
        e.2 = vec![e.2[1], e.2[0]];
    });
    for (what, edit, name, says) in [
        ("missing", missing, Q, "missing"),
        ("wrong shape", wrong_shape, Q, "shape"),
        ("wrong dtype", wrong_dtype, Q, "I8"),
        ("not finite", not_finite, Q, "not finite"),
        ("matrix shape", matrix_shape, FC1, "shape"),
    ] {
        let dir = quantized(&what.replace(' ', "-"));
        rewrite(&dir, edit);
        let e = load_error(&dir);
        assert_eq!(e.kind(), ErrorKind::Format, "{what}: {e}");
        assert!(e.message().contains(name) && e.message().contains(says), "{what}: {e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A truncated quantized file is a `Format` error.
#[test]
fn truncated_quantized_file_is_a_format_error() {
    let dir = quantized("truncated");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
    assert_eq!(load_error(&dir).kind(), ErrorKind::Format);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `quantize_dir` refuses an already quantized checkpoint (Unsupported),
/// an existing output file without `overwrite` and the model directory
/// itself as output (InvalidArgument), and a directory without
/// `config.json` (Io); the refused runs leave the output as it was.
#[test]
fn quantize_dir_refuses_what_it_cannot_do() {
    let dir = quantized("refusals");
    let before = std::fs::read(dir.join("model.safetensors")).unwrap();
    let again = clip::quantize::quantize_dir(&dir, &temp("refusals-2"), false, |_, _| {});
    assert_eq!(again.unwrap_err().kind(), ErrorKind::Unsupported);
    let exists = clip::quantize::quantize_dir(&demo(), &dir, false, |_, _| {});
    let e = exists.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("--force"), "{e}");
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), before);
    let same = clip::quantize::quantize_dir(&demo(), &demo(), true, |_, _| {});
    assert_eq!(same.unwrap_err().kind(), ErrorKind::InvalidArgument);
    let empty = temp("refusals-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let none = clip::quantize::quantize_dir(&empty, &temp("refusals-3"), false, |_, _| {});
    assert_eq!(none.unwrap_err().kind(), ErrorKind::Io);
    for d in [dir, empty, temp("refusals-2"), temp("refusals-3")] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Full precision on a quantized checkpoint computes in f32 with the
/// matrices' int8 values (`q * scale`, widened): close to int8 (cosine
/// > 0.999; measured 0.99998), not the same numbers.
#[test]
fn full_precision_on_a_quantized_checkpoint_widens_the_int8_values() {
    let dir = quantized("full");
    let mut model = CLIPModel::from_pretrained(&dir).unwrap();
    let ids = vec![vec![49406, 320, 1125, 539, 320, 1929, 49407]];
    let int8 = model.get_text_features(&ids, None).unwrap();
    model.set_precision(clip::Precision::Full);
    let full = model.get_text_features(&ids, None).unwrap();
    assert_ne!(int8.data(), full.data());
    let (a, b) = (int8.row(0), full.row(0));
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cos = dot / (norm(a) * norm(b));
    println!("int8 vs full precision on the quantized demo checkpoint: cosine {cos:.6}");
    assert!(cos > 0.999, "cosine {cos}");
    std::fs::remove_dir_all(&dir).unwrap();
}
