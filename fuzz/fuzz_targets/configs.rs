//! Parses arbitrary bytes as `config.json` (mode byte 0) or
//! `preprocessor_config.json` (mode byte 1), then uses what parses: a model
//! config is built against fixed micro weights (absurd sizes must fail on the
//! shape check, not allocate), a preprocessor config preprocesses a small
//! image under tight limits. Errors are fine; panics and aborts are bugs.
//!
//! `cargo +nightly fuzz run configs corpus/configs seeds/configs`
#![no_main]

use clip::image_processing::{CLIPImageProcessor, ImageLimits, ImageProcessorConfig, RgbImage8};
use clip::weights::WeightStore;
use clip::{CLIPModel, CLIPTextModel, CLIPVisionModel, ModelConfig};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn micro_store() -> &'static WeightStore {
    static STORE: OnceLock<WeightStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let bytes = include_bytes!("../seeds/weights/micro_f32.safetensors");
        WeightStore::from_bytes("micro", bytes.to_vec()).expect("micro weights")
    })
}

fn image() -> &'static RgbImage8 {
    static IMAGE: OnceLock<RgbImage8> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let data = (0..7 * 5 * 3).map(|i| (i * 37 % 256) as u8).collect();
        RgbImage8::new(7, 5, data).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 2 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let Ok(config) = ModelConfig::from_json(text) else { return };
            config.validate().expect("a parsed config is valid");
            let store = micro_store();
            match &config {
                ModelConfig::Clip(c) => {
                    let _ = CLIPModel::from_store(c, store);
                    let _ = CLIPTextModel::from_store(&c.text_config, store);
                    let _ = CLIPVisionModel::from_store(&c.vision_config, store);
                }
                ModelConfig::Text(t) => {
                    let _ = CLIPTextModel::from_store(t, store);
                }
                ModelConfig::Vision(v) => {
                    let _ = CLIPVisionModel::from_store(v, store);
                }
            }
        }
        _ => {
            let Ok(config) = ImageProcessorConfig::from_json(rest) else { return };
            let p = CLIPImageProcessor {
                limits: ImageLimits { max_width: 4096, max_height: 4096, max_alloc_bytes: 8 << 20 },
                ..CLIPImageProcessor::new(config)
            };
            if p.validate().is_err() {
                return;
            }
            if let Ok(t) = p.preprocess(image()) {
                assert_eq!(t.shape()[0], 3);
                if let Some((h, w)) = p.output_size() {
                    assert_eq!(t.shape(), &[3, h, w]);
                }
            }
        }
    }
});
