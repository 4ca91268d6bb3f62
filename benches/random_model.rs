//! Random-weight checkpoints of real shapes, built in memory for benchmarks
//! (speed does not depend on the weight values).
#![allow(dead_code)]

use clip::config::{CLIPConfig, CLIPTextConfig, CLIPVisionConfig};
use clip::weights::WeightStore;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// `openai/clip-vit-base-patch32`'s configuration.
pub fn b32_config() -> CLIPConfig {
    CLIPConfig {
        text_config: CLIPTextConfig { eos_token_id: Some(2), ..CLIPTextConfig::default() },
        vision_config: CLIPVisionConfig::default(),
        ..CLIPConfig::default()
    }
}

/// `openai/clip-vit-large-patch14-336`'s configuration (text 768 wide, 12
/// layers; vision 1024 wide, 24 layers, patch 14, 336 px; projection 768).
pub fn l14_336_config() -> CLIPConfig {
    let text_config = CLIPTextConfig {
        hidden_size: 768,
        intermediate_size: 3072,
        num_attention_heads: 12,
        projection_dim: 768,
        eos_token_id: Some(2),
        ..CLIPTextConfig::default()
    };
    let vision_config = CLIPVisionConfig {
        hidden_size: 1024,
        intermediate_size: 4096,
        num_hidden_layers: 24,
        num_attention_heads: 16,
        image_size: 336,
        patch_size: 14,
        projection_dim: 768,
        ..CLIPVisionConfig::default()
    };
    CLIPConfig { text_config, vision_config, projection_dim: 768, ..CLIPConfig::default() }
}

/// The shapes a benchmark runs, by `CLIP_BENCH_SHAPES`: `b32` (default) or
/// `l14-336`, with a label for reports. Exits with status 2 on other values.
pub fn bench_shapes() -> (&'static str, CLIPConfig) {
    match std::env::var("CLIP_BENCH_SHAPES").as_deref() {
        Err(_) | Ok("b32") => ("b32", b32_config()),
        Ok("l14-336") => ("l14-336", l14_336_config()),
        Ok(other) => {
            eprintln!("CLIP_BENCH_SHAPES={other}: expected b32 or l14-336");
            std::process::exit(2);
        }
    }
}

fn tower(prefix: &str, d: usize, f: usize, layers: usize, out: &mut Vec<(String, Vec<usize>)>) {
    for i in 0..layers {
        let p = format!("{prefix}.encoder.layers.{i}");
        for n in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            out.push((format!("{p}.self_attn.{n}.weight"), vec![d, d]));
            out.push((format!("{p}.self_attn.{n}.bias"), vec![d]));
        }
        for n in ["layer_norm1", "layer_norm2"] {
            out.push((format!("{p}.{n}.weight"), vec![d]));
            out.push((format!("{p}.{n}.bias"), vec![d]));
        }
        out.push((format!("{p}.mlp.fc1.weight"), vec![f, d]));
        out.push((format!("{p}.mlp.fc1.bias"), vec![f]));
        out.push((format!("{p}.mlp.fc2.weight"), vec![d, f]));
        out.push((format!("{p}.mlp.fc2.bias"), vec![d]));
    }
}

/// Names and shapes of a `CLIPModel` checkpoint (Hugging Face naming).
pub fn clip_tensors(c: &CLIPConfig) -> Vec<(String, Vec<usize>)> {
    let (t, v) = (&c.text_config, &c.vision_config);
    let mut out = vec![
        ("logit_scale".to_string(), vec![]),
        ("text_model.embeddings.token_embedding.weight".into(), vec![t.vocab_size, t.hidden_size]),
        (
            "text_model.embeddings.position_embedding.weight".into(),
            vec![t.max_position_embeddings, t.hidden_size],
        ),
        ("text_model.final_layer_norm.weight".into(), vec![t.hidden_size]),
        ("text_model.final_layer_norm.bias".into(), vec![t.hidden_size]),
        ("text_projection.weight".into(), vec![c.projection_dim, t.hidden_size]),
        ("vision_model.embeddings.class_embedding".into(), vec![v.hidden_size]),
        (
            "vision_model.embeddings.patch_embedding.weight".into(),
            vec![v.hidden_size, v.num_channels, v.patch_size, v.patch_size],
        ),
        (
            "vision_model.embeddings.position_embedding.weight".into(),
            vec![v.num_positions(), v.hidden_size],
        ),
        ("vision_model.pre_layrnorm.weight".into(), vec![v.hidden_size]),
        ("vision_model.pre_layrnorm.bias".into(), vec![v.hidden_size]),
        ("vision_model.post_layernorm.weight".into(), vec![v.hidden_size]),
        ("vision_model.post_layernorm.bias".into(), vec![v.hidden_size]),
        ("visual_projection.weight".into(), vec![c.projection_dim, v.hidden_size]),
    ];
    tower("text_model", t.hidden_size, t.intermediate_size, t.num_hidden_layers, &mut out);
    tower("vision_model", v.hidden_size, v.intermediate_size, v.num_hidden_layers, &mut out);
    out
}

/// Random weights of the config's shapes (F16 or F32), handed to `f` as
/// safetensors views (with the `{"format": "pt"}` metadata transformers
/// expects), so they can be serialized in memory or to a file.
fn with_random_views<R>(
    c: &CLIPConfig,
    f16: bool,
    f: impl FnOnce(Vec<(String, TensorView<'_>)>, Option<HashMap<String, String>>) -> R,
) -> R {
    let tensors = clip_tensors(c);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
    };
    let buffers: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape)| {
            let n: usize = shape.iter().product();
            if f16 {
                (0..n).flat_map(|_| half::f16::from_f32(next()).to_le_bytes()).collect()
            } else {
                (0..n).flat_map(|_| next().to_le_bytes()).collect()
            }
        })
        .collect();
    let dtype = if f16 { Dtype::F16 } else { Dtype::F32 };
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&buffers)
        .map(|((name, shape), b)| (name.clone(), TensorView::new(dtype, shape.clone(), b).unwrap()))
        .collect();
    f(views, Some(HashMap::from([("format".to_string(), "pt".to_string())])))
}

/// A safetensors file with random weights of the config's shapes, in memory.
pub fn random_store(c: &CLIPConfig, f16: bool) -> WeightStore {
    let bytes =
        with_random_views(c, f16, |views, meta| safetensors::serialize(views, meta).unwrap());
    WeightStore::from_bytes("random", bytes).unwrap()
}

/// Writes the same random weights as [`random_store`] to a safetensors file.
pub fn write_random_safetensors(c: &CLIPConfig, f16: bool, path: &Path) {
    with_random_views(c, f16, |views, meta| safetensors::serialize_to_file(views, meta, path))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Median and range of `runs` timings of `f`, in seconds.
pub fn time_it(runs: usize, mut f: impl FnMut()) -> (f64, f64, f64) {
    f(); // warm-up
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = std::time::Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (t[t.len() / 2], t[0], t[t.len() - 1])
}
