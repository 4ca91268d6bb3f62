//! Image decoding and `CLIPImageProcessor` against transformers 5
//! `CLIPImageProcessorPil` + Pillow 13 (fixtures from
//! `scripts/make_image_fixtures.py`).

use clip::image_processing::{
    decode_bytes, decode_path, from_raw, AlphaPolicy, CLIPImageProcessor, DecodedImage,
    ImageLimits, ImageProcessorConfig, PixelFormat, Pixels, RgbImage8,
};
use clip::tensor::Tensor;
use clip::ErrorKind;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest |Δ| allowed between our JPEG pipeline and Pillow's (libjpeg-turbo)
/// decode + the reference. Measured 2026-11 on the fixtures (see
/// docs/image_processing.md); the decoders differ by a few levels per pixel.
const JPEG_TOLERANCE: f32 = 0.1;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images")
}

/// Decodes a `.pvq` file (see the fixture script): the reference array, exactly.
fn read_pvq(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let gz = std::fs::read(path).unwrap();
    let mut b = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut b).unwrap();
    assert_eq!(&b[..4], b"PVQ1");
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let nd = u32_at(4) as usize;
    let shape: Vec<usize> = (0..nd).map(|i| u32_at(8 + 4 * i) as usize).collect();
    let (h, w) = (shape[nd - 2], shape[nd - 1]);
    let planes: usize = shape[..nd - 2].iter().product();
    let mut off = 8 + 4 * nd;
    let mut data = Vec::with_capacity(planes * h * w);
    for _ in 0..planes {
        let n = u16::from_le_bytes([b[off], b[off + 1]]) as usize;
        let pal: Vec<f32> = (0..n).map(|i| f32::from_bits(u32_at(off + 2 + 4 * i))).collect();
        let deltas = &b[off + 2 + 4 * n..off + 2 + 4 * n + h * w];
        for row in deltas.chunks_exact(w) {
            let mut idx = 0u8;
            for &d in row {
                idx = idx.wrapping_add(d);
                data.push(pal[idx as usize]);
            }
        }
        off += 2 + 4 * n + h * w;
    }
    assert_eq!(off, b.len());
    (shape, data)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    let mut max = 0f32;
    let mut differing = 0;
    for (x, y) in a.iter().zip(b) {
        if x.to_bits() != y.to_bits() {
            differing += 1;
        }
        max = max.max((x - y).abs());
    }
    (max, differing)
}

struct Case {
    image: String,
    kind: String,
    config: String,
    expected: String,
    exact: bool,
}

fn cases() -> Vec<Case> {
    let m: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("manifest.json")).unwrap()).unwrap();
    m["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            image: c["image"].as_str().unwrap().into(),
            kind: c["kind"].as_str().unwrap().into(),
            config: c["config"].as_str().unwrap().into(),
            expected: c["expected"].as_str().unwrap().into(),
            exact: c["exact"].as_bool().unwrap(),
        })
        .collect()
}

#[test]
fn pixel_values_match_transformers_pil_backend() {
    let dir = fixtures();
    let mut failures = Vec::new();
    let mut report = std::collections::BTreeMap::<String, (f32, usize, usize)>::new();
    for case in cases() {
        let config = ImageProcessorConfig::from_file(dir.join(&case.config)).unwrap();
        let processor = CLIPImageProcessor::new(config);
        let got = processor
            .preprocess_path(dir.join(&case.image))
            .unwrap_or_else(|e| panic!("{} / {}: {e}", case.image, case.config));
        let (shape, want) = read_pvq(&dir.join(&case.expected));
        assert_eq!(&shape[1..], got.shape(), "{} / {}", case.image, case.config);
        let (max, differing) = max_abs_diff(got.data(), &want);
        let label = format!("{} / {}", case.image, case.config);
        let e = report.entry(case.kind.clone()).or_default();
        e.0 = e.0.max(max);
        e.1 += differing;
        e.2 += 1;
        if case.exact && differing != 0 {
            failures.push(format!("{label}: {differing} values differ, max |diff| {max}"));
        }
        if !case.exact {
            eprintln!("{label}: max |diff| {max}, {differing} of {} values differ", want.len());
            if max > JPEG_TOLERANCE {
                failures.push(format!("{label}: max |diff| {max} > {JPEG_TOLERANCE}"));
            }
        }
    }
    for (kind, (max, differing, n)) in &report {
        eprintln!("{kind:>8}: {n} cases, max |diff| {max}, {differing} differing values");
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

fn rgb_of(d: &DecodedImage) -> RgbImage8 {
    d.to_rgb8(AlphaPolicy::CompositeOnWhite)
}

#[test]
fn raw_buffers_with_stride_equal_decoded_files() {
    let limits = ImageLimits::default();
    // RGBA source: covers RGBA and BGRA; RGB and gray from other files.
    let rgba = decode_path(fixtures().join("mode_rgba.png"), &limits).unwrap();
    let Pixels::Rgba8(px) = &rgba.pixels else { panic!("expected RGBA") };
    let (w, h) = (rgba.width, rgba.height);
    let pad = 13;
    let strided = |bpp: usize, f: &dyn Fn(&[u8]) -> Vec<u8>| -> Vec<u8> {
        let mut out = Vec::new();
        for row in px.chunks_exact(w * 4) {
            for p in row.chunks_exact(4) {
                out.extend(f(p));
            }
            out.extend(std::iter::repeat_n(0xAB, pad));
        }
        assert_eq!(out.len(), h * (w * bpp + pad));
        out
    };
    let stride4 = w * 4 + pad;
    let raw = from_raw(&strided(4, &|p| p.to_vec()), w, h, stride4, PixelFormat::Rgba8).unwrap();
    assert_eq!(raw, rgba);
    let bgra = strided(4, &|p| vec![p[2], p[1], p[0], p[3]]);
    let raw = from_raw(&bgra, w, h, stride4, PixelFormat::Bgra8).unwrap();
    assert_eq!(raw, rgba);

    let processor = CLIPImageProcessor::default();
    let want = processor.preprocess_path(fixtures().join("mode_rgba.png")).unwrap();
    assert_eq!(processor.preprocess_decoded(&raw).unwrap(), want);

    for (file, format) in
        [("astronaut_384.png", PixelFormat::Rgb8), ("mode_gray.png", PixelFormat::Gray8)]
    {
        let d = decode_path(fixtures().join(file), &limits).unwrap();
        let (bytes, bpp) = match &d.pixels {
            Pixels::Rgb8(p) => (p.clone(), 3),
            Pixels::Gray8(p) => (p.clone(), 1),
            other => panic!("{file}: unexpected {other:?}"),
        };
        let stride = d.width * bpp + 7;
        let mut buf = Vec::new();
        for row in bytes.chunks_exact(d.width * bpp) {
            buf.extend_from_slice(row);
            buf.extend_from_slice(&[0x55; 7]);
        }
        buf.truncate(buf.len() - 7); // the last row needs no padding
        let raw = from_raw(&buf, d.width, d.height, stride, format).unwrap();
        assert_eq!(raw, d, "{file}");
        assert_eq!(
            processor.preprocess_decoded(&raw).unwrap(),
            processor.preprocess_path(fixtures().join(file)).unwrap(),
            "{file}"
        );
        if format == PixelFormat::Rgb8 {
            let bgr: Vec<u8> = buf
                .chunks(stride)
                .flat_map(|row| {
                    let mut r = row.to_vec();
                    r[..d.width * 3].chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
                    r
                })
                .collect();
            assert_eq!(from_raw(&bgr, d.width, d.height, stride, PixelFormat::Bgr8).unwrap(), d);
        }
    }

    // Bad raw buffers are errors, not panics.
    assert_eq!(
        from_raw(&[0; 11], 2, 2, 6, PixelFormat::Rgb8).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        from_raw(&[0; 12], 2, 2, 5, PixelFormat::Rgb8).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        from_raw(&[], 0, 2, 0, PixelFormat::Gray8).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert!(from_raw(&[0; 16], usize::MAX / 2, 2, 0, PixelFormat::Rgba8).is_err());
}

#[test]
fn every_mode_converts_like_pillow() {
    // Conversion rules spelled out on tiny decoded images (the fixtures above
    // check them end to end against Pillow).
    let img = |pixels| DecodedImage { width: 2, height: 1, pixels };
    let white = AlphaPolicy::CompositeOnWhite;
    let drop = AlphaPolicy::Drop;
    assert_eq!(img(Pixels::Gray8(vec![7, 200])).to_rgb8(white).as_raw(), [7, 7, 7, 200, 200, 200]);
    let la = img(Pixels::GrayAlpha8(vec![100, 0, 100, 128]));
    assert_eq!(la.to_rgb8(white).as_raw(), [255, 255, 255, 177, 177, 177]);
    assert_eq!(la.to_rgb8(drop).as_raw(), [100, 100, 100, 100, 100, 100]);
    let rgba = img(Pixels::Rgba8(vec![10, 20, 30, 255, 0, 0, 0, 0]));
    assert_eq!(rgba.to_rgb8(white).as_raw(), [10, 20, 30, 255, 255, 255]);
    assert_eq!(rgba.to_rgb8(drop).as_raw(), [10, 20, 30, 0, 0, 0]);
    // I;16 clamps; 16-bit RGB keeps the high byte.
    assert_eq!(
        img(Pixels::Gray16(vec![254, 1000])).to_rgb8(white).as_raw(),
        [254, 254, 254, 255, 255, 255]
    );
    let rgb16 = img(Pixels::Rgb16(vec![0x1234, 0x80ff, 0xffff, 0x00ff, 0x0100, 0]));
    assert_eq!(rgb16.to_rgb8(white).as_raw(), [0x12, 0x80, 0xff, 0, 1, 0]);
    let rgba16 = img(Pixels::Rgba16(vec![0x1234, 0x80ff, 0xffff, 0xffff, 9, 9, 9, 0]));
    assert_eq!(rgba16.to_rgb8(white).as_raw(), [0x12, 0x80, 0xff, 255, 255, 255]);

    // Decoded layouts of the fixture files.
    let limits = ImageLimits::default();
    let layout = |f: &str| match decode_path(fixtures().join(f), &limits).unwrap().pixels {
        Pixels::Gray8(_) => "L8",
        Pixels::GrayAlpha8(_) => "LA8",
        Pixels::Rgb8(_) => "RGB8",
        Pixels::Rgba8(_) => "RGBA8",
        Pixels::Gray16(_) => "L16",
        Pixels::GrayAlpha16(_) => "LA16",
        Pixels::Rgb16(_) => "RGB16",
        Pixels::Rgba16(_) => "RGBA16",
    };
    assert_eq!(layout("mode_gray16_trns.png"), "LA8");
    assert_eq!(layout("mode_gray16.png"), "L16");
    assert_eq!(layout("mode_palette_trns.png"), "RGBA8");
    assert_eq!(layout("mode_palette.png"), "RGB8");
    assert_eq!(layout("mode_gray_alpha16.png"), "LA16");

    // The v4/OpenAI policy (drop alpha) differs from v5 on transparent pixels.
    let d = decode_path(fixtures().join("mode_rgba.png"), &limits).unwrap();
    assert_ne!(d.to_rgb8(drop), rgb_of(&d));
    let mut p = CLIPImageProcessor::default();
    let v5 = p.preprocess_decoded(&d).unwrap();
    p.alpha = AlphaPolicy::Drop;
    assert_ne!(p.preprocess_decoded(&d).unwrap(), v5);
}

fn tiny_png_header(width: u32, height: u32) -> Vec<u8> {
    // A PNG signature and IHDR claiming a huge RGB image, then no data.
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&ihdr);
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    // A little (deflate-compressed) pixel data, then the end: a real bomb.
    for (kind, data) in
        [(&b"IDAT"[..], &b"\x78\x9c\x63\x60\x00\x00\x00\x02\x00\x01"[..]), (b"IEND", b"")]
    {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let chunk = [kind, data].concat();
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn bad_images_give_clear_errors_naming_the_file() {
    let tmp = std::env::temp_dir().join(format!("clip-image-tests-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let good = std::fs::read(fixtures().join("astronaut_384.png")).unwrap();
    let jpeg = std::fs::read(fixtures().join("jpeg_chelsea_451x300.jpg")).unwrap();
    let limits = ImageLimits::default();
    let cases: Vec<(&str, Vec<u8>, ErrorKind)> = vec![
        ("empty.png", vec![], ErrorKind::Format),
        ("text.png", b"hello, not an image".to_vec(), ErrorKind::Format),
        ("truncated.png", good[..good.len() / 3].to_vec(), ErrorKind::Format),
        ("truncated.jpg", jpeg[..600].to_vec(), ErrorKind::Format),
        ("zero.png", tiny_png_header(0, 10), ErrorKind::Format),
        ("bomb.png", tiny_png_header(100_000, 100_000), ErrorKind::LimitExceeded),
        ("alloc_bomb.png", tiny_png_header(30_000, 30_000), ErrorKind::LimitExceeded),
    ];
    for (name, bytes, kind) in cases {
        let path = tmp.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let e = decode_path(&path, &limits).unwrap_err();
        assert_eq!(e.kind(), kind, "{name}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(name), "{name}: message does not name the file: {msg}");
        eprintln!("{name}: {msg}");
        assert_eq!(decode_bytes(&bytes, &limits).unwrap_err().kind(), kind, "{name} from bytes");
        let e = CLIPImageProcessor::default().load_and_preprocess(&[&path]).remove(0).unwrap_err();
        assert!(e.to_string().contains(name));
    }
    let missing = tmp.join("missing.png");
    let e = decode_path(&missing, &limits).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("missing.png"));

    // Tight configurable limits.
    let tight = ImageLimits { max_width: 100, max_height: 100, max_alloc_bytes: 1 << 20 };
    let e = decode_path(fixtures().join("astronaut_384.png"), &tight).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    assert!(
        e.to_string().contains("astronaut_384.png") && e.to_string().contains("384x384"),
        "{e}"
    );
    let tight = ImageLimits { max_width: 1000, max_height: 1000, max_alloc_bytes: 1000 };
    assert_eq!(
        decode_path(fixtures().join("astronaut_384.png"), &tight).unwrap_err().kind(),
        ErrorKind::LimitExceeded
    );
    // A resize that would blow up (1x1000 -> 224x224000) is caught by the limits too.
    let thin = RgbImage8::new(1, 1000, vec![9; 3000]).unwrap();
    let mut p = CLIPImageProcessor::default();
    p.limits.max_alloc_bytes = 50 << 20;
    assert_eq!(p.preprocess(&thin).unwrap_err().kind(), ErrorKind::LimitExceeded);
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn malformed_preprocessor_config_is_a_format_error_naming_the_file() {
    let tmp = std::env::temp_dir().join(format!("clip-image-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for (i, text) in [
        "{\"size\": 224,",
        "{\"size\": \"large\"}",
        "{\"do_normalize\": 1}",
        "{\"image_std\": [0.2, 0.3]}",
        "[]",
    ]
    .iter()
    .enumerate()
    {
        let dir = tmp.join(format!("m{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("preprocessor_config.json"), text).unwrap();
        let e = CLIPImageProcessor::from_dir(&dir).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Format, "{text}: {e}");
        assert!(e.to_string().contains("preprocessor_config.json"), "{e}");
    }
    // Absent file: defaults.
    let empty = tmp.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let p = CLIPImageProcessor::from_dir(&empty).unwrap();
    assert_eq!(p.config, ImageProcessorConfig::default());
    assert_eq!(p.output_size(), Some((224, 224)));
    let e = CLIPImageProcessor::from_dir(tmp.join("no-such-model")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("no-such-model"), "{e}");
    // NEAREST is reported when loading.
    let dir = tmp.join("nearest");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("preprocessor_config.json"), "{\"resample\": 0}").unwrap();
    assert_eq!(CLIPImageProcessor::from_dir(&dir).unwrap_err().kind(), ErrorKind::Unsupported);
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn batch_is_parallel_and_stacks() {
    let p = CLIPImageProcessor::default();
    let files = ["astronaut_384.png", "noise_1x1.png", "mode_palette.png", "nope.png"];
    let paths: Vec<PathBuf> = files.iter().map(|f| fixtures().join(f)).collect();
    let results = p.load_and_preprocess(&paths);
    assert_eq!(results.len(), 4);
    assert_eq!(results[3].as_ref().unwrap_err().kind(), ErrorKind::Io);
    let ok: Vec<Tensor> = results.into_iter().take(3).map(|r| r.unwrap()).collect();
    let images: Vec<RgbImage8> = files[..3]
        .iter()
        .map(|f| rgb_of(&decode_path(fixtures().join(f), &ImageLimits::default()).unwrap()))
        .collect();
    let batch = p.preprocess_batch(&images).unwrap();
    assert_eq!(batch.shape(), [3, 3, 224, 224]);
    assert_eq!(batch, Tensor::stack(&ok).unwrap());
    assert!(p.preprocess_batch(&[]).is_err());
}

/// Inputs from the fuzz corpus (fuzz/fuzz_targets/image_decode.rs): odd
/// headers of every container. No crash was found; a crashing input would be
/// added here.
#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz_regressions");
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    let limits = ImageLimits { max_width: 4096, max_height: 4096, max_alloc_bytes: 64 << 20 };
    let p = CLIPImageProcessor { limits, ..Default::default() };
    for entry in entries {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = p.preprocess_bytes(&bytes);
    }
}

/// `clip preprocess IMAGE --out FILE.npy` writes the reference `(1, 3, H, W)` array.
#[cfg(feature = "cli")]
#[test]
fn cli_preprocess_writes_the_reference_npy() {
    let tmp = std::env::temp_dir().join(format!("clip-image-cli-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let out = tmp.join("pv.npy");
    // A model directory without preprocessor_config.json: transformers' defaults (224 px).
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_clip"))
        .arg("preprocess")
        .arg("--model")
        .arg(&tmp)
        .arg(fixtures().join("mode_rgba.png"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let npy = std::fs::read(&out).unwrap();
    let hlen = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let header = std::str::from_utf8(&npy[10..10 + hlen]).unwrap();
    assert!(header.contains("'shape': (1, 3, 224, 224)"), "{header}");
    let got: Vec<u32> = npy[10 + hlen..]
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let (_, want) = read_pvq(&fixtures().join("expected/mode_rgba.default.pvq"));
    assert!(got.iter().copied().eq(want.iter().map(|v| v.to_bits())));

    let bad = tmp.join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_clip"))
        .args(["preprocess", bad.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.starts_with("error: ") && stderr.contains("bad.png"), "{stderr}");
    std::fs::remove_dir_all(&tmp).ok();
}
