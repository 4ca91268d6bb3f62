//! The C ABI from C: header compile checks, a symbol-vs-header check, C
//! programs built against `libclip.so` and `libclip.a` whose results are
//! compared bit for bit with the Rust API, misuse cases, 8 threads sharing a
//! model, the example program, and a valgrind run.
//!
//! How the libraries are found: the test runs `cargo build -p clip-ffi` with
//! the profile and target directory of its own executable (cheap when
//! `cargo test` already built them, and correct from a clean checkout or
//! when only this test was built), then uses `<target>/<profile>/libclip.{so,a}`.
//! `libclip.so` is copied to a private directory as `libclip.so.0` (its
//! soname) with a `libclip.so` symlink, as `make install` lays it out.
//!
//! Needs `gcc` and `g++`; the valgrind test is skipped (with a note) when
//! `valgrind` is missing, unless `CLIP_REQUIRE_VALGRIND=1`.

use clip::image_processing::{from_raw, PixelFormat};
use clip::tokenizer::{EncodeOptions, Padding};
use clip::{Pipeline, Precision, Tensor, DEFAULT_TEMPLATES};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const TEXTS: [&str; 4] = ["a b c", "hello, world!", "x", ""];
const LABELS: [&str; 3] = ["cat", "dog", "rocket"];
const IMAGES: [&str; 4] =
    ["chelsea_300x451.png", "jpeg_astronaut_512.jpg", "mode_rgba.png", "noise_37x53.png"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

struct Env {
    /// `<target>/<profile>`: libclip.a.
    profile_dir: PathBuf,
    /// Private directory with libclip.so.0 and the libclip.so symlink.
    so_dir: PathBuf,
    /// Scratch directory of this test run.
    work: PathBuf,
    /// A model with a 32-pixel preprocessor and a tokenizer that fits its
    /// 1000-token vocabulary.
    model: PathBuf,
    /// A file that is not an image.
    not_image: PathBuf,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let profile = profile_dir.file_name().unwrap().to_str().unwrap();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "clip-ffi", "--target-dir"]).arg(target_dir);
        match profile {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            p => {
                cmd.args(["--profile", p]);
            }
        }
        let out = cmd.current_dir(root()).output().expect("cannot run cargo");
        assert!(out.status.success(), "cargo build -p clip-ffi failed:\n{}", text(&out.stderr));

        let work = profile_dir.join("c-abi-test");
        let _ = std::fs::remove_dir_all(&work);
        let so_dir = work.join("lib");
        std::fs::create_dir_all(&so_dir).unwrap();
        std::fs::copy(profile_dir.join("libclip.so"), so_dir.join("libclip.so.0")).unwrap();
        std::os::unix::fs::symlink("libclip.so.0", so_dir.join("libclip.so")).unwrap();
        let model = work.join("model");
        make_model(&model);
        let not_image = work.join("not_an_image.png");
        std::fs::write(&not_image, "this is not a PNG file\n").unwrap();
        Env { profile_dir, so_dir, work, model, not_image }
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// GPT-2's byte-to-character map, in vocabulary order.
fn byte_chars() -> Vec<char> {
    let mut bs: Vec<u32> = (0x21..=0x7e).chain(0xa1..=0xac).chain(0xae..=0xff).collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    cs.into_iter().map(|c| char::from_u32(c).unwrap()).collect()
}

/// tiny-quickgelu (vocabulary 1000, 32-pixel images) with a preprocessor
/// config for its image size and a byte-level vocabulary without merges
/// (ids < 514), so that strings encode without ids outside its vocabulary.
fn make_model(dir: &Path) {
    let src = root().join("tests/fixtures/models/tiny-quickgelu");
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("preprocessor_config.json"),
        r#"{"do_resize": true, "size": {"shortest_edge": 32}, "resample": 3,
            "do_center_crop": true, "crop_size": {"height": 32, "width": 32},
            "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711]}"#,
    )
    .unwrap();
    let chars = byte_chars();
    let mut vocab: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    vocab.extend(chars.iter().map(|c| format!("{c}</w>")));
    vocab.push("<|startoftext|>".into());
    vocab.push("<|endoftext|>".into());
    let map: serde_json::Map<String, serde_json::Value> =
        vocab.into_iter().enumerate().map(|(i, t)| (t, i.into())).collect();
    std::fs::write(dir.join("vocab.json"), serde_json::to_string(&map).unwrap()).unwrap();
    std::fs::write(dir.join("merges.txt"), "#version: 0.2\n").unwrap();
}

enum Link {
    Shared,
    Static,
}

/// Compiles C sources with the strict flags and links them to libclip.
fn build(name: &str, sources: &[PathBuf], link: Link, extra: &[&str]) -> PathBuf {
    let e = env();
    let exe = e.work.join(name);
    let mut cmd = Command::new("gcc");
    cmd.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-O1"])
        .arg("-I")
        .arg(root().join("include"))
        .args(sources)
        .arg("-o")
        .arg(&exe)
        .args(extra);
    match link {
        Link::Shared => {
            cmd.arg("-L").arg(&e.so_dir).arg("-lclip");
            cmd.arg(format!("-Wl,-rpath,{}", e.so_dir.display()));
        }
        Link::Static => {
            cmd.arg(e.profile_dir.join("libclip.a"));
            cmd.args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil", "-lgcc_s"]);
        }
    }
    let out = cmd.output().expect("cannot run gcc");
    assert!(out.status.success(), "gcc {name} failed:\n{}", text(&out.stderr));
    exe
}

fn c_src(name: &str) -> PathBuf {
    root().join("ffi/tests/c").join(name)
}

fn images() -> Vec<PathBuf> {
    IMAGES.iter().map(|i| root().join("tests/fixtures/images").join(i)).collect()
}

fn run(exe: &Path, args: &[&Path]) -> Output {
    Command::new(exe).args(args).output().expect("cannot run the C program")
}

/// A C program's output lines `KEY v1 v2 ...`, by key.
fn keyed_lines(stdout: &str) -> HashMap<&str, Vec<String>> {
    stdout
        .lines()
        .map(|l| {
            let mut it = l.split(' ');
            (it.next().unwrap(), it.map(str::to_string).collect())
        })
        .collect()
}

fn run_ok(exe: &Path, args: &[&Path]) -> String {
    let out = run(exe, args);
    assert!(
        out.status.success(),
        "{} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        exe.display(),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn hex(v: &[f32]) -> Vec<String> {
    v.iter().map(|x| format!("{:08x}", x.to_bits())).collect()
}

fn rows(results: Vec<clip::Result<Vec<f32>>>) -> Vec<f32> {
    results.into_iter().flat_map(|r| r.unwrap()).collect()
}

/// The C program's raw test image (see `pattern` in abi_values.c).
fn pattern(w: usize, h: usize, stride: usize, bpp: usize) -> Vec<u8> {
    let mut p = vec![0xEE; stride * h];
    for y in 0..h {
        for x in 0..w {
            for c in 0..bpp {
                p[y * stride + x * bpp + c] = ((x * 7 + y * 13 + c * 61) & 0xFF) as u8;
            }
        }
    }
    p
}

/// What abi_values prints, computed with the Rust API.
fn expected() -> Vec<(&'static str, Vec<String>)> {
    let e = env();
    let p = Pipeline::from_dir(&e.model).unwrap().with_threads(2).unwrap();
    let paths = images();
    let d = p.embedding_dim();
    let ctx = p.context_length();
    let (h, w) = p.processor().image_processor.output_size().unwrap();
    let mut out = vec![
        ("version", vec![env!("CARGO_PKG_VERSION").to_string()]),
        ("sizes", [d, ctx, h, w, 2].iter().map(|v| v.to_string()).collect()),
        ("logit_scale", hex(&[p.model().logit_scale()])),
    ];
    let texts = p.encode_texts(&TEXTS).unwrap();
    out.push(("texts", hex(texts.data())));
    out.push(("text1", hex(p.encode_texts(&TEXTS[1..2]).unwrap().data())));
    let opts = EncodeOptions { max_length: ctx, padding: Padding::MaxLength, ..Default::default() };
    let enc = p.processor().tokenizer.encode_batch(&TEXTS, &opts).unwrap();
    let flat = |v: &Vec<Vec<u32>>| v.iter().flatten().map(|x| x.to_string()).collect::<Vec<_>>();
    out.push(("ids", flat(&enc.input_ids)));
    out.push(("mask", flat(&enc.attention_mask)));
    let f = p.install(|| p.model().get_text_features(&enc.input_ids, Some(&enc.attention_mask)));
    out.push(("token_ids", hex(f.unwrap().data())));
    let img = rows(p.encode_image_files(&paths, |_| {}));
    out.push(("image_files", hex(&img)));
    out.push(("image_file0", hex(&rows(p.encode_image_files(&paths[..1], |_| {})))));
    let bytes: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    out.push(("image_buffers", hex(&rows(p.encode_image_bytes(&refs)))));
    out.push(("image_buffer0", hex(&rows(p.encode_image_bytes(&refs[..1])))));
    let alpha = p.processor().image_processor.alpha;
    let raw0 = from_raw(&pattern(37, 29, 37 * 3 + 5, 3), 37, 29, 37 * 3 + 5, PixelFormat::Rgb8)
        .unwrap()
        .to_rgb8(alpha);
    let raw1 =
        from_raw(&pattern(20, 45, 80, 4), 20, 45, 80, PixelFormat::Bgra8).unwrap().to_rgb8(alpha);
    out.push(("raw_images", hex(p.encode_images(&[raw0, raw1.clone()]).unwrap().data())));
    out.push(("raw_image1", hex(p.encode_images(&[raw1]).unwrap().data())));
    let labels = p.label_embeddings(&LABELS, DEFAULT_TEMPLATES).unwrap();
    out.push(("labels", hex(labels.data())));
    let img = Tensor::new(vec![paths.len(), d], img).unwrap();
    let probs = p.zero_shot(&img, &labels).unwrap();
    out.push(("zero_shot", hex(probs.data())));
    out.push(("classify", hex(probs.data())));
    out.push(("similarity", hex(p.model().logits_from_features(&img, &texts).unwrap().data())));
    out
}

fn check_values(link: Link, name: &str) {
    let exe = build(name, &[c_src("abi_values.c")], link, &[]);
    let paths = images();
    let mut args: Vec<&Path> = vec![&env().model];
    args.extend(paths.iter().map(PathBuf::as_path));
    let stdout = run_ok(&exe, &args);
    let got = keyed_lines(&stdout);
    let expected = expected();
    assert_eq!(got.len(), expected.len(), "lines:\n{stdout}");
    for (key, want) in expected {
        let g = got.get(key).unwrap_or_else(|| panic!("no line {key} in\n{stdout}"));
        assert_eq!(g, &want, "{key}: C and Rust differ");
    }
}

#[test]
fn header_compiles_as_c99_and_cxx17() {
    let e = env();
    let inc = root().join("include");
    for (compiler, args) in [
        ("gcc", &["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"][..]),
        ("g++", &["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-x", "c++"][..]),
    ] {
        let out = Command::new(compiler)
            .args(args)
            .arg("-I")
            .arg(&inc)
            .arg("-c")
            .arg(c_src("header_only.c"))
            .arg("-o")
            .arg(e.work.join(format!("header_only_{compiler}.o")))
            .output()
            .unwrap_or_else(|err| panic!("cannot run {compiler}: {err}"));
        assert!(out.status.success(), "{compiler} {args:?}:\n{}", text(&out.stderr));
    }
}

/// The functions `CLIP_API` declares in clip.h.
fn header_functions() -> Vec<String> {
    let h = std::fs::read_to_string(root().join("include/clip.h")).unwrap();
    let mut names: Vec<String> = h
        .split("CLIP_API ")
        .skip(2) // the text before the first use, and the macro's own definitions
        .filter_map(|decl| {
            let head = &decl[..decl.find('(')?];
            let name = head.rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next()?;
            Some(name.to_string())
        })
        .filter(|n| n.starts_with("clip_"))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn header_declares_exactly_the_exported_functions() {
    let e = env();
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(e.so_dir.join("libclip.so.0"))
        .output()
        .expect("cannot run nm");
    assert!(out.status.success());
    let mut exported: Vec<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|n| n.starts_with("clip_"))
        .map(str::to_string)
        .collect();
    exported.sort();
    assert!(exported.len() > 20, "{exported:?}");
    assert_eq!(header_functions(), exported, "clip.h and libclip.so disagree");
}

#[test]
fn shared_library_has_a_versioned_soname() {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(env().so_dir.join("libclip.so.0"))
        .output()
        .expect("cannot run readelf");
    assert!(text(&out.stdout).contains("Library soname: [libclip.so.0]"), "{}", text(&out.stdout));
}

#[test]
fn c_results_equal_rust_results_shared() {
    check_values(Link::Shared, "abi_values_shared");
}

#[test]
fn c_results_equal_rust_results_static() {
    check_values(Link::Static, "abi_values_static");
}

fn misuse_args(e: &Env) -> Vec<PathBuf> {
    vec![
        e.model.clone(),
        root().join("tests/fixtures/models/tiny-quickgelu"),
        e.not_image.clone(),
        images()[0].clone(),
    ]
}

#[test]
fn misuse_gets_the_right_status_and_message() {
    let e = env();
    for (link, name) in [(Link::Shared, "misuse_shared"), (Link::Static, "misuse_static")] {
        let exe = build(name, &[c_src("misuse.c")], link, &[]);
        let args = misuse_args(e);
        let out = run(&exe, &args.iter().map(PathBuf::as_path).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "{name}: {}\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        // Nothing printed by the library: only the program's own line.
        assert_eq!(text(&out.stdout), "misuse: all checks passed\n");
        assert_eq!(text(&out.stderr), "");
    }
}

/// `clip_model_options`' image limits (limits.c): the defaults decode a
/// 300 x 451 image; a width limit of 299 or a height limit of 450 refuses it
/// with CLIP_ERR_LIMIT_EXCEEDED and a message naming the size, limits of
/// exactly 300 x 451 accept it, a 1000-byte budget refuses it; the layout of
/// a `clip.h` without the limits loads with the defaults (the limit fields
/// beyond its `struct_size` are not read). The new fields start where the
/// previous layout ended (they grew the struct, not its tail padding).
#[test]
fn image_limits_are_set_at_load() {
    let e = env();
    let exe = build("limits", &[c_src("limits.c")], Link::Shared, &[]);
    let image = root().join("tests/fixtures/images/chelsea_300x451.png");
    let stdout = run_ok(&exe, &[&e.model, &image]);
    let got = keyed_lines(&stdout);
    let line = |k: &str| got.get(k).unwrap_or_else(|| panic!("no line {k} in\n{stdout}")).join(" ");
    for (case, status) in [
        ("default", "CLIP_OK"),
        ("width_299", "CLIP_ERR_LIMIT_EXCEEDED"),
        ("width_300", "CLIP_OK"),
        ("height_450", "CLIP_ERR_LIMIT_EXCEEDED"),
        ("bytes_1000", "CLIP_ERR_LIMIT_EXCEEDED"),
        ("old_layout", "CLIP_OK"),
    ] {
        assert_eq!(line(case), status, "{case}");
    }
    assert!(line("width_299_message").contains("300x451 pixels exceeds the limit of 299x32768"));
    assert!(line("height_450_message").contains("exceeds the limit of 32768x450"));
    assert!(line("bytes_1000_message").contains("over the limit of 1000 bytes"));
    // sizeof, then the offsets of max_image_bytes, max_image_width and
    // max_image_height: after precision and its padding (64-bit targets).
    let p = std::mem::size_of::<usize>();
    let limits_at = (3 * p + 12).next_multiple_of(8);
    let layout = [limits_at + 16, limits_at, limits_at + 8, limits_at + 12];
    assert_eq!(got["limits_layout"], layout.map(|v| v.to_string()));
}

/// The texts of precision.c.
const DEMO_TEXTS: [&str; 4] = [
    "a red circle",
    "a photo of a blue square",
    "a green star",
    "a yellow triangle on a plain background",
];

fn unhex(v: &[String]) -> Vec<f32> {
    v.iter().map(|h| f32::from_bits(u32::from_str_radix(h, 16).unwrap())).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// `clip_kernel_name`, `clip_int8_dot_name`, `CLIP_KERNEL` and
/// `CLIP_INT8_DOT`: unset, the names are the detected kernel's and its
/// int8 instructions'; forced to `gemm` (every CPU runs it), it says so
/// (int8 on `scalar`) and loads; forced to a name that does not exist, or
/// to the other architecture's kernel, the names are NULL, loading fails
/// with INVALID_ARGUMENT or UNSUPPORTED, and the messages name the
/// variable's value; the same for an int8 variant that does not exist or
/// that the gemm kernel does not have.
#[test]
fn kernel_is_reported_and_forced() {
    let demo = root().join("assets/demo-model");
    let exe = build("kernel", &[c_src("kernel.c")], Link::Shared, &[]);
    let run_env = |kernel: Option<&str>, dot: Option<&str>| {
        let mut cmd = Command::new(&exe);
        cmd.arg(&demo);
        for (var, value) in [("CLIP_KERNEL", kernel), ("CLIP_INT8_DOT", dot)] {
            match value {
                Some(v) => cmd.env(var, v),
                None => cmd.env_remove(var),
            };
        }
        let out = cmd.output().expect("cannot run the C program");
        assert!(out.status.success(), "CLIP_KERNEL={kernel:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let run_with = |value: Option<&str>| run_env(value, None);
    let detected = clip::kernels::Kernel::detected();
    let stdout = run_with(None);
    let got = keyed_lines(&stdout);
    assert_eq!(got["kernel"], [detected.name()], "{stdout}");
    let dot = clip::Precision::int8_dot().map_or("none", |d| d.name());
    assert_eq!(got["int8"], [dot], "{stdout}");
    assert_eq!(got["load"], ["CLIP_OK"], "{stdout}");
    let stdout = run_with(Some("gemm"));
    let got = keyed_lines(&stdout);
    assert_eq!(
        (&got["kernel"][..], &got["int8"][..], &got["load"][..]),
        (&["gemm".to_string()][..], &["scalar".to_string()][..], &["CLIP_OK".to_string()][..])
    );
    let other = if cfg!(target_arch = "x86_64") { "neon" } else { "avx2" };
    for (value, status) in [("sse9", "CLIP_ERR_INVALID_ARGUMENT"), (other, "CLIP_ERR_UNSUPPORTED")]
    {
        let stdout = run_with(Some(value));
        let got = keyed_lines(&stdout);
        assert_eq!(got["kernel"], ["NULL"], "{stdout}");
        assert_eq!(got["load"], [status], "{stdout}");
        assert_eq!(got["int8"], ["NULL"], "{stdout}");
        for key in ["kernel_error", "int8_error", "load_error"] {
            let message = got[key].join(" ");
            assert!(message.contains(&format!("CLIP_KERNEL={value}")), "{key}: {message}");
        }
    }
    for (dot, status) in [("sse9", "CLIP_ERR_INVALID_ARGUMENT"), ("sdot", "CLIP_ERR_UNSUPPORTED")] {
        let stdout = run_env(Some("gemm"), Some(dot));
        let got = keyed_lines(&stdout);
        assert_eq!(
            (&got["kernel"][..], &got["int8"][..]),
            (&["NULL".to_string()][..], &["NULL".to_string()][..]),
            "{stdout}"
        );
        assert_eq!(got["load"], [status], "{stdout}");
        let message = got["load_error"].join(" ");
        assert!(message.contains(&format!("CLIP_INT8_DOT={dot}")), "{message}");
    }
}

/// `clip_model_options.precision` on the built-in demo model
/// (`assets/demo-model/`, loaded as a directory) and its 60 held-out images
/// (`tests/fixtures/demo/`), as `tests/int8_precision.rs` measures it:
/// full precision, the options layout of a `clip.h` older than the field
/// (full precision), and int8. Each equals the Rust API at that precision
/// bit for bit. Int8 (int8 arithmetic on every CPU) must change the
/// numbers and stay within cosine 0.9995 of full precision for every text
/// and image embedding: the threshold `tests/int8_precision.rs` sets for the
/// demo model (there against PyTorch's f32 outputs, which full precision
/// matches to 1e-4). The thresholds are the measured values with a margin,
/// so a broken int8 kernel (wrong scales, offsets or packing) fails them by
/// far while ordinary quantisation noise passes. Measured here: worst
/// cosine 0.99995 (texts) and 0.99993 (images).
#[test]
fn precision_is_chosen_at_load() {
    let demo = root().join("assets/demo-model");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures/demo"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 60);
    let exe = build("precision", &[c_src("precision.c")], Link::Shared, &[]);
    let mut args: Vec<&Path> = vec![&demo];
    args.extend(paths.iter().map(PathBuf::as_path));
    let stdout = run_ok(&exe, &args);
    let got = keyed_lines(&stdout);
    let line = |k: &str| got.get(k).unwrap_or_else(|| panic!("no line {k} in\n{stdout}")).clone();

    assert!(Precision::int8_supported());
    assert_eq!(line("int8_supported"), ["1"]);
    // sizeof, then the offsets of struct_size, num_threads, alpha_policy,
    // log_fn, log_user_data and precision (natural alignment; ffi/src/model.rs
    // checks its Rust struct against the same numbers).
    let p = std::mem::size_of::<usize>();
    let size = ((3 * p + 12).next_multiple_of(8) + 16).next_multiple_of(8);
    let layout = [size, 0, p, p + 4, p + 8, 2 * p + 8, 3 * p + 8];
    assert_eq!(line("options_layout"), layout.map(|v| v.to_string()));
    assert_eq!(line("precision_full"), ["0"]);
    assert_eq!(
        line("precision_old_layout"),
        ["0"],
        "an old-size struct must load at full precision"
    );
    assert_eq!(line("precision_int8"), ["1"]);
    for (key, want) in [
        ("log_full", "full precision"),
        ("log_old_layout", "full precision"),
        ("log_int8", "int8 precision"),
    ] {
        let log = line(key).join(" ");
        assert!(log.starts_with("loaded ") && log.contains(want), "{key}: {log}");
    }

    let mut rust = Pipeline::from_dir(&demo).unwrap().with_threads(2).unwrap();
    let dim = rust.embedding_dim();
    let rust_full_texts = hex(rust.encode_texts(&DEMO_TEXTS).unwrap().data());
    let rust_full_images = hex(&rows(rust.encode_image_files(&paths, |_| {})));
    rust.set_precision(Precision::Int8);
    let rust_int8_texts = hex(rust.encode_texts(&DEMO_TEXTS).unwrap().data());
    let rust_int8_images = hex(&rows(rust.encode_image_files(&paths, |_| {})));
    for (key, want) in [
        ("full_texts", &rust_full_texts),
        ("full_images", &rust_full_images),
        ("old_layout_texts", &rust_full_texts),
        ("old_layout_images", &rust_full_images),
        ("int8_texts", &rust_int8_texts),
        ("int8_images", &rust_int8_images),
    ] {
        assert_eq!(&line(key), want, "{key}: C and the Rust API differ");
    }

    for what in ["texts", "images"] {
        let full = unhex(&line(&format!("full_{what}")));
        let int8 = unhex(&line(&format!("int8_{what}")));
        assert_ne!(full, int8, "{what}: int8 must actually change the arithmetic");
        let worst =
            full.chunks(dim).zip(int8.chunks(dim)).map(|(f, i)| cosine(f, i)).fold(1.0, f64::min);
        println!("int8 vs full precision, {what}: cosine >= {worst:.5}");
        assert!(worst >= 0.9995, "{what}: int8 vs full precision cosine {worst}");
    }
}

/// A quantized checkpoint (`clip::quantize::quantize_dir` on the demo
/// model) through `clip_model_load`: it loads at int8 whatever the options
/// say but for an explicit INT8 (FULL, the default, and an old options
/// layout leave the checkpoint's own precision), and its embeddings equal
/// the Rust API's bit for bit.
#[test]
fn quantized_checkpoint_loads_from_c() {
    let dir = std::env::temp_dir().join(format!("clip-c-quantized-{}", std::process::id()));
    clip::quantize::quantize_dir(&root().join("assets/demo-model"), &dir, true, |_, _| {}).unwrap();
    let paths = images();
    let exe = build("precision", &[c_src("precision.c")], Link::Shared, &[]);
    let mut args: Vec<&Path> = vec![&dir];
    args.extend(paths.iter().map(PathBuf::as_path));
    let stdout = run_ok(&exe, &args);
    let got = keyed_lines(&stdout);
    let line = |k: &str| got.get(k).unwrap_or_else(|| panic!("no line {k} in\n{stdout}")).clone();
    let rust = Pipeline::from_dir(&dir).unwrap().with_threads(2).unwrap();
    assert_eq!(rust.model().precision(), Precision::Int8);
    let texts = hex(rust.encode_texts(&DEMO_TEXTS).unwrap().data());
    let images = hex(&rows(rust.encode_image_files(&paths, |_| {})));
    for name in ["full", "old_layout", "int8"] {
        assert_eq!(line(&format!("precision_{name}")), ["1"], "{name}");
        let log = line(&format!("log_{name}")).join(" ");
        assert!(log.contains("int8 precision"), "{name}: {log}");
        assert_eq!(line(&format!("{name}_texts")), texts, "{name}: C and Rust differ");
        assert_eq!(line(&format!("{name}_images")), images, "{name}: C and Rust differ");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eight_threads_share_one_model() {
    let e = env();
    let exe = build("threads", &[c_src("threads.c")], Link::Shared, &["-pthread"]);
    let paths = images();
    let mut args: Vec<&Path> = vec![&e.model];
    args.extend(paths.iter().map(PathBuf::as_path));
    let out = run_ok(&exe, &args);
    assert!(out.contains("identical to the serial run"), "{out}");
}

#[test]
fn example_tags_images() {
    let e = env();
    let exe = build("tag", &[root().join("examples/c/tag.c")], Link::Shared, &[]);
    let paths = images();
    let mut cmd = Command::new(&exe);
    cmd.arg("--model").arg(&e.model).args(["--labels", "cat,dog,rocket", "--top", "2"]);
    cmd.args(&paths[..2]).arg(&e.not_image);
    let out = cmd.output().unwrap();
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, path) in lines.iter().zip(&paths[..2]) {
        let rest = line.strip_prefix(&format!("{}: ", path.display())).expect(line);
        let tags: Vec<&str> = rest.split(", ").collect();
        assert_eq!(tags.len(), 2, "{line}");
        for t in tags {
            let (label, p) = t.split_once(' ').unwrap();
            assert!(LABELS.contains(&label), "{line}");
            let p: f32 = p.parse().unwrap();
            assert!((0.0..=1.0).contains(&p), "{line}");
        }
    }
    assert!(lines[2].ends_with("error CLIP_ERR_FORMAT"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "a failed image gives exit code 1");
}

#[test]
fn valgrind_finds_no_leaks_or_invalid_accesses() {
    let have = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("CLIP_REQUIRE_VALGRIND").is_none(),
            "CLIP_REQUIRE_VALGRIND is set but valgrind is not installed"
        );
        eprintln!("valgrind not installed: skipping the valgrind run");
        return;
    }
    let e = env();
    let misuse = build("misuse_vg", &[c_src("misuse.c")], Link::Shared, &[]);
    let values = build("abi_values_vg", &[c_src("abi_values.c")], Link::Shared, &[]);
    let paths = images();
    let mut values_args: Vec<PathBuf> = vec![e.model.clone()];
    values_args.extend(paths);
    for (exe, args) in [(misuse, misuse_args(e)), (values, values_args)] {
        let out = Command::new("valgrind")
            .args([
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite,possible",
                "--quiet",
                "--num-callers=40",
                &format!("--suppressions={}", root().join("ffi/tests/valgrind.supp").display()),
            ])
            .arg(&exe)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "valgrind {}: {}\n{}",
            exe.display(),
            out.status,
            text(&out.stderr)
        );
    }
}
