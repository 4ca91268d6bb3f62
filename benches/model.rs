//! Image and text encoding throughput at `openai/clip-vit-base-patch32`
//! shapes (random weights built in memory), F32 and F16 weights.
//!
//! `cargo bench --bench model` (set `RAYON_NUM_THREADS` to fix the thread
//! count). Prints the median of several runs and the range.

mod random_model;

use clip::{CLIPModel, Tensor};
use random_model::{b32_config, random_store, time_it};

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let threads = rayon::current_num_threads();
    println!("clip model benchmark: B/32 shapes, {threads} threads");
    let config = b32_config();
    for f16 in [false, true] {
        let dtype = if f16 { "f16" } else { "f32" };
        if !filter.is_empty() && !filter.iter().any(|f| dtype.contains(f.as_str())) {
            continue;
        }
        let store = random_store(&config, f16);
        let model = CLIPModel::from_store(&config, &store).unwrap();
        for batch in [1usize, 16] {
            let px = Tensor::new(
                vec![batch, 3, 224, 224],
                (0..batch * 3 * 224 * 224).map(|i| ((i % 255) as f32) / 255.0 - 0.5).collect(),
            )
            .unwrap();
            let runs = if batch == 1 { 20 } else { 5 };
            let (med, lo, hi) = time_it(runs, || {
                model.get_image_features(&px).unwrap();
            });
            println!(
                "image {dtype} batch {batch:>2}: {:>8.2} images/s  (median {:.1} ms, range {:.1}-{:.1} ms)",
                batch as f64 / med,
                med * 1e3,
                lo * 1e3,
                hi * 1e3
            );
        }
        for (batch, len, what) in
            [(1usize, 7usize, "short"), (64, 12, "short"), (64, 77, "77-token")]
        {
            let ids: Vec<Vec<u32>> = (0..batch)
                .map(|b| {
                    let mut r: Vec<u32> =
                        (0..len).map(|i| 320 + ((b * 31 + i * 7) % 4000) as u32).collect();
                    r[0] = 49406;
                    r[len - 1] = 49407;
                    r
                })
                .collect();
            let runs = if batch == 1 { 30 } else { 5 };
            let (med, lo, hi) = time_it(runs, || {
                model.get_text_features(&ids, None).unwrap();
            });
            println!(
                "text  {dtype} batch {batch:>2} ({what}, {len} tokens): {:>8.1} texts/s  (median {:.1} ms, range {:.1}-{:.1} ms)",
                batch as f64 / med,
                med * 1e3,
                lo * 1e3,
                hi * 1e3
            );
        }
    }
}
