//! Peak memory of the chunked pipeline does not grow with the number of
//! inputs (beyond the `[n, dim]` f32 output itself). Measured with the
//! process's peak resident set (`VmHWM` in `/proc/self/status`, Linux only),
//! so this file holds a single test per binary run path: the tests here run
//! one after another under a lock.
//!
//! `b32_peak_memory` (ignored) measures the B/32 figures of
//! `docs/threat-model.md`: `CLIP_MODEL_DIR=/path/to/clip-vit-base-patch32
//! cargo test --release --test bounded_memory -- --ignored --nocapture`.

mod common;

use clip::image_processing::RgbImage8;
use clip::Pipeline;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// Peak resident set size so far, in bytes (None off Linux).
fn peak_rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Encodes `small` then `large` texts; returns the peak RSS after each.
fn texts_peaks(p: &Pipeline, small: usize, large: usize) -> Option<(usize, usize)> {
    let texts: Vec<String> =
        (0..large).map(|i| format!("a photo of item number {i}, seen from the side")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    p.encode_texts(&refs[..small]).unwrap();
    let a = peak_rss()?;
    let out = p.encode_texts(&refs).unwrap();
    assert_eq!(out.shape()[0], large);
    Some((a, peak_rss()?))
}

/// Encodes `small` then `large` images; returns the peak RSS after each.
fn images_peaks(p: &Pipeline, small: usize, large: usize, side: usize) -> Option<(usize, usize)> {
    let distinct: Vec<RgbImage8> = (0..4).map(|s| common::test_image(side, side, s)).collect();
    let images: Vec<RgbImage8> = (0..large).map(|i| distinct[i % 4].clone()).collect();
    p.encode_images(&images[..small]).unwrap();
    let a = peak_rss()?;
    let out = p.encode_images(&images).unwrap();
    assert_eq!(out.shape()[0], large);
    Some((a, peak_rss()?))
}

#[test]
fn peak_memory_does_not_grow_with_the_batch() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if peak_rss().is_none() {
        eprintln!("no /proc/self/status: skipped");
        return;
    }
    let mut p = common::tiny_pipeline();
    p.text_batch_size = 64;
    p.image_batch_size = 16;
    let dim = p.embedding_dim();
    // The output (and the chunk results it is assembled from) is the only
    // thing that may grow: 2 * n * dim * 4 bytes, plus allocator slack.
    let allowance = |n: usize| 2 * n * dim * 4 + (8 << 20);
    let (a, b) = texts_peaks(&p, 64, 20_000).unwrap();
    eprintln!("texts: peak {:.1} MiB after 64, {:.1} MiB after 20,000", mib(a), mib(b));
    assert!(b - a <= allowance(20_000), "texts: peak grew by {:.1} MiB", mib(b - a));
    let (a, b) = images_peaks(&p, 16, 3_000, 48).unwrap();
    eprintln!("images: peak {:.1} MiB after 16, {:.1} MiB after 3,000", mib(a), mib(b));
    assert!(b - a <= allowance(3_000), "images: peak grew by {:.1} MiB", mib(b - a));
}

#[test]
#[ignore = "needs CLIP_MODEL_DIR (a B/32 checkpoint); prints the figures of docs/threat-model.md"]
fn b32_peak_memory() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::var("CLIP_MODEL_DIR").expect("set CLIP_MODEL_DIR");
    let what = std::env::var("CLIP_MEM").unwrap_or_else(|_| "texts".into());
    let before = peak_rss().unwrap();
    let p = Pipeline::from_dir(&dir).unwrap();
    let loaded = peak_rss().unwrap();
    eprintln!("load: peak {:.1} MiB (process before: {:.1} MiB)", mib(loaded), mib(before));
    let t = std::time::Instant::now();
    let (a, b) = if what == "texts" {
        texts_peaks(&p, 256, 4096).unwrap()
    } else {
        images_peaks(&p, 16, 80, 640).unwrap()
    };
    eprintln!(
        "{what}: peak {:.1} MiB after one chunk, {:.1} MiB after the whole batch ({:.0?})",
        mib(a),
        mib(b),
        t.elapsed()
    );
}
