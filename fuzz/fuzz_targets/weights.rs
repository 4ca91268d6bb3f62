//! Feeds arbitrary bytes to the safetensors reader as a checkpoint: header,
//! tensor table, every tensor's bytes, then a micro CLIPModel built from them
//! (and run, when it loads). Errors are fine; a panic, an out-of-bounds read,
//! a hang or a runaway allocation is a bug.
//!
//! `cargo +nightly fuzz run weights corpus/weights seeds/weights -- -max_len=16384`
#![no_main]

use clip::weights::WeightStore;
use clip::{CLIPConfig, CLIPModel, ModelConfig, Tensor};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The shapes of the seeds' micro model (`make_seeds.py`).
fn micro_config() -> &'static CLIPConfig {
    static CONFIG: OnceLock<CLIPConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = include_str!("../seeds/configs/config_micro.bin");
        match ModelConfig::from_json(&text[1..]).expect("micro config") {
            ModelConfig::Clip(c) => c,
            _ => unreachable!(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(store) = WeightStore::from_bytes("fuzz.safetensors", data.to_vec()) else { return };
    assert!(store.total_bytes() == data.len());
    for name in store.names() {
        let shape = store.shape(name).expect("listed name has a shape").to_vec();
        if let Ok(Some(t)) = store.get(name) {
            assert_eq!(t.shape(), shape.as_slice());
            let v = t.to_f32_vec();
            assert_eq!(v.len(), shape.iter().product::<usize>());
        }
    }
    let Ok(model) = CLIPModel::from_store(micro_config(), &store) else { return };
    let feats = model.get_text_features(&[vec![1, 3, 2], vec![5, 2, 0]], None);
    assert_eq!(feats.expect("valid ids").shape(), &[2, 4]);
    let px = Tensor::zeros(vec![1, 3, 4, 4]).unwrap();
    assert_eq!(model.get_image_features(&px).expect("valid pixels").shape(), &[1, 4]);
});
