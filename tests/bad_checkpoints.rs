//! Bad checkpoints give a clear error, never a panic: missing tensors,
//! wrong shapes, unsupported dtypes, truncated files, lying headers, bad
//! `config.json`. Each case starts from the valid `tiny-quickgelu` fixture
//! and breaks one thing.

mod common;

use clip::{CLIPModel, ErrorKind};
use common::Scratch;
use safetensors::tensor::{Dtype, TensorView};

/// A scratch model directory with the fixture's `config.json`.
fn scratch_model(tag: &str) -> Scratch {
    let dir = Scratch::new(tag);
    std::fs::copy(
        common::model_dir("tiny-quickgelu").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    dir
}

fn original_weights() -> Vec<u8> {
    std::fs::read(common::model_dir("tiny-quickgelu").join("model.safetensors")).unwrap()
}

/// Rewrites the fixture's tensors through `edit` (name, dtype, shape, bytes).
fn rewrite(
    edit: impl Fn(&str, Dtype, Vec<usize>, Vec<u8>) -> Option<(String, Dtype, Vec<usize>, Vec<u8>)>,
) -> Vec<u8> {
    let bytes = original_weights();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        if let Some(t) = edit(&name, view.dtype(), view.shape().to_vec(), view.data().to_vec()) {
            kept.push(t);
        }
    }
    let views: Vec<(String, TensorView<'_>)> = kept
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn load_err(tag: &str, weights: &[u8]) -> clip::Error {
    let dir = scratch_model(tag);
    std::fs::write(dir.path().join("model.safetensors"), weights).unwrap();
    match CLIPModel::from_pretrained(dir.path()) {
        Ok(_) => panic!("{tag}: a broken checkpoint loaded"),
        Err(e) => e,
    }
}

#[test]
fn missing_tensors_are_named() {
    let w = rewrite(|n, d, s, b| {
        (!n.contains("layers.1.mlp") && n != "logit_scale").then(|| (n.into(), d, s, b))
    });
    let e = load_err("missing", &w);
    assert_eq!(e.kind(), ErrorKind::Format);
    let msg = e.to_string();
    assert!(msg.contains("9 tensor(s) missing"), "{msg}");
    assert!(msg.contains("text_model.encoder.layers.1.mlp.fc1.weight"), "{msg}");
    assert!(msg.contains("and 4 more"), "{msg}");
}

#[test]
fn wrong_shape_says_expected_and_found() {
    let w = rewrite(|n, d, s, b| {
        if n == "text_projection.weight" {
            // [24, 32] stored as [32, 24]: same bytes, wrong shape.
            Some((n.into(), d, vec![s[1], s[0]], b))
        } else {
            Some((n.into(), d, s, b))
        }
    });
    let e = load_err("shape", &w);
    assert_eq!(e.kind(), ErrorKind::Format);
    assert!(
        e.to_string().contains("\"text_projection.weight\" has shape [32, 24], expected [24, 32]"),
        "{e}"
    );
}

#[test]
fn unsupported_dtype_is_named() {
    let w = rewrite(|n, d, s, b| {
        if n == "vision_model.pre_layrnorm.bias" {
            let wide: Vec<u8> = b
                .chunks_exact(4)
                .flat_map(|c| (f32::from_le_bytes(c.try_into().unwrap()) as f64).to_le_bytes())
                .collect();
            Some((n.into(), Dtype::F64, s, wide))
        } else {
            Some((n.into(), d, s, b))
        }
    });
    let e = load_err("dtype", &w);
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        e.to_string().contains("vision_model.pre_layrnorm.bias") && e.to_string().contains("F64"),
        "{e}"
    );
}

#[test]
fn truncated_file() {
    let w = original_weights();
    for cut in [0, 4, 9, 100, w.len() / 2, w.len() - 1] {
        let e = load_err(&format!("trunc{cut}"), &w[..cut]);
        assert_eq!(e.kind(), ErrorKind::Format, "cut at {cut}: {e}");
        assert!(e.to_string().contains("model.safetensors"), "error names the file: {e}");
    }
}

#[test]
fn header_offsets_past_the_end() {
    let mut header =
        br#"{"logit_scale":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}"#.to_vec();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    file.extend_from_slice(&[0u8; 16]);
    let e = load_err("offsets", &file);
    assert_eq!(e.kind(), ErrorKind::Format);
    assert!(e.to_string().contains("offsets point past the end"), "{e}");
    // A header length that claims more than the file holds.
    let mut lying = (1u64 << 40).to_le_bytes().to_vec();
    lying.extend_from_slice(b"{}");
    assert_eq!(load_err("hdrlen", &lying).kind(), ErrorKind::Format);
}

#[test]
fn overlapping_tensors() {
    let mut header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#.to_vec();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    file.extend_from_slice(&[0u8; 12]);
    let e = load_err("overlap", &file);
    assert_eq!(e.kind(), ErrorKind::Format, "{e}");
}

#[test]
fn bad_config_json() {
    for (tag, text, kind) in [
        ("notjson", "{ this is not json", ErrorKind::Format),
        (
            "wrongtype",
            r#"{"model_type":"clip","text_config":{"num_hidden_layers":"two"}}"#,
            ErrorKind::Format,
        ),
        (
            "heads",
            r#"{"model_type":"clip","vision_config":{"hidden_size":48,"num_attention_heads":5}}"#,
            ErrorKind::Format,
        ),
        (
            "act",
            r#"{"model_type":"clip","text_config":{"hidden_act":"mish"}}"#,
            ErrorKind::Unsupported,
        ),
    ] {
        let dir = scratch_model(tag);
        std::fs::write(dir.path().join("model.safetensors"), original_weights()).unwrap();
        std::fs::write(dir.path().join("config.json"), text).unwrap();
        let e =
            CLIPModel::from_pretrained(dir.path()).err().unwrap_or_else(|| panic!("{tag} loaded"));
        assert_eq!(e.kind(), kind, "{tag}: {e}");
        assert!(e.to_string().contains("config.json"), "{tag}: error names the file: {e}");
    }
}

#[test]
fn missing_files() {
    let e = CLIPModel::from_pretrained("/nonexistent/model/dir").err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("/nonexistent/model/dir"), "{e}");
    let dir = scratch_model("noweights");
    let e = CLIPModel::from_pretrained(dir.path()).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("no model.safetensors"), "{e}");
}

#[test]
fn invalid_inputs_are_errors() {
    let model = CLIPModel::from_pretrained(common::model_dir("tiny-quickgelu")).unwrap();
    for (ids, what) in [
        (vec![vec![998, 5, 999], vec![998, 999]], "ragged"),
        (vec![vec![998, 5000, 999]], "outside the vocabulary"),
        (vec![vec![1; 17]], "exceeds max_position_embeddings"),
        (vec![vec![]], "empty"),
    ] {
        let e = model.get_text_features(&ids, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{what}: {e}");
    }
    let bad_px = clip::Tensor::zeros(vec![1, 3, 31, 32]).unwrap();
    assert_eq!(model.get_image_features(&bad_px).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let mut nan_px = clip::Tensor::zeros(vec![1, 3, 32, 32]).unwrap();
    nan_px.data_mut()[7] = f32::NAN;
    assert_eq!(model.get_image_features(&nan_px).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(model.get_text_features(&[], None).unwrap().shape(), &[0, 24]);
}
