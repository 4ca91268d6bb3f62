//! `clip tokenize` end to end: output shape, flags and exit codes.

use std::io::Write;
use std::process::{Command, Stdio};

fn clip(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clip"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code().unwrap(), text(out.stdout), text(out.stderr))
}

#[test]
fn tokenize_prints_json_lines() {
    let (code, out, _) = clip(
        &["tokenize", "--text", "a photo of a cat", "--text=dog", "--padding", "longest"],
        None,
    );
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "{\"input_ids\":[49406,320,1125,539,320,2368,49407],\"attention_mask\":[1,1,1,1,1,1,1]}\n\
         {\"input_ids\":[49406,1929,49407,49407,49407,49407,49407],\"attention_mask\":[1,1,1,0,0,0,0]}\n"
    );
    let (code, out, _) = clip(&["tokenize", "--text", "dog"], None);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["input_ids"].as_array().unwrap().len(), 77);
}

#[test]
fn tokenize_reads_stdin_and_flags() {
    let (code, out, _) = clip(
        &["tokenize", "--text-file", "-", "--padding", "none", "--max-length", "4"],
        Some("a photo of a cat\ndog\n"),
    );
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "{\"input_ids\":[49406,320,1125,49407],\"attention_mask\":[1,1,1,1]}");
    assert_eq!(lines[1], "{\"input_ids\":[49406,1929,49407],\"attention_mask\":[1,1,1]}");
    let long = "a ".repeat(100);
    let (code, out, _) = clip(&["tokenize", "--text", &long, "--no-truncation"], None);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["input_ids"].as_array().unwrap().len(), 102);
    let (code, out, _) = clip(
        &["tokenize", "--text", "a cat", "--convention", "open_clip", "--max-length", "6"],
        None,
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("{\"input_ids\":[49406,320,2368,49407,0,0]"), "{out}");
}

#[test]
fn tokenize_errors() {
    let (code, _, err) = clip(&["tokenize"], None);
    assert_eq!(code, 2);
    assert!(err.contains("no text given"), "{err}");
    let (code, _, err) = clip(&["tokenize", "--text", "x", "--max-length", "1"], None);
    assert_eq!(code, 2);
    assert!(err.contains("max_length"), "{err}");
    let (code, _, err) =
        clip(&["tokenize", "--text", "x", "--tokenizer", "/nonexistent/tokenizer.json"], None);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/tokenizer.json"), "{err}");
    let (code, _, _) = clip(&["tokenize", "--text", "x", "--padding", "sideways"], None);
    assert_eq!(code, 2);
}

#[test]
fn tokenizer_flag_accepts_a_directory() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tokenizer/small");
    let file = format!("{dir}/tokenizer.json");
    let text = "a photo of a gigantic hippopotamus";
    let run = |flag: &str, path: &str| {
        let (code, out, err) = clip(&["tokenize", "--text", text, flag, path], None);
        assert_eq!(code, 0, "{flag} {path}: {err}");
        out
    };
    let by_dir = run("--tokenizer", dir);
    assert_eq!(by_dir, run("--tokenizer", &file));
    assert_eq!(by_dir, run("--model", dir));
    // The small vocabulary splits the rare word differently from CLIP's, so
    // the directory was really read.
    let (_, builtin, _) = clip(&["tokenize", "--text", text], None);
    assert_ne!(by_dir, builtin);
}
