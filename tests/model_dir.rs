//! What a model directory's files imply: preprocessing without
//! `preprocessor_config.json`, OpenAI-named weights without `config.json`,
//! and open_clip parts this runtime does not implement (a clear
//! `Unsupported` error naming the part).

mod common;

use clip::image_processing::CLIPImageProcessor;
use clip::{CLIPModel, ErrorKind, Pipeline};
use common::Scratch;
use safetensors::tensor::{Dtype, TensorView};

/// `tiny-quickgelu-openai`'s weights plus one extra tensor `name`.
fn weights_with(name: &str) -> Vec<u8> {
    let path = common::model_dir("tiny-quickgelu-openai").join("model.safetensors");
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let extra = [0u8; 16];
    let mut views: Vec<(String, TensorView<'_>)> = st.tensors();
    views.push((name.to_string(), TensorView::new(Dtype::F32, vec![4], &extra).unwrap()));
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn preprocessing_follows_the_model_without_a_preprocessor_config() {
    // config.json says 32 px; no preprocessor_config.json.
    let dir = Scratch::copy_fixture("tiny-quickgelu", "pp-config", &[]);
    assert!(!dir.path().join("preprocessor_config.json").exists());
    let p = CLIPImageProcessor::from_dir(dir.path()).unwrap();
    assert_eq!(p.output_size(), Some((32, 32)));

    // OpenAI naming and no config.json at all: the size is inferred from
    // the weights (patch 8 x grid 4), and images go through end to end.
    let bare = Scratch::copy_fixture("tiny-quickgelu-openai", "pp-bare", &["config.json"]);
    let p = CLIPImageProcessor::from_dir(bare.path()).unwrap();
    assert_eq!(p.output_size(), Some((32, 32)));
    let pipeline = Pipeline::from_dir(bare.path()).unwrap();
    let embeds = pipeline.encode_images(&[common::test_image(70, 50, 1)]).unwrap();
    assert_eq!(embeds.shape(), &[1, 24]);

    // A directory with no model keeps transformers' defaults.
    let empty = std::env::temp_dir().join(format!("clip-dir-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    assert_eq!(CLIPImageProcessor::from_dir(&empty).unwrap().output_size(), Some((224, 224)));
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn open_clip_parts_not_implemented_are_named() {
    for (tensor, part) in [
        ("visual.trunk.stem.0.weight", "timm image tower"),
        ("visual.layer1.0.conv1.weight", "ModifiedResNet"),
        ("visual.attn_pool.query", "attentional pooler"),
        ("text_decoder.ln_final.weight", "CoCa"),
        ("transformer.resblocks.0.mlp.ln.weight", "scale_fc"),
        ("visual.transformer.resblocks.1.attn.ln_q.weight", "qk_norm"),
        ("logit_bias", "SigLIP"),
    ] {
        let dir =
            Scratch::copy_fixture("tiny-quickgelu-openai", "unsupported", &["model.safetensors"]);
        dir.write("model.safetensors", weights_with(tensor));
        let e = CLIPModel::from_pretrained(dir.path()).err().expect("loaded");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{tensor}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(part) && msg.contains(tensor), "{tensor}: {msg}");
    }
}

#[test]
fn open_clip_config_refusals_name_the_key() {
    for (cfg, key) in [
        (r#"{"embed_dim": 24, "vision_cfg": {"timm_model_name": "convnext_base"}}"#, "timm"),
        (r#"{"embed_dim": 24, "vision_cfg": {"layers": [3, 4, 6, 3]}}"#, "ModifiedResNet"),
        (r#"{"embed_dim": 24, "text_cfg": {"hf_model_name": "roberta-base"}}"#, "hf_model_name"),
        (r#"{"embed_dim": 24, "multimodal_cfg": {"width": 512}}"#, "CoCa"),
    ] {
        let dir = Scratch::copy_fixture("tiny-quickgelu-openai", "oc-refuse", &["config.json"]);
        dir.write("open_clip_config.json", cfg);
        let e = CLIPModel::from_pretrained(dir.path()).err().expect("loaded");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{cfg}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(key) && msg.contains("open_clip_config.json"), "{cfg}: {msg}");
    }
}

#[test]
fn pytorch_pickles_are_named_not_read() {
    let dir = Scratch::copy_fixture("tiny-quickgelu", "pickle", &["model.safetensors"]);
    dir.write("open_clip_pytorch_model.bin", b"not read");
    let e = CLIPModel::from_pretrained(dir.path()).err().expect("loaded");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("open_clip_pytorch_model.bin") && msg.contains("safetensors"), "{msg}");
}
