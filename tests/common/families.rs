//! The big-model-shaped fixtures of `tests/fixtures/families/<name>/`: their
//! weights are not stored but described in `manifest.json` (an integer-hash
//! generator, see `scripts/make_family_fixtures.py`), regenerated here
//! bit for bit and written as a safetensors file next to the fixture's
//! config in a temporary model directory.

use clip::Tensor;
use serde_json::Value;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// `tests/fixtures/families/<name>`.
pub fn family_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families").join(name)
}

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z ^= z >> 30;
    z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 27;
    z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Generator "clip-fixture-hash-v1": element `i` of tensor `t` is
/// `offset + k * scale` with `k` in [-1024, 1023] from a SplitMix64 hash.
pub fn generate(seed: u64, t: u64, len: usize, scale: f64, offset: f64) -> Vec<f32> {
    let key = mix(seed.wrapping_add((t + 1).wrapping_mul(MUL)));
    (0..len as u64)
        .map(|i| {
            let k = (mix(key.wrapping_add(i.wrapping_mul(MUL))) >> 53) as i64 - 1024;
            (offset + k as f64 * scale) as f32
        })
        .collect()
}

/// One tensor of a manifest.
struct Spec {
    name: String,
    shape: Vec<usize>,
    f16: bool,
    scale: f64,
    offset: f64,
}

/// A family fixture: manifest, config and reference outputs.
pub struct Family {
    pub dir: PathBuf,
    manifest: Value,
}

fn shape_of(v: &Value) -> Vec<usize> {
    v.as_array().expect("shape list").iter().map(|d| d.as_u64().unwrap() as usize).collect()
}

impl Family {
    pub fn load(name: &str) -> Family {
        let dir = family_dir(name);
        let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
        let manifest: Value = serde_json::from_str(&text).expect("manifest is JSON");
        assert_eq!(manifest["generator"], "clip-fixture-hash-v1", "{name}: generator");
        Family { dir, manifest }
    }

    fn specs(&self) -> Vec<Spec> {
        self.manifest["tensors"]
            .as_array()
            .expect("tensors")
            .iter()
            .map(|t| Spec {
                name: t["name"].as_str().unwrap().to_string(),
                shape: shape_of(&t["shape"]),
                f16: t["dtype"] == "F16",
                scale: t["scale"].as_f64().unwrap(),
                offset: t["offset"].as_f64().unwrap(),
            })
            .collect()
    }

    /// Checks the generator against the manifest's "check" values (the
    /// first 8 elements of one tensor, as the Python script made them).
    pub fn check_generator(&self) {
        let seed = self.manifest["seed"].as_u64().unwrap();
        let check = &self.manifest["check"];
        let t = check["tensor"].as_u64().unwrap();
        let spec = &self.specs()[t as usize];
        let want: Vec<f32> = check["first_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let got = generate(seed, t, want.len(), spec.scale, spec.offset);
        assert_eq!(got, want, "generator disagrees with manifest check of {}", spec.name);
    }

    /// Writes the checkpoint into a fresh temporary directory, with the
    /// fixture's config file(s) beside it; removed on drop.
    pub fn materialise(&self, tag: &str) -> super::Scratch {
        self.check_generator();
        let name = self.dir.file_name().unwrap().to_string_lossy();
        let dir = super::Scratch::new(&format!("family-{name}-{tag}"));
        for f in ["config.json", "open_clip_config.json"] {
            if self.dir.join(f).is_file() {
                std::fs::copy(self.dir.join(f), dir.path().join(f)).unwrap();
            }
        }
        let file = self.manifest["weights_file"].as_str().unwrap();
        let seed = self.manifest["seed"].as_u64().unwrap();
        write_safetensors(&dir.path().join(file), seed, &self.specs());
        dir
    }

    /// The pixel input `name` of the manifest, regenerated.
    pub fn pixels(&self, name: &str) -> Tensor {
        let inputs = &self.manifest["inputs"];
        let seed = inputs["seed"].as_u64().unwrap();
        let list = inputs["pixel_values"].as_array().unwrap();
        let (t, p) = list.iter().enumerate().find(|(_, p)| p["name"] == name).expect(name);
        let shape = shape_of(&p["shape"]);
        let len = shape.iter().product();
        let data = generate(
            seed,
            t as u64,
            len,
            p["scale"].as_f64().unwrap(),
            p["offset"].as_f64().unwrap(),
        );
        Tensor::new(shape, data).unwrap()
    }
}

/// Streams the generated tensors into a safetensors file (header first: the
/// offsets follow from the shapes), without holding the whole file.
fn write_safetensors(path: &Path, seed: u64, specs: &[Spec]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for s in specs {
        let bytes = s.shape.iter().product::<usize>() * if s.f16 { 2 } else { 4 };
        header.insert(
            s.name.clone(),
            serde_json::json!({
                "dtype": if s.f16 { "F16" } else { "F32" },
                "shape": s.shape,
                "data_offsets": [offset, offset + bytes],
            }),
        );
        offset += bytes;
    }
    let mut json = serde_json::to_vec(&header).unwrap();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(&(json.len() as u64).to_le_bytes()).unwrap();
    out.write_all(&json).unwrap();
    for (t, s) in specs.iter().enumerate() {
        let values = generate(seed, t as u64, s.shape.iter().product(), s.scale, s.offset);
        let bytes: Vec<u8> = if s.f16 {
            values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()
        } else {
            values.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        out.write_all(&bytes).unwrap();
    }
    out.flush().unwrap();
}

/// The largest absolute value of a tensor.
pub fn max_abs(t: &Tensor) -> f32 {
    t.data().iter().fold(0.0, |m, v| m.max(v.abs()))
}
