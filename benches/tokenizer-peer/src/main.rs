//! Tokens per second of `clip::tokenizer` and of Hugging Face `tokenizers`
//! (configured as transformers 5 `CLIPTokenizer`) on the conformance corpus,
//! measured in the same run. Both must give identical ids first.
//!
//! `cargo run --release -- [RUNS] [REPEAT]` (from this directory). Prints the
//! median over RUNS of encoding the corpus REPEAT times, single-threaded
//! (`encode` text by text) and batched (`encode_batch`, rayon in both).

use clip::tokenizer::{CLIPTokenizer, EncodeOptions, Padding};
use serde_json::Value;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A transformers-5-style tokenizer.json for the full CLIP vocabulary: the small
/// fixture file (saved by transformers) with the vocabulary, merges and special
/// ids of the real one (rebuilt from the .gz as in clip-spec 1.2).
fn hf_tokenizer() -> tokenizers::Tokenizer {
    let gz =
        std::fs::read(Path::new(ROOT).join("src/tokenizer/bpe_simple_vocab_16e6.txt.gz")).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
    let merges: Vec<&str> = text.split('\n').skip(1).take(48894).collect();
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut chars: Vec<char> =
        (0..256).filter(|&b| printable(b)).filter_map(char::from_u32).collect();
    chars.extend(
        (0..256u32)
            .filter(|&b| !printable(b))
            .enumerate()
            .filter_map(|(n, _)| char::from_u32(256 + n as u32)),
    );
    let mut tokens: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    tokens.extend(chars.iter().map(|c| format!("{c}</w>")));
    tokens.extend(merges.iter().map(|m| m.replace(' ', "")));
    tokens.push("<|startoftext|>".into());
    tokens.push("<|endoftext|>".into());
    let vocab: serde_json::Map<String, Value> =
        tokens.into_iter().enumerate().map(|(i, t)| (t, Value::from(i))).collect();
    let small =
        std::fs::read(Path::new(ROOT).join("tests/fixtures/tokenizer/small/tokenizer.json"))
            .unwrap();
    let mut j: Value = serde_json::from_slice(&small).unwrap();
    j["model"]["vocab"] = Value::Object(vocab);
    j["model"]["merges"] = Value::from(merges.iter().map(|m| Value::from(*m)).collect::<Vec<_>>());
    j["added_tokens"][0]["id"] = Value::from(49406);
    j["added_tokens"][1]["id"] = Value::from(49407);
    j["post_processor"]["cls"][1] = Value::from(49406);
    j["post_processor"]["sep"][1] = Value::from(49407);
    tokenizers::Tokenizer::from_bytes(serde_json::to_vec(&j).unwrap()).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let tokens = f(); // warm-up (fills both caches)
    let secs = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .collect();
    (median(secs), tokens)
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let runs = args.first().copied().unwrap_or(11);
    let repeat = args.get(1).copied().unwrap_or(4);
    let corpus =
        std::fs::read_to_string(Path::new(ROOT).join("tests/fixtures/tokenizer/corpus.jsonl"))
            .unwrap();
    let texts: Vec<String> = corpus
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["t"].as_str().unwrap().to_string())
        .collect();
    let texts: Vec<&str> = (0..repeat).flat_map(|_| texts.iter().map(String::as_str)).collect();

    let ours = CLIPTokenizer::builtin().unwrap();
    let hf = hf_tokenizer();
    for t in &texts {
        let theirs = hf.encode(*t, true).unwrap().get_ids().to_vec();
        assert_eq!(ours.encode(t), theirs, "ids differ on {t:?}");
    }
    println!(
        "corpus: {} texts ({} bytes), {runs} runs, threads: {}",
        texts.len(),
        texts.iter().map(|t| t.len()).sum::<usize>(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    let (t_ours, n) = time(runs, || texts.iter().map(|t| ours.encode(t).len()).sum());
    let (t_hf, n_hf) =
        time(runs, || texts.iter().map(|t| hf.encode(*t, true).unwrap().len()).sum());
    assert_eq!(n, n_hf);
    report("single-threaded encode", n, t_ours, t_hf);

    let opts = EncodeOptions { padding: Padding::None, truncation: false, ..Default::default() };
    let (t_ours, n) = time(runs, || {
        ours.encode_batch(&texts, &opts).unwrap().input_ids.iter().map(Vec::len).sum()
    });
    let (t_hf, n_hf) =
        time(runs, || hf.encode_batch(texts.clone(), true).unwrap().iter().map(|e| e.len()).sum());
    assert_eq!(n, n_hf);
    report("encode_batch (rayon)", n, t_ours, t_hf);

    let prompts: Vec<&str> =
        texts.iter().copied().filter(|t| t.starts_with("a photo of")).collect();
    let (t_ours, n) = time(runs, || prompts.iter().map(|t| ours.encode(t).len()).sum());
    let (t_hf, n_hf) =
        time(runs, || prompts.iter().map(|t| hf.encode(*t, true).unwrap().len()).sum());
    assert_eq!(n, n_hf);
    report("prompts \"a photo of..\"", n, t_ours, t_hf);
}

fn report(what: &str, tokens: usize, ours: f64, hf: f64) {
    println!(
        "{what:24} clip: {:>10.0} tokens/s   tokenizers: {:>10.0} tokens/s   ratio {:.2}x",
        tokens as f64 / ours,
        tokens as f64 / hf,
        hf / ours
    );
}
