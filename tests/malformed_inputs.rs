//! Malformed and adversarial inputs: every case gives a clear
//! error, or a documented and correct result, and never a panic, an abort, a
//! hang or an unbounded allocation. Complements `bad_checkpoints.rs`
//! (missing tensors, shapes, F64, truncation, offsets past the end, overlap),
//! `image_processing.rs` (corrupt, truncated, zero-sized images, bombs) and
//! `tokenizer_conformance.rs` (corrupt tokenizer files, long inputs).

mod common;

use clip::image_processing::{CLIPImageProcessor, ImageLimits, ImageProcessorConfig, RgbImage8};
use clip::weights::WeightStore;
use clip::{CLIPModel, ErrorKind, ModelConfig, Tensor};
use common::Scratch;
use safetensors::tensor::{Dtype, TensorView};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn tiny_dir() -> PathBuf {
    common::model_dir("tiny-quickgelu")
}

fn tiny_weights() -> Vec<u8> {
    std::fs::read(tiny_dir().join("model.safetensors")).unwrap()
}

fn tiny_config() -> clip::CLIPConfig {
    match ModelConfig::from_file(&tiny_dir().join("config.json")).unwrap() {
        ModelConfig::Clip(c) => c,
        _ => unreachable!(),
    }
}

/// A safetensors file from a raw header string and data bytes.
fn raw_safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The tiny fixture's tensors rewritten through `edit`.
fn rewrite(edit: impl Fn(&str, Dtype, &[usize], &[u8]) -> (Dtype, Vec<usize>, Vec<u8>)) -> Vec<u8> {
    let bytes = tiny_weights();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let (d, s, b) = edit(&n, v.dtype(), v.shape(), v.data());
            (n, d, s, b)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = kept
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn model_from(bytes: Vec<u8>) -> clip::Result<CLIPModel> {
    let store = WeightStore::from_bytes("test.safetensors", bytes)?;
    CLIPModel::from_store(&tiny_config(), &store)
}

fn expect_err<T>(r: clip::Result<T>, kind: ErrorKind, needle: &str, what: &str) -> clip::Error {
    let e = match r {
        Ok(_) => panic!("{what}: expected a {kind:?} error, got Ok"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), kind, "{what}: {e}");
    assert!(e.to_string().contains(needle), "{what}: \"{e}\" does not mention \"{needle}\"");
    e
}

// ---------------------------------------------------------------- weights

#[test]
fn safetensors_headers_that_lie() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("zero-length", vec![]),
        ("seven bytes", vec![1; 7]),
        ("header length 0", 0u64.to_le_bytes().to_vec()),
        ("header length u64::MAX", u64::MAX.to_le_bytes().to_vec()),
        ("header length over the format's 100 MB cap", {
            let mut v = 200_000_000u64.to_le_bytes().to_vec();
            v.extend_from_slice(b"{}");
            v
        }),
        (
            "header not UTF-8",
            raw_safetensors("\u{0}\u{0}", &[]).into_iter().map(|b| b | 0x80).collect(),
        ),
        ("header not JSON", raw_safetensors("{\"a\":", &[])),
        ("header a JSON array", raw_safetensors("[1,2,3]", &[])),
        (
            "unknown dtype",
            raw_safetensors(
                r#"{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#,
                &[0; 16],
            ),
        ),
        (
            "shape does not match the byte range",
            raw_safetensors(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, &[0; 8]),
        ),
        (
            "shape whose product overflows",
            raw_safetensors(
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
        ),
        (
            "negative dimension",
            raw_safetensors(r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, &[0; 4]),
        ),
        (
            "offsets backwards",
            raw_safetensors(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, &[0; 8]),
        ),
        (
            "offset beyond usize",
            raw_safetensors(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551616]}}"#,
                &[0; 4],
            ),
        ),
        (
            "gap between tensors",
            raw_safetensors(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                &[0; 12],
            ),
        ),
        (
            "trailing bytes after the last tensor",
            raw_safetensors(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, &[0; 64]),
        ),
        (
            "overlapping identical ranges",
            raw_safetensors(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
        ),
        ("data_offsets missing", raw_safetensors(r#"{"a":{"dtype":"F32","shape":[2]}}"#, &[0; 8])),
        ("metadata of the wrong type", raw_safetensors(r#"{"__metadata__":{"format":7}}"#, &[])),
    ];
    for (what, bytes) in cases {
        let t = Instant::now();
        let e = expect_err(
            WeightStore::from_bytes("lying.safetensors", bytes),
            ErrorKind::Format,
            "lying.safetensors",
            what,
        );
        assert!(t.elapsed() < Duration::from_secs(1), "{what}: took {:?}", t.elapsed());
        eprintln!("{what}: {e}");
    }
}

#[test]
fn duplicate_names_in_the_header_do_not_panic() {
    // JSON objects with a repeated key: the last one wins in serde; the
    // offsets then leave a gap or not, and either way nothing panics.
    let bytes = raw_safetensors(
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        &[0; 4],
    );
    if let Ok(store) = WeightStore::from_bytes("dup.safetensors", bytes) {
        assert_eq!(store.names(), ["a"]);
    }
}

#[test]
fn zero_length_and_truncated_weights_in_memory() {
    let w = tiny_weights();
    for cut in [0, 1, 8, 16, w.len() / 3, w.len() - 4] {
        expect_err(model_from(w[..cut].to_vec()), ErrorKind::Format, "test.safetensors", "cut");
    }
    // The whole file loads (the baseline of every other case).
    model_from(w).unwrap();
}

#[test]
fn required_tensors_of_the_wrong_dtype() {
    for dtype in [Dtype::I64, Dtype::I32, Dtype::U8, Dtype::BOOL, Dtype::F64] {
        let w = rewrite(|n, d, s, b| {
            if n == "text_model.final_layer_norm.bias" {
                let size = dtype.bitsize() / 8;
                let n = s.iter().product::<usize>();
                (dtype, s.to_vec(), vec![0; n * size])
            } else {
                (d, s.to_vec(), b.to_vec())
            }
        });
        let e = expect_err(
            model_from(w),
            ErrorKind::Unsupported,
            "text_model.final_layer_norm.bias",
            &format!("{dtype:?}"),
        );
        assert!(e.to_string().contains(&format!("{dtype:?}")), "{e}");
    }
}

#[test]
fn required_tensors_of_the_wrong_rank_or_size() {
    let flatten = rewrite(|n, d, s, b| {
        if n == "text_model.embeddings.token_embedding.weight" {
            (d, vec![s.iter().product()], b.to_vec())
        } else {
            (d, s.to_vec(), b.to_vec())
        }
    });
    expect_err(model_from(flatten), ErrorKind::Format, "token_embedding.weight", "rank 1");
    let scalar = rewrite(|n, d, s, b| {
        if n == "logit_scale" {
            (d, vec![1, 1], b.to_vec())
        } else {
            (d, s.to_vec(), b.to_vec())
        }
    });
    expect_err(model_from(scalar), ErrorKind::Format, "logit_scale", "logit_scale [1,1]");
    let empty = rewrite(|n, d, s, b| {
        if n == "vision_model.encoder.layers.1.mlp.fc2.weight" {
            (d, vec![0, s[1]], vec![])
        } else {
            (d, s.to_vec(), b.to_vec())
        }
    });
    expect_err(model_from(empty), ErrorKind::Format, "mlp.fc2.weight", "zero rows");
}

#[test]
fn mixed_dtypes_load_and_agree() {
    // A checkpoint may mix F32, F16 and BF16 tensors: each is used in its own
    // dtype. The result stays close to the all-F32 model.
    let w = rewrite(|n, d, s, b| {
        let v = f32s(b);
        if n.contains("q_proj") || n.contains("fc1") {
            let h: Vec<u8> = v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect();
            (Dtype::F16, s.to_vec(), h)
        } else if n.contains("k_proj") || n.contains("patch_embedding") {
            let h: Vec<u8> =
                v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect();
            (Dtype::BF16, s.to_vec(), h)
        } else {
            (d, s.to_vec(), b.to_vec())
        }
    });
    let mixed = model_from(w).unwrap();
    assert_eq!(mixed.weights_summary().dtypes.len(), 3, "{:?}", mixed.weights_summary());
    let full = model_from(tiny_weights()).unwrap();
    let ids = vec![vec![998, 5, 17, 999]];
    let a = mixed.get_text_features(&ids, None).unwrap();
    let b = full.get_text_features(&ids, None).unwrap();
    assert!(common::max_abs_diff(&a, &b) < 0.05, "{}", common::max_abs_diff(&a, &b));
}

#[test]
fn sharded_index_that_lies() {
    let shard = tiny_weights();
    let names: Vec<String> = {
        let st = safetensors::SafeTensors::deserialize(&shard).unwrap();
        st.names().into_iter().map(str::to_string).collect()
    };
    let index = |map: &[(&str, &str)]| {
        let m: serde_json::Map<String, serde_json::Value> =
            map.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
        serde_json::json!({ "metadata": {}, "weight_map": m }).to_string()
    };
    let cases: Vec<(&str, String, ErrorKind, &str)> = vec![
        (
            "traversal",
            index(&[("logit_scale", "../model.safetensors")]),
            ErrorKind::Format,
            "file name",
        ),
        ("absolute", index(&[("logit_scale", "/etc/passwd")]), ErrorKind::Format, "file name"),
        ("dotdot", index(&[("logit_scale", "..")]), ErrorKind::Format, "file name"),
        (
            "missing shard",
            index(&[("logit_scale", "nowhere.safetensors")]),
            ErrorKind::Io,
            "nowhere.safetensors",
        ),
        (
            "tensor not in its shard",
            index(&[("not_a_tensor", "a.safetensors")]),
            ErrorKind::Format,
            "not_a_tensor",
        ),
        ("not JSON", "{\"weight_map\": ".into(), ErrorKind::Format, "index.json"),
        ("wrong type", "{\"weight_map\": [1]}".into(), ErrorKind::Format, "index.json"),
    ];
    for (what, text, kind, needle) in cases {
        let dir = Scratch::new("shard");
        dir.write("a.safetensors", &shard);
        let idx = dir.write("model.safetensors.index.json", text);
        expect_err(WeightStore::open_sharded(&idx), kind, needle, what);
        expect_err(WeightStore::open_dir(dir.path()), kind, needle, what);
    }
    // The same tensor in two shards.
    let dir = Scratch::new("twice");
    dir.write("a.safetensors", &shard);
    dir.write("b.safetensors", &shard);
    let map: Vec<(&str, &str)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), if i % 2 == 0 { "a.safetensors" } else { "b.safetensors" }))
        .collect();
    let idx = dir.write("model.safetensors.index.json", index(&map));
    expect_err(WeightStore::open_sharded(&idx), ErrorKind::Format, "appears twice", "twice");
}

#[test]
fn weights_file_that_is_a_directory_or_fifo() {
    let dir = Scratch::new("isdir");
    std::fs::create_dir(dir.path().join("model.safetensors")).unwrap();
    std::fs::copy(tiny_dir().join("config.json"), dir.path().join("config.json")).unwrap();
    let e = CLIPModel::from_pretrained(dir.path()).err().expect("a directory loaded as weights");
    assert!(matches!(e.kind(), ErrorKind::Io | ErrorKind::Format), "{e}");
}

/// NaN and Inf in the weights are not checked at load time (transformers
/// does not check either; a scan would page in every weight of a mapped
/// checkpoint, see docs/threat-model.md). They propagate: the embeddings
/// come out non-finite, and `zero_shot` refuses non-finite features with
/// an `InvalidArgument` error instead of returning NaN probabilities.
#[test]
fn nan_and_inf_weights_propagate_and_are_refused_downstream() {
    for (what, bad) in [("NaN", f32::NAN), ("Inf", f32::INFINITY)] {
        let w = rewrite(|n, d, s, b| {
            let mut v = f32s(b);
            if n == "text_model.encoder.layers.0.mlp.fc1.weight"
                || n == "vision_model.encoder.layers.0.mlp.fc1.weight"
            {
                v[3] = bad;
            }
            (d, s.to_vec(), f32_bytes(&v))
        });
        let model = model_from(w).unwrap();
        let text = model.get_text_features(&[vec![998, 4, 999]], None).unwrap();
        assert!(text.data().iter().any(|x| !x.is_finite()), "{what}: text embedding is finite");
        let px = Tensor::zeros(vec![1, 3, 32, 32]).unwrap();
        let image = model.get_image_features(&px).unwrap();
        assert!(image.data().iter().any(|x| !x.is_finite()), "{what}: image embedding is finite");
        expect_err(
            model.logits_from_features(&image, &text),
            ErrorKind::InvalidArgument,
            "non-finite",
            what,
        );
    }
}

#[test]
fn nan_and_inf_inputs_are_refused() {
    let model = model_from(tiny_weights()).unwrap();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut px = Tensor::zeros(vec![2, 3, 32, 32]).unwrap();
        px.data_mut()[3 * 32 * 32 + 5] = bad;
        expect_err(model.get_image_features(&px), ErrorKind::InvalidArgument, "non-finite", "px");
        let mut feats = Tensor::zeros(vec![1, 24]).unwrap();
        feats.data_mut()[0] = bad;
        let ok = Tensor::zeros(vec![3, 24]).unwrap();
        expect_err(
            model.logits_from_features(&feats, &ok),
            ErrorKind::InvalidArgument,
            "non-finite",
            "feat",
        );
        expect_err(
            model.logits_from_features(&ok, &feats),
            ErrorKind::InvalidArgument,
            "non-finite",
            "feat",
        );
    }
}

// ---------------------------------------------------------------- configs

/// An edit of the tiny fixture's `config.json`.
type Tweak = Box<dyn Fn(&mut serde_json::Value)>;

fn config_with(tweak: impl Fn(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tiny_dir().join("config.json")).unwrap()).unwrap();
    tweak(&mut v);
    v.to_string()
}

fn load_with_config(text: &str) -> clip::Result<CLIPModel> {
    let dir = Scratch::new("config");
    std::fs::copy(tiny_dir().join("model.safetensors"), dir.path().join("model.safetensors"))
        .unwrap();
    dir.write("config.json", text);
    CLIPModel::from_pretrained(dir.path())
}

#[test]
fn configs_with_missing_and_extra_fields() {
    // Missing fields take transformers' defaults (512 wide, 12 layers...),
    // which do not match the tiny weights: a shape error, not a panic.
    let e = load_with_config(r#"{"model_type": "clip"}"#).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Format, "{e}");
    let e = load_with_config("{}").err().unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}"); // a text config, not a CLIPModel
    let e = load_with_config(&config_with(|v| {
        v["text_config"].as_object_mut().unwrap().remove("vocab_size");
    }))
    .err()
    .unwrap();
    assert!(e.to_string().contains("token_embedding"), "{e}");
    // Extra fields anywhere are ignored, as transformers does.
    load_with_config(&config_with(|v| {
        v["future_option"] = serde_json::json!({"nested": [1, 2, {"x": null}]});
        v["text_config"]["rope_theta"] = 10000.into();
        v["vision_config"]["use_flash"] = true.into();
    }))
    .unwrap();
}

#[test]
fn configs_with_wrong_types() {
    let cases: Vec<(&str, Tweak)> = vec![
        ("projection_dim string", Box::new(|v| v["projection_dim"] = "24".into())),
        ("text_config string", Box::new(|v| v["text_config"] = "small".into())),
        ("vision_config number", Box::new(|v| v["vision_config"] = 5.into())),
        ("eps string", Box::new(|v| v["text_config"]["layer_norm_eps"] = "1e-5".into())),
        ("hidden_act number", Box::new(|v| v["vision_config"]["hidden_act"] = 3.into())),
        ("model_type number", Box::new(|v| v["model_type"] = 3.into())),
        ("id2label array", Box::new(|v| v["id2label"] = serde_json::json!(["cat"]))),
        ("eos string", Box::new(|v| v["text_config"]["eos_token_id"] = "2".into())),
        ("layers float", Box::new(|v| v["text_config"]["num_hidden_layers"] = 2.5.into())),
        ("heads negative", Box::new(|v| v["text_config"]["num_attention_heads"] = (-4).into())),
        ("heads bool", Box::new(|v| v["vision_config"]["num_attention_heads"] = true.into())),
        ("top-level array", Box::new(|v| *v = serde_json::json!([1, 2]))),
    ];
    for (what, tweak) in cases {
        let e =
            load_with_config(&config_with(tweak)).err().unwrap_or_else(|| panic!("{what} loaded"));
        assert_eq!(e.kind(), ErrorKind::Format, "{what}: {e}");
        assert!(e.to_string().contains("config.json"), "{what}: {e}");
    }
}

#[test]
fn configs_with_absurd_values_fail_fast_without_allocating() {
    let big = serde_json::Value::from(1u64 << 40);
    let cases: Vec<(&str, Tweak)> = vec![
        ("zero heads", Box::new(|v| v["text_config"]["num_attention_heads"] = 0.into())),
        ("heads not dividing", Box::new(|v| v["vision_config"]["num_attention_heads"] = 5.into())),
        (
            "heads larger than width",
            Box::new(|v| v["text_config"]["num_attention_heads"] = 64.into()),
        ),
        ("patch larger than image", Box::new(|v| v["vision_config"]["patch_size"] = 33.into())),
        ("zero patch", Box::new(|v| v["vision_config"]["patch_size"] = 0.into())),
        ("zero channels", Box::new(|v| v["vision_config"]["num_channels"] = 0.into())),
        ("zero width", Box::new(|v| v["text_config"]["hidden_size"] = 0.into())),
        ("zero projection", Box::new(|v| v["projection_dim"] = 0.into())),
        ("zero vocab", Box::new(|v| v["text_config"]["vocab_size"] = 0.into())),
        ("zero context", Box::new(|v| v["text_config"]["max_position_embeddings"] = 0.into())),
        ("negative eps", Box::new(|v| v["text_config"]["layer_norm_eps"] = (-1.0).into())),
        (
            "a million layers",
            Box::new(|v| v["vision_config"]["num_hidden_layers"] = 1_000_000.into()),
        ),
        (
            "hidden 1e12",
            Box::new(|v| {
                v["text_config"]["hidden_size"] = 1_000_000_000_000u64.into();
                v["text_config"]["num_attention_heads"] = 1.into();
            }),
        ),
        ("hidden 2^40", {
            let b = big.clone();
            Box::new(move |v| {
                v["vision_config"]["hidden_size"] = b.clone();
                v["vision_config"]["num_attention_heads"] = 1.into();
            })
        }),
        (
            "hidden usize::MAX",
            Box::new(|v| {
                v["vision_config"]["hidden_size"] = u64::MAX.into();
                v["vision_config"]["num_attention_heads"] = 1.into();
            }),
        ),
        ("intermediate 2^40", {
            let b = big.clone();
            Box::new(move |v| v["text_config"]["intermediate_size"] = b.clone())
        }),
        ("vocab usize::MAX", Box::new(|v| v["text_config"]["vocab_size"] = u64::MAX.into())),
        (
            "context usize::MAX",
            Box::new(|v| v["text_config"]["max_position_embeddings"] = u64::MAX.into()),
        ),
        ("image 2^40, patch 1", {
            let b = big.clone();
            Box::new(move |v| {
                v["vision_config"]["image_size"] = b.clone();
                v["vision_config"]["patch_size"] = 1.into();
            })
        }),
        (
            "image usize::MAX, patch 1",
            Box::new(|v| {
                v["vision_config"]["image_size"] = u64::MAX.into();
                v["vision_config"]["patch_size"] = 1.into();
            }),
        ),
        ("image 2^40, the weights' patch 8", {
            let b = big.clone();
            Box::new(move |v| {
                // The patch embedding matches; the position count overflows.
                v["vision_config"]["image_size"] = b.clone();
            })
        }),
        (
            "patch 2^32",
            Box::new(|v| {
                v["vision_config"]["image_size"] = (1u64 << 33).into();
                v["vision_config"]["patch_size"] = (1u64 << 32).into();
            }),
        ),
        ("channels 2^40", {
            let b = big.clone();
            Box::new(move |v| v["vision_config"]["num_channels"] = b.clone())
        }),
        ("projection usize::MAX", Box::new(|v| v["projection_dim"] = u64::MAX.into())),
        ("number beyond u64", Box::new(|v| v["projection_dim"] = serde_json::json!(1e300))),
    ];
    for (what, tweak) in cases {
        let t = Instant::now();
        let e =
            load_with_config(&config_with(tweak)).err().unwrap_or_else(|| panic!("{what} loaded"));
        assert_eq!(e.kind(), ErrorKind::Format, "{what}: {e}");
        assert!(t.elapsed() < Duration::from_secs(2), "{what}: took {:?}", t.elapsed());
        eprintln!("{what}: {e}");
    }
    // Configs built in code (not parsed) are validated when a model is built.
    let store = WeightStore::open_dir(&tiny_dir()).unwrap();
    let mut c = tiny_config();
    c.vision_config.patch_size = 0;
    expect_err(CLIPModel::from_store(&c, &store), ErrorKind::Format, "patch_size", "patch 0");
    expect_err(
        clip::CLIPVisionModel::from_store(&c.vision_config, &store),
        ErrorKind::Format,
        "patch_size",
        "patch 0",
    );
    let mut c = tiny_config();
    c.text_config.num_attention_heads = 0;
    expect_err(
        clip::CLIPTextModel::from_store(&c.text_config, &store),
        ErrorKind::Format,
        "num_attention_heads",
        "heads 0",
    );
    let mut c = tiny_config();
    c.projection_dim = 0;
    expect_err(CLIPModel::from_store(&c, &store), ErrorKind::Format, "projection_dim", "proj 0");
    // Absurd id2label sizes: the classifier head then expects that many rows.
    let many: serde_json::Map<String, serde_json::Value> =
        (0..100_000).map(|i| (i.to_string(), format!("class {i}").into())).collect();
    let text = config_with(|v| v["id2label"] = serde_json::Value::Object(many.clone()));
    let ModelConfig::Clip(c) = ModelConfig::from_json(&text).unwrap() else { unreachable!() };
    assert_eq!(c.id2label.len(), 100_000);
}

#[test]
fn pathological_json_does_not_overflow_the_stack() {
    for text in [
        "[".repeat(1_000_000),
        format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000)),
        String::new(),
        "\u{feff}{}".into(),
        "null".into(),
        format!("{{\"model_type\": \"clip\", \"pad\": \"{}\"}}", "x".repeat(4 << 20)),
    ] {
        let r = ModelConfig::from_json(&text);
        if let Err(e) = &r {
            assert!(matches!(e.kind(), ErrorKind::Format), "{e}");
        }
        let r = ImageProcessorConfig::from_json(text.as_bytes());
        if let Err(e) = &r {
            assert_eq!(e.kind(), ErrorKind::Format, "{e}");
        }
    }
}

#[test]
fn preprocessor_configs_with_absurd_values() {
    let image = common::test_image(40, 30, 1);
    // Parse errors.
    for text in [
        r#"{"size": -3}"#,
        r#"{"size": 0}"#,
        r#"{"crop_size": {"height": 0, "width": 4}}"#,
        r#"{"size": 1e300}"#,
        r#"{"image_mean": [0.5, 0.5]}"#,
        r#"{"resample": 99}"#,
        r#"{"rescale_factor": "x"}"#,
        r#"{"size": {"longest_edge": 10}}"#,
    ] {
        let e = ImageProcessorConfig::from_json(text.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Format, "{text}: {e}");
    }
    // Sizes that parse but would need huge buffers: LimitExceeded, no allocation.
    for text in [
        r#"{"size": 4294967295}"#,
        r#"{"size": {"height": 4294967295, "width": 4294967295}}"#,
        r#"{"do_resize": false, "crop_size": 4294967295}"#,
        r#"{"do_resize": false, "crop_size": {"height": 1, "width": 4294967295}}"#,
        r#"{"size": 8, "crop_size": {"height": 100000, "width": 100000}}"#,
    ] {
        let p = CLIPImageProcessor::new(ImageProcessorConfig::from_json(text.as_bytes()).unwrap());
        let e = p.preprocess(&image).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{text}: {e}");
    }
    // Values that would make every pixel non-finite are refused up front.
    for text in [
        r#"{"image_std": 0}"#,
        r#"{"image_std": [0.5, 0.0, 0.5]}"#,
        r#"{"rescale_factor": 1e300, "do_normalize": false}"#,
        r#"{"image_mean": 1e300, "image_std": 1e-300}"#,
    ] {
        let p = CLIPImageProcessor::new(ImageProcessorConfig::from_json(text.as_bytes()).unwrap());
        let e = p.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Format, "{text}: {e}");
        let e = p.preprocess(&image).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Format, "{text}: {e}");
    }
    // A crop larger than the image pads with zeros (transformers does the same).
    let p = CLIPImageProcessor::new(
        ImageProcessorConfig::from_json(br#"{"do_resize": false, "crop_size": 64}"#).unwrap(),
    );
    assert_eq!(p.preprocess(&image).unwrap().shape(), &[3, 64, 64]);
}

// ---------------------------------------------------------------- tokenizer

#[test]
fn tokenizer_inconsistent_with_the_model() {
    // The built-in 49408-token vocabulary against a 1000-token model: the
    // first id past the model's vocabulary is a clear InvalidArgument error.
    let mut p = common::tiny_pipeline();
    assert!(p.encode_texts(&["a photo of a cat"]).is_ok());
    let model = CLIPModel::from_pretrained(tiny_dir()).unwrap();
    p = clip::Pipeline::new(
        model,
        clip::CLIPProcessor {
            tokenizer: clip::tokenizer::CLIPTokenizer::builtin().unwrap(),
            image_processor: p.processor().image_processor.clone(),
        },
    );
    expect_err(
        p.encode_texts(&["a photo of a cat"]),
        ErrorKind::InvalidArgument,
        "outside the vocabulary",
        "builtin",
    );
}

#[test]
fn corrupt_tokenizer_files_in_a_model_directory() {
    for (name, bytes) in [
        ("tokenizer.json", b"{\"model\": {\"vocab\": 5}}".to_vec()),
        ("tokenizer.json", vec![0xff, 0xfe, 0x00]),
        ("tokenizer.json", Vec::new()),
        ("vocab.json", b"{}".to_vec()),
    ] {
        let dir = Scratch::new("tok");
        for f in ["config.json", "model.safetensors"] {
            std::fs::copy(tiny_dir().join(f), dir.path().join(f)).unwrap();
        }
        dir.write(name, &bytes);
        let e = clip::Pipeline::from_dir(dir.path()).err().expect("a corrupt tokenizer loaded");
        assert_eq!(e.kind(), ErrorKind::Format, "{name}: {e}");
    }
}

// ---------------------------------------------------------------- texts

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5)
}

#[test]
fn texts_empty_huge_and_odd() {
    let p = common::tiny_pipeline();
    // Empty text: BOS + EOS, a normal embedding.
    let empty = p.encode_texts(&[""]).unwrap();
    assert_eq!(empty.shape(), &[1, 24]);
    assert!(empty.data().iter().all(|x| x.is_finite()));
    // Whitespace only tokenizes to nothing: the same as empty (to rounding:
    // another batch size may block the matrix products differently).
    let ws = p.encode_texts(&["   \t\n  ", "\u{0}\u{1}\u{7f}\u{feff}\u{202e}"]).unwrap();
    assert!(close(ws.rows().next().unwrap(), empty.rows().next().unwrap()));
    assert!(ws.data().iter().all(|x| x.is_finite()));
    // Megabytes of text are truncated to the context; the cost is the
    // tokenizer's (linear), not the model's.
    let huge = "a photo of a cat ".repeat(300_000); // 5.1 MB
    let no_space = "x".repeat(2 << 20);
    let t = Instant::now();
    let out = p.encode_texts(&[&huge, &no_space]).unwrap();
    assert_eq!(out.shape(), &[2, 24]);
    let short = p.encode_texts(&[&huge[..200]]).unwrap();
    assert!(close(out.rows().next().unwrap(), short.rows().next().unwrap()));
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    // Empty batch.
    assert_eq!(p.encode_texts(&[]).unwrap().shape(), &[0, 24]);
}

#[test]
fn ten_thousand_texts_in_one_call() {
    let mut p = common::tiny_pipeline();
    p.text_batch_size = 128;
    let texts: Vec<String> = (0..10_000).map(|i| format!("photo number {i} of a cat")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let all = p.encode_texts(&refs).unwrap();
    assert_eq!(all.shape(), &[10_000, 24]);
    // Chunking does not change any row (checked on a few).
    for i in [0, 127, 128, 5000, 9999] {
        let one = p.encode_texts(&[refs[i]]).unwrap();
        let row = all.rows().nth(i).unwrap();
        let diff = row.iter().zip(one.data()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff < 1e-5, "row {i}: {diff}");
    }
    // Labels and zero-shot over many labels.
    let labels: Vec<&str> = refs[..300].to_vec();
    let emb = p.label_embeddings(&labels, &["{}"]).unwrap();
    let images = p.encode_images(&[common::test_image(32, 32, 0)]).unwrap();
    let probs = p.zero_shot(&images, &emb).unwrap();
    assert_eq!(probs.shape(), &[1, 300]);
    assert!((probs.data().iter().sum::<f32>() - 1.0).abs() < 1e-4);
}

// ---------------------------------------------------------------- images

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn extreme_aspect_ratios() {
    let p = common::tiny_pipeline();
    let ip = &p.processor().image_processor;
    // 1x65535 (and 65535x1) is over the default 32768-pixel side limit: a
    // LimitExceeded error naming the size.
    for (w, h) in [(1, 65535), (65535, 1)] {
        let e = ip.preprocess_bytes(&png(w, h)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
        assert!(e.to_string().contains(&format!("{w}x{h}")), "{e}");
    }
    // With the side limit raised, the shortest-edge resize to 32 px makes a
    // 32x2097120 intermediate image (201 MB), within the default byte limit;
    // the result is the center crop, as transformers computes it.
    let mut raised = ip.clone();
    raised.limits.max_width = u32::MAX;
    raised.limits.max_height = u32::MAX;
    for (w, h) in [(1, 65535), (65535, 1)] {
        let t = raised.preprocess_bytes(&png(w, h)).unwrap();
        assert_eq!(t.shape(), &[3, 32, 32], "{w}x{h}");
        assert!(t.data().iter().all(|v| v.is_finite()));
    }
    // With the default 224-pixel processor the intermediate would be
    // 224x14680320 (9.8 GB): a LimitExceeded error, not an allocation.
    let e = CLIPImageProcessor::default().preprocess_bytes(&png(1, 65535)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    // Raw buffers with zero or inconsistent sizes.
    assert_eq!(
        RgbImage8::new(0, 10, vec![]).map(|_| ()).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        RgbImage8::new(4, 4, vec![0; 47]).map(|_| ()).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        RgbImage8::new(usize::MAX, 3, vec![]).map(|_| ()).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn one_bad_file_does_not_stop_a_folder() {
    let dir = Scratch::new("folder");
    let good = png(40, 30);
    let mut paths = vec![
        dir.write("good1.png", &good),
        dir.write("empty.jpg", b""),
        dir.write("truncated.png", &good[..good.len() / 2]),
        dir.write("text.png", b"not an image at all"),
        dir.write("bomb.png", {
            // A valid PNG header claiming 100000x100000 pixels.
            let mut b = png(1, 1);
            b[16..20].copy_from_slice(&100_000u32.to_be_bytes());
            b[20..24].copy_from_slice(&100_000u32.to_be_bytes());
            b
        }),
        dir.write("thin.png", png(1, 65535)),
        dir.write("good2.png", png(64, 64)),
    ];
    std::fs::create_dir(dir.path().join("dir.png")).unwrap();
    paths.push(dir.path().join("dir.png"));
    paths.push(dir.path().join("missing.png"));
    let mut p = common::tiny_pipeline();
    p.image_batch_size = 3;
    let mut progress = Vec::new();
    let out = p.encode_image_files(&paths, |n| progress.push(n));
    assert_eq!(out.len(), paths.len());
    assert_eq!(progress, [3, 6, 9]);
    let ok: Vec<&str> = paths
        .iter()
        .zip(&out)
        .filter(|(_, r)| r.is_ok())
        .map(|(p, _)| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(ok, ["good1.png", "good2.png"]);
    for (path, r) in paths.iter().zip(&out) {
        match r {
            Ok(v) => assert_eq!(v.len(), 24),
            Err(e) => {
                let name = path.file_name().unwrap().to_str().unwrap();
                assert!(e.to_string().contains(name), "{name}: {e}");
            }
        }
    }
    // Same embedding as in memory, and as alone.
    let alone = p.encode_image_bytes(&[&good]).remove(0).unwrap();
    assert!(close(out[0].as_ref().unwrap(), &alone));
    // Empty inputs.
    assert!(p.encode_image_files::<PathBuf>(&[], |_| {}).is_empty());
    assert!(p.encode_image_bytes(&[]).is_empty());
    assert_eq!(p.encode_images(&[]).unwrap().shape(), &[0, 24]);
}

#[test]
fn ten_thousand_images_in_one_call() {
    let mut p = common::tiny_pipeline();
    p.image_batch_size = 64;
    let distinct: Vec<RgbImage8> = (0..8).map(|s| common::test_image(33, 31, s)).collect();
    let images: Vec<RgbImage8> = (0..10_000).map(|i| distinct[i % 8].clone()).collect();
    let all = p.encode_images(&images).unwrap();
    assert_eq!(all.shape(), &[10_000, 24]);
    let first = p.encode_images(&distinct).unwrap();
    for i in [0, 63, 64, 5001, 9999] {
        let a = all.rows().nth(i).unwrap();
        let b = first.rows().nth(i % 8).unwrap();
        let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(diff < 1e-5, "image {i}: {diff}");
    }
}

#[test]
fn image_limits_are_configurable() {
    let bytes = png(300, 200);
    let mut p = CLIPImageProcessor {
        limits: ImageLimits { max_width: 299, ..ImageLimits::default() },
        ..Default::default()
    };
    assert_eq!(p.preprocess_bytes(&bytes).unwrap_err().kind(), ErrorKind::LimitExceeded);
    p.limits = ImageLimits { max_alloc_bytes: 300 * 200 * 3 - 1, ..ImageLimits::default() };
    assert_eq!(p.preprocess_bytes(&bytes).unwrap_err().kind(), ErrorKind::LimitExceeded);
    p.limits = ImageLimits::unlimited();
    assert_eq!(p.preprocess_bytes(&bytes).unwrap().shape(), &[3, 224, 224]);
}

#[test]
fn fuzz_seeds_replay_without_panicking() {
    // The `weights` fuzz target's seeds (fuzz/make_seeds.py): micro models in
    // every dtype and naming load; the broken ones are Format errors.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/weights");
    let config = match ModelConfig::from_json(
        &std::fs::read_to_string(dir.join("../configs/config_micro.bin")).unwrap()[1..],
    )
    .unwrap()
    {
        ModelConfig::Clip(c) => c,
        _ => unreachable!(),
    };
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    assert!(entries.len() >= 10);
    for path in entries {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let loaded = WeightStore::from_bytes(&name, std::fs::read(&path).unwrap())
            .and_then(|s| CLIPModel::from_store(&config, &s));
        match loaded {
            Ok(m) => {
                assert!(name.starts_with("micro_"), "{name} loaded");
                let t = m.get_text_features(&[vec![1, 3, 2]], None).unwrap();
                assert!(t.data().iter().all(|v| v.is_finite()), "{name}");
            }
            Err(e) => {
                assert!(!name.starts_with("micro_"), "{name}: {e}");
                assert!(matches!(e.kind(), ErrorKind::Format | ErrorKind::Unsupported), "{e}");
            }
        }
    }
    // Any crash input found later goes in tests/fixtures/fuzz_regressions/
    // (replayed by image_processing.rs) or here.
}
