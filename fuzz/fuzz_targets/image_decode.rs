//! Decode arbitrary bytes as an image and preprocess it, with tight limits.
//! Any panic, overflow, hang or runaway allocation is a bug; errors are fine.
//!
//! `cargo +nightly fuzz run image_decode -- -max_total_time=300`
#![no_main]

use clip::image_processing::{
    decode_bytes, AlphaPolicy, CLIPImageProcessor, CropSize, ImageLimits, ResizeTarget,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ImageLimits { max_width: 2048, max_height: 2048, max_alloc_bytes: 16 << 20 };
    let Ok(image) = decode_bytes(data, &limits) else { return };
    let mut p = CLIPImageProcessor { limits, ..Default::default() };
    // A small output keeps executions fast; the arithmetic is the same.
    p.config.size = ResizeTarget::ShortestEdge { shortest_edge: 24, longest_edge: None };
    p.config.crop_size = CropSize { height: 24, width: 24 };
    if let Ok(t) = p.preprocess_decoded(&image) {
        assert_eq!(t.shape(), [3, 24, 24]);
        assert!(t.data().iter().all(|v| v.is_finite()));
    }
    let rgb = image.to_rgb8(AlphaPolicy::Drop);
    assert_eq!(rgb.as_raw().len(), image.width * image.height * 3);
});
