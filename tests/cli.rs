//! The `clip` binary, end to end, on the built-in demo model and the sample
//! images in `examples/`: every subcommand's output shape, the tags, search
//! results, and the error cases with their exit codes.

mod common;

use clip::Tensor;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn clip_cmd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clip"))
        .args(args)
        .current_dir(root())
        .env("CLIP_CACHE_DIR", scratch("cache"))
        .output()
        .expect("cannot run clip")
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clip-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = clip_cmd(args);
    assert!(o.status.success(), "clip {args:?} failed: {}", stderr(&o));
    stdout(&o)
}

fn jsonl(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

const COLOURS: [&str; 7] = ["red", "orange", "yellow", "green", "blue", "purple", "pink"];
const SHAPES: [&str; 6] = ["circle", "square", "triangle", "star", "diamond", "cross"];

/// The "colour shape" label a sample image's file name gives.
fn label_of(path: &str) -> String {
    let stem = Path::new(path).file_stem().unwrap().to_str().unwrap();
    let word = |set: &[&'static str]| {
        *set.iter().find(|c| stem.split('-').any(|w| w == **c)).expect("named in the file")
    };
    format!("{} {}", word(&COLOURS), word(&SHAPES))
}

#[test]
fn tag_sample_images() {
    let out = ok(&[
        "tag",
        "--labels-file",
        "examples/labels.txt",
        "examples/images/",
        "--format",
        "jsonl",
    ]);
    let rows = jsonl(&out);
    assert_eq!(rows.len(), 8);
    for row in &rows {
        let path = row["path"].as_str().unwrap();
        let labels = row["labels"].as_array().unwrap();
        assert_eq!(labels.len(), 5, "--top-k defaults to 5");
        let scores: Vec<f64> = labels.iter().map(|l| l["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "sorted by score");
        assert!(scores.iter().sum::<f64>() <= 1.0 + 1e-6);
        assert_eq!(labels[0]["label"], label_of(path).as_str(), "{path}");
    }
    // The table (default) names each image once; csv has a header and one row per kept label.
    let table = ok(&["tag", "--labels", "red,blue", "examples/images/red-circle.png"]);
    assert!(table.starts_with("examples/images/red-circle.png: red "), "{table}");
    let csv = ok(&[
        "tag",
        "--labels",
        "red,blue,green",
        "--top-k",
        "2",
        "--format",
        "csv",
        "examples/images/red-circle.png",
    ]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "path,label,score");
    assert_eq!(lines.len(), 3);
    let one = jsonl(&ok(&[
        "tag",
        "--labels",
        "red,blue,green",
        "--threshold",
        "0.5",
        "--format",
        "jsonl",
        "examples/images/red-circle.png",
    ]));
    assert_eq!(one[0]["labels"].as_array().unwrap().len(), 1);
    // A custom template is used (and cached separately).
    let t = jsonl(&ok(&[
        "tag",
        "--labels",
        "red,blue",
        "--template",
        "a {} shape",
        "--format",
        "jsonl",
        "examples/images/blue-square.png",
    ]));
    assert_eq!(t[0]["labels"][0]["label"], "blue");
}

/// `--int8` tags the samples as full precision does (the int8 cost on this
/// model is measured in tests/int8_precision.rs), with scores within 0.05.
#[test]
fn tag_int8_agrees_with_full_precision() {
    let run = |extra: &[&str]| {
        let mut args = vec!["tag", "--labels-file", "examples/labels.txt", "--format", "jsonl"];
        args.extend_from_slice(extra);
        args.push("examples/images/");
        jsonl(&ok(&args))
    };
    let (full, int8) = (run(&[]), run(&["--int8"]));
    assert_eq!(full.len(), int8.len());
    for (a, b) in full.iter().zip(&int8) {
        assert_eq!(a["path"], b["path"]);
        assert_eq!(a["labels"][0]["label"], b["labels"][0]["label"], "{}", a["path"]);
        let (sa, sb) =
            (a["labels"][0]["score"].as_f64().unwrap(), b["labels"][0]["score"].as_f64().unwrap());
        assert!((sa - sb).abs() < 0.05, "{}: {sa} vs {sb}", a["path"]);
    }
}

#[test]
fn embed_texts_jsonl_and_npy_agree_with_the_library() {
    let out =
        ok(&["embed", "--text", "a photo of a red circle", "--text=-dash", "--format", "jsonl"]);
    let rows = jsonl(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["input"], "-dash");
    let pipeline = clip::default_model::pipeline().unwrap();
    let expected = pipeline.encode_texts(&["a photo of a red circle", "-dash"]).unwrap();
    for (row, want) in rows.iter().zip(expected.rows()) {
        let got: Vec<f32> = row["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(got, want, "JSON floats round-trip exactly");
    }
    let npy = scratch("embed").join("t.npy");
    ok(&[
        "embed",
        "--text",
        "a photo of a red circle",
        "--text=-dash",
        "--format",
        "npy",
        "--out",
        npy.to_str().unwrap(),
    ]);
    let t = Tensor::from_npy_bytes(&std::fs::read(&npy).unwrap()).unwrap();
    assert_eq!(t, expected);
}

#[test]
fn embed_images_normalized() {
    let rows = jsonl(&ok(&[
        "embed",
        "--normalize",
        "examples/images/red-circle.png",
        "examples/images/orange-cross.png",
    ]));
    assert_eq!(rows.len(), 2);
    for r in rows {
        let v: Vec<f64> =
            r["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(v.len(), 64);
        let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }
}

#[test]
fn similarity_matrix() {
    let out = ok(&[
        "similarity",
        "--text",
        "a photo of a red shape",
        "--text",
        "a photo of a blue shape",
        "--format",
        "jsonl",
        "examples/images/red-circle.png",
        "examples/images/blue-square.png",
    ]);
    let rows = jsonl(&out);
    let s = |i: usize, j: usize| rows[i]["scores"][j].as_f64().unwrap();
    assert!(s(0, 0) > s(0, 1) && s(1, 1) > s(1, 0), "{out}");
    let cos = jsonl(&ok(&[
        "similarity",
        "--cosine",
        "--text",
        "red",
        "--format",
        "jsonl",
        "examples/images/red-circle.png",
    ]));
    let c = cos[0]["scores"][0].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&c));
}

#[test]
fn index_then_search() {
    let dir = scratch("index");
    let index = dir.join("idx");
    let _ = std::fs::remove_dir_all(&index);
    let o = clip_cmd(&["index", "--out", index.to_str().unwrap(), "examples/images/"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("indexed 8 image(s)"), "{}", stderr(&o));
    let meta: Value =
        serde_json::from_slice(&std::fs::read(index.join("index.json")).unwrap()).unwrap();
    assert_eq!(meta["entries"].as_array().unwrap().len(), 8);
    let emb =
        Tensor::from_npy_bytes(&std::fs::read(index.join("embeddings.npy")).unwrap()).unwrap();
    assert_eq!(emb.shape(), &[8, 64]);
    // Re-running embeds nothing new.
    let again = clip_cmd(&["index", "--out", index.to_str().unwrap(), "examples/images/"]);
    assert!(stderr(&again).contains("(0 new or changed"), "{}", stderr(&again));
    for (query, expected) in [
        ("a photo of a red circle.", "red-circle.png"),
        ("a photo of a orange cross.", "orange-cross.png"),
    ] {
        let hits = jsonl(&ok(&[
            "search",
            "--index",
            index.to_str().unwrap(),
            query,
            "--format",
            "jsonl",
            "--top-k",
            "3",
        ]));
        assert_eq!(hits.len(), 3);
        assert!(hits[0]["path"].as_str().unwrap().ends_with(expected), "{query}: {hits:?}");
        assert!(hits[0]["score"].as_f64().unwrap() >= hits[1]["score"].as_f64().unwrap());
    }
}

#[test]
fn info_and_preprocess() {
    let info: Value = serde_json::from_str(&ok(&["info", "--json"])).unwrap();
    assert_eq!(info["projection_dim"], 64);
    assert_eq!(info["vision"]["image_size"], 64);
    assert_eq!(info["weights"]["dtypes"]["F16"], 142);
    let npy = scratch("pre").join("px.npy");
    ok(&["preprocess", "examples/images/red-circle.png", "--out", npy.to_str().unwrap()]);
    let t = Tensor::from_npy_bytes(&std::fs::read(&npy).unwrap()).unwrap();
    assert_eq!(t.shape(), &[1, 3, 64, 64]);
}

/// `clip info` reports the open_clip variants a checkpoint uses, in both
/// outputs (the `variants-open_clip` fixture: LayerScale in both towers, no
/// `ln_pre`, text pooled at the last position, no text projection).
#[test]
fn info_reports_open_clip_variants() {
    let family = common::families::Family::load("variants-open_clip");
    let tmp = family.materialise("cli-info");
    let dir = tmp.path().to_str().unwrap();
    let info: Value = serde_json::from_str(&ok(&["info", "--model", dir, "--json"])).unwrap();
    assert_eq!(info["text"]["pooling"], "last");
    assert_eq!(info["text"]["layer_scale"], true);
    assert_eq!(info["text"]["projection"], false);
    assert_eq!(info["vision"]["pre_layer_norm"], false);
    assert_eq!(info["vision"]["layer_scale"], true);
    let human = ok(&["info", "--model", dir]);
    let line = human.lines().find(|l| l.starts_with("variants:")).expect("a variants line");
    for part in
        ["LayerScale in both towers", "no ln_pre", "text pooled by last", "no text projection"]
    {
        assert!(line.contains(part), "{line}");
    }
    // B/32-style checkpoints print no variants line.
    assert!(!ok(&["info"]).contains("variants:"));
}

/// `clip info` names the kernel in use (the environment's `CLIP_KERNEL`,
/// if the tests run under one, else the detected kernel), and every kernel
/// this CPU supports; forcing `gemm` shows in both outputs; an unknown
/// `CLIP_KERNEL` is bad usage (exit 2), one this CPU cannot run a runtime
/// error (exit 1), both naming it, no panic.
#[test]
fn info_reports_the_kernel_and_clip_kernel_forces_it() {
    use clip::kernels::Kernel;
    let info: Value = serde_json::from_str(&ok(&["info", "--json"])).unwrap();
    let active = clip::kernels::active_kernel().unwrap();
    assert_eq!(info["kernel"]["active"], active.name());
    let supported: Vec<&str> = Kernel::supported_all().iter().map(|k| k.name()).collect();
    assert_eq!(info["kernel"]["supported"], serde_json::json!(supported));
    assert_eq!(info["kernel"]["int8"], true);
    let dot = clip::Precision::int8_dot().map(|d| d.name());
    assert_eq!(info["kernel"]["int8_dot"], serde_json::json!(dot));
    let with_kernel = |value: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_clip"))
            .args(args)
            .current_dir(root())
            .env("CLIP_KERNEL", value)
            .env_remove("CLIP_INT8_DOT")
            .output()
            .expect("cannot run clip")
    };
    let o = with_kernel("gemm", &["info"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("kernel:         gemm (forced by CLIP_KERNEL"), "{}", stdout(&o));
    assert!(stdout(&o).contains("int8 products: scalar"), "{}", stdout(&o));
    let other = if cfg!(target_arch = "x86_64") { "neon" } else { "avx512" };
    for (value, code) in [("sse9", 2), (other, 1)] {
        let o = with_kernel(value, &["embed", "--text", "a red circle"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "CLIP_KERNEL={value}: {err}");
        assert!(
            err.contains(&format!("CLIP_KERNEL={value}")) && !err.contains("panicked"),
            "{err}"
        );
    }
}

#[test]
fn errors_have_meaningful_exit_codes_and_no_panics() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["tag", "--labels", "red", "no/such/file.png"], 1, "no/such/file.png"),
        (
            &["tag", "--labels", "red", "--model", "no/such/model", "examples/images/"],
            1,
            "no/such/model",
        ),
        (&["tag", "--bogus-flag"], 2, ""),
        (&["tag", "--labels", "red", "--template", "no placeholder", "examples/images/"], 2, "{}"),
        (&["embed", "--text", "x", "examples/images/red-circle.png"], 2, ""),
        (&["search", "--index", "no/such/index", "q"], 1, "index.json"),
    ];
    for (args, code, needle) in cases {
        let o = clip_cmd(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(*code), "clip {args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
        assert!(err.contains(needle), "clip {args:?}: {err}");
    }
    // A folder with one unreadable image: reported, skipped, the rest tagged.
    let dir = scratch("bad");
    std::fs::copy(root().join("examples/images/red-circle.png"), dir.join("good.png")).unwrap();
    std::fs::write(dir.join("broken.png"), b"not a png at all").unwrap();
    let o = clip_cmd(&["tag", "--labels", "red,blue", "--format", "jsonl", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken.png"), "{}", stderr(&o));
    assert_eq!(jsonl(&stdout(&o)).len(), 1);
    // --help explains, exit 0.
    let h = clip_cmd(&["tag", "--help"]);
    assert_eq!(h.status.code(), Some(0));
    assert!(stdout(&h).contains("--labels-file"));
}

/// `clip quantize --int8` writes a directory that `--model` loads (at int8,
/// `clip info` says) and that tags the samples as the demo model does; it
/// needs `--int8` (usage error otherwise) and `--force` to replace its
/// output (exit 2, naming the flag).
#[test]
fn quantize_writes_a_model_directory_that_loads() {
    let out = scratch("quantize").join("q");
    let _ = std::fs::remove_dir_all(&out);
    let out_s = out.to_str().unwrap();
    let report: Value =
        serde_json::from_str(&ok(&["quantize", "--int8", "assets/demo-model", out_s, "--json"]))
            .unwrap();
    assert!(report["quantized_tensors"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["precision"], "int8");
    assert!(report["bytes_out"].as_u64() < report["bytes_in"].as_u64(), "{report}");
    let info: Value = serde_json::from_str(&ok(&["info", "--json", "--model", out_s])).unwrap();
    assert_eq!(info["precision"], "int8");
    assert!(info["weights"]["dtypes"]["I8"].as_u64().unwrap() > 0, "{info}");
    let tag = |model: &[&str]| {
        let mut args =
            vec!["tag", "--format", "jsonl", "--labels", "red circle,blue square,green star"];
        args.extend_from_slice(model);
        args.extend_from_slice(&["tests/fixtures/demo/00-red-circle.png"]);
        jsonl(&ok(&args))[0]["labels"][0]["label"].clone()
    };
    assert_eq!(tag(&["--model", out_s]), tag(&[]));
    let o = clip_cmd(&["quantize", "assets/demo-model", out_s]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = clip_cmd(&["quantize", "--int8", "assets/demo-model", out_s]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force") && !stderr(&o).contains("panicked"), "{}", stderr(&o));
    ok(&["quantize", "--int8", "--force", "assets/demo-model", out_s]);
    std::fs::remove_dir_all(&out).unwrap();
}
