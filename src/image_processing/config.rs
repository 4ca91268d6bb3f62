//! `preprocessor_config.json`: the settings of `CLIPImageProcessor`.
//!
//! Keys that are absent (or `null`) take transformers 5's defaults for
//! `CLIPImageProcessor` / `CLIPImageProcessorPil`: convert to RGB, resize the
//! shortest edge to 224 with BICUBIC, center-crop 224×224, rescale by 1/255,
//! normalise with OpenAI's mean and std. Unknown keys (`image_processor_type`,
//! `feature_extractor_type`, `processor_class`, ...) are ignored.

use super::resize::Filter;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// OpenAI CLIP's per-channel mean (transformers' `OPENAI_CLIP_MEAN`).
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's per-channel standard deviation (`OPENAI_CLIP_STD`).
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// The file name of the preprocessor configuration in a model directory.
pub const PREPROCESSOR_CONFIG_FILE: &str = "preprocessor_config.json";

/// How `size` turns an input size into the resized size (transformers'
/// size dictionaries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResizeTarget {
    /// `{"shortest_edge": s}` (or the legacy `"size": s`): the shorter side
    /// becomes `s`, the longer `int(s · long / short)`. With `longest_edge`,
    /// transformers' `get_size_with_aspect_ratio` caps the longer side.
    ShortestEdge {
        /// Target of the shorter side.
        shortest_edge: usize,
        /// Optional cap on the longer side.
        longest_edge: Option<usize>,
    },
    /// `{"height": h, "width": w}` (or `[h, w]`): exactly this size.
    Exact {
        /// Output height.
        height: usize,
        /// Output width.
        width: usize,
    },
    /// `{"max_height": h, "max_width": w}`: the largest size with the input's
    /// aspect ratio that fits (transformers' `get_image_size_for_max_height_width`).
    MaxHeightWidth {
        /// Largest output height.
        max_height: usize,
        /// Largest output width.
        max_width: usize,
    },
}

impl ResizeTarget {
    /// The `(height, width)` an image of `height` × `width` is resized to, by
    /// transformers' exact integer and float arithmetic.
    pub fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        match *self {
            ResizeTarget::ShortestEdge { shortest_edge, longest_edge: None } => {
                // get_resize_output_image_size(default_to_square=False)
                let (short, long) = if width <= height { (width, height) } else { (height, width) };
                let new_long =
                    ((shortest_edge as u128 * long as u128) as f64 / short as f64) as usize;
                if width <= height {
                    (new_long, shortest_edge)
                } else {
                    (shortest_edge, new_long)
                }
            }
            ResizeTarget::ShortestEdge { shortest_edge, longest_edge: Some(max_size) } => {
                size_with_aspect_ratio(height, width, shortest_edge, max_size)
            }
            ResizeTarget::Exact { height, width } => (height, width),
            ResizeTarget::MaxHeightWidth { max_height, max_width } => {
                let hs = max_height as f64 / height as f64;
                let ws = max_width as f64 / width as f64;
                let s = if hs < ws { hs } else { ws };
                ((height as f64 * s) as usize, (width as f64 * s) as usize)
            }
        }
    }

    fn to_json(self) -> Value {
        match self {
            ResizeTarget::ShortestEdge { shortest_edge, longest_edge: None } => {
                json!({ "shortest_edge": shortest_edge })
            }
            ResizeTarget::ShortestEdge { shortest_edge, longest_edge: Some(l) } => {
                json!({ "shortest_edge": shortest_edge, "longest_edge": l })
            }
            ResizeTarget::Exact { height, width } => json!({ "height": height, "width": width }),
            ResizeTarget::MaxHeightWidth { max_height, max_width } => {
                json!({ "max_height": max_height, "max_width": max_width })
            }
        }
    }
}

/// transformers' `get_size_with_aspect_ratio((h, w), size, max_size)`.
fn size_with_aspect_ratio(h: usize, w: usize, size: usize, max_size: usize) -> (usize, usize) {
    let mut size = size;
    let mut raw_size = None;
    let min_o = h.min(w) as f64;
    let max_o = h.max(w) as f64;
    if max_o / min_o * size as f64 > max_size as f64 {
        let raw = max_size as f64 * min_o / max_o;
        raw_size = Some(raw);
        size = raw.round_ties_even() as usize;
    }
    if (h <= w && h == size) || (w <= h && w == size) {
        return (h, w);
    }
    let scaled = |num: usize, den: usize| match raw_size {
        Some(raw) => (raw * num as f64 / den as f64) as usize,
        None => ((size as u128 * num as u128) as f64 / den as f64) as usize,
    };
    if w < h {
        (scaled(h, w), size)
    } else {
        (size, scaled(w, h))
    }
}

/// The center-crop size (`crop_size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CropSize {
    /// Crop height.
    pub height: usize,
    /// Crop width.
    pub width: usize,
}

/// The settings of a `CLIPImageProcessor`, as in `preprocessor_config.json`.
///
/// Serialises to (and parses from) transformers' JSON keys; `size` and
/// `crop_size` are written in the dictionary form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawConfig", into = "RawConfig")]
pub struct ImageProcessorConfig {
    /// Convert to RGB first (`do_convert_rgb`, default true). Images are always
    /// made 3-channel RGB here; the alpha policy of the processor applies.
    pub do_convert_rgb: bool,
    /// Resize (`do_resize`, default true).
    pub do_resize: bool,
    /// Resize target (`size`, default `{"shortest_edge": 224}`).
    pub size: ResizeTarget,
    /// Resampling filter (`resample`, PIL code, default 3 = BICUBIC).
    pub resample: Filter,
    /// Center-crop (`do_center_crop`, default true).
    pub do_center_crop: bool,
    /// Crop size (`crop_size`, default 224×224).
    pub crop_size: CropSize,
    /// Multiply by `rescale_factor` (`do_rescale`, default true).
    pub do_rescale: bool,
    /// Rescale factor (`rescale_factor`, default 1/255).
    pub rescale_factor: f64,
    /// Normalise with mean and std (`do_normalize`, default true).
    pub do_normalize: bool,
    /// Per-channel mean, RGB (`image_mean`; a single number applies to all three).
    pub image_mean: [f64; 3],
    /// Per-channel std, RGB (`image_std`; a single number applies to all three).
    pub image_std: [f64; 3],
}

impl Default for ImageProcessorConfig {
    /// transformers' `CLIPImageProcessor` defaults (224, OpenAI mean and std).
    fn default() -> Self {
        ImageProcessorConfig {
            do_convert_rgb: true,
            do_resize: true,
            size: ResizeTarget::ShortestEdge { shortest_edge: 224, longest_edge: None },
            resample: Filter::Bicubic,
            do_center_crop: true,
            crop_size: CropSize { height: 224, width: 224 },
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN,
            image_std: OPENAI_CLIP_STD,
        }
    }
}

impl ImageProcessorConfig {
    /// Parses `preprocessor_config.json` contents. Malformed JSON, wrong types
    /// or invalid sizes give a `Format` error.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::format(format!("invalid preprocessor config: {e}")).with_source(e))
    }

    /// Reads and parses a `preprocessor_config.json` file; errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&bytes).map_err(|e| e.context(path.display()))
    }

    /// Reads `dir/preprocessor_config.json`. When the file does not exist,
    /// the preprocessing the model in `dir` implies: `open_clip_config.json`'s
    /// `preprocess_cfg`, else these defaults at the model's image size (from
    /// `config.json` or OpenAI-named weights), else the plain defaults. A
    /// missing directory is an `Io` error.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::new(
                crate::ErrorKind::Io,
                format!("model directory {} does not exist", dir.display()),
            ));
        }
        let path = dir.join(PREPROCESSOR_CONFIG_FILE);
        if path.exists() {
            Self::from_file(&path)
        } else {
            crate::model_dir::implied_preprocessing(dir)
        }
    }

    /// The fixed output `(height, width)`, or `None` when it depends on the
    /// input (no center crop and a resize that keeps the aspect ratio, or no
    /// resize).
    pub fn output_size(&self) -> Option<(usize, usize)> {
        if self.do_center_crop {
            Some((self.crop_size.height, self.crop_size.width))
        } else if let (true, ResizeTarget::Exact { height, width }) = (self.do_resize, self.size) {
            Some((height, width))
        } else {
            None
        }
    }
}

/// The JSON form: every key optional, `null` meaning "default".
#[derive(Clone, Default, Serialize, Deserialize)]
struct RawConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    do_convert_rgb: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    do_resize: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resample: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    do_center_crop: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crop_size: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    do_rescale: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rescale_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    do_normalize: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_mean: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_std: Option<Value>,
}

fn positive(v: &Value, what: &str) -> std::result::Result<usize, String> {
    match v.as_u64() {
        Some(n) if n > 0 && n <= u32::MAX as u64 => Ok(n as usize),
        _ => Err(format!("{what} must be a positive integer, got {v}")),
    }
}

fn parse_size(v: &Value) -> std::result::Result<ResizeTarget, String> {
    match v {
        Value::Number(_) => Ok(ResizeTarget::ShortestEdge {
            shortest_edge: positive(v, "size")?,
            longest_edge: None,
        }),
        Value::Array(a) if a.len() == 2 => Ok(ResizeTarget::Exact {
            height: positive(&a[0], "size[0]")?,
            width: positive(&a[1], "size[1]")?,
        }),
        Value::Object(m) => {
            let keys: Vec<&str> =
                m.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k.as_str()).collect();
            let has = |k: &str| keys.contains(&k);
            let size = if has("shortest_edge")
                && keys.len() <= 2
                && (keys.len() == 1 || has("longest_edge"))
            {
                ResizeTarget::ShortestEdge {
                    shortest_edge: positive(&m["shortest_edge"], "size.shortest_edge")?,
                    longest_edge: m
                        .get("longest_edge")
                        .filter(|v| !v.is_null())
                        .map(|l| positive(l, "size.longest_edge"))
                        .transpose()?,
                }
            } else if keys.len() == 2 && has("height") && has("width") {
                ResizeTarget::Exact {
                    height: positive(&m["height"], "size.height")?,
                    width: positive(&m["width"], "size.width")?,
                }
            } else if keys.len() == 2 && has("max_height") && has("max_width") {
                ResizeTarget::MaxHeightWidth {
                    max_height: positive(&m["max_height"], "size.max_height")?,
                    max_width: positive(&m["max_width"], "size.max_width")?,
                }
            } else {
                return Err(format!(
                    "size must have the keys shortest_edge (and optionally longest_edge), \
                     height and width, or max_height and max_width; got {v}"
                ));
            };
            Ok(size)
        }
        _ => Err(format!("size must be an integer, [height, width] or an object, got {v}")),
    }
}

fn parse_crop(v: &Value) -> std::result::Result<CropSize, String> {
    match v {
        Value::Number(_) => {
            let s = positive(v, "crop_size")?;
            Ok(CropSize { height: s, width: s })
        }
        Value::Array(a) if a.len() == 2 => Ok(CropSize {
            height: positive(&a[0], "crop_size[0]")?,
            width: positive(&a[1], "crop_size[1]")?,
        }),
        Value::Object(m) if m.contains_key("height") && m.contains_key("width") => Ok(CropSize {
            height: positive(&m["height"], "crop_size.height")?,
            width: positive(&m["width"], "crop_size.width")?,
        }),
        _ => Err(format!(
            "crop_size must be an integer, [height, width] or {{height, width}}, got {v}"
        )),
    }
}

fn parse_triple(v: &Value, what: &str) -> std::result::Result<[f64; 3], String> {
    let num = |v: &Value| v.as_f64().ok_or_else(|| format!("{what} must hold numbers, got {v}"));
    match v {
        Value::Number(_) => Ok([num(v)?; 3]),
        Value::Array(a) if a.len() == 3 => Ok([num(&a[0])?, num(&a[1])?, num(&a[2])?]),
        _ => Err(format!("{what} must be a number or a list of 3 numbers (RGB), got {v}")),
    }
}

impl TryFrom<RawConfig> for ImageProcessorConfig {
    type Error = String;

    fn try_from(r: RawConfig) -> std::result::Result<Self, String> {
        let d = ImageProcessorConfig::default();
        let some = |v: Option<Value>| v.filter(|v| !v.is_null());
        let resample = match r.resample {
            None => d.resample,
            Some(code) => Filter::from_pil_code(code)
                .ok_or_else(|| format!("resample must be a PIL filter code 0..=5, got {code}"))?,
        };
        let rescale_factor = r.rescale_factor.unwrap_or(d.rescale_factor);
        if !rescale_factor.is_finite() {
            return Err(format!("rescale_factor must be finite, got {rescale_factor}"));
        }
        Ok(ImageProcessorConfig {
            do_convert_rgb: r.do_convert_rgb.unwrap_or(d.do_convert_rgb),
            do_resize: r.do_resize.unwrap_or(d.do_resize),
            size: some(r.size).map(|v| parse_size(&v)).transpose()?.unwrap_or(d.size),
            resample,
            do_center_crop: r.do_center_crop.unwrap_or(d.do_center_crop),
            crop_size: some(r.crop_size)
                .map(|v| parse_crop(&v))
                .transpose()?
                .unwrap_or(d.crop_size),
            do_rescale: r.do_rescale.unwrap_or(d.do_rescale),
            rescale_factor,
            do_normalize: r.do_normalize.unwrap_or(d.do_normalize),
            image_mean: some(r.image_mean)
                .map(|v| parse_triple(&v, "image_mean"))
                .transpose()?
                .unwrap_or(d.image_mean),
            image_std: some(r.image_std)
                .map(|v| parse_triple(&v, "image_std"))
                .transpose()?
                .unwrap_or(d.image_std),
        })
    }
}

impl From<ImageProcessorConfig> for RawConfig {
    fn from(c: ImageProcessorConfig) -> Self {
        RawConfig {
            do_convert_rgb: Some(c.do_convert_rgb),
            do_resize: Some(c.do_resize),
            size: Some(c.size.to_json()),
            resample: Some(c.resample.pil_code()),
            do_center_crop: Some(c.do_center_crop),
            crop_size: Some(json!({ "height": c.crop_size.height, "width": c.crop_size.width })),
            do_rescale: Some(c.do_rescale),
            rescale_factor: Some(c.rescale_factor),
            do_normalize: Some(c.do_normalize),
            image_mean: Some(json!(c.image_mean)),
            image_std: Some(json!(c.image_std)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_config_and_defaults() {
        let hub =
            br#"{"crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
            "feature_extractor_type": "CLIPFeatureExtractor",
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224}"#;
        assert_eq!(ImageProcessorConfig::from_json(hub).unwrap(), ImageProcessorConfig::default());
        assert_eq!(
            ImageProcessorConfig::from_json(b"{}").unwrap(),
            ImageProcessorConfig::default()
        );
        let c = ImageProcessorConfig::default();
        let round = serde_json::to_vec(&c).unwrap();
        assert_eq!(ImageProcessorConfig::from_json(&round).unwrap(), c);
    }

    #[test]
    fn output_size_rule() {
        let t = ResizeTarget::ShortestEdge { shortest_edge: 224, longest_edge: None };
        assert_eq!(t.output_size(480, 640), (224, 298));
        assert_eq!(t.output_size(451, 300), (336, 224));
        assert_eq!(t.output_size(20, 1000), (224, 11200));
        assert_eq!(t.output_size(1, 1), (224, 224));
    }

    #[test]
    fn bad_configs_are_format_errors() {
        for bad in [
            &b"{"[..],
            br#"{"size": "big"}"#,
            br#"{"do_resize": "yes"}"#,
            br#"{"size": {"longest_edge": 5}}"#,
            br#"{"crop_size": 0}"#,
            br#"{"image_mean": [1, 2]}"#,
            br#"{"resample": 9}"#,
        ] {
            let e = ImageProcessorConfig::from_json(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Format, "{}", String::from_utf8_lossy(bad));
        }
    }
}
