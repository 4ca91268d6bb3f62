//! Start-up: model load to first embedding in a fresh process, and that
//! process's peak resident memory, at `openai/clip-vit-base-patch32` shapes
//! or, with `CLIP_BENCH_SHAPES=l14-336`, `openai/clip-vit-large-patch14-336`'s
//! (random weights), F32 and F16 checkpoints.
//!
//! `cargo bench --bench startup [-- --json] [--runs N] [--prepare] [f32|f16] [image|text]`
//!
//! It first writes two Hugging Face model directories under
//! `target/bench-models/` (`b32-random-f32/`, `b32-random-f16/`, or
//! `l14-336-random-*`: config.json,
//! preprocessor_config.json, vocab.json + merges.txt of the built-in CLIP
//! vocabulary, model.safetensors; reused when already complete) and a
//! 640x480 PNG, `startup.png`. `--prepare` stops there (the Python peers,
//! `scripts/bench_startup_peer.py`, use the same directories).
//!
//! Then, for each dtype and input, it starts this same binary `N + 1` times
//! (default N = 7) as a child that does what an application does
//! (`Pipeline::from_dir`, then `encode_image_files` on the PNG or
//! `encode_texts` on one sentence), prints its phases and its peak resident
//! memory (`VmHWM` of /proc/self/status: weights touched through the memory
//! map count, as the kernel charges them) and exits. The first child of each
//! series is discarded (it warms the page cache). Reported, median and range:
//! - spawn to first embedding: the parent hands its clock reading at the spawn
//!   to the child, which subtracts it from its own at the first embedding
//!   (process creation, exec and dynamic loading included, exit not);
//! - in process: `Pipeline::from_dir` (load) + the first embedding (embed,
//!   which includes packing the weights on first use where that is done);
//! - a second embedding of the same input in the same child, after the
//!   measurement: the difference to the first shows the first-use costs;
//! - peak RSS up to the first embedding, and the anonymous / file-backed
//!   split of the resident memory then.
//!
//! As a cross-check it also times the `clip embed` command line on the same
//! job (spawn to exit only: the CLI does not report its phases or memory).
//!
//! Set `RAYON_NUM_THREADS` to fix the thread count; children inherit it.
//! `scripts/bench_compare.py` runs this beside its PyTorch and ONNX Runtime peers.

mod random_model;

use clip::config::CLIPConfig;
use clip::tokenizer::CLIPTokenizer;
use clip::weights::WeightStore;
use clip::Pipeline;
use random_model::{bench_shapes, clip_tensors, write_random_safetensors};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The sentence embedded by the text start-up case (the peers use it too).
const TEXT: &str = "a photo of a cat sitting on a red sofa";

/// `target/bench-models`, or under `$CARGO_TARGET_DIR`.
fn models_root() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("bench-models")
}

/// transformers' `config.json` for `c` (only the fields both readers use).
fn config_json(c: &CLIPConfig, f16: bool) -> Value {
    let (t, v) = (&c.text_config, &c.vision_config);
    json!({
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "dtype": if f16 { "float16" } else { "float32" },
        "projection_dim": c.projection_dim,
        "logit_scale_init_value": 2.6592,
        "text_config": {
            "model_type": "clip_text_model",
            "vocab_size": t.vocab_size, "hidden_size": t.hidden_size,
            "intermediate_size": t.intermediate_size, "num_hidden_layers": t.num_hidden_layers,
            "num_attention_heads": t.num_attention_heads,
            "max_position_embeddings": t.max_position_embeddings,
            "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
            "bos_token_id": 0, "eos_token_id": t.eos_token_id, "pad_token_id": 1,
            "projection_dim": c.projection_dim
        },
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": v.hidden_size, "intermediate_size": v.intermediate_size,
            "num_hidden_layers": v.num_hidden_layers, "num_attention_heads": v.num_attention_heads,
            "image_size": v.image_size, "patch_size": v.patch_size, "num_channels": v.num_channels,
            "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
            "projection_dim": c.projection_dim
        }
    })
}

/// `CLIPImageProcessor`'s settings of the OpenAI checkpoints.
fn preprocessor_json(size: usize) -> Value {
    json!({
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": true, "size": {"shortest_edge": size}, "resample": 3,
        "do_center_crop": true, "crop_size": {"height": size, "width": size},
        "do_rescale": true, "rescale_factor": 1.0 / 255.0,
        "do_normalize": true,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "do_convert_rgb": true
    })
}

/// `vocab.json` and `merges.txt` of the built-in vocabulary (OpenAI's BPE
/// file, as Hugging Face's CLIP checkpoints ship it), so that every runtime
/// reads the same tokenizer files.
fn tokenizer_files() -> (String, String) {
    let tok = CLIPTokenizer::builtin().unwrap();
    let vocab: serde_json::Map<String, Value> = (0..tok.vocab_size() as u32)
        .map(|id| (tok.id_to_token(id).unwrap().to_string(), json!(id)))
        .collect();
    let gz: &[u8] = include_bytes!("../src/tokenizer/bpe_simple_vocab_16e6.txt.gz");
    let mut bpe = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut bpe).unwrap();
    // OpenAI's tokenizer uses the first 49152 - 256 - 2 merges after the header.
    let merges: Vec<&str> = bpe.split('\n').skip(1).take(49152 - 256 - 2).collect();
    (Value::Object(vocab).to_string(), format!("#version: 0.2\n{}\n", merges.join("\n")))
}

/// Whether `path` is a safetensors file of `c`'s tensors in the given dtype:
/// every tensor with its shape, and the file the size of their bytes plus a
/// header (under 1 MiB).
fn is_complete(path: &Path, c: &CLIPConfig, f16: bool) -> bool {
    let Ok(store) = WeightStore::open_file(path) else { return false };
    let tensors = clip_tensors(c);
    let elements: usize = tensors.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    let data = elements * if f16 { 2 } else { 4 };
    tensors.iter().all(|(name, shape)| store.shape(name) == Some(shape.as_slice()))
        && (data..data + (1 << 20)).contains(&store.total_bytes())
}

/// The model directory of one dtype, written unless already complete.
fn prepare_model(shapes: &str, c: &CLIPConfig, f16: bool) -> PathBuf {
    let dir = models_root().join(format!("{shapes}-random-{}", if f16 { "f16" } else { "f32" }));
    let complete = is_complete(&dir.join("model.safetensors"), c, f16)
        && ["config.json", "preprocessor_config.json", "vocab.json", "merges.txt"]
            .iter()
            .all(|f| dir.join(f).is_file());
    if complete {
        return dir;
    }
    // Written beside it and renamed, so an interrupted run leaves no half model.
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&tmp).unwrap();
    let write = |name: &str, text: String| std::fs::write(tmp.join(name), text).unwrap();
    write("config.json", serde_json::to_string_pretty(&config_json(c, f16)).unwrap());
    write(
        "preprocessor_config.json",
        serde_json::to_string_pretty(&preprocessor_json(c.vision_config.image_size)).unwrap(),
    );
    let (vocab, merges) = tokenizer_files();
    write("vocab.json", vocab);
    write("merges.txt", merges);
    write(
        "tokenizer_config.json",
        json!({
            "tokenizer_class": "CLIPTokenizer", "model_max_length": 77,
            "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"
        })
        .to_string(),
    );
    write_random_safetensors(c, f16, &tmp.join("model.safetensors"));
    std::fs::rename(&tmp, &dir).unwrap();
    dir
}

/// A 640x480 RGB PNG (smooth gradients and stripes): a photo-sized input,
/// so decoding and resizing are part of the job.
fn prepare_image() -> PathBuf {
    let path = models_root().join("startup.png");
    if !path.is_file() {
        let img = image::RgbImage::from_fn(640, 480, |x, y| {
            image::Rgb([
                (x * 255 / 639) as u8,
                (y * 255 / 479) as u8,
                if (x / 16 + y / 16) % 2 == 0 { 40 } else { 200 },
            ])
        });
        std::fs::create_dir_all(models_root()).unwrap();
        img.save(&path).unwrap();
    }
    path
}

/// Reads a `kB` field of /proc/self/status, in MiB.
fn status_mib(status: &str, field: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Seconds since the Unix epoch: the parent passes its clock reading at the
/// spawn and the child subtracts it from its own at the first embedding
/// (same machine, same clock), which leaves out the process's exit.
fn epoch_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The child: load, first embedding, one JSON line of phases and memory.
fn child(input: &str, dir: &Path, image: &Path, spawned_at: f64) {
    let start = Instant::now();
    let pipeline = Pipeline::from_dir(dir).unwrap();
    let load_s = start.elapsed().as_secs_f64();
    let embed = || -> Vec<f32> {
        if input == "image" {
            pipeline.encode_image_files(&[image], |_| {}).pop().unwrap().unwrap()
        } else {
            pipeline.encode_texts(&[TEXT]).unwrap().rows().next().unwrap().to_vec()
        }
    };
    let embedding = embed();
    let since_spawn_s = epoch_s() - spawned_at;
    let total_s = start.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // Not part of the start-up: the same job again, so that first-use costs
    // (packing weights, lazy initialisation) show as the difference.
    let again = Instant::now();
    embed();
    let second_embed_s = again.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "since_spawn_s": since_spawn_s,
            "in_process_s": total_s,
            "load_s": load_s,
            "embed_s": total_s - load_s,
            "second_embed_s": second_embed_s,
            "threads": pipeline.num_threads(),
            "dim": embedding.len(),
            "peak_rss_mib": status_mib(&status, "VmHWM:"),
            "rss_anon_mib": status_mib(&status, "RssAnon:"),
            "rss_file_mib": status_mib(&status, "RssFile:"),
        })
    );
}

/// Median (the mean of the middle two for an even count, as Python's
/// `statistics.median`), min and max.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    ((v[(n - 1) / 2] + v[n / 2]) / 2.0, v[0], v[n - 1])
}

/// Runs `cmd` `runs + 1` times, drops the first; wall seconds and the JSON
/// line each child printed last (if any).
fn series(runs: usize, mut cmd: impl FnMut() -> Command) -> Vec<(f64, Option<Value>)> {
    (0..=runs)
        .map(|_| {
            let start = Instant::now();
            let out = cmd().stderr(Stdio::inherit()).output().unwrap();
            let wall = start.elapsed().as_secs_f64();
            assert!(out.status.success(), "child failed: {:?}", out.status);
            let text = String::from_utf8_lossy(&out.stdout);
            (wall, text.lines().rev().find_map(|l| serde_json::from_str(l).ok()))
        })
        .skip(1)
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1], Path::new(&args[2]), Path::new(&args[3]), args[4].parse().unwrap());
    }
    let json = args.iter().any(|a| a == "--json");
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .map(|i| args[i + 1].parse::<usize>().expect("--runs N").max(1))
        .unwrap_or(7);
    let words: Vec<&str> =
        args.iter().filter(|a| !a.starts_with('-')).map(String::as_str).collect();
    let wanted =
        |w: &str, all: &[&str]| !words.iter().any(|x| all.contains(x)) || words.contains(&w);
    let (shapes, config) = bench_shapes();
    let image = prepare_image();
    let dirs: Vec<(&str, PathBuf)> = [("f32", false), ("f16", true)]
        .into_iter()
        .filter(|(d, _)| wanted(d, &["f32", "f16"]))
        .map(|(d, f16)| (d, prepare_model(shapes, &config, f16)))
        .collect();
    if args.iter().any(|a| a == "--prepare") {
        for (_, dir) in &dirs {
            println!("{}", dir.display());
        }
        println!("{}", image.display());
        return;
    }
    let threads = rayon::current_num_threads();
    if !json {
        println!(
            "clip start-up benchmark: {shapes} shapes, random weights, {threads} threads; \
             fresh process per run, median (range) of {runs} runs after one page-cache warm-up run"
        );
    }
    let exe = std::env::current_exe().unwrap();
    for (dtype, dir) in &dirs {
        for input in ["image", "text"].into_iter().filter(|i| wanted(i, &["image", "text"])) {
            let results = series(runs, || {
                let mut c = Command::new(&exe);
                c.arg("--child").arg(input).arg(dir).arg(&image).arg(epoch_s().to_string());
                c
            });
            let field = |k: &str| -> Vec<f64> {
                results.iter().filter_map(|(_, j)| j.as_ref()?.get(k)?.as_f64()).collect()
            };
            let wall = stats(field("since_spawn_s"));
            let in_process = stats(field("in_process_s"));
            let (load, embed) = (stats(field("load_s")).0, stats(field("embed_s")).0);
            let second = stats(field("second_embed_s")).0;
            let rss = stats(field("peak_rss_mib"));
            let (anon, file) = (stats(field("rss_anon_mib")).0, stats(field("rss_file_mib")).0);
            // The command line on the same job, spawn to exit only.
            let cli = option_env!("CARGO_BIN_EXE_clip").map(|bin| {
                let r = series(runs, || {
                    let mut c = Command::new(bin);
                    c.args(["--quiet", "embed", "--model"]).arg(dir);
                    if input == "image" {
                        c.arg(&image);
                    } else {
                        c.args(["--text", TEXT]);
                    }
                    c
                });
                stats(r.into_iter().map(|r| r.0).collect())
            });
            if json {
                println!(
                    "{}",
                    json!({
                        "runtime": "clip", "task": "startup", "input": input, "dtype": dtype,
                        "threads": threads, "runs": runs,
                        "median_s": wall.0, "min_s": wall.1, "max_s": wall.2,
                        "in_process_median_s": in_process.0, "in_process_min_s": in_process.1,
                        "in_process_max_s": in_process.2,
                        "load_median_s": load, "embed_median_s": embed,
                        "second_embed_median_s": second,
                        "peak_rss_mib": rss.0, "peak_rss_min_mib": rss.1, "peak_rss_max_mib": rss.2,
                        "rss_anon_mib": anon, "rss_file_mib": file,
                        "cli_to_exit_median_s": cli.map(|c| c.0), "cli_to_exit_min_s": cli.map(|c| c.1),
                        "cli_to_exit_max_s": cli.map(|c| c.2),
                    })
                );
            } else {
                println!(
                    "{input:5} {dtype}: spawn to first embedding {:.3} s (range {:.3}-{:.3}; in process: \
                     load {load:.3} s + embed {embed:.3} s, a second embedding {second:.3} s)  \
                     peak RSS {:.0} MiB (range {:.0}-{:.0}; then {anon:.0} anon + {file:.0} file-backed)",
                    wall.0, wall.1, wall.2, rss.0, rss.1, rss.2
                );
                if let Some((m, lo, hi)) = cli {
                    println!(
                        "{input:5} {dtype}: `clip embed` command line, spawn to exit {m:.3} s (range {lo:.3}-{hi:.3})"
                    );
                }
            }
        }
    }
}
