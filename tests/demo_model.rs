//! The built-in demo model gives what PyTorch/transformers gives for it: on
//! the 60 held-out generated images in `tests/fixtures/demo/`, image
//! features, ensembled label embeddings, zero-shot probabilities, predicted
//! labels and accuracies (`scripts/make_demo_fixtures.py` computed them from
//! the same PNG files with `CLIPImageProcessor` (Pillow backend),
//! `CLIPTokenizer` and `CLIPModel`, F16 weights loaded as float32).
//!
//! Tolerance 1e-4 absolute on features of magnitude ~1 and on
//! probabilities: the reference ran PyTorch's sdpa attention in f32, whose
//! summation order differs from ours by ~1e-6.

use clip::{Pipeline, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

const TOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo")
}

fn reference() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("reference.json")).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn check(pipeline: &Pipeline, what: &str) {
    let r = reference();
    let templates: Vec<&str> =
        r["templates"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(templates, clip::DEFAULT_TEMPLATES, "the CLI's default templates are the demo's");
    let scale = pipeline.model().logit_scale();
    assert!((scale - r["logit_scale"].as_f64().unwrap() as f32).abs() < 1e-6);
    let images = r["images"].as_array().unwrap();
    let paths: Vec<PathBuf> =
        images.iter().map(|im| fixtures().join(im["file"].as_str().unwrap())).collect();
    let feats: Vec<Vec<f32>> =
        pipeline.encode_image_files(&paths, |_| {}).into_iter().map(|r| r.unwrap()).collect();
    let mut worst = 0.0f32;
    for (im, f) in images.iter().zip(&feats) {
        worst = worst.max(max_diff(f, &floats(&im["image_features"])));
    }
    assert!(worst < TOL, "{what}: image features differ by {worst}");
    let dim = pipeline.embedding_dim();
    let image_features = Tensor::new(vec![feats.len(), dim], feats.concat()).unwrap();
    for set in ["colour", "shape", "colour_shape"] {
        let labels: Vec<&str> =
            r["label_sets"][set].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        let emb = pipeline.label_embeddings(&labels, &templates).unwrap();
        for (i, l) in labels.iter().enumerate() {
            let d = max_diff(emb.row(i), &floats(&r["text_features"][set][l]));
            assert!(d < TOL, "{what}: label embedding of {l:?} differs by {d}");
        }
        let probs = pipeline.zero_shot(&image_features, &emb).unwrap();
        let mut correct = 0;
        for (i, im) in images.iter().enumerate() {
            let row = probs.row(i);
            let d = max_diff(row, &floats(&im[set]["probs"]));
            assert!(d < TOL, "{what}: {set} probabilities of {} differ by {d}", im["file"]);
            let best = (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            let runner_up =
                (0..row.len()).filter(|&j| j != best).map(|j| row[j]).fold(0.0, f32::max);
            // The prediction must agree unless the top two are closer than the tolerance.
            if row[best] - runner_up > 2.0 * TOL {
                assert_eq!(
                    labels[best],
                    im[set]["predicted"].as_str().unwrap(),
                    "{what}: {set} of {}",
                    im["file"]
                );
            }
            correct += usize::from(labels[best] == im[set]["true"].as_str().unwrap());
        }
        let accuracy = correct as f64 / images.len() as f64;
        let expected = r["accuracy_fixtures"][set].as_f64().unwrap();
        // One near-tie may flip; a wrong kernel would move many.
        assert!(
            (accuracy - expected).abs() <= 1.0 / images.len() as f64 + 1e-9,
            "{what}: {set} accuracy {accuracy} vs {expected}"
        );
        println!("{what}: {set} zero-shot accuracy {accuracy:.3} (PyTorch {expected:.3})");
    }
}

#[test]
fn embedded_demo_model_matches_pytorch() {
    check(&clip::default_model::pipeline().unwrap(), "embedded");
}

#[test]
fn demo_model_directory_matches_pytorch() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-model");
    check(&Pipeline::from_dir(dir).unwrap(), "assets/demo-model");
}
