//! Helpers shared by the integration tests: reading reference outputs that
//! `scripts/make_model_fixtures.py` computed with transformers.
#![allow(dead_code)]

use clip::Tensor;
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

/// The committed fixture directory `tests/fixtures/models/<name>`.
pub fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name)
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
