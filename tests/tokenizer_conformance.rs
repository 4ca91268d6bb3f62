//! Conformance of `clip::tokenizer` with transformers 5 `CLIPTokenizer` and
//! open_clip, on the corpus of `scripts/make_tokenizer_fixtures.py`.

use clip::tokenizer::{CLIPTokenizer, Convention, EncodeOptions, Padding};
use clip::ErrorKind;
use serde_json::Value;
use std::path::{Path, PathBuf};

const BOS: u32 = 49406;
const EOS: u32 = 49407;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer")
}

fn jsonl(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

struct Case {
    text: String,
    ids: Vec<u32>,
    ids77: Vec<u32>,
    open_clip: Option<Vec<u32>>,
}

fn corpus() -> Vec<Case> {
    jsonl("corpus.jsonl")
        .iter()
        .map(|r| {
            let full = ids(&r["ids"]);
            Case {
                text: r["t"].as_str().unwrap().to_string(),
                ids77: r.get("t77").map(ids).unwrap_or_else(|| full.clone()),
                ids: full,
                open_clip: r.get("oc").map(ids),
            }
        })
        .collect()
}

fn builtin() -> CLIPTokenizer {
    CLIPTokenizer::builtin().unwrap()
}

#[test]
fn corpus_ids_unpadded() {
    let tok = builtin();
    let cases = corpus();
    assert!(cases.len() >= 2000);
    let bad: Vec<_> =
        cases.iter().filter(|c| tok.encode(&c.text) != c.ids).map(|c| &c.text).collect();
    assert!(
        bad.is_empty(),
        "{} of {} differ, e.g. {:?}",
        bad.len(),
        cases.len(),
        &bad[..bad.len().min(5)]
    );
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let opts = EncodeOptions { padding: Padding::None, truncation: false, ..Default::default() };
    let enc = tok.encode_batch(&texts, &opts).unwrap();
    for (c, (row, mask)) in cases.iter().zip(enc.input_ids.iter().zip(&enc.attention_mask)) {
        assert_eq!(row, &c.ids);
        assert!(mask.iter().all(|&m| m == 1) && mask.len() == row.len());
    }
}

#[test]
fn corpus_padded_truncated_77() {
    let tok = builtin();
    let cases = corpus();
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let enc = tok.encode_batch(&texts, &EncodeOptions::default()).unwrap();
    let mut long = 0;
    for (c, (row, mask)) in cases.iter().zip(enc.input_ids.iter().zip(&enc.attention_mask)) {
        long += usize::from(c.ids77 != c.ids);
        let n = c.ids77.len();
        let mut want = c.ids77.clone();
        want.resize(77, EOS);
        assert_eq!(row, &want, "{:?}", c.text);
        let want_mask: Vec<u32> = (0..77).map(|i| u32::from(i < n)).collect();
        assert_eq!(mask, &want_mask, "{:?}", c.text);
    }
    assert!(long >= 20, "the corpus must contain texts longer than 77 tokens");
}

#[test]
fn open_clip_convention_on_its_subset() {
    let tok = builtin();
    let cases: Vec<Case> = corpus().into_iter().filter(|c| c.open_clip.is_some()).collect();
    assert!(cases.len() >= 2000);
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let opts = EncodeOptions { convention: Convention::OpenClip, ..Default::default() };
    let enc = tok.encode_batch(&texts, &opts).unwrap();
    let mut bad = Vec::new();
    for (c, row) in cases.iter().zip(&enc.input_ids) {
        let mut want = c.open_clip.clone().unwrap();
        want.resize(77, 0);
        if row != &want {
            bad.push(c.text.clone());
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} differ, e.g. {:?}",
        bad.len(),
        cases.len(),
        &bad[..bad.len().min(5)]
    );
}

#[test]
fn batches_padding_longest() {
    let tok = builtin();
    for b in jsonl("batches.jsonl") {
        let texts: Vec<&str> =
            b["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        let opts = EncodeOptions {
            padding: Padding::Longest,
            truncation: b["truncation"].as_bool().unwrap(),
            ..Default::default()
        };
        let enc = tok.encode_batch(&texts, &opts).unwrap();
        let want_ids: Vec<Vec<u32>> = b["input_ids"].as_array().unwrap().iter().map(ids).collect();
        let want_mask: Vec<Vec<u32>> =
            b["attention_mask"].as_array().unwrap().iter().map(ids).collect();
        assert_eq!(enc.input_ids, want_ids, "{texts:?}");
        assert_eq!(enc.attention_mask, want_mask, "{texts:?}");
    }
}

#[test]
fn decode_matches_transformers() {
    let tok = builtin();
    let cases = jsonl("decode.jsonl");
    assert!(cases.len() > 300);
    for d in cases {
        let got = tok.decode(&ids(&d["ids"]), d["skip"].as_bool().unwrap());
        assert_eq!(got, d["text"].as_str().unwrap(), "{d}");
    }
}

#[test]
fn batch_edge_cases() {
    let tok = builtin();
    assert_eq!(tok.encode_batch(&[], &EncodeOptions::default()).unwrap(), Default::default());
    for n in [0, 1] {
        let err = tok
            .encode_batch(&["x"], &EncodeOptions { max_length: n, ..Default::default() })
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains("max_length"), "{err}");
    }
    let two = tok
        .encode_batch(&["a photo"], &EncodeOptions { max_length: 2, ..Default::default() })
        .unwrap();
    assert_eq!(two.input_ids, [[BOS, EOS]]);
    let long = "a ".repeat(100);
    let opts = EncodeOptions { truncation: false, ..Default::default() };
    let enc = tok.encode_batch(&[&long, "cat"], &opts).unwrap();
    assert_eq!(enc.input_ids[0].len(), 102);
    assert_eq!(enc.input_ids[1].len(), 77);
    let opts =
        EncodeOptions { convention: Convention::OpenClip, max_length: 5, ..Default::default() };
    assert_eq!(
        tok.encode_batch(&["a photo of a cat"], &opts).unwrap().input_ids,
        [[BOS, 320, 1125, 539, EOS]]
    );
    let opts = EncodeOptions { pad_token_id: Some(7), ..Default::default() };
    assert_eq!(tok.encode_batch(&["cat"], &opts).unwrap().input_ids[0][5], 7);
}

#[test]
fn special_ids_and_sizes() {
    let tok = builtin();
    assert_eq!((tok.bos_token_id(), tok.eos_token_id(), tok.pad_token_id()), (BOS, EOS, EOS));
    assert_eq!(tok.vocab_size(), 49408);
    assert_eq!(tok.source(), "built-in CLIP vocabulary");
    assert_eq!(tok.encode("a photo of a cat"), [BOS, 320, 1125, 539, 320, 2368, EOS]);
    // open_clip: `<|endoftext|>` is text, `<end_of_text>` is special.
    let oc = tok.encode_with("<|endoftext|> <END_OF_TEXT>", Convention::OpenClip);
    assert_eq!(oc.iter().filter(|&&i| i == EOS).count(), 2);
    assert!(oc.len() > 4);
}

#[test]
fn cache_is_bounded_and_shared_across_threads() {
    let tok = builtin();
    std::thread::scope(|s| {
        for t in 0..2 {
            let tok = tok.clone();
            s.spawn(move || {
                for i in 0..12_000 {
                    let w = format!("w{t}x{i}qz");
                    assert!(tok.encode(&w).len() >= 3);
                }
            });
        }
    });
    assert!(tok.cached_words() <= 10_000);
}

// ------------------------------------------------------------------ loading paths

/// vocab.json and merges.txt rebuilt from the .gz as in spec 1.2.
type HfFiles = (Vec<u8>, Vec<u8>, Vec<(String, String)>, serde_json::Map<String, Value>);

fn hf_files() -> HfFiles {
    use std::io::Read;
    let gz = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tokenizer/bpe_simple_vocab_16e6.txt.gz"),
    )
    .unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
    let merges: Vec<(String, String)> = text
        .split('\n')
        .skip(1)
        .take(48894)
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap();
            (a.to_string(), b.to_string())
        })
        .collect();
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut chars: Vec<char> =
        (0..256).filter(|&b| printable(b)).map(|b| char::from_u32(b).unwrap()).collect();
    chars.extend(
        (0..256)
            .filter(|&b| !printable(b))
            .enumerate()
            .map(|(n, _)| char::from_u32(256 + n as u32).unwrap()),
    );
    let mut tokens: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    tokens.extend(chars.iter().map(|c| format!("{c}</w>")));
    tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
    tokens.push("<|startoftext|>".into());
    tokens.push("<|endoftext|>".into());
    let vocab: serde_json::Map<String, Value> =
        tokens.into_iter().enumerate().map(|(i, t)| (t, Value::from(i))).collect();
    let vocab_json = serde_json::to_vec(&vocab).unwrap();
    let mut merges_txt = String::from("#version: 0.2\n");
    for (a, b) in &merges {
        merges_txt.push_str(&format!("{a} {b}\n"));
    }
    (vocab_json, merges_txt.into_bytes(), merges, vocab)
}

fn tokenizer_json(vocab: &serde_json::Map<String, Value>, merges: Value) -> Vec<u8> {
    let added = |id: u32, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                           "rstrip": false, "normalized": false, "special": true})
    };
    serde_json::to_vec(&serde_json::json!({
        "version": "1.0",
        "added_tokens": [added(BOS, "<|startoftext|>"), added(EOS, "<|endoftext|>")],
        "post_processor": {"type": "RobertaProcessing", "sep": ["<|endoftext|>", EOS], "cls": ["<|startoftext|>", BOS],
                           "trim_offsets": false, "add_prefix_space": false},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<|endoftext|>", "continuing_subword_prefix": "",
                  "end_of_word_suffix": "</w>", "fuse_unk": false, "vocab": vocab, "merges": merges}
    }))
    .unwrap()
}

fn assert_same_ids(tok: &CLIPTokenizer, cases: &[Case], what: &str) {
    for c in cases {
        assert_eq!(tok.encode(&c.text), c.ids, "{what}: {:?}", c.text);
    }
}

#[test]
fn all_loading_paths_agree_on_the_corpus() {
    let cases = corpus();
    let (vocab_json, merges_txt, merges, vocab) = hf_files();
    let vm = CLIPTokenizer::from_vocab_merges(&vocab_json, &merges_txt).unwrap();
    assert_same_ids(&vm, &cases, "vocab.json + merges.txt");
    let arrays: Vec<Value> = merges.iter().map(|(a, b)| serde_json::json!([a, b])).collect();
    let tj =
        CLIPTokenizer::from_tokenizer_json(&tokenizer_json(&vocab, Value::from(arrays))).unwrap();
    assert_same_ids(&tj, &cases[..600], "tokenizer.json (array merges)");
    let strings: Vec<Value> = merges.iter().map(|(a, b)| Value::from(format!("{a} {b}"))).collect();
    let tj =
        CLIPTokenizer::from_tokenizer_json(&tokenizer_json(&vocab, Value::from(strings))).unwrap();
    assert_same_ids(&tj, &cases[..600], "tokenizer.json (string merges)");
    let gz =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tokenizer/bpe_simple_vocab_16e6.txt.gz");
    let from_gz = CLIPTokenizer::from_file(&gz).unwrap();
    assert_same_ids(&from_gz, &cases[..600], ".gz");
    assert!(from_gz.source().contains("bpe_simple_vocab_16e6.txt.gz"));

    // Files on disk, through from_dir and from_file.
    let dir = std::env::temp_dir().join(format!("clip-tok-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("vocab.json"), &vocab_json).unwrap();
    std::fs::write(dir.join("merges.txt"), &merges_txt).unwrap();
    let d = CLIPTokenizer::from_dir(&dir).unwrap();
    assert!(d.source().starts_with("vocab.json + merges.txt"), "{}", d.source());
    assert_same_ids(&d, &cases[..300], "from_dir vocab+merges");
    let f = CLIPTokenizer::from_file(&dir.join("vocab.json")).unwrap();
    assert_same_ids(&f, &cases[..300], "from_file vocab.json");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let b = CLIPTokenizer::from_dir(&dir).unwrap();
    assert!(b.source().starts_with("built-in"), "{}", b.source());
    assert_same_ids(&b, &cases[..300], "from_dir built-in");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn small_vocabulary_saved_by_transformers() {
    let small = fixtures().join("small");
    let expected = jsonl("small/expected.jsonl");
    let check = |tok: &CLIPTokenizer, what: &str| {
        assert_eq!(
            (tok.bos_token_id(), tok.eos_token_id(), tok.pad_token_id()),
            (2512, 2513, 2513),
            "{what}"
        );
        for e in &expected {
            assert_eq!(tok.encode(e["t"].as_str().unwrap()), ids(&e["ids"]), "{what}: {e}");
        }
    };
    let d = CLIPTokenizer::from_dir(&small).unwrap();
    assert!(d.source().starts_with("tokenizer.json at"), "{}", d.source());
    check(&d, "from_dir");
    check(&CLIPTokenizer::from_file(&small.join("tokenizer.json")).unwrap(), "tokenizer.json");
    check(&CLIPTokenizer::from_file(&small.join("vocab.json")).unwrap(), "vocab.json");
    check(&CLIPTokenizer::from_file(&small.join("merges.txt")).unwrap(), "merges.txt");
    let v = std::fs::read(small.join("vocab.json")).unwrap();
    let m = std::fs::read(small.join("merges.txt")).unwrap();
    check(&CLIPTokenizer::from_vocab_merges(&v, &m).unwrap(), "bytes");
    assert_eq!(d.vocab_size(), 2514);
}

#[test]
fn normalized_added_tokens_match_after_lowercasing() {
    // A tokenizer.json converted by transformers 4 marks the special tokens
    // `normalized: true`; transformers 5 then matches `<|ENDOFTEXT|>` too
    // (checked with transformers 5.24.0: [2512, 2513, 343, 2513, 2513]).
    let bytes = std::fs::read(fixtures().join("small/tokenizer.json")).unwrap();
    let mut j: Value = serde_json::from_slice(&bytes).unwrap();
    for a in j["added_tokens"].as_array_mut().unwrap() {
        a["normalized"] = Value::Bool(true);
    }
    let tok = CLIPTokenizer::from_tokenizer_json(&serde_json::to_vec(&j).unwrap()).unwrap();
    assert_eq!(tok.encode("<|ENDOFTEXT|> x <|endoftext|>"), [2512, 2513, 343, 2513, 2513]);
}

#[test]
fn pad_token_from_tokenizer_config() {
    let dir = std::env::temp_dir().join(format!("clip-tok-pad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let small = fixtures().join("small");
    for f in ["vocab.json", "merges.txt"] {
        std::fs::copy(small.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("special_tokens_map.json"), r#"{"pad_token": {"content": "!"}}"#)
        .unwrap();
    let tok = CLIPTokenizer::from_dir(&dir).unwrap();
    assert_eq!(tok.pad_token_id(), 0);
    assert_eq!(tok.encode_batch(&["a"], &EncodeOptions::default()).unwrap().input_ids[0][3], 0);
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"pad_token": "<pad>"}"#).unwrap();
    let err = CLIPTokenizer::from_dir(&dir).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Format);
    assert!(err.message().contains("<pad>"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------------------ corrupt files

fn format_error(r: clip::Result<CLIPTokenizer>, needle: &str) {
    let err = r.expect_err("must fail");
    assert_eq!(err.kind(), ErrorKind::Format, "{err}");
    assert!(err.message().contains(needle), "{needle:?} not in {:?}", err.message());
}

#[test]
fn corrupt_files_give_format_errors() {
    let small = fixtures().join("small");
    let v = std::fs::read(small.join("vocab.json")).unwrap();
    let m = std::fs::read(small.join("merges.txt")).unwrap();
    let tj = std::fs::read(small.join("tokenizer.json")).unwrap();

    format_error(CLIPTokenizer::from_tokenizer_json(b"{not json"), "not a valid tokenizer.json");
    format_error(
        CLIPTokenizer::from_tokenizer_json(&tj[..tj.len() / 2]),
        "not a valid tokenizer.json",
    );
    format_error(
        CLIPTokenizer::from_tokenizer_json(br#"{"model": {"vocab": {}, "merges": []}}"#),
        "empty",
    );
    format_error(CLIPTokenizer::from_vocab_merges(b"[1, 2]", &m), "not a valid vocab.json");
    format_error(CLIPTokenizer::from_vocab_merges(b"{}", b""), "empty");
    format_error(CLIPTokenizer::from_vocab_merges(br#"{"a": -1}"#, b""), "not a valid vocab.json");
    format_error(
        CLIPTokenizer::from_vocab_merges(&v, b"#version: 0.2\nq z\n"),
        "not in the vocabulary",
    );
    format_error(
        CLIPTokenizer::from_vocab_merges(&v, b"#version: 0.2\na b c\n"),
        "expected two symbols",
    );
    format_error(CLIPTokenizer::from_vocab_merges(&v, b"\xff\xfe"), "not UTF-8");
    // Missing special tokens.
    let mut vocab: serde_json::Map<String, Value> = serde_json::from_slice(&v).unwrap();
    vocab.remove("<|startoftext|>");
    let no_bos = serde_json::to_vec(&vocab).unwrap();
    format_error(CLIPTokenizer::from_vocab_merges(&no_bos, &m), "start-of-text");
    // A missing byte symbol without an unknown token.
    let mut vocab: serde_json::Map<String, Value> = serde_json::from_slice(&v).unwrap();
    vocab.remove("<|endoftext|>");
    vocab.remove("Ā</w>");
    let no_byte = serde_json::to_vec(&vocab).unwrap();
    format_error(CLIPTokenizer::from_vocab_merges(&no_byte, b""), "end-of-text");
    // Malformed merges in tokenizer.json.
    let mut j: Value = serde_json::from_slice(&tj).unwrap();
    j["model"]["merges"][3] = serde_json::json!(["i"]);
    format_error(
        CLIPTokenizer::from_tokenizer_json(&serde_json::to_vec(&j).unwrap()),
        "merge 3 has 1 elements",
    );
    j["model"]["merges"][3] = serde_json::json!("i");
    format_error(CLIPTokenizer::from_tokenizer_json(&serde_json::to_vec(&j).unwrap()), "merge 3");
    j["model"]["merges"][3] = serde_json::json!(["i", "nowhere"]);
    format_error(
        CLIPTokenizer::from_tokenizer_json(&serde_json::to_vec(&j).unwrap()),
        "not in the vocabulary",
    );
    // Corrupt gz.
    format_error(CLIPTokenizer::from_openai_gz(b"\x1f\x8b\x08\x00garbage"), "gzip");
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
        e.write_all(b"header\ni n\n").unwrap();
    }
    format_error(CLIPTokenizer::from_openai_gz(&gz), "merge lines");
    // vocab.json without merges.txt in a directory.
    let dir = std::env::temp_dir().join(format!("clip-tok-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("vocab.json"), &v).unwrap();
    format_error(CLIPTokenizer::from_dir(&dir), "no merges.txt");
    std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
    format_error(CLIPTokenizer::from_dir(&dir), "tokenizer.json");
    std::fs::remove_dir_all(&dir).unwrap();
    let err = CLIPTokenizer::from_dir(Path::new("/nonexistent/clip")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
}

#[test]
fn adversarial_long_inputs_stay_fast() {
    let tok = builtin();
    let start = std::time::Instant::now();
    // One 1 MB "word" (no spaces): the heap-based merge keeps this O(n log n).
    let word = "ab".repeat(1 << 19);
    let ids = tok.encode(&word);
    assert!(ids.len() > 2 && ids.len() < word.len());
    let noise: String = (0..200_000u32)
        .map(|i| char::from(b'a' + (i.wrapping_mul(2654435761) >> 27) as u8 % 26))
        .collect();
    assert!(tok.encode(&noise).len() > 2);
    let specials = "<|endoftext|><|startoftext|>".repeat(20_000);
    assert_eq!(tok.encode(&specials).len(), 40_002);
    assert!(tok.encode_with(&specials, Convention::OpenClip).len() > 40_002);
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}
