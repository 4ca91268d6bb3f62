//! Image and text encoding throughput at `openai/clip-vit-base-patch32`
//! shapes, or `openai/clip-vit-large-patch14-336`'s with
//! `CLIP_BENCH_SHAPES=l14-336` (random weights built in memory), F32 and F16
//! weights. At L/14@336 (~350 GFLOP an image) images run at batch 1 only.
//!
//! `cargo bench --bench model [-- --json] [f32|f16|int8]... [image|text|text-pad77|text-long]...`
//! (no dtype named: all; no task named: all; a task word picks the tasks
//! whose names start with it). Set `RAYON_NUM_THREADS` to fix the thread
//! count. Prints the median of several runs, the range, the
//! achieved GFLOP/s and its share of the machine's nominal peak (cores x
//! clock x FMA width, from /proc/cpuinfo; see `peak_gflops`).
//! `scripts/bench_compare.py` runs this beside PyTorch and ONNX Runtime.
//! For profiling and before/after comparisons: `CLIP_BENCH_REPEAT=n` runs
//! the image cases n times as often, `CLIP_BENCH_IMAGE_BATCH=1` (or 16)
//! runs only that image batch.

mod random_model;

use clip::config::CLIPConfig;
use clip::kernels::Kernel;
use clip::{CLIPModel, Precision, Tensor};
use random_model::{bench_shapes, random_store, time_it};

/// FLOPs (2 per multiply-add) of one pass over `seq` tokens as the pooled
/// outputs (`get_image_features`, `get_text_features`) execute it: every
/// layer over all tokens but the last, which computes the keys and values
/// (with the queries, one stacked product) of all tokens and the rest for the
/// pooled token only. Counting the full last layer (what transformers
/// computes) would add `2 (seq - 1) (2 d^2 + 2 d f)` plus its attention:
/// about 6% at B/32 image shapes.
fn encoder_flops(seq: f64, d: f64, f: f64, layers: f64) -> f64 {
    let full_layer = |rows: f64| 2.0 * rows * (4.0 * d * d + 2.0 * d * f) + 4.0 * rows * seq * d;
    let last = 2.0 * seq * 3.0 * d * d + 4.0 * seq * d + 2.0 * (d * d + 2.0 * d * f);
    (layers - 1.0) * full_layer(seq) + last
}

fn image_flops(c: &CLIPConfig) -> f64 {
    let v = &c.vision_config;
    let np = (v.grid_size() * v.grid_size()) as f64;
    let d = v.hidden_size as f64;
    2.0 * np * (3 * v.patch_size * v.patch_size) as f64 * d
        + encoder_flops(np + 1.0, d, v.intermediate_size as f64, v.num_hidden_layers as f64)
        + 2.0 * d * c.projection_dim as f64
}

fn text_flops(c: &CLIPConfig, len: usize) -> f64 {
    let t = &c.text_config;
    let d = t.hidden_size as f64;
    encoder_flops(len as f64, d, t.intermediate_size as f64, t.num_hidden_layers as f64)
        + 2.0 * d * c.projection_dim as f64
}

/// Nominal f32 FMA peak of `kernel`'s instruction set: threads x MHz x
/// (lanes x 2 FMA units x 2 FLOPs): 64 FLOP/cycle with AVX-512, 32 with
/// AVX2, 16 with 128-bit SIMD (NEON, or the `gemm` kernel's baseline).
fn peak_gflops(threads: usize, kernel: Kernel) -> (f64, String) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mhz = info
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    let (per_cycle, isa) = match kernel {
        Kernel::Avx512 => (64.0, "AVX-512, 2 FMA units"),
        Kernel::Avx2 => (32.0, "AVX2, 2 FMA units"),
        _ => (16.0, "128-bit SIMD, 2 FMA units"),
    };
    (
        threads as f64 * mhz * 1e-3 * per_cycle,
        format!("{threads} threads x {mhz:.0} MHz x {per_cycle} FLOP/cycle ({isa})"),
    )
}

/// One text benchmark: a padded batch, its mask, and the tokens up to each
/// text's end-of-text token (the work any runtime needs; the FLOP count and
/// GFLOP/s use these, so padding is not counted as work).
struct TextCase {
    task: &'static str,
    ids: Vec<Vec<u32>>,
    mask: Vec<Vec<u32>>,
    useful_tokens: Vec<usize>,
    runs: usize,
}

/// The text inputs: one caption; the 64 captions of `benches/captions.txt`
/// padded to the longest and to 77 (as `padding="max_length"`); 64 texts of
/// 77 real tokens (nothing to skip).
fn text_cases() -> Vec<TextCase> {
    use clip::tokenizer::{CLIPTokenizer, EncodeOptions, Padding};
    let tok = CLIPTokenizer::builtin().expect("built-in vocabulary");
    let captions: Vec<&str> = include_str!("captions.txt").lines().collect();
    let encode = |texts: &[&str], padding| {
        let opts = EncodeOptions { padding, ..EncodeOptions::default() };
        tok.encode_batch(texts, &opts).expect("captions encode")
    };
    let case = |task, texts: &[&str], padding, runs| {
        let enc = encode(texts, padding);
        let useful = enc.attention_mask.iter().map(|m| m.iter().sum::<u32>() as usize).collect();
        TextCase { task, ids: enc.input_ids, mask: enc.attention_mask, useful_tokens: useful, runs }
    };
    let long_ids: Vec<Vec<u32>> = (0..64)
        .map(|b| {
            let mut r: Vec<u32> = (0..77).map(|i| 320 + ((b * 31 + i * 7) % 4000) as u32).collect();
            r[0] = 49406;
            r[76] = 49407;
            r
        })
        .collect();
    vec![
        case("text", &captions[..1], Padding::Longest, 30),
        case("text", &captions, Padding::Longest, 5),
        case("text-pad77", &captions, Padding::MaxLength, 5),
        TextCase {
            task: "text-long",
            mask: vec![vec![1; 77]; 64],
            useful_tokens: vec![77; 64],
            ids: long_ids,
            runs: 5,
        },
    ]
}

/// Writes the text inputs to `target/bench-inputs/texts.json`, so that
/// `scripts/bench_peer.py --text-inputs` runs the peers on the same ids.
fn write_text_inputs(cases: &[TextCase]) -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-inputs");
    std::fs::create_dir_all(&dir)?;
    let json: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "task": c.task, "input_ids": c.ids, "attention_mask": c.mask,
                "useful_tokens": c.useful_tokens, "runs": c.runs,
            })
        })
        .collect();
    std::fs::write(dir.join("texts.json"), serde_json::to_string(&json)?)
}

/// The machine's f32 FMA throughput at `kernel`'s width, as measured:
/// every thread of the pool runs a register-only loop of independent fused
/// multiply-adds for ~0.3 s; returns the sum of the threads' GFLOP/s (the
/// best of three tries). This is the ceiling that counts (the clock under
/// an all-core load of that width), unlike the nominal clock. `None` for the
/// kernels without an x86 loop here (NEON, `gemm`).
fn measured_peak_gflops(kernel: Kernel) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY (both calls): the kernel is the active one, which this CPU
        // supports (AVX-512F, or AVX2 with FMA); the loops touch registers only.
        let (run, flops): (fn(usize) -> f32, usize) = match kernel {
            Kernel::Avx512 => (|n| unsafe { fma_loop_512(n) }, 24 * 16 * 2),
            Kernel::Avx2 => (|n| unsafe { fma_loop_256(n) }, 12 * 8 * 2),
            _ => return None,
        };
        let one_thread = || {
            const ITERS: usize = 4_000_000;
            let t = std::time::Instant::now();
            std::hint::black_box(run(ITERS));
            (ITERS * flops) as f64 / t.elapsed().as_secs_f64() / 1e9
        };
        let best = (0..3)
            .map(|_| rayon::broadcast(|_| one_thread()).iter().sum::<f64>())
            .fold(0.0, f64::max);
        Some(best)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = kernel;
        None
    }
}

/// `iters` rounds of 24 independent AVX-512 FMAs (enough chains to cover the
/// latency of two FMA units).
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_512(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(0.0); 24];
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    let mut sum = _mm512_set1_ps(0.0);
    for v in acc {
        sum = _mm512_add_ps(sum, v);
    }
    _mm512_reduce_add_ps(sum)
}

/// `iters` rounds of 12 independent AVX2 FMAs (two FMA units of latency 4
/// need 8 chains; 12 as the kernel's accumulators).
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_256(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(0.0); 12];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let mut sum = _mm256_set1_ps(0.0);
    for v in acc {
        sum = _mm256_add_ps(sum, v);
    }
    let mut lanes = [0.0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    lanes.iter().sum()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let words: Vec<&str> =
        args.iter().filter(|a| !a.starts_with('-')).map(|a| a.as_str()).collect();
    // Words that name a dtype pick dtypes, the others pick tasks ("image",
    // "text", "text-pad77"...): none of a kind means all of it.
    let (filter, tasks): (Vec<&str>, Vec<&str>) =
        words.iter().partition(|w| ["f32", "f16", "int8"].contains(w));
    let wanted = |task: &str| tasks.is_empty() || tasks.iter().any(|t| task.starts_with(t));
    let threads = rayon::current_num_threads();
    let kernel = match clip::kernels::active_kernel() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let (shapes, config) = bench_shapes();
    let (nominal, nominal_desc) = peak_gflops(threads, kernel);
    let measured = measured_peak_gflops(kernel);
    // The share of peak uses the measured FMA ceiling when there is one.
    let peak = measured.unwrap_or(nominal);
    if json {
        println!(
            "{{\"runtime\":\"clip\",\"task\":\"peak\",\"kernel\":\"{kernel}\",\"threads\":{threads},\"nominal_gflops\":{nominal},\"measured_gflops\":{}}}",
            measured.map_or("null".into(), |m| m.to_string())
        );
    } else {
        println!("clip model benchmark: {shapes} shapes, {threads} threads, kernel {kernel}");
        println!("  nominal peak {nominal:.0} GFLOP/s = {nominal_desc}");
        match measured {
            Some(m) => println!("  measured FMA peak {m:.0} GFLOP/s (register-only {kernel} FMA loop on every thread); shares below are of this"),
            None => println!("  no measured peak on this CPU; shares below are of the nominal peak"),
        }
    }
    let text_cases = text_cases();
    if let Err(e) = write_text_inputs(&text_cases) {
        eprintln!("warning: could not write the text inputs for the peers: {e}");
    }
    let report = |task: &str,
                  dtype: &str,
                  batch: usize,
                  tokens: Option<usize>,
                  flops: f64,
                  (med, lo, hi): (f64, f64, f64)| {
        let gflops = flops * batch as f64 / med / 1e9;
        if json {
            println!(
                "{{\"runtime\":\"clip\",\"kernel\":\"{kernel}\",\"task\":\"{task}\",\"dtype\":\"{dtype}\",\"batch\":{batch},\"tokens\":{},\"per_second\":{},\"median_ms\":{},\"min_ms\":{},\"max_ms\":{},\"gflops\":{gflops},\"peak_share\":{}}}",
                tokens.map_or("null".into(), |t| t.to_string()),
                batch as f64 / med,
                med * 1e3,
                lo * 1e3,
                hi * 1e3,
                gflops / peak
            );
        } else {
            let what = tokens.map_or(String::new(), |t| format!(", {t} tokens"));
            println!(
                "{task:5} {dtype} batch {batch:>2}{what:12}: {:>8.2}/s  median {:>7.1} ms (range {:.1}-{:.1})  {gflops:>6.1} GFLOP/s = {:>4.1}% of peak",
                batch as f64 / med,
                med * 1e3,
                lo * 1e3,
                hi * 1e3,
                100.0 * gflops / peak
            );
        }
    };
    let repeat: usize =
        std::env::var("CLIP_BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let image_batch: Option<usize> =
        std::env::var("CLIP_BENCH_IMAGE_BATCH").ok().and_then(|v| v.parse().ok());
    // "int8": the F32 weights with `Precision::Int8` (int8 weights and
    // dynamically quantised activations; only where the kernel has int8).
    for dtype in ["f32", "f16", "int8"] {
        if !filter.is_empty() && !filter.contains(&dtype) {
            continue;
        }
        if dtype == "int8" && !Precision::int8_supported() {
            continue;
        }
        let store = random_store(&config, dtype == "f16");
        let mut model = CLIPModel::from_store(&config, &store).unwrap();
        if dtype == "int8" {
            model.set_precision(Precision::Int8);
        }
        let image_cases: &[(usize, usize)] =
            if shapes == "b32" { &[(1, 20), (16, 5)] } else { &[(1, 5)] };
        for &(batch, runs) in image_cases {
            let runs = runs * repeat;
            if image_batch.is_some_and(|b| b != batch) {
                continue;
            }
            if !wanted("image") {
                break;
            }
            let size = config.vision_config.image_size;
            let n = batch * 3 * size * size;
            let px = Tensor::new(
                vec![batch, 3, size, size],
                (0..n).map(|i| ((i % 255) as f32) / 255.0 - 0.5).collect(),
            )
            .unwrap();
            let t = time_it(runs, || {
                model.get_image_features(&px).unwrap();
            });
            report("image", dtype, batch, None, image_flops(&config), t);
        }
        for case in text_cases.iter().filter(|c| wanted(c.task)) {
            let t = time_it(case.runs, || {
                model.get_text_features(&case.ids, Some(&case.mask)).unwrap();
            });
            let flops: f64 = case.useful_tokens.iter().map(|&n| text_flops(&config, n)).sum();
            let batch = case.ids.len();
            report(case.task, dtype, batch, Some(case.ids[0].len()), flops / batch as f64, t);
        }
    }
}
