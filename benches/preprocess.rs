//! Throughput of decode + `CLIPImageProcessor` (default CLIP config) on a
//! 1024x768 JPEG and PNG. Plain harness: median of N timed runs.
//!
//! `cargo bench --bench preprocess` writes the two images to
//! `target/bench-images/` (deterministic content), so that
//! `scripts/bench_preprocess_peer.py` can time Pillow + transformers on the
//! same files.

use clip::image_processing::{decode_path, CLIPImageProcessor, ImageLimits};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use std::path::{Path, PathBuf};
use std::time::Instant;

const W: u32 = 1024;
const H: u32 = 768;

/// A photo-like test image: smooth gradients and blobs plus a little noise.
fn synthetic_rgb() -> Vec<u8> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 9) as f32 - 4.0
    };
    let mut out = Vec::with_capacity((W * H * 3) as usize);
    for y in 0..H {
        for x in 0..W {
            let (fx, fy) = (x as f32 / W as f32, y as f32 / H as f32);
            let base = [
                128.0 + 90.0 * (fx * 7.0 + fy * 3.0).sin(),
                128.0 + 80.0 * (fy * 11.0 - fx * 2.0).cos(),
                128.0 + 100.0 * ((fx - 0.5).powi(2) + (fy - 0.4).powi(2)).sqrt().mul_add(-2.0, 0.5),
            ];
            for b in base {
                out.push((b + noise()).clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

fn write_images(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let rgb = synthetic_rgb();
    let jpg = dir.join("bench_1024x768.jpg");
    let png = dir.join("bench_1024x768.png");
    let mut buf = Vec::new();
    JpegEncoder::new_with_quality(&mut buf, 90)
        .write_image(&rgb, W, H, ExtendedColorType::Rgb8)
        .unwrap();
    std::fs::write(&jpg, &buf).unwrap();
    buf.clear();
    PngEncoder::new(&mut buf).write_image(&rgb, W, H, ExtendedColorType::Rgb8).unwrap();
    std::fs::write(&png, &buf).unwrap();
    (jpg, png)
}

/// Median seconds of `runs` calls of `f`, after one warm-up.
fn median_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[runs / 2]
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-images");
    let (jpg, png) = write_images(&dir);
    let processor = CLIPImageProcessor::default();
    let runs = 31;
    let threads = rayon::current_num_threads();
    println!("decode + CLIPImageProcessor (224, bicubic), {W}x{H}, median of {runs} runs");
    for path in [&jpg, &png] {
        let name = path.file_name().unwrap().to_string_lossy();
        let decoded = decode_path(path, &ImageLimits::default()).unwrap();
        let rgb = decoded.to_rgb8(processor.alpha);
        let t_all = median_secs(runs, || {
            std::hint::black_box(processor.preprocess_path(path).unwrap());
        });
        let t_decode = median_secs(runs, || {
            std::hint::black_box(decode_path(path, &ImageLimits::default()).unwrap());
        });
        let t_pre = median_secs(runs, || {
            std::hint::black_box(processor.preprocess(&rgb).unwrap());
        });
        let batch: Vec<&PathBuf> = std::iter::repeat_n(path, 32).collect();
        let t_batch = median_secs(7, || {
            for r in processor.load_and_preprocess(&batch) {
                std::hint::black_box(r.unwrap());
            }
        });
        println!(
            "{name}: 1 thread {:.1} img/s ({:.2} ms: decode {:.2} ms + preprocess {:.2} ms); \
             {threads} threads, batch of 32: {:.1} img/s",
            1.0 / t_all,
            t_all * 1e3,
            t_decode * 1e3,
            t_pre * 1e3,
            32.0 / t_batch
        );
    }
}
