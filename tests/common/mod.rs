//! Helpers shared by the integration tests: reading reference outputs that
//! `scripts/make_model_fixtures.py` computed with transformers.
#![allow(dead_code)]

pub mod families;

use clip::Tensor;
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

/// The committed fixture directory `tests/fixtures/models/<name>`.
pub fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name)
}

/// A scratch directory under the system's temp dir, unique to the process
/// and the call, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    /// An empty directory; `tag` names it for whoever finds one left over.
    pub fn new(tag: &str) -> Scratch {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("clip-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A copy of the model fixture `fixture`'s files but `skip` (and the
    /// reference outputs).
    pub fn copy_fixture(fixture: &str, tag: &str, skip: &[&str]) -> Scratch {
        let dir = Scratch::new(tag);
        for entry in std::fs::read_dir(model_dir(fixture)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if !skip.contains(&name.as_str()) && name != "reference.safetensors" {
                std::fs::copy(&path, dir.path().join(&name)).unwrap();
            }
        }
        dir
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to the file `name` in the directory; its path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reference tensors of one fixture (`reference.safetensors`).
pub struct Reference {
    bytes: Vec<u8>,
}

impl Reference {
    pub fn load(dir: &Path) -> Reference {
        let path = dir.join("reference.safetensors");
        Reference {
            bytes: std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        }
    }

    fn view(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("reference file is valid")
    }

    pub fn has(&self, name: &str) -> bool {
        self.view().tensor(name).is_ok()
    }

    pub fn tensor(&self, name: &str) -> Tensor {
        let st = self.view();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("reference has no tensor {name}"));
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        let data = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Tensor::new(t.shape().to_vec(), data).unwrap()
    }

    /// An int64 `[batch, seq]` tensor as rows of u32 (token ids, masks).
    pub fn rows_u32(&self, name: &str) -> Vec<Vec<u32>> {
        let st = self.view();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("reference has no tensor {name}"));
        assert_eq!(t.dtype(), Dtype::I64, "{name}");
        let seq = t.shape()[1];
        let vals: Vec<u32> = t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect();
        vals.chunks(seq).map(|r| r.to_vec()).collect()
    }

    /// Number of tensors named `{prefix}.{i}` (e.g. hidden states).
    pub fn count(&self, prefix: &str) -> usize {
        (0..).take_while(|i| self.has(&format!("{prefix}.{i}"))).count()
    }
}

/// Largest absolute difference; panics on a shape mismatch.
pub fn max_abs_diff(got: &Tensor, expected: &Tensor) -> f32 {
    assert_eq!(got.shape(), expected.shape(), "shape mismatch");
    got.data().iter().zip(expected.data()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

/// Asserts `got` is within `tol` of the reference tensor `name`; returns the error.
pub fn assert_close(reference: &Reference, name: &str, got: &Tensor, tol: f32) -> f32 {
    let expected = reference.tensor(name);
    assert_eq!(got.shape(), expected.shape(), "{name}: shape");
    let err = max_abs_diff(got, &expected);
    assert!(err <= tol, "{name}: max abs difference {err} exceeds {tol}");
    err
}

/// A tokenizer whose ids fit the tiny fixtures' 1000-token vocabulary: the
/// `small` test vocabulary cut to its first 998 tokens (bytes, bytes + `</w>`
/// and the merges that build the rest), with `<|startoftext|>` = 998 and
/// `<|endoftext|>` = 999 as the tiny configs expect.
pub fn tiny_tokenizer() -> clip::tokenizer::CLIPTokenizer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer/small");
    let vocab: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("vocab.json")).unwrap()).unwrap();
    let mut kept: serde_json::Map<String, serde_json::Value> =
        vocab.into_iter().filter(|(_, id)| id.as_u64().unwrap() < 998).collect();
    kept.insert("<|startoftext|>".into(), 998.into());
    kept.insert("<|endoftext|>".into(), 999.into());
    let merges = std::fs::read_to_string(dir.join("merges.txt")).unwrap();
    let merges: String = merges
        .lines()
        .filter(|l| {
            l.starts_with('#')
                || l.split_once(' ').is_some_and(|(a, b)| kept.contains_key(&format!("{a}{b}")))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let vocab = serde_json::to_vec(&serde_json::Value::Object(kept)).unwrap();
    clip::tokenizer::CLIPTokenizer::from_vocab_merges(&vocab, merges.as_bytes()).unwrap()
}

/// A pipeline over the `tiny-quickgelu` fixture with [`tiny_tokenizer`] and a
/// 32-pixel image processor (the fixture's `image_size`).
pub fn tiny_pipeline() -> clip::Pipeline {
    use clip::image_processing::{
        CLIPImageProcessor, CropSize, ImageProcessorConfig, ResizeTarget,
    };
    let model = clip::CLIPModel::from_pretrained(model_dir("tiny-quickgelu")).unwrap();
    let config = ImageProcessorConfig {
        size: ResizeTarget::ShortestEdge { shortest_edge: 32, longest_edge: None },
        crop_size: CropSize { height: 32, width: 32 },
        ..Default::default()
    };
    let processor = clip::CLIPProcessor {
        tokenizer: tiny_tokenizer(),
        image_processor: CLIPImageProcessor::new(config),
    };
    clip::Pipeline::new(model, processor)
}

/// A deterministic RGB test image with some structure.
pub fn test_image(width: usize, height: usize, seed: usize) -> clip::image_processing::RgbImage8 {
    let data = (0..width * height * 3)
        .map(|i| ((i * 31 + seed * 97 + (i / (width * 3)) * 7) % 251) as u8)
        .collect();
    clip::image_processing::RgbImage8::new(width, height, data).unwrap()
}
