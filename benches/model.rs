//! Image and text encoding throughput at `openai/clip-vit-base-patch32`
//! shapes (random weights built in memory), F32 and F16 weights.
//!
//! `cargo bench --bench model [-- --json] [f32|f16]`. Set `RAYON_NUM_THREADS`
//! to fix the thread count. Prints the median of several runs, the range, the
//! achieved GFLOP/s and its share of the machine's nominal peak (cores x
//! clock x FMA width, from /proc/cpuinfo; see `peak_gflops`).
//! `scripts/bench_compare.py` runs this beside PyTorch and ONNX Runtime.

mod random_model;

use clip::config::CLIPConfig;
use clip::{CLIPModel, Tensor};
use random_model::{b32_config, random_store, time_it};

/// FLOPs (2 per multiply-add) of one transformer pass over `seq` tokens.
fn encoder_flops(seq: f64, d: f64, f: f64, layers: f64) -> f64 {
    layers * (2.0 * seq * (4.0 * d * d + 2.0 * d * f) + 4.0 * seq * seq * d)
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

/// Nominal f32 FMA peak: threads x MHz x (lanes x 2 FMA units x 2 FLOPs).
/// 32 lanes-FLOPs per cycle per FMA unit with AVX-512, 16 with AVX2, 8 with NEON.
fn peak_gflops(threads: usize) -> (f64, String) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mhz = info
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    let (per_cycle, isa) = if info.contains(" avx512f") {
        (64.0, "AVX-512, 2 FMA units")
    } else if info.contains(" fma") {
        (32.0, "AVX2, 2 FMA units")
    } else {
        (16.0, "128-bit SIMD, 2 FMA units")
    };
    (
        threads as f64 * mhz * 1e-3 * per_cycle,
        format!("{threads} threads x {mhz:.0} MHz x {per_cycle} FLOP/cycle ({isa})"),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let threads = rayon::current_num_threads();
    let (peak, peak_desc) = peak_gflops(threads);
    if !json {
        println!("clip model benchmark: B/32 shapes, {threads} threads; nominal peak {peak:.0} GFLOP/s = {peak_desc}");
    }
    let config = b32_config();
    let report = |task: &str,
                  dtype: &str,
                  batch: usize,
                  tokens: Option<usize>,
                  flops: f64,
                  (med, lo, hi): (f64, f64, f64)| {
        let gflops = flops * batch as f64 / med / 1e9;
        if json {
            println!(
                "{{\"runtime\":\"clip\",\"task\":\"{task}\",\"dtype\":\"{dtype}\",\"batch\":{batch},\"tokens\":{},\"per_second\":{},\"median_ms\":{},\"min_ms\":{},\"max_ms\":{},\"gflops\":{gflops},\"peak_share\":{}}}",
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
    for f16 in [false, true] {
        let dtype = if f16 { "f16" } else { "f32" };
        if !filter.is_empty() && !filter.iter().any(|f| dtype == f.as_str()) {
            continue;
        }
        let store = random_store(&config, f16);
        let model = CLIPModel::from_store(&config, &store).unwrap();
        for (batch, runs) in [(1usize, 20), (16, 5)] {
            let n = batch * 3 * 224 * 224;
            let px = Tensor::new(
                vec![batch, 3, 224, 224],
                (0..n).map(|i| ((i % 255) as f32) / 255.0 - 0.5).collect(),
            )
            .unwrap();
            let t = time_it(runs, || {
                model.get_image_features(&px).unwrap();
            });
            report("image", dtype, batch, None, image_flops(&config), t);
        }
        for (batch, len, runs) in [(1usize, 7usize, 30), (64, 12, 5), (64, 77, 5)] {
            let ids: Vec<Vec<u32>> = (0..batch)
                .map(|b| {
                    let mut r: Vec<u32> =
                        (0..len).map(|i| 320 + ((b * 31 + i * 7) % 4000) as u32).collect();
                    r[0] = 49406;
                    r[len - 1] = 49407;
                    r
                })
                .collect();
            let t = time_it(runs, || {
                model.get_text_features(&ids, None).unwrap();
            });
            report("text", dtype, batch, Some(len), text_flops(&config, len), t);
        }
    }
}
