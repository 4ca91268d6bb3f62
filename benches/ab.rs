//! In-process A/B of a change under test, for speed-ups of a few percent
//! on a machine whose neighbours move its speed by more than that.
//!
//! Put the change behind `clip::kernels::experiment::on()` (temporarily,
//! not committed), then
//! `cargo bench --bench ab --features ab-experiment -- [BATCH] [PAIRS] [f32|f16|int8] [image|text]`
//! (defaults 1 200 f32 image; int8 is F32 weights at `Precision::Int8`; `CLIP_AB_ACT=gelu` swaps the MLP activation;
//! `CLIP_AB_TOKENS=77` makes the texts 77 tokens long).
//! One process builds the B/32-shaped model (random weights) once and times
//! calls in pairs, the switch off and on (order alternating), and prints
//! the median of the per-pair ratios with its quartiles: neighbours slow
//! both calls of a pair alike, where alternating whole processes saw
//! per-round ratios spread over 0.84-1.24 on the 2-core VM of
//! `results/2026-11-30-session7.md`. Set `RAYON_NUM_THREADS` to fix the
//! thread count.

mod random_model;

use clip::kernels::experiment;
use clip::{CLIPModel, Tensor};
use random_model::{b32_config, random_store};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let batch: usize = args.first().and_then(|v| v.parse().ok()).unwrap_or(1);
    let pairs: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(200).max(1);
    let f16 = args.get(2).is_some_and(|v| v == "f16");
    let text = args.get(3).is_some_and(|v| v == "text");
    let mut config = b32_config();
    if let Ok(act) = std::env::var("CLIP_AB_ACT") {
        config.text_config.hidden_act = act.clone();
        config.vision_config.hidden_act = act;
    }
    let store = random_store(&config, f16);
    let mut model = CLIPModel::from_store(&config, &store).expect("model");
    if args.get(2).is_some_and(|v| v == "int8") {
        model.set_precision(clip::Precision::Int8);
    }
    let n = batch * 3 * 224 * 224;
    let pixels: Vec<f32> = (0..n).map(|i| ((i % 255) as f32) / 255.0 - 0.5).collect();
    let px = Tensor::new(vec![batch, 3, 224, 224], pixels).expect("pixels");
    // Captions of 13 tokens (start, 11 words, end), or `CLIP_AB_TOKENS`
    // (at most 77: 77 is a caption padded to the context length).
    let tokens: usize =
        std::env::var("CLIP_AB_TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(13);
    let words = 321..321 + tokens.clamp(2, 77) as u32 - 2;
    let caption: Vec<u32> = std::iter::once(49406).chain(words).chain([49407]).collect();
    let ids = vec![caption; batch];
    let features = || {
        if text {
            model.get_text_features(&ids, None).expect("text")
        } else {
            model.get_image_features(&px).expect("image")
        }
    };
    let run = || drop(features());
    // Warm-up, and whether the variant changes the numbers (a speed-only
    // change should not; one that reorders sums may, by rounding).
    let mut outputs = Vec::new();
    for on in [false, true, false, true] {
        experiment::set(on);
        outputs.push(features());
    }
    let diff = outputs[0].data().iter().zip(outputs[1].data()).map(|(a, b)| (a - b).abs());
    match diff.fold(0.0f32, f32::max) {
        0.0 => println!("outputs: identical with the switch off and on"),
        d => println!("outputs: max |difference| {d:e} between the switch off and on"),
    }
    let (mut off, mut on, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let mut t = [0.0; 2];
        for flag in if i % 2 == 0 { [false, true] } else { [true, false] } {
            experiment::set(flag);
            let t0 = Instant::now();
            run();
            t[usize::from(flag)] = t0.elapsed().as_secs_f64();
        }
        off.push(t[0]);
        on.push(t[1]);
        ratios.push(t[0] / t[1]);
    }
    experiment::set(false);
    for v in [&mut off, &mut on, &mut ratios] {
        v.sort_by(f64::total_cmp);
    }
    let at = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let what = if text { "captions" } else { "images" };
    println!(
        "{batch} {what}, {pairs} pairs: off {:.2} ms (fastest {:.2}), on {:.2} ms (fastest {:.2}); speed-up on/off: median of pairs {:.4} [quartiles {:.4}-{:.4}], fastest/fastest {:.4}",
        at(&off, 0.5) * 1e3,
        off[0] * 1e3,
        at(&on, 0.5) * 1e3,
        on[0] * 1e3,
        at(&ratios, 0.5),
        at(&ratios, 0.25),
        at(&ratios, 0.75),
        off[0] / on[0]
    );
}
