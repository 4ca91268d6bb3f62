//! Throughput of the linear layers' products alone, on the kernel this
//! process runs (`CLIP_KERNEL` forces one), against the `gemm` crate in
//! the same run (its own dispatch: AVX-512, FMA or NEON, whichever this CPU
//! has, re-packing the weights on every call).
//!
//! `cargo bench --bench gemm [-- [f32|f16|int8]... [--threads N] [--mats N] [--shape MxNxK]...]`
//!
//! The shapes are B/32's: the image tower's products at batch 16 (800
//! rows) and 1 (50 rows), a caption's (10 rows). The kernel cycles through
//! `--mats` copies of each matrix (default 36, 340 MB in F32 for the
//! largest: the image tower's size), so the weights come from memory as in
//! a model, not from cache; `--mats 1` keeps one matrix in cache.
//! Reported: the median and the fastest product (on a shared machine the
//! fastest is the undisturbed rate), in GFLOP/s, and the ratio of the
//! medians to the `gemm` crate's. `--shape 780x768x3072` (rows x out x in,
//! repeatable) runs those shapes instead. `int8` times the int8 products
//! ([`Precision::Int8`]: F32 weights quantised on first use; GFLOP/s
//! counts two operations a multiply-add, as for f32).

use clip::kernels::{gemm_f32, GemmDst, GemmOperand, Mat};
use clip::layers::Linear;
use clip::weights::{DType, WeightTensor};
use clip::Precision;
use std::time::Instant;

/// `reps` timings (seconds) of `f`, after one warm-up call.
fn time(reps: usize, mut f: impl FnMut(usize)) -> Vec<f64> {
    f(0);
    (0..reps)
        .map(|r| {
            let t = Instant::now();
            f(r);
            t.elapsed().as_secs_f64()
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    let mats: usize = value("--mats").unwrap_or(36).max(1);
    let thread_counts: Vec<usize> = match value("--threads") {
        Some(t) => vec![t],
        None => vec![1, 2],
    };
    // (weights, precision): `int8` is F32 weights quantised for int8 products.
    let all = [
        ("f32", DType::F32, Precision::Full),
        ("f16", DType::F16, Precision::Full),
        ("int8", DType::F32, Precision::Int8),
    ];
    let mut cases: Vec<_> = all.iter().filter(|c| args.iter().any(|a| a == c.0)).copied().collect();
    if cases.is_empty() {
        cases = all[..2].to_vec();
    }
    let kernel = match clip::kernels::active_kernel() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l[13..].to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    println!("kernel {kernel}; {cpu}; {mats} matrices a shape");
    // (rows, out, in): fc1 and fc2 of the image tower at batch 16 and 1, a caption's qkv.
    let mut shapes =
        vec![(800, 3072, 768), (800, 768, 3072), (50, 3072, 768), (50, 768, 3072), (10, 1536, 512)];
    let asked: Vec<(usize, usize, usize)> = args
        .windows(2)
        .filter(|w| w[0] == "--shape")
        .map(|w| match w[1].split('x').map(str::parse).collect::<Result<Vec<usize>, _>>() {
            Ok(d) if d.len() == 3 && d.iter().all(|&v| v > 0) => (d[0], d[1], d[2]),
            _ => {
                eprintln!("--shape takes rows x out x in, e.g. 800x768x3072, not {:?}", w[1]);
                std::process::exit(2);
            }
        })
        .collect();
    if !asked.is_empty() {
        shapes = asked;
    }
    for &(m, n, k) in &shapes {
        let flop = 2.0 * (m * n * k) as f64;
        let x: Vec<f32> = (0..m * k).map(|i| ((i % 97) as f32 - 48.0) / 97.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i % 89) as f32 - 44.0) / 890.0).collect();
        let bias = vec![0.01f32; n];
        let mut out = vec![0.0f32; m * n];
        for &(name, dtype, precision) in &cases {
            let weight = WeightTensor::from_f32_as(&w, vec![n, k], dtype);
            let layers: Vec<Linear> = (0..mats)
                .map(|_| {
                    let mat = Mat { weight: weight.clone(), out_features: n, in_features: k };
                    let layer = Linear::new(mat, Some(bias.clone())).expect("a consistent layer");
                    layer.with_precision(precision)
                })
                .collect();
            for &threads in &thread_counts {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                // Packs every copy (first use) before timing.
                pool.install(|| layers.iter().for_each(|l| l.forward(&x, m, &mut out, threads)));
                let reps = if m > 100 { 36 } else { 144 };
                let mut ours = pool
                    .install(|| time(reps, |r| layers[r % mats].forward(&x, m, &mut out, threads)));
                let gf = |t: f64| flop / t / 1e9;
                let best = ours.iter().cloned().fold(f64::INFINITY, f64::min);
                let med = median(&mut ours);
                let mut line = format!(
                    "{name:4} m={m:<3} n={n:<4} k={k:<4} threads={threads}: {kernel} {:6.1} GFLOP/s (fastest {:6.1})",
                    gf(med),
                    gf(best)
                );
                if name == "f32" {
                    // The peer: the gemm crate on the f32 weights as stored ([out, in]).
                    let lhs = GemmOperand { data: &x, row_stride: k, col_stride: 1 };
                    let rhs = GemmOperand { data: &w, row_stride: 1, col_stride: k };
                    let mut peer = pool.install(|| {
                        time(reps.min(36), |_| {
                            gemm_f32(
                                (m, n, k),
                                GemmDst { data: &mut out, row_stride: n, accumulate: false },
                                lhs,
                                rhs,
                                1.0,
                                threads,
                            )
                        })
                    });
                    let pm = median(&mut peer);
                    line += &format!("; gemm crate {:6.1} GFLOP/s; ratio {:.2}x", gf(pm), pm / med);
                }
                println!("{line}");
            }
        }
    }
}
